"""python-glanceclient's `glance` command (Images API v2), table output parsed and checked
field by field. glanceclient verifies every download against os_hash_value (or the md5
checksum) itself, so a successful `image-download` is already an integrity check; the
corrupted-file test shows that it really checks.

Identities (conftest.py): `glance` is the everyday user (the unauthenticated admin without
Keystone, alpha-member with it); `admin` does what only an admin may (`--visibility public`);
`as_user("<project>-<role>")` gives the other users.
"""

import hashlib
import io
import json
import os
import time
import uuid

import pytest

from conftest import VENV_BIN, clean_env, run
from helpers import rows, table, unique


def create(glance, *args, **kw):
    return table(glance("image-create", "--disk-format", "raw", "--container-format", "bare", *args, **kw).stdout)


def test_image_create_with_file_and_progress(admin, image_file, tmp_path):
    """A public image, so made by the admin (publicize_image)."""
    glance = admin.glance
    path, md5, sha512, size = image_file
    name = unique("g-create")
    res = glance("image-create", "--name", name, "--disk-format", "raw", "--container-format", "bare",
                 "--visibility", "public", "--min-disk", "2", "--min-ram", "128", "--protected", "False",
                 "--property", "os_distro=cirros", "--property", "hw_disk_bus=virtio",
                 "--tags", "one", "two", "--file", path, "--progress", tty=True)
    assert "100%" in res.stdout, "the progress bar reaches 100%"
    img = table(res.stdout)
    assert img["name"] == name
    assert img["status"] == "active"
    assert img["visibility"] == "public"
    assert (img["disk_format"], img["container_format"]) == ("raw", "bare")
    assert (img["min_disk"], img["min_ram"]) == ("2", "128")
    assert img["protected"] == "False"
    assert img["size"] == str(size)
    assert img["checksum"] == md5
    assert img["os_hash_algo"] == "sha512" and img["os_hash_value"] == sha512
    assert img["os_distro"] == "cirros" and img["hw_disk_bus"] == "virtio"
    assert sorted(json.loads(img["tags"])) == ["one", "two"]
    assert img["os_hidden"] == "False"
    # Raw bytes of a bare image: the format inspector reports the size as the virtual size.
    assert img["virtual_size"] == str(size)
    uuid.UUID(img["id"])

    shown = table(glance("image-show", img["id"]).stdout)
    for key in ("id", "name", "status", "size", "checksum", "os_hash_value", "owner", "created_at", "os_distro"):
        assert shown[key] == img[key], key
    human = table(glance("image-show", "--human-readable", img["id"]).stdout)
    assert human["size"] in ("3MB", "3.0MB"), human["size"]

    out = tmp_path / "down.img"
    res = glance("image-download", "--file", out, "--progress", img["id"], tty=True)
    assert "100%" in res.stdout
    assert hashlib.sha512(out.read_bytes()).hexdigest() == sha512
    glance("image-delete", img["id"])


def test_image_create_from_stdin(glance, small_file):
    path, md5, sha512, size = small_file
    img = create(glance, "--name", unique("g-stdin"), input=path.read_bytes())
    assert (img["status"], img["size"], img["checksum"]) == ("active", str(size), md5)
    glance("image-delete", img["id"])


def test_image_upload_then_download(glance, image_file, tmp_path):
    path, md5, sha512, size = image_file
    img = create(glance, "--name", unique("g-upload"))
    assert img["status"] == "queued"
    assert img["size"] == "None" and img["checksum"] == "None"
    empty = glance("image-download", "--file", tmp_path / "none.img", img["id"], check=False)
    assert empty.returncode != 0 and "has no data" in empty.stderr, empty.stderr

    res = glance("image-upload", "--file", path, "--progress", img["id"], tty=True)
    assert "100%" in res.stdout
    shown = table(glance("image-show", img["id"]).stdout)
    assert (shown["status"], shown["size"], shown["checksum"]) == ("active", str(size), md5)
    assert shown["os_hash_value"] == sha512
    # (A small body: a large one rejected early can hang, see test_rejected_upload_does_not_hang.)
    (tmp_path / "small").write_bytes(b"0123456789")
    again = glance("image-upload", "--file", tmp_path / "small", img["id"], check=False)
    assert again.returncode != 0, "an active image takes no second upload (409; see test_error_reporting)"

    out = tmp_path / "down.img"
    glance("image-download", "--file", out, img["id"])
    assert out.stat().st_size == size
    assert hashlib.md5(out.read_bytes()).hexdigest() == md5
    glance("image-delete", img["id"])


def test_download_is_verified_by_the_client(cloud, glance, small_file, tmp_path):
    """Bytes changed in the store behind the service's back: glanceclient refuses the download."""
    path, _, _, size = small_file
    img = create(glance, "--name", unique("g-corrupt"), "--file", path)
    stored = [p for p in cloud.images.rglob(f"{img['id']}*") if p.is_file()]
    assert len(stored) == 1, f"expected one stored file for {img['id']}: {stored}"
    stored[0].write_bytes(b"\0" * size)
    res = glance("image-download", "--file", tmp_path / "bad.img", img["id"], check=False)
    assert res.returncode != 0
    assert "corrupt" in res.stderr.lower() or "checksum" in res.stderr.lower(), res.stderr
    glance("image-delete", img["id"])


def test_image_list_filters(glance, admin):
    tag = unique("gl")
    made = {}
    for short, vis, distro, hidden in [("a", "private", "alpine", "False"), ("b", "public", "debian", "False"),
                                       ("c", "shared", "alpine", "False"), ("d", "private", "alpine", "True")]:
        who = admin.glance if vis == "public" else glance  # publicize_image: admins only
        made[short] = create(who, "--name", f"{tag}-{short}", "--visibility", vis, "--tags", tag,
                             "--property", f"os_distro={distro}", "--hidden", hidden)
    assert made["d"]["os_hidden"] == "True"

    def names(*args):
        return [r["Name"].rsplit("-", 1)[1] for r in rows(glance("image-list", "--tag", tag, *args).stdout)]

    # The glance CLI sorts by name ascending unless told; hidden images are left out unless asked for.
    assert names() == ["a", "b", "c"]
    assert names("--hidden", "True") == ["d"]
    assert names("--property-filter", "os_distro=alpine") == ["a", "c"]
    assert names("--visibility", "private") == ["a"]
    assert names("--visibility", "public") == ["b"]
    assert names("--visibility", "shared") == ["c"]
    assert names("--visibility", "all") == ["a", "b", "c"]
    assert names("--sort-key", "name", "--sort-dir", "desc") == ["c", "b", "a"]
    assert names("--sort", "name:desc") == ["c", "b", "a"]
    assert names("--sort", "name:asc", "--limit", "2") == ["a", "b"]
    assert names("--sort", "name:desc", "--page-size", "1") == ["c", "b", "a"], "pages followed via next"
    assert names("--sort", "name:asc", "--page-size", "2", "--limit", "3") == ["a", "b", "c"]
    assert names("--property-filter", "os_distro=alpine", "--sort", "name:desc", "--limit", "1") == ["c"]
    assert names("--owner", "nobody-owns-this") == []

    verbose = rows(glance("--verbose", "image-list", "--tag", tag, "--visibility", "public").stdout)
    assert len(verbose) == 1
    assert verbose[0]["Disk_format"] == "raw" and verbose[0]["Container_format"] == "bare"
    assert verbose[0]["Status"] == "queued"
    assert set(verbose[0]) >= {"ID", "Name", "Disk_format", "Container_format", "Size", "Status", "Owner"}

    glance("image-delete", *(m["id"] for m in made.values()))
    assert names("--visibility", "all") == []


def test_image_list_by_checksum_and_hash(glance, small_file):
    path, md5, sha512, _ = small_file
    img = create(glance, "--name", unique("g-sum"), "--file", path)
    ids = lambda *a: [r["ID"] for r in rows(glance("image-list", *a).stdout)]
    assert ids("--checksum", md5) == [img["id"]]
    assert ids("--hash", sha512) == [img["id"]]
    glance("image-delete", img["id"])


def test_image_update(glance):
    img = create(glance, "--name", unique("g-upd"), "--property", "keep=1", "--property", "drop=2")
    new_name = unique("g-upd2")
    res = glance("image-update", "--name", new_name, "--min-ram", "512", "--visibility", "community",
                 "--property", "added=3", "--property", "keep=changed", "--remove-property", "drop",
                 "--protected", "True", "--property", "os_distro=ubuntu", img["id"])
    upd = table(res.stdout)
    assert upd["name"] == new_name and upd["min_ram"] == "512"
    assert upd["visibility"] == "community" and upd["protected"] == "True"
    assert upd["added"] == "3" and upd["keep"] == "changed" and "drop" not in upd
    assert upd["os_distro"] == "ubuntu"
    assert table(glance("image-show", img["id"]).stdout) == upd
    assert glance("image-delete", img["id"], check=False).returncode != 0, "protected"
    assert table(glance("image-show", img["id"]).stdout)["status"] == "queued"
    glance("image-update", "--protected", "False", img["id"])
    # Removing a property the image does not have: glanceclient leaves it out of the patch.
    assert "nosuch" not in table(glance("image-update", "--remove-property", "nosuch", img["id"]).stdout)
    glance("image-delete", img["id"])


def test_tags(glance):
    img = create(glance, "--name", unique("g-tags"))
    glance("image-tag-update", img["id"], "alpha")
    glance("image-tag-update", img["id"], "beta")
    glance("image-tag-update", img["id"], "alpha")
    assert sorted(json.loads(table(glance("image-show", img["id"]).stdout)["tags"])) == ["alpha", "beta"]
    glance("image-tag-delete", img["id"], "alpha")
    assert json.loads(table(glance("image-show", img["id"]).stdout)["tags"]) == ["beta"]
    assert glance("image-tag-delete", img["id"], "alpha", check=False).returncode != 0
    glance("image-delete", img["id"])


def test_members(as_user):
    a, b = as_user("alpha-member"), as_user("beta-member")
    b_id = b.identity.project_id
    img = create(a.glance, "--name", unique("g-shared"), "--visibility", "shared")
    assert img["owner"] == a.identity.project_id

    created = rows(a.glance("member-create", img["id"], b_id).stdout)
    assert created == [{"Image ID": img["id"], "Member ID": b_id, "Status": "pending"}]
    listed = rows(a.glance("member-list", "--image-id", img["id"]).stdout)
    assert listed == created
    got = table(a.glance("member-get", img["id"], b_id).stdout)
    assert (got["image_id"], got["member_id"], got["status"]) == (img["id"], b_id, "pending")
    assert got["schema"] == "/v2/schemas/member"

    assert img["id"] in [r["ID"] for r in rows(b.glance("image-list", "--member-status", "pending").stdout)]
    updated = rows(b.glance("member-update", img["id"], b_id, "accepted").stdout)
    assert updated == [{"Image ID": img["id"], "Member ID": b_id, "Status": "accepted"}]
    assert img["id"] in [r["ID"] for r in rows(b.glance("image-list").stdout)]
    refused = a.glance("member-update", img["id"], b_id, "rejected", check=False)
    assert refused.returncode != 0, "only the member changes its status"
    assert table(b.glance("image-show", img["id"]).stdout)["id"] == img["id"]

    a.glance("member-delete", img["id"], b_id)
    assert rows(a.glance("member-list", "--image-id", img["id"]).stdout) == []
    assert b.glance("image-show", img["id"], check=False).returncode != 0
    a.glance("image-delete", img["id"])


def test_deactivate_reactivate(as_user, small_file, tmp_path):
    path, _, sha512, _ = small_file
    owner = as_user("alpha-member")
    img = create(owner.glance, "--name", unique("g-deact"), "--file", path)
    owner.glance("image-deactivate", img["id"])
    assert table(owner.glance("image-show", img["id"]).stdout)["status"] == "deactivated"
    res = owner.glance("image-download", "--file", tmp_path / "x.img", img["id"], check=False)
    assert res.returncode != 0, "a deactivated image cannot be downloaded"
    owner.glance("image-reactivate", img["id"])
    assert table(owner.glance("image-show", img["id"]).stdout)["status"] == "active"
    owner.glance("image-download", "--file", tmp_path / "y.img", img["id"])
    assert hashlib.sha512((tmp_path / "y.img").read_bytes()).hexdigest() == sha512
    owner.glance("image-delete", img["id"])


def test_image_delete_several(glance):
    ids = [create(glance, "--name", unique("g-del"))["id"] for _ in range(3)]
    glance("image-delete", *ids)
    for i in ids:
        assert glance("image-show", i, check=False).returncode != 0


def test_import_info(glance):
    info = table(glance("import-info").stdout)
    methods = json.loads(info["import-methods"].replace("'", '"'))
    assert methods["type"] == "array"
    assert methods["value"] == ["glance-direct", "web-download"]


def test_stores_info_and_store_upload_multi(multi, small_file, tmp_path):
    path, _, sha512, size = small_file
    info = table(multi.glance("stores-info").stdout)
    stores = json.loads(info["stores"].replace("'", '"'))
    assert {s["id"]: s.get("default") for s in stores} == {"fast": "true", "slow": None}
    assert {s["id"]: s["description"] for s in stores} == {"fast": "Fast local disk", "slow": "Slow local disk"}

    img = table(multi.glance("image-create", "--name", unique("g-store"), "--disk-format", "raw",
                             "--container-format", "bare", "--file", path, "--store", "slow").stdout)
    assert img["status"] == "active" and img["size"] == str(size)
    assert img["stores"] == "slow"
    out = tmp_path / "slow.img"
    multi.glance("image-download", "--file", out, img["id"])
    assert hashlib.sha512(out.read_bytes()).hexdigest() == sha512
    bad = multi.glance("image-create", "--name", unique("g-store"), "--disk-format", "raw",
                       "--container-format", "bare", "--file", path, "--store", "nosuch", check=False)
    assert bad.returncode != 0 and "nosuch" in bad.stderr
    multi.glance("image-delete", img["id"])


def test_explain_and_usage(glance):
    attrs = {r["Attribute"] for r in rows(glance("explain", "image").stdout)}
    assert {"id", "name", "status", "visibility", "os_hash_value", "tags", "min_ram"} <= attrs
    res = glance("usage")
    assert res.returncode == 0


@pytest.fixture(scope="module")
def error_setup(as_user):
    """Images in the states the error cases need, owned by project alpha."""
    a = as_user("alpha-member")
    b_id = as_user("beta-member").identity.project_id
    active = create(a.glance, "--name", unique("g-err"), input=b"some bytes")
    protected = create(a.glance, "--name", unique("g-err"), "--protected", "True")
    private = create(a.glance, "--name", unique("g-err"), "--visibility", "private")
    deactivated = create(a.glance, "--name", unique("g-err"), input=b"other bytes")
    a.glance("image-deactivate", deactivated["id"])
    yield {"a": a, "b_id": b_id, "active": active["id"], "protected": protected["id"],
           "private": private["id"], "deactivated": deactivated["id"]}
    a.glance("image-update", "--protected", "False", protected["id"])
    a.glance("image-delete", active["id"], protected["id"], private["id"], deactivated["id"])


# (case, command (ids filled from error_setup), texts the message must hold). Against Glance the
# client gets each error as an HTML page (webob's default for `Accept: */*`) and prints its
# status line and explanation; some commands word the error themselves.
ERROR_CASES = [
    ("show-missing", ["image-show", "{missing}"], ["404 Not Found", "No image found"]),
    ("upload-active", ["image-upload", "--file", "{file}", "{active}"], ["409 Conflict"]),
    ("delete-protected", ["image-delete", "{protected}"], ["You are not permitted to delete the image"]),
    ("delete-missing", ["image-delete", "{missing}"], ["No image with an ID of"]),
    ("tag-delete-missing", ["image-tag-delete", "{active}", "nosuchtag"], ["404 Not Found"]),
    ("member-on-private", ["member-create", "{private}", "{b_id}"], ["403 Forbidden", "shared"]),
    ("download-deactivated", ["image-download", "--file", "{out}", "{deactivated}"], ["403 Forbidden"]),
    ("stores-info-single-store", ["stores-info"], ["Multi Backend support is not enabled"]),
]


@pytest.mark.parametrize("case,command,texts", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_reporting(error_setup, tmp_path, case, command, texts):
    """Errors reach the user as Glance's do: a non-zero exit and a readable message."""
    (tmp_path / "data").write_bytes(b"x" * 10)
    values = dict(error_setup, missing=str(uuid.uuid4()), file=tmp_path / "data", out=tmp_path / "out")
    args = [str(a).format(**values) if isinstance(a, str) else a for a in command]
    res = error_setup["a"].glance(*args, check=False)
    assert res.returncode != 0, res.stdout
    for text in texts:
        assert text in res.stderr, f"{case}: {text!r} not in {res.stderr!r}"


def test_rejected_upload_does_not_hang(cloud, user, glance):
    """glanceclient streams uploads with chunked transfer encoding and reads the answer only after
    the last byte. When the server refuses an upload before reading its body (409: the image is
    already active), it must still let the client finish (read and discard the rest, or close the
    connection); the library call must end promptly, whatever the error."""
    import glanceclient

    img = create(glance, "--name", unique("g-hang"), input=b"already active")
    client = glanceclient.Client("2", endpoint=cloud.api_url, token=user.token(), timeout=5)
    data = os.urandom(3 << 20)
    slow = []
    for attempt in range(6):
        started = time.monotonic()
        try:
            client.images.upload(img["id"], io.BytesIO(data))
        except Exception as e:  # the 409, however the client words it (see S1)
            outcome = type(e).__name__
        else:
            pytest.fail("a second upload to an active image was accepted")
        took = time.monotonic() - started
        if took > 3:
            slow.append((attempt, round(took, 1), outcome))
    glance("image-delete", img["id"])
    assert slow == [], f"uploads that hung until the client's timeout (attempt, seconds, error): {slow}"


def test_reader_is_read_only(as_user):
    """A reader lists and shows its project's images; creating one is refused (403)."""
    member, reader = as_user("alpha-member"), as_user("alpha-reader")
    img = create(member.glance, "--name", unique("g-ro"), "--visibility", "private")
    assert img["id"] in [r["ID"] for r in rows(reader.glance("image-list").stdout)]
    assert table(reader.glance("image-show", img["id"]).stdout)["owner"] == member.identity.project_id
    res = reader.glance("image-create", "--name", unique("g-ro"), "--disk-format", "raw",
                        "--container-format", "bare", check=False)
    assert res.returncode != 0 and "403 Forbidden" in res.stderr, res.stderr
    res = reader.glance("image-tag-update", img["id"], "nope", check=False)
    assert res.returncode != 0 and "403 Forbidden" in res.stderr, res.stderr
    member.glance("image-delete", img["id"])


@pytest.mark.auth("keystone", reason="tokens exist only with Keystone")
def test_bad_token_is_refused(cloud):
    """glance with a token Keystone never issued: glance-api answers 401, which glanceclient
    words as "Invalid OpenStack Identity credentials." (as against Glance)."""
    res = run([VENV_BIN / "glance", "--os-image-url", cloud.api_url, "--os-auth-token", "not-a-token",
               "image-show", str(uuid.uuid4())], env=dict(clean_env(), **cloud.client_env), check=False)
    assert res.returncode != 0
    assert "Invalid OpenStack Identity credentials" in res.stderr, res.stderr
