"""Starts glance-registry and glance-apis (the binaries built by cargo) on loopback for the
interop suite and hands the tests the three real clients: the openstack CLI, the glance CLI
and openstacksdk, each bound to an identity.

The auth mode (GLANCE_INTEROP_AUTH: `none`, the default, or `keystone`) decides how the
daemons authenticate and how the clients log in. The tests never see the difference: they ask
for identities, never for headers, tokens or ports.

- `user` (and `osc`, `glance`, `sdk`, its clients): whoever does the everyday work. `none`:
  the unauthenticated admin of a Glance without a flavor; `keystone`: `alpha-member`.
- `admin`: for what only an admin may do (`--public`). `none`: the same unauthenticated
  admin; `keystone`: `alpha-admin` (admin role on project alpha).
- `as_user("<project>-<role>")`: a user with that role (admin, member, reader) on that
  project (alpha or beta). `keystone`: the Keystone user of that name; `none`: a made-up
  project id per project name and a trusted front end (see below).
- `multi`: `user`'s clients on the multi-store glance-api.

Processes, all on free loopback ports and one database (SQLite in the session's temporary
directory, or the URL in GLANCE_INTEROP_DB_URL, e.g. mysql+pymysql://root@127.0.0.1/glance_interop):

- glance-registry (`keystone`: `flavor = keystone`, validating the tokens glance-api forwards);
- the main glance-api (`cloud.api_url`). `none`: no `[paste_deploy] flavor`, so every caller
  is an unauthenticated admin, as with Glance. `keystone`: `flavor = keystone` and the install
  guides' `[keystone_authtoken]` block; the catalog's image endpoints are pointed at it, and
  the clients find it there;
- `none` only: the "trusted" glance-api, `flavor = trusted-auth`, same registry and image
  directory. Each `as_user` identity reaches it through an IdentityProxy that sets the
  identity headers a trusted front end would; that is how member-side calls (accepting a
  shared image) are made with unmodified clients without Keystone. And an IdentityStandIn
  where Keystone's endpoint would be, so that OSC's project look-ups (`image add project`)
  are refused as Keystone refuses a member, instead of being sent to glance-api;
- the "multi" glance-api: multi-store (`enabled_backends = fast:file, slow:file`), for
  `/v2/info/stores` and `--store`; same auth as the main one (`keystone`: the clients reach it
  with an image endpoint override, still with their tokens).

Keystone (`keystone` mode) is the one scripts/keystone.sh starts: GLANCE_INTEROP_KEYSTONE names
its keystone.json (scripts/interop.sh starts one for all its keystone runs); without it the
session starts its own in its temporary directory and stops it at the end.

Tests that only make sense in one mode carry `@pytest.mark.auth("keystone")` (or "none") and
are skipped in the other with the reason.
"""

import hashlib
import json
import os
import pty
import select
import socket
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pytest

import keystone_setup
from helpers import http
from identity_proxy import IdentityProxy, IdentityStandIn

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("GLANCE_BIN_DIR", ROOT / "target" / "debug"))
VENV_BIN = Path(os.environ.get("INTEROP_VENV_BIN", Path(os.sys.executable).parent))
AUTH_MODES = ("none", "keystone")
PROJECTS = ("alpha", "beta")
ROLES = {"admin": ("admin", "member", "reader"), "member": ("member", "reader"), "reader": ("reader",)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, proc, log, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args[0]} exited with {proc.returncode}; its log:\n{Path(log).read_text()[-4000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status in (200, 204):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


CLIENT_TIMEOUT_SECS = 90


def _read_terminal(fd, proc, deadline):
    """Reads a child's terminal output until it closes it (EIO) or the deadline passes."""
    chunks = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).replace(b"\r\n", b"\n")


def run(args, env=None, check=True, input=None, tty=False):
    """Runs a client and returns its CompletedProcess (text output).

    `input` (bytes) becomes its standard input. Without input its standard input is a terminal,
    as for a person typing the command: both CLIs read image data from a standard input that
    is not a terminal (and OSC fails if there is none at all). With `tty` its standard output
    is a terminal too (glanceclient draws --progress bars only there). A client still running
    after CLIENT_TIMEOUT_SECS is killed and the call fails."""
    args = [str(a) for a in args]
    deadline = time.monotonic() + CLIENT_TIMEOUT_SECS
    fds = []
    proc = None
    try:
        stdin = subprocess.PIPE
        if input is None:
            master, slave = pty.openpty()
            fds += [master, slave]
            stdin = slave
        stdout = subprocess.PIPE
        if tty:
            out_master, out_slave = pty.openpty()
            fds += [out_master, out_slave]
            stdout = out_slave
        proc = subprocess.Popen(args, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env)
        if tty:
            if input is not None:
                proc.stdin.write(input)
                proc.stdin.close()
            os.close(out_slave)
            fds.remove(out_slave)
            out = _read_terminal(out_master, proc, deadline)
            proc.wait(timeout=max(1, deadline - time.monotonic()))
            err = proc.stderr.read()
        else:
            out, err = proc.communicate(input=input, timeout=CLIENT_TIMEOUT_SECS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{args} still running after {CLIENT_TIMEOUT_SECS}s: killed") from None
    finally:
        for fd in fds:
            os.close(fd)
    res = subprocess.CompletedProcess(args, proc.returncode, out.decode("utf-8", "replace"),
                                      err.decode("utf-8", "replace"))
    if check and res.returncode != 0:
        raise AssertionError(f"{res.args} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def clean_env():
    """The caller's environment without any OS_* setting or clouds.yaml that could redirect a client."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OS_")}


@dataclass
class Identity:
    """Who a set of clients acts as. `project_id is None` means the unauthenticated admin;
    `user` is the Keystone user name (keystone mode)."""

    name: str
    project_id: str | None = None
    user_id: str | None = None
    roles: tuple = ("member", "reader")
    user: str | None = None
    password: str | None = None
    project_name: str | None = None


@dataclass
class Clients:
    """The three clients of one identity. Without Keystone they are bound to `endpoint` (the
    api itself or the identity's proxy); with Keystone they log in with the identity's
    password and find the image endpoint in the catalog, unless `endpoint` overrides it."""

    identity: Identity
    endpoint: str | None
    extra_env: dict = field(default_factory=dict)
    keystone: "keystone_setup.Keystone | None" = None
    clouds_yaml: Path | None = None
    api_url: str | None = None  # where raw calls go: `endpoint`, or the catalog's image endpoint

    def _password_env(self):
        """What an operator's openrc exports (the install guides' admin-openrc / demo-openrc)."""
        ks, who = self.keystone, self.identity
        env = {
            "OS_AUTH_TYPE": "password",
            "OS_AUTH_URL": ks.auth_url,
            "OS_USERNAME": who.user,
            "OS_PASSWORD": who.password,
            "OS_PROJECT_NAME": who.project_name,
            "OS_USER_DOMAIN_NAME": ks.domain,
            "OS_PROJECT_DOMAIN_NAME": ks.domain,
            "OS_IDENTITY_API_VERSION": "3",
            "OS_IMAGE_API_VERSION": "2",
            "OS_REGION_NAME": ks.region,
            "OS_INTERFACE": "public",
        }
        if self.endpoint:
            env["OS_IMAGE_ENDPOINT_OVERRIDE"] = self.endpoint
        return env

    def osc(self, *args, check=True, input=None):
        """Runs `openstack ...`; returns parsed JSON when `-f json` is among the arguments and it succeeded."""
        if self.keystone is None:
            auth = {"OS_AUTH_TYPE": "none", "OS_ENDPOINT": self.endpoint}
        else:
            auth = self._password_env()
        env = dict(clean_env(), **self.extra_env, **auth)
        res = run([VENV_BIN / "openstack", *args], env=env, check=check, input=input)
        if res.returncode == 0 and "json" in args and res.stdout.strip():
            return json.loads(res.stdout)
        return res

    def glance_auth_args(self):
        if self.keystone is None:
            return ["--os-image-url", self.endpoint, "--os-auth-token", "x"]
        ks, who = self.keystone, self.identity
        args = ["--os-auth-url", ks.auth_url, "--os-username", who.user, "--os-password", who.password,
                "--os-project-name", who.project_name, "--os-user-domain-name", ks.domain,
                "--os-project-domain-name", ks.domain, "--os-region-name", ks.region]
        if self.endpoint:
            args += ["--os-image-url", self.endpoint]
        return args

    def glance(self, *args, check=True, input=None, tty=False):
        """Runs `glance ...`: an explicit endpoint and a dummy token without Keystone, the
        identity's password (`--os-auth-url`, `--os-username`, ...) with it."""
        return run(
            [VENV_BIN / "glance", *self.glance_auth_args(), *args],
            env=dict(clean_env(), **self.extra_env),
            check=check,
            input=input,
            tty=tty,
        )

    @cached_property
    def sdk(self):
        import openstack
        import openstack.config

        if self.keystone is None:
            return openstack.connection.Connection(
                auth_type="none",
                auth={"endpoint": self.endpoint},
                image_endpoint_override=self.endpoint,
            )
        # A clouds.yaml entry with password auth, as an operator's; never the environment's.
        config = openstack.config.OpenStackConfig(config_files=[str(self.clouds_yaml)], load_envvars=False)
        cloud = self.identity.name + ("-multi" if self.endpoint else "")
        return openstack.connection.Connection(config=config.get_one(cloud=cloud))

    def token(self):
        """A token for library calls of this identity ("x", ignored, without Keystone)."""
        if self.keystone is None:
            return "x"
        return self.keystone.token(self.identity.user)

    def http(self, method, path, body=None, headers=None):
        """A raw call as this identity (its token, or through its proxy): (status, headers, body)."""
        headers = dict(headers or {}, **{"X-Auth-Token": self.token()})
        return http(method, f"{self.api_url or self.endpoint}{path}", body, headers)


class Cloud:
    def __init__(self, tmp, auth_mode, keystone=None):
        self.tmp = tmp
        self.auth_mode = auth_mode
        self.ks = keystone
        self.db = os.environ.get("GLANCE_INTEROP_DB_URL") or f"sqlite:///{tmp}/glance.sqlite"
        self.procs = []
        self.proxies = {}
        self.clients = {}
        self.identities = {}
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.images = tmp / "images"
        self.images.mkdir()
        # The clients keep state in $HOME (glanceclient caches the image schema in ~/.glanceclient,
        # OSC and the sdk read ~/.config/openstack): give them a home of their own.
        home = tmp / "home"
        home.mkdir()
        self.client_env = {"HOME": str(home)}
        self.identity_stand_in = None
        self.clouds_yaml = tmp / "clouds.yaml"
        self.project_ids = {}

    def start(self):
        if self.auth_mode == "none":
            self.identity_stand_in = IdentityStandIn()
            self.client_env.update(OS_IDENTITY_ENDPOINT_OVERRIDE=self.identity_stand_in.url,
                                   OS_IDENTITY_API_VERSION="3")
        auth = self.ks.daemon_conf() if self.ks else ""
        rport = free_port()
        self.registry_url = f"http://127.0.0.1:{rport}"
        reg_conf = self.tmp / "glance-registry.conf"
        reg_conf.write_text(
            f"[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {rport}\n[database]\nconnection = {self.db}\n{auth}"
        )
        res = run([BIN / "glance-manage", "--config-file", reg_conf, "db_sync"], check=False)
        if res.returncode != 0:
            raise RuntimeError(f"glance-manage db_sync failed:\n{res.stdout}\n{res.stderr}")
        self._spawn("glance-registry", reg_conf, self.registry_url)
        common = f"bind_host = 127.0.0.1\nregistry_host = 127.0.0.1\nregistry_port = {rport}\n"
        single = (
            f"[glance_store]\nstores = file,http\ndefault_store = file\n"
            f"filesystem_store_datadir = {self.images}\n"
        )
        if self.auth_mode == "none":
            self.api_url = self._api("admin", f"[DEFAULT]\n{common}{single}")
            self.trusted_url = self._api(
                "trusted", f"[DEFAULT]\n{common}[paste_deploy]\nflavor = trusted-auth\n{single}"
            )
        else:
            self.api_url = self._api("keystone", f"[DEFAULT]\n{common}{single}{auth}")
        (self.tmp / "fast").mkdir()
        (self.tmp / "slow").mkdir()
        self.multi_url = self._api(
            "multi",
            f"[DEFAULT]\n{common}enabled_backends = fast:file, slow:file\n"
            f"[glance_store]\ndefault_backend = fast\n"
            f"[fast]\nstore_description = Fast local disk\nfilesystem_store_datadir = {self.tmp}/fast\n"
            f"[slow]\nstore_description = Slow local disk\nfilesystem_store_datadir = {self.tmp}/slow\n"
            f"{auth}",
        )
        if self.ks:
            # The clients find glance-api where users' clients do: in the service catalog.
            self.ks.point_image_endpoints(self.api_url)
            seen = self.ks.catalog_image_url("alpha-member")
            if seen != self.api_url:
                raise RuntimeError(f"Keystone's catalog has image endpoint {seen}, not {self.api_url}")
            self._write_clouds_yaml()

    def _write_clouds_yaml(self):
        """openstacksdk's clouds.yaml: one cloud per test user (password auth), and `<user>-multi`
        with the multi-store api as image endpoint override. (JSON is YAML.)"""
        clouds = {}
        for project in PROJECTS:
            for role in ROLES:
                name = f"{project}-{role}"
                u = self.ks.user(name)
                cloud = {
                    "auth_type": "password",
                    "auth": {
                        "auth_url": self.ks.auth_url, "username": name, "password": u["password"],
                        "project_name": u["project"], "user_domain_name": self.ks.domain,
                        "project_domain_name": self.ks.domain,
                    },
                    "region_name": self.ks.region,
                    "interface": "public",
                    "identity_api_version": "3",
                    "image_api_version": "2",
                }
                clouds[name] = cloud
                clouds[f"{name}-multi"] = dict(cloud, image_endpoint_override=self.multi_url)
        self.clouds_yaml.write_text(json.dumps({"clouds": clouds}, indent=2))

    def _api(self, name, conf_text):
        port = free_port()
        conf = self.tmp / f"glance-api-{name}.conf"
        # Each api stages imports in a directory of its own; web-download may fetch from the
        # test's HTTP server on 127.0.0.1 at any port (issue 30).
        staging = f"node_staging_uri = file://{self.tmp}/staging-{name}\n"
        conf_text += "\n[import_filtering_opts]\nallowed_ports =\n"
        conf.write_text(
            conf_text.replace("[DEFAULT]\n", f"[DEFAULT]\nbind_port = {port}\n{staging}", 1)
        )
        url = f"http://127.0.0.1:{port}"
        self._spawn("glance-api", conf, url, log_name=f"glance-api-{name}")
        return url

    def _spawn(self, binary, conf, url, log_name=None):
        log = self.logs / f"{log_name or binary}.log"
        out = open(log, "w")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        proc = subprocess.Popen([BIN / binary, "--config-file", conf], stdout=out, stderr=out, env=env)
        self.procs.append((proc, out))
        wait_for(f"{url}/healthcheck", proc, log)

    def stop(self):
        for p in self.proxies.values():
            p.close()
        if self.identity_stand_in:
            self.identity_stand_in.close()
        for proc, out in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            out.close()

    # ------------------------------------------------------------ raw HTTP, as an admin

    def http(self, method, path, body=None, headers=None):
        """A raw call to the main api as an admin (with Keystone: an `alpha-admin` token), for
        checks the clients cannot express or that should not pay for another client start."""
        headers = dict(headers or {})
        if self.ks:
            headers["X-Auth-Token"] = self.ks.token("alpha-admin")
        return http(method, f"{self.api_url}{path}", body, headers)

    def image(self, image_id):
        """The image as an admin sees it over raw HTTP (None when 404)."""
        status, _, body = self.http("GET", f"/v2/images/{image_id}")
        if status == 404:
            return None
        assert status == 200, (status, body)
        return body

    # ------------------------------------------------------------ identities

    def identity(self, name):
        """The identity `<project>-<role>` (alpha-member, beta-reader, ...)."""
        if name in self.identities:
            return self.identities[name]
        project, _, role = name.rpartition("-")
        if project not in PROJECTS or role not in ROLES:
            raise ValueError(f"identities are <project>-<role> with project in {PROJECTS} and role in "
                             f"{tuple(ROLES)}: not {name!r}")
        if self.ks:
            u = self.ks.user(name)
            who = Identity(name, u["project_id"], u["id"], ROLES[role], user=name,
                           password=u["password"], project_name=u["project"])
        else:
            pid = self.project_ids.setdefault(project, uuid.uuid4().hex)
            who = Identity(name, pid, uuid.uuid4().hex, ROLES[role])
        self.identities[name] = who
        return who

    def clients_for(self, identity, endpoint=None):
        """The clients of `identity`; `endpoint` overrides the image endpoint (the multi api)."""
        key = (identity.name, endpoint)
        if key in self.clients:
            return self.clients[key]
        if self.ks:
            c = Clients(identity, endpoint, self.client_env, self.ks, self.clouds_yaml, endpoint or self.api_url)
        elif identity.project_id is None:
            c = Clients(identity, endpoint or self.api_url, self.client_env)
        else:
            if endpoint:
                raise NotImplementedError("project identities use the trusted api without Keystone")
            if identity.name not in self.proxies:
                self.proxies[identity.name] = IdentityProxy(
                    self.trusted_url, identity.user_id, identity.project_id, identity.roles
                )
            c = Clients(identity, self.proxies[identity.name].url, self.client_env)
        self.clients[key] = c
        return c

    def user(self):
        """Whoever does the everyday work (see the module docstring)."""
        return self.clients_for(self.identity("alpha-member") if self.ks else Identity("admin"))

    def admin(self):
        return self.clients_for(self.identity("alpha-admin") if self.ks else Identity("admin"))


def _auth_mode():
    return os.environ.get("GLANCE_INTEROP_AUTH", "none")


def pytest_configure(config):
    config.addinivalue_line("markers", "auth(*modes): run only in these GLANCE_INTEROP_AUTH modes")


def pytest_collection_modifyitems(config, items):
    """Skips the tests marked for another auth mode, with the reason (printed by `-rs`)."""
    for item in items:
        marker = item.get_closest_marker("auth")
        if marker and _auth_mode() not in marker.args:
            why = marker.kwargs.get("reason")
            item.add_marker(pytest.mark.skip(
                reason=f"only with GLANCE_INTEROP_AUTH={' or '.join(marker.args)}" + (f": {why}" if why else "")))


@pytest.fixture(scope="session")
def auth_mode():
    mode = _auth_mode()
    if mode not in AUTH_MODES:
        pytest.exit(f"GLANCE_INTEROP_AUTH={mode} is not implemented (known: {', '.join(AUTH_MODES)})", 2)
    return mode


@pytest.fixture(scope="session")
def keystone(auth_mode, tmp_path_factory):
    """The Keystone of keystone mode (None otherwise): GLANCE_INTEROP_KEYSTONE's, or one started here."""
    if auth_mode != "keystone":
        yield None
        return
    path = os.environ.get("GLANCE_INTEROP_KEYSTONE")
    state = None
    if not path:
        state = tmp_path_factory.mktemp("keystone")
        print(f"\nGLANCE_INTEROP_KEYSTONE not set: starting Keystone in {state}")
        try:
            path = keystone_setup.start(state)
        except RuntimeError as e:
            keystone_setup.stop(state)
            pytest.exit(str(e), 3)
    try:
        ks = keystone_setup.Keystone(path)
        status, _, _ = http("GET", ks.auth_url)
        if status != 200:
            pytest.exit(f"Keystone at {ks.auth_url} (from {path}) does not answer GET /v3 ({status})", 3)
        if int(ks.info.get("token_expiration") or 0) < keystone_setup.MIN_TOKEN_EXPIRATION:
            print(f"\nwarning: Keystone's tokens live {ks.info.get('token_expiration')}s; "
                  f"the interop suite wants >= {keystone_setup.MIN_TOKEN_EXPIRATION}s")
        yield ks
    finally:
        if state is not None:
            keystone_setup.stop(state)


@pytest.fixture(scope="session")
def cloud(tmp_path_factory, auth_mode, keystone):
    c = Cloud(tmp_path_factory.mktemp("cloud"), auth_mode, keystone)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        print(f"\ndaemon logs: {c.logs}")


@pytest.fixture(scope="session")
def user(cloud):
    """The everyday user: the unauthenticated admin without Keystone, alpha-member with it."""
    return cloud.user()


@pytest.fixture(scope="session")
def admin(cloud):
    """For what only an admin may do: the unauthenticated admin without Keystone, alpha-admin with it."""
    return cloud.admin()


@pytest.fixture(scope="session")
def osc(user):
    return user.osc


@pytest.fixture(scope="session")
def glance(user):
    return user.glance


@pytest.fixture(scope="session")
def sdk(user):
    return user.sdk


@pytest.fixture(scope="session")
def as_user(cloud):
    """`as_user("beta-member")`: the clients of the user with role member on project beta.
    Projects alpha and beta, roles admin, member and reader."""

    def get(name):
        return cloud.clients_for(cloud.identity(name))

    return get


@pytest.fixture(scope="session")
def multi(cloud, user):
    """`user`'s clients on the multi-store glance-api."""
    if cloud.ks:
        return cloud.clients_for(user.identity, endpoint=cloud.multi_url)
    return Clients(Identity("admin-multi"), cloud.multi_url, cloud.client_env)


@pytest.fixture
def image_file(tmp_path):
    """A 3 MiB + 7 bytes random file: (path, md5, sha512, size)."""
    data = os.urandom(3 * 1024 * 1024 + 7)
    p = tmp_path / "disk.img"
    p.write_bytes(data)
    return p, hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest(), len(data)


@pytest.fixture
def small_file(tmp_path):
    """A 64 KiB + 3 bytes random file: (path, md5, sha512, size)."""
    data = os.urandom(64 * 1024 + 3)
    p = tmp_path / "small.img"
    p.write_bytes(data)
    return p, hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest(), len(data)
