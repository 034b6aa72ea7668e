"""Provision the loopback Keystone started by scripts/keystone.sh (idempotent).

Run with the Keystone venv's python once ``keystone-manage bootstrap`` has made the
admin user, the admin project and the admin/manager/member/reader/service roles and
the server answers. Creates, or brings back to the wanted state:

* project ``service`` with user ``glance`` holding ``admin`` on it (as the install
  guides do);
* projects ``alpha`` and ``beta``, each with users ``<project>-admin``,
  ``<project>-member`` and ``<project>-reader`` holding that one role on it;
* the ``image`` service named ``glance`` with public/internal/admin endpoints in
  RegionOne (skipped when the endpoint URL is empty);

then writes ``keystone.json`` and ``keystone.env`` into the state directory.

Everything comes from the environment set by scripts/keystone.sh (KS_* variables).
"""

import json
import os
import shlex
import sys
import time

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from keystoneclient import exceptions as kc_exc
from keystoneclient.v3 import client as kc_client

ENV = os.environ
STATE_DIR = ENV["KS_STATE_DIR"]
BASE_URL = ENV["KS_URL"]
AUTH_URL = BASE_URL + "/v3"
DOMAIN_ID = "default"
REGION = ENV.get("KS_REGION", "RegionOne")
ADMIN_USER = "admin"
ADMIN_PROJECT = "admin"
ADMIN_PASSWORD = ENV["KS_ADMIN_PASSWORD"]
SERVICE_PROJECT = "service"
SERVICE_USER = ENV.get("KS_SERVICE_USER", "glance")
SERVICE_PASSWORD = ENV["KS_SERVICE_PASSWORD"]
USER_PASSWORD = ENV["KS_USER_PASSWORD"]
GLANCE_ENDPOINT = ENV.get("KS_GLANCE_ENDPOINT", "")
TEST_PROJECTS = ("alpha", "beta")
TEST_ROLES = ("admin", "member", "reader")


def log(msg):
    print("keystone provision: " + msg, file=sys.stderr, flush=True)


def admin_client():
    # The bootstrap admin holds admin on the system and on project admin; a
    # system-scoped token is what the new default policies expect for these calls.
    auth = v3.Password(
        auth_url=AUTH_URL,
        username=ADMIN_USER,
        password=ADMIN_PASSWORD,
        user_domain_id=DOMAIN_ID,
        system_scope="all",
    )
    sess = ks_session.Session(auth=auth, timeout=60)
    last = None
    for _ in range(30):
        try:
            sess.get_token()
            break
        except Exception as exc:  # the server may still be warming up
            last = exc
            time.sleep(1)
    else:
        raise SystemExit("cannot get an admin token from %s: %s" % (AUTH_URL, last))
    return kc_client.Client(session=sess, interface="public")


def find_one(items, what):
    items = list(items)
    if len(items) > 1:
        raise SystemExit("more than one %s found" % what)
    return items[0] if items else None


def ensure_role(kc, name):
    role = find_one(kc.roles.list(name=name), "role " + name)
    if role is None:
        log("creating role " + name)
        role = kc.roles.create(name=name)
    return role


def ensure_project(kc, name, description):
    project = find_one(kc.projects.list(name=name, domain=DOMAIN_ID), "project " + name)
    if project is None:
        log("creating project " + name)
        project = kc.projects.create(name=name, domain=DOMAIN_ID, description=description)
    return project


def ensure_user(kc, name, password, project):
    user = find_one(kc.users.list(name=name, domain=DOMAIN_ID), "user " + name)
    if user is None:
        log("creating user " + name)
        user = kc.users.create(
            name=name,
            domain=DOMAIN_ID,
            password=password,
            default_project=project,
            enabled=True,
        )
    else:
        # Keep a reused state directory in step with the passwords asked for now.
        user = kc.users.update(user, password=password, default_project=project, enabled=True)
    return user


def ensure_grant(kc, role, user, project):
    try:
        kc.roles.check(role, user=user, project=project)
    except kc_exc.NotFound:
        kc.roles.grant(role, user=user, project=project)


def ensure_image_service(kc, url):
    service = find_one(kc.services.list(type="image"), "image service")
    if service is None:
        log("creating service glance (image)")
        service = kc.services.create(name="glance", type="image", description="OpenStack Image")
    endpoints = {}
    for interface in ("public", "internal", "admin"):
        found = [
            e
            for e in kc.endpoints.list(service=service, interface=interface)
            if getattr(e, "region_id", None) == REGION or getattr(e, "region", None) == REGION
        ]
        if found:
            ep = found[0]
            for extra in found[1:]:
                kc.endpoints.delete(extra)
            if ep.url != url:
                ep = kc.endpoints.update(ep, url=url)
        else:
            log("creating %s image endpoint %s" % (interface, url))
            ep = kc.endpoints.create(service=service, url=url, interface=interface, region=REGION)
        endpoints[interface] = ep.id
    return service, endpoints


def main():
    kc = admin_client()
    roles = {name: ensure_role(kc, name) for name in ("admin", "manager", "member", "reader", "service")}

    admin_project = find_one(kc.projects.list(name=ADMIN_PROJECT, domain=DOMAIN_ID), "project admin")
    admin_user = find_one(kc.users.list(name=ADMIN_USER, domain=DOMAIN_ID), "user admin")
    if admin_project is None or admin_user is None:
        raise SystemExit("bootstrap admin user/project missing")

    service_project = ensure_project(kc, SERVICE_PROJECT, "Service Project")
    service_user = ensure_user(kc, SERVICE_USER, SERVICE_PASSWORD, service_project)
    ensure_grant(kc, roles["admin"], service_user, service_project)

    users = {
        ADMIN_USER: {
            "id": admin_user.id,
            "password": ADMIN_PASSWORD,
            "project": ADMIN_PROJECT,
            "project_id": admin_project.id,
            "role": "admin",
        },
        SERVICE_USER: {
            "id": service_user.id,
            "password": SERVICE_PASSWORD,
            "project": SERVICE_PROJECT,
            "project_id": service_project.id,
            "role": "admin",
        },
    }
    projects = {
        ADMIN_PROJECT: {"id": admin_project.id, "users": {"admin": ADMIN_USER}},
        SERVICE_PROJECT: {"id": service_project.id, "users": {"admin": SERVICE_USER}},
    }
    for pname in TEST_PROJECTS:
        project = ensure_project(kc, pname, "glance e2e test project " + pname)
        projects[pname] = {"id": project.id, "users": {}}
        for rname in TEST_ROLES:
            uname = "%s-%s" % (pname, rname)
            user = ensure_user(kc, uname, USER_PASSWORD, project)
            ensure_grant(kc, roles[rname], user, project)
            projects[pname]["users"][rname] = uname
            users[uname] = {
                "id": user.id,
                "password": USER_PASSWORD,
                "project": pname,
                "project_id": project.id,
                "role": rname,
            }

    image = None
    if GLANCE_ENDPOINT:
        service, endpoints = ensure_image_service(kc, GLANCE_ENDPOINT)
        image = {"service_id": service.id, "url": GLANCE_ENDPOINT, "region": REGION, "endpoints": endpoints}

    # The service user must be able to log in: it is what the tests authenticate as.
    check = ks_session.Session(
        auth=v3.Password(
            auth_url=AUTH_URL,
            username=SERVICE_USER,
            password=SERVICE_PASSWORD,
            user_domain_id=DOMAIN_ID,
            project_name=SERVICE_PROJECT,
            project_domain_id=DOMAIN_ID,
        ),
        timeout=60,
    )
    check.get_token()

    info = {
        "url": BASE_URL,
        "auth_url": AUTH_URL,
        "host": ENV["KS_HOST"],
        "port": int(ENV["KS_PORT"]),
        "pid": int(ENV["KS_PID"]),
        "state_dir": STATE_DIR,
        "venv": ENV["KS_VENV"],
        "config": os.path.join(STATE_DIR, "keystone.conf"),
        "log": os.path.join(STATE_DIR, "keystone.log"),
        "token_expiration": int(ENV["KS_TOKEN_EXPIRATION"]),
        "region": REGION,
        "domain_id": DOMAIN_ID,
        "domain_name": "Default",
        "admin": users[ADMIN_USER] | {"name": ADMIN_USER},
        "service": users[SERVICE_USER] | {"name": SERVICE_USER},
        "roles": {name: role.id for name, role in roles.items()},
        "projects": projects,
        "users": users,
        "image_service": image,
    }

    env = {
        "KEYSTONE_URL": BASE_URL,
        "KEYSTONE_AUTH_URL": AUTH_URL,
        "KEYSTONE_HOST": ENV["KS_HOST"],
        "KEYSTONE_PORT": ENV["KS_PORT"],
        "KEYSTONE_PID": ENV["KS_PID"],
        "KEYSTONE_STATE_DIR": STATE_DIR,
        "KEYSTONE_VENV": ENV["KS_VENV"],
        "KEYSTONE_LOG": info["log"],
        "KEYSTONE_TOKEN_EXPIRATION": ENV["KS_TOKEN_EXPIRATION"],
        "KEYSTONE_REGION": REGION,
        "KEYSTONE_DOMAIN_ID": DOMAIN_ID,
        "KEYSTONE_DOMAIN_NAME": "Default",
        "KEYSTONE_ADMIN_USER": ADMIN_USER,
        "KEYSTONE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "KEYSTONE_ADMIN_USER_ID": admin_user.id,
        "KEYSTONE_ADMIN_PROJECT": ADMIN_PROJECT,
        "KEYSTONE_ADMIN_PROJECT_ID": admin_project.id,
        "KEYSTONE_SERVICE_USER": SERVICE_USER,
        "KEYSTONE_SERVICE_PASSWORD": SERVICE_PASSWORD,
        "KEYSTONE_SERVICE_USER_ID": service_user.id,
        "KEYSTONE_SERVICE_PROJECT": SERVICE_PROJECT,
        "KEYSTONE_SERVICE_PROJECT_ID": service_project.id,
        "KEYSTONE_USER_PASSWORD": USER_PASSWORD,
    }
    for name, role in roles.items():
        env["KEYSTONE_ROLE_%s_ID" % name.upper()] = role.id
    for pname in TEST_PROJECTS:
        env["KEYSTONE_PROJECT_%s_ID" % pname.upper()] = projects[pname]["id"]
        for rname in TEST_ROLES:
            env["KEYSTONE_USER_%s_%s_ID" % (pname.upper(), rname.upper())] = users["%s-%s" % (pname, rname)]["id"]
    env["KEYSTONE_GLANCE_ENDPOINT"] = GLANCE_ENDPOINT
    env["KEYSTONE_IMAGE_SERVICE_ID"] = image["service_id"] if image else ""

    def write(name, text):
        path = os.path.join(STATE_DIR, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    write("keystone.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    lines = ["# Written by scripts/keystone.sh start; source it from a shell."]
    lines += ["export %s=%s" % (k, shlex.quote(v)) for k, v in env.items()]
    write("keystone.env", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
