"""python-openstackclient's image commands, as the install guides and operators use them.
Every output is parsed (`-f json` where the command has it) and checked field by field;
downloads are compared by digest.

Two things OSC does on the client side, whatever the server (checked in its source,
openstackclient/image/v2/image.py, ListImage.take_action):
- `image list --property k=v` does not send the filter: it filters the page(s) it received;
- `image list --sort k:dir` does not send the sort: it sorts the page(s) it received.
So `--limit N` combined with either is applied by the server to the unfiltered, default-sorted
(created_at desc) list first. The tests below combine --limit/--marker only with server-side
filters (--tag, --name, visibility), and `test_server_side_filter_sort_limit` checks the
server's own handling of the same query over raw HTTP.

Identities (conftest.py): `osc` is the everyday user (the unauthenticated admin without
Keystone, alpha-member with it); `admin` does what only an admin may (`--public`);
`as_user("<project>-<role>")` gives the other users.
"""

import hashlib
import json
import uuid

import pytest

from helpers import http, table, unique


def by_prefix(rows, prefix):
    return [r["Name"] for r in rows if (r.get("Name") or "").startswith(prefix)]


def test_image_create_show_list_save_delete(admin, image_file, tmp_path):
    """The install guide's "verify operation": the admin uploads a public cirros image."""
    osc = admin.osc
    path, md5, sha512, size = image_file
    name = unique("cirros")
    created = osc(
        "image", "create", name, "--file", path, "--disk-format", "raw",
        "--container-format", "bare", "--public", "--property", "os_distro=cirros",
        "--tag", "guide", "--min-disk", "1", "--min-ram", "64", "-f", "json",
    )
    assert created["name"] == name
    assert created["status"] == "active"
    assert created["visibility"] == "public"
    assert created["disk_format"] == "raw" and created["container_format"] == "bare"
    assert created["size"] == size
    assert created["checksum"] == md5
    assert created["min_disk"] == 1 and created["min_ram"] == 64
    assert created["protected"] is False
    assert created["tags"] == ["guide"]
    assert created["properties"]["os_distro"] == "cirros"
    assert created["properties"]["os_hash_algo"] == "sha512"
    assert created["properties"]["os_hash_value"] == sha512
    assert created["file"] == f"/v2/images/{created['id']}/file"
    assert created["schema"] == "/v2/schemas/image"
    image_id = created["id"]
    uuid.UUID(image_id)

    shown = osc("image", "show", image_id, "-f", "json")
    for key in ("id", "name", "checksum", "size", "status", "visibility", "min_disk", "min_ram",
                "disk_format", "container_format", "created_at", "tags", "protected"):
        assert shown[key] == created[key], key
    # The owner is the admin's project; an unauthenticated admin's image has none (null, left out by OSC).
    assert shown.get("owner") == admin.identity.project_id
    assert shown["properties"]["os_distro"] == "cirros"
    # The table form, looked up by name (the client lists ?name= to find it).
    t = table(osc("image", "show", name).stdout)
    assert t["id"] == image_id and t["name"] == name
    assert t["checksum"] == md5 and t["status"] == "active" and t["size"] == str(size)
    assert t["visibility"] == "public" and t["disk_format"] == "raw"
    assert "os_distro='cirros'" in t["properties"]

    listed = osc("image", "list", "--long", "-f", "json")
    row = next(r for r in listed if r["ID"] == image_id)
    assert row["Name"] == name and row["Status"] == "active"
    assert row["Disk Format"] == "raw" and row["Container Format"] == "bare"
    assert row["Size"] == size and row["Checksum"] == md5
    assert row["Visibility"] == "public" and row["Protected"] is False
    assert row["Hash Algorithm"] == "sha512" and row["Hash Value"] == sha512
    assert row["Tags"] == ["guide"]
    short = osc("image", "list", "-f", "json")
    assert {"ID": image_id, "Name": name, "Status": "active"} in short

    out = tmp_path / "saved.img"
    osc("image", "save", "--file", out, image_id)
    assert hashlib.sha512(out.read_bytes()).hexdigest() == sha512

    osc("image", "delete", image_id)
    res = osc("image", "show", image_id, check=False)
    assert res.returncode != 0 and "No Image found" in (res.stdout + res.stderr)


def test_create_visibility_flags_without_data(cloud, osc, admin):
    made = {}
    for flag in ("--public", "--private", "--shared", "--community"):
        who = admin.osc if flag == "--public" else osc  # publicize_image: admins only
        img = who("image", "create", unique("vis"), flag, "--disk-format", "raw",
                  "--container-format", "bare", "-f", "json")
        assert img["visibility"] == flag[2:], flag
        # No --file and no data on stdin: the image is created and waits for data. (OSC leaves
        # fields whose value is null out of its output.)
        assert img["status"] == "queued", flag
        assert img.get("size") is None and img.get("checksum") is None, flag
        made[flag[2:]] = img["id"]
    for vis, image_id in made.items():
        stored = cloud.image(image_id)
        assert (stored["visibility"], stored["status"], stored["size"]) == (vis, "queued", None)
    # (The public one too: a member of the owner's project may delete it.)
    osc("image", "delete", *made.values())
    assert all(cloud.image(i) is None for i in made.values())


def test_create_from_stdin(osc, small_file):
    path, md5, sha512, size = small_file
    img = osc("image", "create", unique("stdin"), "--disk-format", "raw", "--container-format", "bare",
              "-f", "json", input=path.read_bytes())
    assert (img["status"], img["size"], img["checksum"]) == ("active", size, md5)
    assert img["properties"]["os_hash_value"] == sha512
    osc("image", "delete", img["id"])


def test_create_with_id_protected_and_set_unset(cloud, osc, admin):
    wanted = str(uuid.uuid4())
    img = osc("image", "create", unique("setme"), "--id", wanted, "--protected", "--property", "a=1",
              "--property", "b=2", "--disk-format", "raw", "--container-format", "bare", "-f", "json")
    assert img["id"] == wanted
    assert img["protected"] is True
    assert (img["properties"]["a"], img["properties"]["b"]) == ("1", "2")
    res = osc("image", "delete", wanted, check=False)
    assert res.returncode != 0, "a protected image must not be deleted"
    assert cloud.image(wanted)["id"] == wanted
    again = osc("image", "create", "dup", "--id", wanted, "--disk-format", "raw",
                "--container-format", "bare", check=False)
    assert again.returncode != 0, "a second image with the same id must be refused (409)"
    assert "409" in again.stderr or "onflict" in again.stderr, again.stderr

    renamed = unique("renamed")
    osc("image", "set", "--name", renamed, "--property", "c=3", "--tag", "x", "--tag", "y",
        "--unprotected", "--min-ram", "256", "--min-disk", "2", "--disk-format", "qcow2", wanted)
    img = osc("image", "show", wanted, "-f", "json")
    assert img["name"] == renamed
    assert img["protected"] is False
    assert img["min_ram"] == 256 and img["min_disk"] == 2
    assert img["disk_format"] == "qcow2"
    assert sorted(img["tags"]) == ["x", "y"]
    assert (img["properties"]["a"], img["properties"]["b"], img["properties"]["c"]) == ("1", "2", "3")
    osc("image", "set", "--property", "a=changed", "--protected", wanted)
    img = cloud.image(wanted)
    assert img["a"] == "changed" and img["protected"] is True

    osc("image", "unset", "--property", "a", "--tag", "x", wanted)
    img = osc("image", "show", wanted, "-f", "json")
    assert "a" not in img["properties"] and img["properties"]["b"] == "2"
    assert img["tags"] == ["y"]
    bad = osc("image", "unset", "--property", "nosuch", wanted, check=False)
    assert bad.returncode != 0 and "nosuch" in bad.stderr

    for flag, vis in (("--community", "community"), ("--shared", "shared"),
                      ("--public", "public"), ("--private", "private")):
        (admin.osc if flag == "--public" else osc)("image", "set", flag, wanted)
        assert cloud.image(wanted)["visibility"] == vis, flag
    osc("image", "set", "--unprotected", wanted)
    osc("image", "delete", wanted)


def make_three(osc, admin_osc, tag):
    """lf-a (alpine, private), lf-b (debian, public: made by the admin), lf-c (alpine, shared), all tagged `tag`."""
    ids = {}
    for name, distro, vis, extra in [("a", "alpine", "--private", "small"), ("b", "debian", "--public", "big"),
                                     ("c", "alpine", "--shared", "big")]:
        img = (admin_osc if vis == "--public" else osc)("image", "create", f"{tag}-{name}", vis, "--property", f"os_distro={distro}",
                  "--tag", tag, "--tag", f"{tag}-{extra}", "--disk-format", "raw",
                  "--container-format", "bare", "-f", "json")
        ids[name] = img["id"]
    return ids


def test_list_filters_sort_and_paging(cloud, osc, admin):
    tag = unique("lf")
    ids = make_three(osc, admin.osc, tag)
    names = lambda rows: by_prefix(rows, tag)
    short = lambda n: [x.rsplit("-", 1)[1] for x in n]

    assert short(names(osc("image", "list", "--name", f"{tag}-b", "-f", "json"))) == ["b"]
    # --property and --sort: client-side in OSC, over every page it fetched.
    assert short(names(osc("image", "list", "--property", "os_distro=alpine", "--sort", "name:asc",
                           "-f", "json"))) == ["a", "c"]
    assert short(names(osc("image", "list", "--tag", f"{tag}-big", "--sort", "name:desc",
                           "-f", "json"))) == ["c", "b"]
    # Visibility filters (server-side).
    assert short(names(osc("image", "list", "--tag", tag, "--private", "-f", "json"))) == ["a"]
    assert short(names(osc("image", "list", "--tag", tag, "--public", "-f", "json"))) == ["b"]
    assert short(names(osc("image", "list", "--tag", tag, "--shared", "-f", "json"))) == ["c"]
    assert short(names(osc("image", "list", "--tag", tag, "--status", "queued", "--sort", "name",
                           "-f", "json"))) == ["a", "b", "c"]
    # Two server-side tags are ANDed.
    assert short(names(osc("image", "list", "--tag", tag, "--tag", f"{tag}-small", "-f", "json"))) == ["a"]

    # --limit / --marker are sent to the server, which pages in its own order (created_at desc,
    # then id desc); OSC then re-sorts each page by name (its --sort default is name:asc). So
    # the expectations come from the server's order, read over HTTP.
    status, _, body = cloud.http("GET", f"/v2/images?tag={tag}")
    assert status == 200
    order = [i["id"] for i in body["images"]]
    name_of = {i["id"]: i["name"] for i in body["images"]}
    assert sorted(order) == sorted(ids.values())
    ids_of = lambda rows: sorted(r["ID"] for r in rows)
    page1 = osc("image", "list", "--tag", tag, "--limit", "2", "-f", "json")
    assert ids_of(page1) == sorted(order[:2])
    assert [r["Name"] for r in page1] == sorted(r["Name"] for r in page1), "OSC sorts by name"
    page2 = osc("image", "list", "--tag", tag, "--limit", "2", "--marker", order[1], "-f", "json")
    assert ids_of(page2) == [order[2]]
    # A marker given by name is resolved by the client first.
    rest = osc("image", "list", "--tag", tag, "--marker", name_of[order[0]], "-f", "json")
    assert ids_of(rest) == sorted(order[1:])

    osc("image", "delete", *ids.values())
    assert all(cloud.image(i) is None for i in ids.values())


def test_server_side_filter_sort_limit(cloud):
    """What `image list --property os_distro=alpine --sort name:asc --limit 1` would mean if OSC sent it:
    the server filters and sorts before it pages. (Raw HTTP: no client sends this query.)"""
    tag = unique("ss")
    ids = {}
    for short, distro in (("a", "alpine"), ("b", "debian"), ("c", "alpine")):
        status, _, body = cloud.http("POST", "/v2/images",
                                     {"name": f"{tag}-{short}", "os_distro": distro, "tags": [tag]})
        assert status == 201, body
        ids[short] = body["id"]
    base = f"/v2/images?tag={tag}&os_distro=alpine&sort=name:asc"
    status, _, body = cloud.http("GET", f"{base}&limit=1")
    assert status == 200
    assert [i["name"] for i in body["images"]] == [f"{tag}-a"]
    assert body["next"].startswith("/v2/images?") and f"marker={ids['a']}" in body["next"]
    status, _, body = cloud.http("GET", body["next"])
    assert status == 200
    assert [i["name"] for i in body["images"]] == [f"{tag}-c"]
    assert "next" not in body or cloud.http("GET", body["next"])[2]["images"] == []
    for i in ids.values():
        assert cloud.http("DELETE", f"/v2/images/{i}")[0] == 204


def test_deactivate_activate(cloud, osc, small_file, tmp_path):
    path, _, sha512, _ = small_file
    img = osc("image", "create", unique("deact"), "--file", path, "--disk-format", "raw",
              "--container-format", "bare", "-f", "json")
    osc("image", "set", "--deactivate", img["id"])
    assert cloud.image(img["id"])["status"] == "deactivated"
    assert img["id"] in [r["ID"] for r in osc("image", "list", "--status", "deactivated", "-f", "json")]
    osc("image", "set", "--activate", img["id"])
    assert cloud.image(img["id"])["status"] == "active"
    out = tmp_path / "back.img"
    osc("image", "save", "--file", out, img["id"])
    assert hashlib.sha512(out.read_bytes()).hexdigest() == sha512
    osc("image", "delete", img["id"])


def test_delete_several_and_missing(cloud, osc):
    ids = [osc("image", "create", unique("del"), "--disk-format", "raw", "--container-format", "bare",
               "-f", "json")["id"] for _ in range(3)]
    osc("image", "delete", *ids)
    assert all(cloud.image(i) is None for i in ids)
    # OSC stops at the first name it cannot find (reporting "Multi Backend support not
    # enabled.", its message for any 404 there): images named before it are deleted.
    keep = osc("image", "create", unique("del"), "--disk-format", "raw", "--container-format", "bare",
               "-f", "json")["id"]
    missing = str(uuid.uuid4())
    res = osc("image", "delete", keep, missing, check=False)
    assert res.returncode != 0, "deleting a missing image is an error"
    assert cloud.image(keep) is None, "the image before it is deleted"


def test_members_owner_and_consumer(as_user, small_file, tmp_path):
    """Owner project alpha shares an image with project beta; beta accepts, uses, is removed.
    (Projects given by id: a member's look-up of another project is refused by Keystone, and
    OSC then uses the id as given.)"""
    path, _, sha512, size = small_file
    a, b = as_user("alpha-member"), as_user("beta-member")
    b_id = b.identity.project_id
    img = a.osc("image", "create", unique("shared"), "--shared", "--file", path, "--disk-format", "raw",
                "--container-format", "bare", "-f", "json")
    assert img["owner"] == a.identity.project_id
    assert (img["status"], img["visibility"], img["size"]) == ("active", "shared", size)

    # B cannot see the image before it is a member.
    assert b.osc("image", "show", img["id"], check=False).returncode != 0

    added = a.osc("image", "add", "project", img["id"], b_id, "-f", "json")
    assert (added["image_id"], added["member_id"], added["status"]) == (img["id"], b_id, "pending")
    members = a.osc("image", "member", "list", img["id"], "-f", "json")
    assert [(m["Image ID"], m["Member ID"], m["Status"]) for m in members] == [(img["id"], b_id, "pending")]
    dup = a.osc("image", "add", "project", img["id"], b_id, check=False)
    assert dup.returncode != 0, "adding the same member twice is a conflict"

    # Pending: visible by id, not in B's default list, in B's list with --member-status pending.
    assert b.osc("image", "show", img["id"], "-f", "json")["id"] == img["id"]
    assert img["id"] not in [r["ID"] for r in b.osc("image", "list", "-f", "json")]
    pending = b.osc("image", "list", "--member-status", "pending", "-f", "json")
    assert img["id"] in [r["ID"] for r in pending]
    # The owner may not accept for B.
    assert a.osc("image", "set", "--accept", "--project", b_id, img["id"], check=False).returncode != 0

    b.osc("image", "set", "--accept", "--project", b_id, img["id"])
    assert img["id"] in [r["ID"] for r in b.osc("image", "list", "-f", "json")]
    mine = b.osc("image", "member", "list", img["id"], "-f", "json")
    assert [(m["Member ID"], m["Status"]) for m in mine] == [(b_id, "accepted")]
    out = tmp_path / "b.img"
    b.osc("image", "save", "--file", out, img["id"])
    assert hashlib.sha512(out.read_bytes()).hexdigest() == sha512
    # A consumer may not change or delete the owner's image.
    assert b.osc("image", "set", "--name", "stolen", img["id"], check=False).returncode != 0
    assert b.osc("image", "delete", img["id"], check=False).returncode != 0

    b.osc("image", "set", "--reject", "--project", b_id, img["id"])
    assert img["id"] not in [r["ID"] for r in b.osc("image", "list", "-f", "json")]
    rejected = b.osc("image", "list", "--member-status", "rejected", "-f", "json")
    assert img["id"] in [r["ID"] for r in rejected]
    b.osc("image", "set", "--pending", "--project", b_id, img["id"])
    assert [m["Status"] for m in a.osc("image", "member", "list", img["id"], "-f", "json")] == ["pending"]

    a.osc("image", "remove", "project", img["id"], b_id)
    assert a.osc("image", "member", "list", img["id"], "-f", "json") == []
    assert b.osc("image", "show", img["id"], check=False).returncode != 0
    a.osc("image", "delete", img["id"])


def test_project_rules(as_user):
    """A plain member may not publish; another project sees only public/community images."""
    a, c = as_user("alpha-member"), as_user("beta-reader")
    private = a.osc("image", "create", unique("priv"), "--private", "--disk-format", "raw",
                    "--container-format", "bare", "-f", "json")
    res = a.osc("image", "create", unique("pub"), "--public", "--disk-format", "raw",
                "--container-format", "bare", check=False)
    assert res.returncode != 0 and "403" in res.stderr, res.stderr
    community = a.osc("image", "create", unique("comm"), "--community", "--disk-format", "raw",
                      "--container-format", "bare", "-f", "json")
    assert community["visibility"] == "community"
    seen = [r["ID"] for r in c.osc("image", "list", "-f", "json")]
    assert private["id"] not in seen
    assert community["id"] not in seen, "community images are not in the default list"
    assert community["id"] in [r["ID"] for r in c.osc("image", "list", "--community", "-f", "json")]
    assert c.osc("image", "show", private["id"], check=False).returncode != 0
    assert c.osc("image", "show", community["id"], "-f", "json")["owner"] == a.identity.project_id
    # An admin sees everything, other projects' private images too.
    other_admin = as_user("beta-admin")
    assert private["id"] in [r["ID"] for r in other_admin.osc("image", "list", "--private", "-f", "json")]
    a.osc("image", "delete", private["id"], community["id"])


def test_reader_is_read_only(cloud, as_user, small_file, tmp_path):
    """A reader of the owner's project lists and shows its images; creating, changing, deleting
    and downloading are refused (403)."""
    path, _, _, _ = small_file
    member, reader = as_user("alpha-member"), as_user("alpha-reader")
    img = member.osc("image", "create", unique("ro"), "--private", "--file", path, "--disk-format", "raw",
                     "--container-format", "bare", "-f", "json")
    assert img["id"] in [r["ID"] for r in reader.osc("image", "list", "-f", "json")]
    shown = reader.osc("image", "show", img["id"], "-f", "json")
    assert (shown["id"], shown["status"], shown["owner"]) == (img["id"], "active", member.identity.project_id)

    res = reader.osc("image", "create", unique("ro"), "--disk-format", "raw", "--container-format", "bare",
                     check=False)
    assert res.returncode != 0 and "403" in res.stderr, res.stderr
    res = reader.osc("image", "set", "--name", "renamed", img["id"], check=False)
    assert res.returncode != 0 and "403" in res.stderr, res.stderr
    res = reader.osc("image", "delete", img["id"], check=False)
    assert res.returncode != 0, "a reader may not delete"
    # download_image needs the member role. (OSC, through the sdk, does not look at the status of
    # the download: it hashes the 403 page and reports a checksum mismatch. Same with Glance.)
    res = reader.osc("image", "save", "--file", tmp_path / "r.img", img["id"], check=False)
    assert res.returncode != 0 and ("403" in res.stderr or "checksum mismatch" in res.stderr), res.stderr
    assert reader.http("GET", f"/v2/images/{img['id']}/file")[0] == 403
    stored = cloud.image(img["id"])
    assert (stored["name"], stored["status"]) == (img["name"], "active")
    member.osc("image", "delete", img["id"])


@pytest.mark.auth("keystone", reason="project names are resolved through Keystone's API")
def test_projects_by_name_through_keystone(cloud, admin, as_user):
    """With Keystone, OSC resolves `image add/remove project NAME` through it: an admin may look
    up any project, a member its own project by id (not by name: listing projects is admin-only)."""
    beta_id = cloud.ks.project_id("beta")
    b = as_user("beta-member")
    img = admin.osc("image", "create", unique("byname"), "--shared", "--disk-format", "raw",
                    "--container-format", "bare", "-f", "json")
    added = admin.osc("image", "add", "project", img["id"], "beta", "-f", "json")
    assert (added["image_id"], added["member_id"], added["status"]) == (img["id"], beta_id, "pending")
    b.osc("image", "set", "--accept", "--project", beta_id, img["id"])
    members = admin.osc("image", "member", "list", img["id"], "-f", "json")
    assert [(m["Member ID"], m["Status"]) for m in members] == [(beta_id, "accepted")]
    admin.osc("image", "remove", "project", img["id"], "beta")
    assert cloud.http("GET", f"/v2/images/{img['id']}/members")[2]["members"] == []
    admin.osc("image", "delete", img["id"])


@pytest.mark.auth("keystone", reason="tokens and the service catalog exist only with Keystone")
def test_catalog_and_tokens(cloud, osc):
    """The clients found glance-api in the catalog, and both daemons really check tokens."""
    shown = osc("catalog", "show", "image", "-f", "json")
    assert shown["type"] == "image"
    assert cloud.api_url in json.dumps(shown["endpoints"]), shown
    for headers in ({}, {"X-Auth-Token": "not-a-token"}):
        status, hdrs, _ = http("GET", f"{cloud.api_url}/v2/images", headers=headers)
        assert status == 401, (headers, status)
        www = {k.lower(): v for k, v in hdrs.items()}.get("www-authenticate", "")
        assert www == f'Keystone uri="{cloud.ks.url}"', hdrs
    for path in ("/versions", "/healthcheck"):
        assert http("GET", f"{cloud.api_url}{path}")[0] == 200, path
    # glance-registry checks the token glance-api forwards, too.
    assert http("GET", f"{cloud.registry_url}/v1/images")[0] == 401
    assert http("GET", f"{cloud.registry_url}/v1/images",
                headers={"X-Auth-Token": cloud.ks.token("alpha-admin")})[0] == 200
