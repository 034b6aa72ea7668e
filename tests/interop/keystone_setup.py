"""The real Keystone of the interop suite's `keystone` auth mode.

scripts/keystone.sh starts it (scripts/interop.sh does so once for all its keystone runs and
passes GLANCE_INTEROP_KEYSTONE=<state dir>/keystone.json; a pytest run without that variable
starts its own in its temporary directory). It holds the install guides' service user `glance`
and projects `alpha` and `beta`, each with users `<project>-admin`, `<project>-member` and
`<project>-reader`. This module reads keystone.json, writes the daemons' `[keystone_authtoken]`
block, issues tokens for the suite's own raw-HTTP checks, and points the catalog's image
endpoints at the glance-api the fixtures started (its port is picked per run), so that the
clients find glance-api the way they do in a real cloud: through the service catalog.

Standard library only: the suite's venv has no keystoneclient.
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEYSTONE_SH = ROOT / "scripts" / "keystone.sh"
# Tokens must outlive a whole run's worth of caching in the fixtures (and CLI starts on a busy
# machine): scripts/interop.sh starts Keystone with 3600 s, the default.
MIN_TOKEN_EXPIRATION = 600


def _call(method, url, body=None, token=None):
    """(status, headers, parsed JSON or None)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, headers, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    return status, headers, doc


class Keystone:
    def __init__(self, info_path):
        self.info_path = Path(info_path)
        self.info = json.loads(self.info_path.read_text())
        self.url = self.info["url"]
        self.auth_url = self.info["auth_url"]
        self.region = self.info.get("region") or "RegionOne"
        self.domain = self.info.get("domain_name") or "Default"
        self._tokens = {}

    # ---------------------------------------------------------------- who is who

    def user(self, name):
        try:
            return self.info["users"][name]
        except KeyError:
            raise KeyError(f"{self.info_path} has no user {name!r} (users: {', '.join(self.info['users'])})") from None

    def project_id(self, name):
        return self.info["projects"][name]["id"]

    # ---------------------------------------------------------------- tokens

    def issue(self, user, system=False):
        """A new token of `user` (scoped to its own project, or to the system): (token, expires_at)."""
        u = self.user(user)
        scope = {"system": {"all": True}} if system else {"project": {"id": u["project_id"]}}
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": self.info.get("domain_id") or "default"},
                "password": u["password"]}}},
            "scope": scope,
        }}
        status, headers, doc = _call("POST", f"{self.auth_url}/auth/tokens?nocatalog", body)
        if status != 201:
            raise RuntimeError(f"Keystone refused a token for {user}: {status} {doc}")
        # Renewed at half its life (keystone.json has the lifetime Keystone was started with).
        lifetime = int(self.info.get("token_expiration") or 3600)
        return headers["X-Subject-Token"], time.monotonic() + lifetime / 2

    def token(self, user, system=False):
        """A cached token of `user`, renewed at half its life."""
        key = (user, system)
        cached = self._tokens.get(key)
        if cached is None or time.monotonic() > cached[1]:
            cached = self._tokens[key] = self.issue(user, system)
        return cached[0]

    # ---------------------------------------------------------------- daemons

    def daemon_conf(self):
        """`[paste_deploy] flavor = keystone` and the install guides' `[keystone_authtoken]`
        block, as glance-api.conf and glance-registry.conf both carry them."""
        s = self.info["service"]
        return (
            "[paste_deploy]\nflavor = keystone\n"
            "[keystone_authtoken]\n"
            f"www_authenticate_uri = {self.url}\n"
            f"auth_url = {self.url}\n"
            "memcached_servers = 127.0.0.1:11211\n"
            "auth_type = password\n"
            f"project_domain_name = {self.domain}\n"
            f"user_domain_name = {self.domain}\n"
            f"project_name = {s['project']}\n"
            f"username = {s['name']}\n"
            f"password = {s['password']}\n"
        )

    # ---------------------------------------------------------------- catalog

    def point_image_endpoints(self, url):
        """Makes the catalog's image service (type `image`) have exactly one public, internal
        and admin endpoint in our region, each `url`; creates the service if there is none."""
        admin = self.info["admin"]["name"]
        tok = self.token(admin, system=True)
        status, _, doc = _call("GET", f"{self.auth_url}/services?type=image", token=tok)
        assert status == 200, (status, doc)
        services = doc["services"]
        if services:
            service_id = services[0]["id"]
        else:
            status, _, doc = _call("POST", f"{self.auth_url}/services", {"service": {
                "name": "glance", "type": "image", "description": "OpenStack Image", "enabled": True}}, tok)
            assert status == 201, (status, doc)
            service_id = doc["service"]["id"]
        status, _, doc = _call("GET", f"{self.auth_url}/endpoints?service_id={service_id}", token=tok)
        assert status == 200, (status, doc)
        for interface in ("public", "internal", "admin"):
            found = [e for e in doc["endpoints"]
                     if e["interface"] == interface and (e.get("region_id") or e.get("region")) == self.region]
            for extra in found[1:]:
                _call("DELETE", f"{self.auth_url}/endpoints/{extra['id']}", token=tok)
            if found:
                if found[0]["url"] != url:
                    status, _, res = _call("PATCH", f"{self.auth_url}/endpoints/{found[0]['id']}",
                                           {"endpoint": {"url": url}}, tok)
                    assert status == 200, (status, res)
            else:
                status, _, res = _call("POST", f"{self.auth_url}/endpoints", {"endpoint": {
                    "service_id": service_id, "interface": interface, "url": url,
                    "region_id": self.region, "enabled": True}}, tok)
                assert status == 201, (status, res)

    def catalog_image_url(self, user):
        """The public image endpoint in the catalog of a token of `user` (as the clients see it)."""
        u = self.user(user)
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": self.info.get("domain_id") or "default"},
                "password": u["password"]}}},
            "scope": {"project": {"id": u["project_id"]}},
        }}
        status, _, doc = _call("POST", f"{self.auth_url}/auth/tokens", body)
        assert status == 201, (status, doc)
        for svc in doc["token"]["catalog"]:
            if svc["type"] == "image":
                for ep in svc["endpoints"]:
                    if ep["interface"] == "public" and ep.get("region_id", ep.get("region")) == self.region:
                        return ep["url"]
        return None


def start(state_dir):
    """Starts a Keystone with scripts/keystone.sh in `state_dir`; returns the keystone.json path."""
    env = dict(os.environ)
    env.setdefault("KEYSTONE_TOKEN_EXPIRATION", "3600")
    if int(env["KEYSTONE_TOKEN_EXPIRATION"]) < MIN_TOKEN_EXPIRATION:
        env["KEYSTONE_TOKEN_EXPIRATION"] = "3600"
    res = subprocess.run([KEYSTONE_SH, "start", state_dir, "0"], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"scripts/keystone.sh start failed ({res.returncode}):\n{res.stdout}\n{res.stderr[-6000:]}")
    return Path(state_dir) / "keystone.json"


def stop(state_dir):
    subprocess.run([KEYSTONE_SH, "stop", state_dir], capture_output=True, text=True)
