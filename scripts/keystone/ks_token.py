"""Print a token id for a user of the loopback Keystone (stdlib only).

usage: ks_token.py STATE_DIR USER [PROJECT]

USER is a user name from STATE_DIR/keystone.json (admin, glance, alpha-member, ...);
its password comes from that file. PROJECT defaults to the user's own project; give
``system`` for a system-scoped token (admin only) or ``unscoped`` for none.
"""

import json
import os
import sys
import urllib.error
import urllib.request


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__.strip())
    state_dir, user = argv[0], argv[1]
    path = os.path.join(state_dir, "keystone.json")
    try:
        with open(path) as fh:
            info = json.load(fh)
    except OSError as exc:
        sys.exit("cannot read %s (is Keystone started?): %s" % (path, exc))
    entry = info["users"].get(user)
    if entry is None:
        sys.exit("unknown user %r; known: %s" % (user, ", ".join(sorted(info["users"]))))
    project = argv[2] if len(argv) == 3 else entry["project"]

    auth = {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {
                    "name": user,
                    "domain": {"id": info["domain_id"]},
                    "password": entry["password"],
                }
            },
        }
    }
    if project == "system":
        auth["scope"] = {"system": {"all": True}}
    elif project != "unscoped":
        auth["scope"] = {"project": {"name": project, "domain": {"id": info["domain_id"]}}}

    req = urllib.request.Request(
        info["auth_url"] + "/auth/tokens?nocatalog",
        data=json.dumps({"auth": auth}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            token = resp.headers["X-Subject-Token"]
    except urllib.error.HTTPError as exc:
        sys.exit("token request for %s (project %s) failed: HTTP %s %s" % (user, project, exc.code, exc.read().decode(errors="replace")))
    except urllib.error.URLError as exc:
        sys.exit("cannot reach Keystone at %s: %s" % (info["auth_url"], exc.reason))
    print(token)


if __name__ == "__main__":
    main(sys.argv[1:])
