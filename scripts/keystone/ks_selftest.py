"""Check a running loopback Keystone behaves as the Glance tests expect (stdlib only).

usage: ks_selftest.py STATE_DIR

Checks: tokens scoped to the user's own project are issued and refused for another
project; the service user (glance) validates a user's token with GET /v3/auth/tokens and
sees the expected roles (implied roles included: admin > manager > member > reader); a
reader cannot validate someone else's token; a revoked token no longer validates (404)
nor authenticates (401); when the configured token lifetime is at most 10 seconds, a
token stops validating once it has expired. Exits non-zero on the first failure.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

STATE = sys.argv[1] if len(sys.argv) == 2 else sys.exit(__doc__.strip())
try:
    with open(os.path.join(STATE, "keystone.json")) as _fh:
        INFO = json.load(_fh)
except OSError as _exc:
    sys.exit("cannot read keystone.json in %s (is Keystone started?): %s" % (STATE, _exc))
AUTH = INFO["auth_url"]
CHECKS = 0


def call(method, path, token=None, subject=None, body=None):
    headers = {"Accept": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    if subject:
        headers["X-Subject-Token"] = subject
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(AUTH + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            return resp.status, resp.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return exc.code, exc.headers, parsed


def issue(user, project=None):
    entry = INFO["users"][user]
    project = project or entry["project"]
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": {"id": "default"}, "password": entry["password"]}},
            },
            "scope": {"project": {"name": project, "domain": {"id": "default"}}},
        }
    }
    status, headers, doc = call("POST", "/auth/tokens?nocatalog", body=body)
    return status, headers.get("X-Subject-Token"), doc


def check(cond, what):
    global CHECKS
    if not cond:
        print("keystone selftest: FAILED: " + what, file=sys.stderr)
        sys.exit(1)
    CHECKS += 1
    print("keystone selftest: ok: " + what, file=sys.stderr)


def roles_of(doc):
    return sorted(r["name"] for r in doc["token"]["roles"])


def main():
    status, service, _ = issue(INFO["service"]["name"])
    check(status == 201 and service, "service user %s gets a token for project service" % INFO["service"]["name"])

    expected = {
        "admin": ["admin", "manager", "member", "reader"],
        "member": ["member", "reader"],
        "reader": ["reader"],
    }
    tokens = {}
    for project in ("alpha", "beta"):
        for role, roles in expected.items():
            user = "%s-%s" % (project, role)
            status, tok, _ = issue(user)
            check(status == 201 and tok, "%s gets a token scoped to %s" % (user, project))
            tokens[user] = tok
            status, _, doc = call("GET", "/auth/tokens?nocatalog", token=service, subject=tok)
            check(status == 200, "service validates the %s token" % user)
            check(doc["token"]["project"]["id"] == INFO["projects"][project]["id"], "%s token has project %s" % (user, project))
            check(doc["token"]["user"]["id"] == INFO["users"][user]["id"], "%s token has its user id" % user)
            check(roles_of(doc) == roles, "%s token roles are %s (got %s)" % (user, roles, roles_of(doc)))

    status, _, _ = issue("alpha-member", "beta")
    check(status == 401, "alpha-member gets no token for beta (got %s)" % status)

    status, _, _ = call("GET", "/auth/tokens", token=tokens["alpha-reader"], subject=tokens["alpha-member"])
    check(status == 403, "a reader cannot validate another user's token (got %s)" % status)

    victim = tokens["beta-member"]
    status, _, _ = call("DELETE", "/auth/tokens", token=service, subject=victim)
    check(status == 204, "service revokes the beta-member token (got %s)" % status)
    status, _, _ = call("GET", "/auth/tokens", token=service, subject=victim)
    check(status == 404, "a revoked token validates as 404 (got %s)" % status)
    status, _, _ = call("GET", "/auth/projects", token=victim)
    check(status == 401, "a revoked token is refused with 401 (got %s)" % status)
    status, fresh, _ = issue("beta-member")
    status, _, _ = call("GET", "/auth/tokens", token=service, subject=fresh)
    check(status == 200, "a new beta-member token still validates (got %s)" % status)

    status, _, _ = call("GET", "/auth/tokens", token=service, subject="not-a-token")
    check(status == 404, "garbage validates as 404 (got %s)" % status)

    lifetime = INFO["token_expiration"]
    if lifetime <= 10:
        status, short, doc = issue("alpha-reader")
        check(status == 201, "alpha-reader gets a %ss token" % lifetime)
        time.sleep(lifetime + 2)
        _, service2, _ = issue(INFO["service"]["name"])
        status, _, _ = call("GET", "/auth/tokens", token=service2, subject=short)
        check(status == 404, "an expired token validates as 404 (got %s)" % status)
        status, _, _ = call("GET", "/auth/tokens?allow_expired=1", token=service2, subject=short)
        check(status == 200, "an expired token validates with allow_expired=1 (got %s)" % status)
        status, _, _ = call("GET", "/auth/projects", token=short)
        check(status == 401, "an expired token is refused with 401 (got %s)" % status)

    print("keystone selftest: all %d checks ok" % CHECKS, file=sys.stderr)


if __name__ == "__main__":
    main()
