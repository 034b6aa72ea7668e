//! Property protections (issue 28): `property_protection_file` with
//! `property_protection_rule_format = roles` and `= policies`, through trusted identity
//! headers. Each answer below was first asked of the real Glance 33 with the same file:
//! create, update and delete of a property the caller's roles may not touch are 403 and
//! change nothing; a property the caller may not read is missing from show, list and the
//! answers to create and update, and a patch that names it finds nothing (409), or creates
//! it (403 when create is not allowed). One deliberate difference: Glance 33 then drops every
//! hidden property from the image when such a caller patches it; here they are kept.
//! A bad file stops start-up with a message naming the line.

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::{TestCloud, api_state};
use crate::harness::{TestRegistry, backends, expect_error};
use crate::procs::{Kind, run_to_exit, write_conf};

const P: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ADMIN: &str = "admin,member,reader";
const MEMBER: &str = "member,reader";
const PATCH: &str = "application/openstack-images-v2.1-json-patch";

const ROLES_FILE: &str = "\
# owners' own properties
[^x_owner_.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member

[^x_admin_.*]
create = admin
read = admin
update = admin
delete = admin

# set once by an admin, read by members, never changed
[^x_ro_.*]
create = admin
read = admin,member
update = !
delete = admin

[.*]
create = @
read = @
update = @
delete = @
";

/// The same rules by policy names (`pp_admin`, `pp_member`, defined in the policy file).
const POLICIES_FILE: &str = "\
[^x_owner_.*]
create = pp_member
read = pp_member
update = pp_member
delete = pp_member

[^x_admin_.*]
create = pp_admin
read = pp_admin
update = pp_admin
delete = pp_admin

[^x_ro_.*]
create = pp_admin
read = pp_member
update = !
delete = pp_admin

[.*]
create = @
read = @
update = @
delete = @
";

const POLICY: &str = "\"pp_admin\": \"role:admin\"\n\"pp_member\": \"role:member\"\n";

/// A cloud with `file` as its protections in `format` (and `POLICY` as its policy file).
async fn cloud(
    backend: &'static str,
    format: &str,
    file: &str,
) -> Result<(TestCloud, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let pp = write_conf(dir.path(), "property-protections.conf", file)?;
    let policy = write_conf(dir.path(), "policy.yaml", POLICY)?;
    let conf = format!(
        "[DEFAULT]\nproperty_protection_file = {pp}\nproperty_protection_rule_format = {format}\n\
         [paste_deploy]\nflavor = trusted-auth\n[oslo_policy]\npolicy_file = {policy}\n"
    );
    Ok((TestCloud::with_config(backend, &conf).await?, dir))
}

/// The custom properties (`x_*`, `c`, `d`) of an image's JSON, as `key=value` strings.
fn props(image: &Value) -> Vec<String> {
    let mut v: Vec<String> = image
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("x_") || *k == "c" || *k == "d")
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn show(c: &TestCloud, roles: &str, id: &str) -> Result<Value> {
    let res = c
        .as_(P, roles, Method::GET, &format!("/v2/images/{id}"))
        .send()
        .await?;
    ensure!(res.status() == 200, "show as {roles}: {}", res.status());
    Ok(res.json().await?)
}

async fn patch(c: &TestCloud, roles: &str, id: &str, ops: Value) -> Result<reqwest::Response> {
    Ok(c.as_(P, roles, Method::PATCH, &format!("/v2/images/{id}"))
        .header("Content-Type", PATCH)
        .body(ops.to_string())
        .send()
        .await?)
}

/// The walk both formats share (the rules are the same; only how they are written differs).
async fn rules_hold(c: &TestCloud) -> Result<()> {
    // Create: a property the caller may not create is 403, and no image is made.
    let res = c
        .as_(P, MEMBER, Method::POST, "/v2/images")
        .json(&json!({"name": "m", "c": "1", "x_admin_foo": "1"}))
        .send()
        .await?;
    expect_error(res, 403, "x_admin_foo").await?;
    let res = c
        .as_(P, MEMBER, Method::POST, "/v2/images")
        .json(&json!({"name": "m", "x_ro_z": "1"}))
        .send()
        .await?;
    expect_error(res, 403, "x_ro_z").await?;
    let list: Value = c
        .as_(P, ADMIN, Method::GET, "/v2/images")
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        list["images"].as_array().is_some_and(Vec::is_empty),
        "{list}"
    );

    let res = c
        .as_(P, ADMIN, Method::POST, "/v2/images")
        .json(&json!({"name": "a", "x_admin_a": "1", "x_ro_b": "2", "c": "3", "x_owner_o": "4"}))
        .send()
        .await?;
    ensure!(res.status() == 201, "admin create: {}", res.status());
    let created: Value = res.json().await?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let all = ["c=3", "x_admin_a=1", "x_owner_o=4", "x_ro_b=2"];
    assert_eq!(props(&created), all);

    // Read: hidden from show and list.
    let seen = ["c=3", "x_owner_o=4", "x_ro_b=2"];
    assert_eq!(props(&show(c, MEMBER, &id).await?), seen);
    let list: Value = c
        .as_(P, MEMBER, Method::GET, "/v2/images")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(props(&list["images"][0]), seen);
    assert_eq!(props(&show(c, ADMIN, &id).await?), all);

    // Update by a member: the answer hides what it hid; the hidden property is kept.
    let res = patch(
        c,
        MEMBER,
        &id,
        json!([{"op": "add", "path": "/d", "value": "5"}]),
    )
    .await?;
    ensure!(res.status() == 200, "member add d: {}", res.status());
    let body: Value = res.json().await?;
    assert_eq!(props(&body), ["c=3", "d=5", "x_owner_o=4", "x_ro_b=2"]);
    assert_eq!(
        props(&show(c, ADMIN, &id).await?),
        ["c=3", "d=5", "x_admin_a=1", "x_owner_o=4", "x_ro_b=2"]
    );

    // Refused: 403 for what the roles may not do, 409 for what the caller cannot see.
    for (roles, op, status, needle) in [
        (
            MEMBER,
            json!({"op": "replace", "path": "/x_ro_b", "value": "9"}),
            403,
            "x_ro_b",
        ),
        (
            MEMBER,
            json!({"op": "remove", "path": "/x_ro_b"}),
            403,
            "x_ro_b",
        ),
        (
            MEMBER,
            json!({"op": "add", "path": "/x_admin_a", "value": "9"}),
            403,
            "x_admin_a",
        ),
        (
            MEMBER,
            json!({"op": "replace", "path": "/x_admin_a", "value": "9"}),
            409,
            "x_admin_a",
        ),
        (
            MEMBER,
            json!({"op": "remove", "path": "/x_admin_a"}),
            409,
            "x_admin_a",
        ),
        (
            ADMIN,
            json!({"op": "replace", "path": "/x_ro_b", "value": "9"}),
            403,
            "x_ro_b",
        ),
        (
            ADMIN,
            json!({"op": "add", "path": "/x_ro_b", "value": "9"}),
            403,
            "x_ro_b",
        ),
    ] {
        let res = patch(c, roles, &id, json!([op.clone()])).await?;
        expect_error(res, status, needle)
            .await
            .map_err(|e| e.context(format!("{roles} {op}")))?;
    }
    // One refused operation refuses the whole patch.
    let res = patch(
        c,
        MEMBER,
        &id,
        json!([{"op": "add", "path": "/c", "value": "changed"},
               {"op": "remove", "path": "/x_ro_b"}]),
    )
    .await?;
    expect_error(res, 403, "x_ro_b").await?;
    assert_eq!(
        props(&show(c, ADMIN, &id).await?),
        ["c=3", "d=5", "x_admin_a=1", "x_owner_o=4", "x_ro_b=2"],
        "refused patches changed the image"
    );

    // Allowed to members: their own properties.
    for op in [
        json!({"op": "add", "path": "/x_owner_new", "value": "9"}),
        json!({"op": "replace", "path": "/x_owner_o", "value": "9"}),
        json!({"op": "remove", "path": "/x_owner_o"}),
    ] {
        let res = patch(c, MEMBER, &id, json!([op.clone()])).await?;
        ensure!(res.status() == 200, "{op}: {}", res.status());
    }
    // The admin may delete what only admins may.
    let res = patch(c, ADMIN, &id, json!([{"op": "remove", "path": "/x_ro_b"}])).await?;
    ensure!(res.status() == 200, "admin remove x_ro_b: {}", res.status());
    assert_eq!(
        props(&show(c, ADMIN, &id).await?),
        ["c=3", "d=5", "x_admin_a=1", "x_owner_new=9"]
    );
    // A reader alone sees only what `@` lets everyone read.
    assert_eq!(props(&show(c, "reader", &id).await?), ["c=3", "d=5"]);
    Ok(())
}

#[actix_web::test]
async fn roles_rule_each_property() -> Result<()> {
    for backend in backends() {
        let (c, _dir) = cloud(backend, "roles", ROLES_FILE).await?;
        rules_hold(&c).await.map_err(|e| e.context(backend))?;
    }
    Ok(())
}

#[actix_web::test]
async fn policies_rule_each_property() -> Result<()> {
    let (c, _dir) = cloud("sqlite", "policies", POLICIES_FILE).await?;
    rules_hold(&c).await
}

#[actix_web::test]
async fn without_a_file_nothing_is_protected() -> Result<()> {
    let c = TestCloud::with_config("sqlite", "[paste_deploy]\nflavor = trusted-auth\n").await?;
    let res = c
        .as_(P, "reader", Method::POST, "/v2/images")
        .json(&json!({"x_admin_a": "1"}))
        .send()
        .await?;
    // Glance's default policy lets a reader create nothing; a member creates anything.
    ensure!(res.status() == 403, "{}", res.status());
    let res = c
        .as_(P, MEMBER, Method::POST, "/v2/images")
        .json(&json!({"x_admin_a": "1"}))
        .send()
        .await?;
    ensure!(res.status() == 201, "{}", res.status());
    assert_eq!(props(&res.json().await?), ["x_admin_a=1"]);
    Ok(())
}

#[actix_web::test]
async fn a_bad_file_stops_start_up_naming_the_line() -> Result<()> {
    let registry = TestRegistry::start("sqlite").await?;
    let dir = tempfile::tempdir()?;
    let ops = "read = @\nupdate = @\ndelete = @\n";
    for (format, file, needle) in [
        (
            "roles",
            format!("[ok]\ncreate = @\n{ops}[x_(]\ncreate = @\n{ops}"),
            "line 6: section [x_(] is not a valid regular expression",
        ),
        (
            "roles",
            format!("[x]\ncreate = @\nmodify = @\n{ops}"),
            "line 3, section [x]: unknown operation \"modify\"",
        ),
        (
            "roles",
            format!("[x]\ncreate = @, admin\n{ops}"),
            "line 2, section [x], create",
        ),
        (
            "roles",
            format!("[x]\ncreate = @,!\n{ops}"),
            "line 2, section [x], create",
        ),
        (
            "roles",
            format!("[x]\n{ops}"),
            "section [x]: no create operation",
        ),
        (
            "policies",
            format!("[x]\ncreate = no_such_rule\n{ops}"),
            "line 2, section [x], create: the policy defines no rule named \"no_such_rule\"",
        ),
        (
            "policies",
            format!("[x]\ncreate = pp_admin, pp_member\n{ops}"),
            "line 2, section [x], create",
        ),
    ] {
        let pp = write_conf(dir.path(), "pp.conf", &file)?;
        let policy = write_conf(dir.path(), "policy.yaml", POLICY)?;
        let conf = format!(
            "[DEFAULT]\nproperty_protection_file = {pp}\nproperty_protection_rule_format = {format}\n\
             [oslo_policy]\npolicy_file = {policy}\n"
        );
        let err = api_state(&registry.base, dir.path(), &conf)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        ensure!(
            err.contains(needle) && err.contains(&pp),
            "{file:?}: {err:?}"
        );
    }

    // The daemon itself: exits non-zero before serving, naming file and line.
    let pp = write_conf(dir.path(), "pp.conf", &format!("[x_(]\ncreate = @\n{ops}"))?;
    let conf = write_conf(
        dir.path(),
        "glance-api.conf",
        &format!(
            "[DEFAULT]\nproperty_protection_file = {pp}\n[glance_store]\nfilesystem_store_datadir = {}\n",
            dir.path().display()
        ),
    )?;
    let (status, err) = run_to_exit(
        Kind::Api,
        &["--config-file", &conf, "--registry-url", &registry.base],
    )?;
    ensure!(
        !status.success(),
        "glance-api started with a bad protections file"
    );
    ensure!(
        err.contains(&pp) && err.contains("line 1: section [x_(]"),
        "{err}"
    );
    // A file that does not exist: the option is named.
    let conf = write_conf(
        dir.path(),
        "glance-api.conf",
        "[DEFAULT]\nproperty_protection_file = /nonexistent/pp.conf\n",
    )?;
    let (status, err) = run_to_exit(Kind::Api, &["--config-file", &conf])?;
    ensure!(!status.success());
    ensure!(err.contains("[DEFAULT] property_protection_file"), "{err}");
    Ok(())
}
