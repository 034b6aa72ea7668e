"""openstacksdk: the image proxy (`conn.image.*`) and the cloud layer (`conn.create_image`, ...),
in process, against the same daemons. With Keystone each connection comes from a clouds.yaml
entry with password auth (conftest.py).

Identities: `sdk` is the everyday user (the unauthenticated admin without Keystone,
alpha-member with it); `admin` does what only an admin may (public images).
"""

import hashlib
import io

import openstack.exceptions
import pytest

from helpers import unique


def test_proxy_create_get_update_download_delete(sdk, image_file, tmp_path):
    path, md5, sha512, size = image_file
    data = path.read_bytes()
    name = unique("sdk")
    img = sdk.image.create_image(
        name=name, data=data, disk_format="raw", container_format="bare", visibility="private",
        tags=["t1"], min_ram=32, allow_duplicates=True, validate_checksum=True, os_distro="cirros",
        site_label="blue",
    )
    assert img.id and img.name == name
    img = sdk.image.get_image(img.id)
    assert img.status == "active"
    assert img.size == size and img.checksum == md5
    assert img.hash_algo == "sha512" and img.hash_value == sha512
    assert (img.disk_format, img.container_format, img.visibility) == ("raw", "bare", "private")
    assert img.min_ram == 32 and img.min_disk == 0
    assert img.tags == ["t1"]
    assert img.is_protected is False and img.is_hidden is False
    # os_distro is an attribute of the sdk's Image; other keys land in `properties`.
    assert img.os_distro == "cirros"
    assert img.properties["site_label"] == "blue"
    # The sdk records its own hashes as properties on create.
    assert img.properties["owner_specified.openstack.md5"] == md5
    assert img.properties["owner_specified.openstack.sha256"] == hashlib.sha256(data).hexdigest()
    assert img.properties["owner_specified.openstack.object"] == f"images/{name}"
    assert img.file == f"/v2/images/{img.id}/file"

    upd = sdk.image.update_image(img, name=f"{name}-2", min_disk=3, is_protected=True, hw_rng_model="virtio",
                                 site_label="green")
    assert (upd.name, upd.min_disk, upd.is_protected) == (f"{name}-2", 3, True)
    again = sdk.image.get_image(img.id)
    assert again.hw_rng_model == "virtio" and again.is_protected is True
    assert again.properties["site_label"] == "green"
    with pytest.raises(openstack.exceptions.HttpException) as err:
        sdk.image.delete_image(img.id)
    assert err.value.status_code == 403
    sdk.image.update_image(again, is_protected=False)

    # Whole body, stream, and to a file.
    assert hashlib.sha512(sdk.image.download_image(img.id).content).hexdigest() == sha512
    resp = sdk.image.download_image(img.id, stream=True, chunk_size=65536)
    assert resp.headers["Content-MD5"] == md5
    assert int(resp.headers["Content-Length"]) == size
    h = hashlib.sha512()
    for chunk in resp.iter_content(chunk_size=65536):
        h.update(chunk)
    assert h.hexdigest() == sha512
    out = tmp_path / "sdk.img"
    sdk.image.download_image(img.id, output=str(out))
    assert hashlib.sha512(out.read_bytes()).hexdigest() == sha512
    buf = io.BytesIO()
    sdk.image.download_image(img.id, output=buf)
    assert hashlib.md5(buf.getvalue()).hexdigest() == md5

    sdk.image.delete_image(img.id, ignore_missing=False)
    with pytest.raises(openstack.exceptions.NotFoundException):
        sdk.image.get_image(img.id)
    sdk.image.delete_image(img.id, ignore_missing=True)
    with pytest.raises(openstack.exceptions.NotFoundException):
        sdk.image.delete_image(img.id, ignore_missing=False)


def test_create_empty_then_upload(sdk, small_file):
    path, md5, _, size = small_file
    img = sdk.image.create_image(name=unique("sdk-empty"), disk_format="raw", container_format="bare",
                                 allow_duplicates=True)
    assert img.status == "queued" and img.size is None
    # Data for an existing image goes through the resource's upload (PUT /v2/images/{id}/file).
    img.data = path.read_bytes()
    img.upload(sdk.image)
    img = sdk.image.get_image(img.id)
    assert (img.status, img.size, img.checksum) == ("active", size, md5)
    sdk.image.delete_image(img.id)


def test_images_filters_and_paging(sdk, admin, as_user):
    tag = unique("sdkl")
    # The public image is the admin's (publicize_image); the community one another project's,
    # since a project's own community images are in its default list (as in Glance).
    other = as_user("beta-member").sdk
    makers = {"public": admin.sdk, "community": other}
    ids = {}
    for short, vis in [("a", "private"), ("b", "public"), ("c", "shared"), ("d", "community")]:
        ids[short] = makers.get(vis, sdk).image.create_image(
            name=f"{tag}-{short}", disk_format="raw", container_format="bare", visibility=vis, tags=[tag],
            allow_duplicates=True).id
    names = lambda **q: [i.name.rsplit("-", 1)[1] for i in sdk.image.images(tag=tag, **q)]

    assert names(sort="name:asc") == ["a", "b", "c"], "others' community images are not listed by default"
    assert "d" in [i.name.rsplit("-", 1)[1] for i in other.image.images(tag=tag)], "the owner's are"
    assert names(visibility="all", sort="name:asc") == ["a", "b", "c", "d"]
    assert names(visibility="community") == ["d"]
    assert names(sort_key="name", sort_dir="desc") == ["c", "b", "a"]
    # limit is the page size: the proxy follows the `next` links to the end.
    assert names(sort="name:asc", limit=1) == ["a", "b", "c"]
    assert names(visibility="all", sort="name:desc", limit=3) == ["d", "c", "b", "a"]
    # paginated=False: one page only.
    assert names(sort="name:asc", limit=2, paginated=False) == ["a", "b"]
    first = next(iter(sdk.image.images(tag=tag, sort="name:asc", limit=1, paginated=False)))
    assert names(sort="name:asc", marker=first.id) == ["b", "c"]
    assert names(name=f"{tag}-b") == ["b"]
    assert names(status="queued", sort="name:asc") == ["a", "b", "c"]
    assert names(status="active") == []
    assert names(is_hidden=True) == []
    with pytest.raises(openstack.exceptions.BadRequestException):
        list(sdk.image.images(sort="colour:asc"))
    other.image.delete_image(ids.pop("d"))
    for i in ids.values():
        sdk.image.delete_image(i)


def test_tags_and_actions(sdk, small_file):
    path, _, sha512, _ = small_file
    img = sdk.image.create_image(name=unique("sdk-tags"), data=path.read_bytes(), disk_format="raw",
                                 container_format="bare", allow_duplicates=True)
    sdk.image.add_tag(img, "red")
    sdk.image.add_tag(img, "blue")
    assert sorted(sdk.image.get_image(img.id).tags) == ["blue", "red"]
    sdk.image.remove_tag(img, "red")
    assert sdk.image.get_image(img.id).tags == ["blue"]

    sdk.image.deactivate_image(img)
    assert sdk.image.get_image(img.id).status == "deactivated"
    sdk.image.reactivate_image(img)
    assert sdk.image.get_image(img.id).status == "active"
    assert hashlib.sha512(sdk.image.download_image(img.id).content).hexdigest() == sha512
    sdk.image.delete_image(img)


def test_members(as_user, small_file):
    path, _, sha512, _ = small_file
    a, b = as_user("alpha-member").sdk, as_user("beta-member").sdk
    b_id = as_user("beta-member").identity.project_id
    img = a.image.create_image(name=unique("sdk-shared"), data=path.read_bytes(), disk_format="raw",
                               container_format="bare", visibility="shared", allow_duplicates=True)
    assert img.owner_id == as_user("alpha-member").identity.project_id
    m = a.image.add_member(img, member_id=b_id)
    assert (m.member_id, m.image_id, m.status) == (b_id, img.id, "pending")
    assert [(x.member_id, x.status) for x in a.image.members(img)] == [(b_id, "pending")]
    assert a.image.get_member(b_id, img).status == "pending"

    assert img.id not in [i.id for i in b.image.images()]
    assert img.id in [i.id for i in b.image.images(member_status="pending")]
    with pytest.raises(openstack.exceptions.HttpException):
        a.image.update_member(b_id, img, status="accepted")
    m = b.image.update_member(b_id, img, status="accepted")
    assert m.status == "accepted"
    assert img.id in [i.id for i in b.image.images()]
    assert hashlib.sha512(b.image.download_image(img.id).content).hexdigest() == sha512
    assert [x.status for x in b.image.members(img)] == ["accepted"]

    a.image.remove_member(b_id, img)
    assert list(a.image.members(img)) == []
    with pytest.raises(openstack.exceptions.NotFoundException):
        b.image.get_image(img.id)
    a.image.remove_member(b_id, img, ignore_missing=True)
    a.image.delete_image(img)


def test_info(sdk, multi):
    info = sdk.image.get_import_info()
    assert info.import_methods["value"] == ["glance-direct", "web-download"]
    with pytest.raises(openstack.exceptions.NotFoundException):
        list(sdk.image.stores())
    stores = {s.id: s for s in multi.sdk.image.stores()}
    assert set(stores) == {"fast", "slow"}
    assert stores["fast"].is_default is True
    assert stores["fast"].description == "Fast local disk"


def test_cloud_layer(sdk, image_file, tmp_path):
    path, md5, sha512, size = image_file
    name = unique("cloud")
    img = sdk.create_image(name, filename=str(path), disk_format="raw", container_format="bare",
                           wait=True, tags=["cl"], site_label="red", validate_checksum=True)
    assert img.name == name and img.status == "active"
    assert img.size == size and img.checksum == md5
    assert sdk.get_image(name).id == img.id
    assert sdk.get_image_by_id(img.id).properties["site_label"] == "red"
    assert img.id in [i.id for i in sdk.list_images()]
    assert [i.id for i in sdk.search_images(name)] == [img.id]
    # With validate_checksum the sdk records md5 and sha256 of the file as properties; a second
    # create of the same file under the same name finds them equal and returns the image.
    assert img.properties["owner_specified.openstack.md5"] == md5
    same = sdk.create_image(name, filename=str(path), disk_format="raw", container_format="bare", wait=True,
                            validate_checksum=True)
    assert same.id == img.id

    out = tmp_path / "cloud.img"
    sdk.download_image(name, output_path=str(out))
    assert hashlib.sha512(out.read_bytes()).hexdigest() == sha512
    # (The sdk needs the fetched image here: given only an id it fails on the missing properties.)
    sdk.update_image_properties(image=sdk.get_image(img.id), color="green")
    assert sdk.get_image(img.id).properties["color"] == "green"
    assert sdk.delete_image(name, wait=True) is True
    assert sdk.get_image(name) is None


def test_reader_is_read_only(as_user):
    """A reader lists and gets its project's images; create, update and delete are refused (403)."""
    member, reader = as_user("alpha-member").sdk, as_user("alpha-reader").sdk
    img = member.image.create_image(name=unique("sdk-ro"), disk_format="raw", container_format="bare",
                                    visibility="private", allow_duplicates=True)
    assert img.id in [i.id for i in reader.image.images()]
    assert reader.image.get_image(img.id).owner_id == as_user("alpha-member").identity.project_id
    with pytest.raises(openstack.exceptions.ForbiddenException):
        reader.image.create_image(name=unique("sdk-ro"), disk_format="raw", container_format="bare",
                                  allow_duplicates=True)
    with pytest.raises(openstack.exceptions.ForbiddenException):
        reader.image.update_image(img, name="renamed")
    with pytest.raises(openstack.exceptions.ForbiddenException):
        reader.image.delete_image(img, ignore_missing=False)
    member.image.delete_image(img)
