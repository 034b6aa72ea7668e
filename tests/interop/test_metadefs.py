"""Metadata definitions (issue 32) through the three real clients: `openstack image metadef ...`
(python-openstackclient 10.5), `glance md-*` (python-glanceclient) and openstacksdk's metadef
calls, with users of four roles: an admin of project alpha (writes: `metadef_admin`), a member
and a reader of alpha (they read alpha's namespaces and public ones), and a reader of project
beta (public namespaces only). Every output is parsed and checked field by field.

Identities come from conftest.py (`as_user("<project>-<role>")`).
"""

import json

import pytest

from helpers import rows, table, unique

STRING = json.dumps({"type": "string", "enum": ["a", "b"], "description": "one of two"})


def refused(res):
    """A client call that failed with a 403 (or the client's word for it)."""
    text = (res.stdout or "") + (res.stderr or "")
    return res.returncode != 0 and ("403" in text or "Forbidden" in text or "forbidden" in text.lower())


def not_found(res):
    text = (res.stdout or "") + (res.stderr or "")
    return res.returncode != 0 and ("404" in text or "not found" in text.lower() or "No " in text)


def osc_names(clients, *args):
    return sorted(r["namespace"] if "namespace" in r else r["Namespace"]
                  for r in clients.osc("image", "metadef", "namespace", "list", *args, "-f", "json"))


def test_openstack_metadef_namespaces_properties_objects(as_user):
    """python-openstackclient: the admin creates a private and a public namespace with a property
    and an object; readers see what the policy lets them, and nobody but the admin writes."""
    admin, member = as_user("alpha-admin"), as_user("alpha-member")
    reader, stranger = as_user("alpha-reader"), as_user("beta-reader")
    private, public = unique("osc-priv"), unique("osc-pub")

    made = admin.osc("image", "metadef", "namespace", "create", private, "--private",
                     "--display-name", "Private one", "--description", "kept to alpha", "-f", "json")
    assert (made["namespace"], made["visibility"], made["display_name"], made["description"]) == (
        private, "private", "Private one", "kept to alpha")
    assert made["owner"] == admin.identity.project_id or admin.identity.project_id is None
    assert made["protected"] is False
    made = admin.osc("image", "metadef", "namespace", "create", public, "--public", "--protected",
                     "-f", "json")
    assert (made["visibility"], made["protected"]) == ("public", True)

    # Properties: create, list, show, set, and a schema the service refuses.
    prop = admin.osc("image", "metadef", "property", "create", "--name", "hw_colour", "--title", "Colour",
                     "--type", "string", "--schema", STRING, private, "-f", "json")
    assert (prop["name"], prop["title"], prop["type"]) == ("hw_colour", "Colour", "string")
    assert prop["enum"] == ["a", "b"]
    listed = admin.osc("image", "metadef", "property", "list", private, "-f", "json")
    assert [(p["name"], p["title"], p["type"]) for p in listed] == [("hw_colour", "Colour", "string")]
    admin.osc("image", "metadef", "property", "set", "--title", "Hue", private, "hw_colour")
    shown = reader.osc("image", "metadef", "property", "show", private, "hw_colour", "-f", "json")
    assert (shown["name"], shown["title"], shown["type"]) == ("hw_colour", "Hue", "string")
    bad = admin.osc("image", "metadef", "property", "create", "--name", "bad", "--title", "Bad",
                    "--type", "no-such-type", "--schema", "{}", private, check=False)
    assert bad.returncode != 0 and "400" in bad.stderr, bad.stderr

    # Objects.
    obj = admin.osc("image", "metadef", "object", "create", "--namespace", private, "CPU Limits",
                    "-f", "json")
    assert obj["name"] == "CPU Limits"
    objs = member.osc("image", "metadef", "object", "list", private, "-f", "json")
    assert [o["name"] for o in objs] == ["CPU Limits"]
    admin.osc("image", "metadef", "object", "update", private, "CPU Limits", "--name", "CPU Quota")
    assert reader.osc("image", "metadef", "object", "show", private, "CPU Quota", "-f", "json")["name"] == "CPU Quota"

    # Namespace set: display name, description.
    admin.osc("image", "metadef", "namespace", "set", private, "--display-name", "Renamed",
              "--description", "changed")
    shown = member.osc("image", "metadef", "namespace", "show", private, "-f", "json")
    assert (shown["namespace"], shown["display_name"], shown["description"]) == (private, "Renamed", "changed")
    # OSC shows only the fields the sdk's MetadefNamespace declares, which leave out the embedded
    # properties and objects: those are checked on the wire.
    status, _, body = member.http("GET", f"/v2/metadefs/namespaces/{private}")
    assert (status, list(body["properties"]), [o["name"] for o in body["objects"]]) == (
        200, ["hw_colour"], ["CPU Quota"]), body

    # Who sees what: alpha's member and reader see both, beta's reader only the public one.
    for who in (admin, member, reader):
        names = osc_names(who)
        assert private in names and public in names, (who.identity.name, names)
    names = osc_names(stranger)
    assert public in names and private not in names, names
    assert not_found(stranger.osc("image", "metadef", "namespace", "show", private, check=False))
    assert stranger.osc("image", "metadef", "namespace", "show", public, "-f", "json")["namespace"] == public
    assert osc_names(admin, "--visibility", "public").count(private) == 0

    # Only the admin writes.
    for who in (member, reader, stranger):
        res = who.osc("image", "metadef", "namespace", "create", unique("nope"), check=False)
        assert refused(res), (who.identity.name, res.stderr)
    assert refused(member.osc("image", "metadef", "namespace", "set", private, "--description", "x",
                              check=False))
    assert refused(reader.osc("image", "metadef", "property", "delete", private, "hw_colour", check=False))
    assert refused(member.osc("image", "metadef", "namespace", "delete", private, check=False))

    # A protected namespace is not deleted until it is unprotected.
    res = admin.osc("image", "metadef", "namespace", "delete", public, check=False)
    assert res.returncode != 0 and "403" in res.stderr, res.stderr
    admin.osc("image", "metadef", "namespace", "set", public, "--unprotected")
    admin.osc("image", "metadef", "property", "delete", private, "hw_colour")
    assert admin.osc("image", "metadef", "property", "list", private, "-f", "json") == []
    admin.osc("image", "metadef", "object", "delete", private, "CPU Quota")
    admin.osc("image", "metadef", "namespace", "delete", private, public)
    assert private not in osc_names(admin) and public not in osc_names(admin)


def test_glance_md_commands(as_user):
    """python-glanceclient's md-* commands, whose namespace options come from our
    /v2/schemas/metadefs/namespace: namespaces, properties, objects, tags, resource types."""
    admin, reader, stranger = as_user("alpha-admin"), as_user("alpha-reader"), as_user("beta-reader")
    ns = unique("g-md")

    made = table(admin.glance("md-namespace-create", ns, "--visibility", "private", "--display-name",
                              "From glance", "--description", "made by md-namespace-create").stdout)
    assert (made["namespace"], made["visibility"], made["display_name"]) == (ns, "private", "From glance")
    assert made["protected"] == "False"

    prop = table(admin.glance("md-property-create", ns, "--name", "hw_speed", "--title", "Speed",
                              "--type", "integer", "--schema", json.dumps({"type": "integer", "minimum": 1})).stdout)
    assert (prop["name"], prop["title"], prop["type"], prop["minimum"]) == ("hw_speed", "Speed", "integer", "1")
    admin.glance("md-property-update", ns, "hw_speed", "--title", "Top speed")
    assert table(reader.glance("md-property-show", ns, "hw_speed").stdout)["title"] == "Top speed"
    assert [(r["name"], r["title"], r["type"]) for r in rows(reader.glance("md-property-list", ns).stdout)] == [
        ("hw_speed", "Top speed", "integer")]

    obj = table(admin.glance("md-object-create", ns, "--name", "Disk", "--schema", json.dumps(
        {"description": "disk options", "required": ["size"],
         "properties": {"size": {"type": "integer", "title": "Size"}}})).stdout)
    assert (obj["name"], obj["description"]) == ("Disk", "disk options")
    size = table(reader.glance("md-object-property-show", ns, "Disk", "size").stdout)
    assert (size["name"], size["type"], size["title"]) == ("size", "integer", "Size")
    assert [r["name"] for r in rows(reader.glance("md-object-list", ns).stdout)] == ["Disk"]

    # Tags: one, several (replacing, then appending), rename, delete.
    assert table(admin.glance("md-tag-create", ns, "--name", "fast").stdout)["name"] == "fast"
    admin.glance("md-tag-create-multiple", ns, "--names", "a,b")
    assert sorted(r["name"] for r in rows(reader.glance("md-tag-list", ns).stdout)) == ["a", "b"]
    # `md-tag-create-multiple --append` of glanceclient 4.13 fails in the client before sending
    # anything (it sets the header to the bool True: "quote_from_bytes() expected bytes"), so
    # the append is sent as the client would have sent it.
    status, _, body = admin.http("POST", f"/v2/metadefs/namespaces/{ns}/tags", {"tags": [{"name": "c"}]},
                                 {"X-Openstack-Append": "True"})
    assert (status, [t["name"] for t in body["tags"]]) == (201, ["c"]), body
    assert sorted(r["name"] for r in rows(reader.glance("md-tag-list", ns).stdout)) == ["a", "b", "c"]
    admin.glance("md-tag-update", ns, "c", "--name", "cc")
    assert table(reader.glance("md-tag-show", ns, "cc").stdout)["name"] == "cc"
    admin.glance("md-tag-delete", ns, "cc")
    assert sorted(r["name"] for r in rows(reader.glance("md-tag-list", ns).stdout)) == ["a", "b"]

    # Resource types: associate with a prefix, list both ways, then deassociate.
    assoc = table(admin.glance("md-resource-type-associate", ns, "--name", "OS::Glance::Image",
                               "--prefix", "hw_").stdout)
    assert (assoc["name"], assoc["prefix"]) == ("OS::Glance::Image", "hw_")
    linked = rows(reader.glance("md-namespace-resource-type-list", ns).stdout)
    assert [(r["name"], r["prefix"]) for r in linked] == [("OS::Glance::Image", "hw_")]
    assert "OS::Glance::Image" in [r["name"] for r in rows(reader.glance("md-resource-type-list").stdout)]
    shown = table(reader.glance("md-namespace-show", ns, "--resource-type", "OS::Glance::Image").stdout)
    assert "hw_hw_speed" in shown["properties"], shown
    admin.glance("md-resource-type-deassociate", ns, "OS::Glance::Image")
    assert rows(reader.glance("md-namespace-resource-type-list", ns).stdout) == []

    # Policy: the reader of alpha reads, the reader of beta does not see it, neither writes.
    assert ns in [r["namespace"] for r in rows(reader.glance("md-namespace-list").stdout)]
    assert ns not in [r["namespace"] for r in rows(stranger.glance("md-namespace-list").stdout)]
    assert not_found(stranger.glance("md-namespace-show", ns, check=False))
    assert refused(reader.glance("md-tag-create", ns, "--name", "x", check=False))
    assert refused(reader.glance("md-namespace-update", ns, "--display-name", "x", check=False))

    admin.glance("md-namespace-tags-delete", ns)
    admin.glance("md-namespace-objects-delete", ns)
    admin.glance("md-namespace-properties-delete", ns)
    emptied = table(admin.glance("md-namespace-show", ns).stdout)
    assert not any(k in emptied for k in ("properties", "objects", "tags")), emptied
    admin.glance("md-namespace-delete", ns)
    assert not_found(admin.glance("md-namespace-show", ns, check=False))


def test_sdk_metadef_proxy(as_user):
    """openstacksdk's image proxy: namespaces, properties, objects, resource type associations
    and the metadef schemas, as the admin; reads as the readers."""
    from openstack import exceptions

    admin, reader, stranger = as_user("alpha-admin"), as_user("alpha-reader"), as_user("beta-reader")
    img = admin.sdk.image
    ns_name = unique("sdk-md")
    ns = img.create_metadef_namespace(namespace=ns_name, visibility="private", display_name="SDK")
    assert (ns.namespace, ns.visibility, ns.display_name, ns.is_protected) == (ns_name, "private", "SDK", False)

    prop = img.create_metadef_property(ns_name, name="hw_cores", title="Cores", type="integer", minimum=1)
    assert (prop.name, prop.title, prop.type) == ("hw_cores", "Cores", "integer")
    got = reader.sdk.image.get_metadef_property("hw_cores", ns_name)
    assert (got.name, got.title, got.minimum) == ("hw_cores", "Cores", 1)
    assert [p.name for p in reader.sdk.image.metadef_properties(ns_name)] == ["hw_cores"]

    obj = img.create_metadef_object(namespace=ns_name, name="Watchdog", description="behaviour")
    assert (obj.name, obj.description) == ("Watchdog", "behaviour")
    assert [o.name for o in reader.sdk.image.metadef_objects(ns_name)] == ["Watchdog"]

    assoc = img.create_metadef_resource_type_association(ns_name, name="OS::Nova::Flavor", prefix="hw:")
    assert (assoc.name, assoc.prefix) == ("OS::Nova::Flavor", "hw:")
    assert [(a.name, a.prefix) for a in reader.sdk.image.metadef_resource_type_associations(ns_name)] == [
        ("OS::Nova::Flavor", "hw:")]
    assert "OS::Nova::Flavor" in [t.name for t in reader.sdk.image.metadef_resource_types()]

    updated = img.update_metadef_namespace(ns_name, display_name="SDK 2", description="now described")
    assert (updated.display_name, updated.description) == ("SDK 2", "now described")
    shown = reader.sdk.image.get_metadef_namespace(ns_name)
    assert (shown.display_name, shown.description) == ("SDK 2", "now described")
    assert ns_name in [n.namespace for n in reader.sdk.image.metadef_namespaces()]
    assert ns_name not in [n.namespace for n in stranger.sdk.image.metadef_namespaces()]
    with pytest.raises(exceptions.NotFoundException):
        stranger.sdk.image.get_metadef_namespace(ns_name)
    with pytest.raises(exceptions.ForbiddenException):
        reader.sdk.image.create_metadef_namespace(namespace=unique("sdk-no"))

    schema = reader.sdk.image.get_metadef_namespace_schema()
    assert "namespace" in schema.properties and "visibility" in schema.properties
    assert "name" in reader.sdk.image.get_metadef_property_schema().properties

    img.delete_metadef_resource_type_association("OS::Nova::Flavor", ns_name)
    img.delete_metadef_object("Watchdog", ns_name)
    img.delete_metadef_property("hw_cores", ns_name)
    img.delete_metadef_namespace(ns_name)
    with pytest.raises(exceptions.NotFoundException):
        img.get_metadef_namespace(ns_name)
