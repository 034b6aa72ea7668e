//! Owners and scope hold whatever the policy file says (issue 26, point 9). Under Glance's
//! secure-RBAC defaults and under a Queens-style policy file (most rules `""`,
//! tests/fixtures/policy/queens-style.json), through trusted identity headers, on every backend:
//! every mutating route refuses a project that does not own the image, leaves the image as it
//! was, and works for the owner; only the member answers a share; a system-scoped admin token
//! is refused on image calls (404 on an image, 403 to list or create). The walk covers every
//! mutating route app.rs registers, so a new route without a row here fails the test.

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::TestCloud;
use crate::harness::{backends, expect_error};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccc";
const D: &str = "dddddddddddddddddddddddddddddddd";
const MEMBER: &str = "member,reader";
const PATCH: &str = "application/openstack-images-v2.1-json-patch";

/// The policy a cloud runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rules {
    /// No policy file: Glance's secure-RBAC defaults.
    SecureDefaults,
    /// The Queens-style fixture: nearly everything `""`.
    QueensStyle,
}

/// glance-api.conf for `rules`, with more `[oslo_policy]` lines.
fn conf(rules: Rules, oslo_policy: &str) -> String {
    // Multi-store (one file store), so that DELETE /v2/stores/{store}/{image} is served.
    let mut conf = format!(
        "[DEFAULT]\nenabled_backends = local:file\n[glance_store]\ndefault_backend = local\n\
         [local]\nfilesystem_store_datadir = {{datadir}}\n\
         [paste_deploy]\nflavor = trusted-auth\n[oslo_policy]\n{oslo_policy}"
    );
    if rules == Rules::QueensStyle {
        conf.push_str(&format!(
            "policy_file = {}/fixtures/policy/queens-style.json\n",
            env!("CARGO_MANIFEST_DIR")
        ));
    }
    conf
}

/// One mutating request, named by the handler app.rs routes it to, and the projects that must
/// be refused it, with the status each gets.
struct Route {
    handler: &'static str,
    method: Method,
    path: String,
    body: Option<(&'static str, Vec<u8>)>,
    refused: [(&'static str, u16); 2],
}

fn route(handler: &'static str, method: Method, path: String) -> Route {
    Route {
        handler,
        method,
        path,
        body: None,
        refused: [(B, 403), (C, 403)],
    }
}

fn json_body(v: Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", v.to_string().into_bytes()))
}

/// Every mutating route, against `com` (A's community image, visible to all) and `sh` (A's
/// shared image, with members B and C).
fn routes(com: &str, sh: &str) -> Vec<Route> {
    let patch = json!([{"op": "replace", "path": "/name", "value": "taken"}]);
    vec![
        Route {
            body: Some((PATCH, patch.to_string().into_bytes())),
            ..route(
                "images::update_image",
                Method::PATCH,
                format!("/v2/images/{com}"),
            )
        },
        route(
            "images::delete_image",
            Method::DELETE,
            format!("/v2/images/{com}"),
        ),
        Route {
            body: Some(("application/octet-stream", b"stolen bytes".to_vec())),
            ..route(
                "data::upload_image_data",
                Method::PUT,
                format!("/v2/images/{com}/file"),
            )
        },
        Route {
            body: json_body(json!({"url": "http://127.0.0.1:9/x"})),
            ..route(
                "locations::add_location",
                Method::POST,
                format!("/v2/images/{com}/locations"),
            )
        },
        route(
            "images::image_action",
            Method::POST,
            format!("/v2/images/{com}/actions/deactivate"),
        ),
        route(
            "images::image_action",
            Method::POST,
            format!("/v2/images/{com}/actions/reactivate"),
        ),
        route(
            "locations::delete_from_store",
            Method::DELETE,
            format!("/v2/stores/local/{com}"),
        ),
        route(
            "images::add_tag",
            Method::PUT,
            format!("/v2/images/{com}/tags/stolen"),
        ),
        route(
            "images::delete_tag",
            Method::DELETE,
            format!("/v2/images/{com}/tags/keep"),
        ),
        // Interoperable import (issue 30): a stage, then its import, of the shared image.
        Route {
            body: Some(("application/octet-stream", b"staged bytes".to_vec())),
            ..route(
                "import::stage_image_data",
                Method::PUT,
                format!("/v2/images/{sh}/stage"),
            )
        },
        Route {
            body: json_body(json!({"method": {"name": "glance-direct"}})),
            ..route(
                "import::import_image",
                Method::POST,
                format!("/v2/images/{sh}/import"),
            )
        },
        Route {
            body: json_body(json!({"member": D})),
            ..route(
                "members::create_member",
                Method::POST,
                format!("/v2/images/{sh}/members"),
            )
        },
        route(
            "members::delete_member",
            Method::DELETE,
            format!("/v2/images/{sh}/members/{C}"),
        ),
        Route {
            body: json_body(json!({"status": "accepted"})),
            // B answers for itself; the owner may not, and the other member cannot even see
            // B's membership (404, as in Glance 33).
            refused: [(A, 403), (C, 404)],
            ..route(
                "members::update_member",
                Method::PUT,
                format!("/v2/images/{sh}/members/{B}"),
            )
        },
    ]
}

fn send(c: &TestCloud, project: &str, roles: &str, r: &Route) -> reqwest::RequestBuilder {
    let req = c.as_(project, roles, r.method.clone(), &r.path);
    match &r.body {
        Some((ct, body)) => req.header("content-type", *ct).body(body.clone()),
        None => req,
    }
}

/// Metadefs handlers change no image: `api_metadefs` walks each of them instead.
pub fn is_metadef_handler(handler: &str) -> bool {
    handler.starts_with("md::") || handler.starts_with("mi::")
}

/// The handlers app.rs routes PUT, POST, PATCH and DELETE to.
pub fn mutating_handlers() -> Result<Vec<String>> {
    let app = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/api/src/app.rs"
    ))?;
    let mut out = Vec::new();
    for verb in ["put", "post", "patch", "delete"] {
        let needle = format!("web::{verb}().to(");
        for piece in app.split(&needle).skip(1) {
            let handler: String = piece.chars().take_while(|ch| *ch != ')').collect();
            out.push(handler);
        }
    }
    ensure!(out.len() >= 9, "found only {out:?} in app.rs");
    Ok(out)
}

/// What the walk must not have changed.
async fn snapshot(c: &TestCloud, com: &str, sh: &str) -> Result<Value> {
    let get = |path: String| async move {
        let res = c.as_(A, MEMBER, Method::GET, &path).send().await?;
        ensure!(res.status() == 200, "GET {path}: {}", res.status());
        Ok::<Value, anyhow::Error>(res.json().await?)
    };
    let image = get(format!("/v2/images/{com}")).await?;
    let mut members = get(format!("/v2/images/{sh}/members")).await?["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m["member_id"].clone(), m["status"].clone()))
        .collect::<Vec<_>>();
    members.sort_by_key(|(id, _)| id.to_string());
    Ok(json!({
        "name": image["name"], "status": image["status"], "tags": image["tags"],
        "size": image["size"], "members": format!("{members:?}"),
    }))
}

async fn create(c: &TestCloud, visibility: &str) -> Result<String> {
    let res = c
        .as_(A, MEMBER, Method::POST, "/v2/images")
        .json(
            &json!({"name": visibility, "visibility": visibility, "tags": ["keep"],
            "disk_format": "raw", "container_format": "bare"}),
        )
        .send()
        .await?;
    ensure!(res.status() == 201, "create: {}", res.status());
    Ok(res.json::<Value>().await?["id"]
        .as_str()
        .unwrap()
        .to_string())
}

async fn owners_only(backend: &'static str, rules: Rules) -> Result<()> {
    let c = TestCloud::with_config(backend, &conf(rules, "")).await?;
    let (com, sh) = (create(&c, "community").await?, create(&c, "shared").await?);
    for m in [B, C] {
        let res = c
            .as_(A, MEMBER, Method::POST, &format!("/v2/images/{sh}/members"))
            .json(&json!({"member": m}))
            .send()
            .await?;
        ensure!(res.status() == 200, "add member {m}: {}", res.status());
    }
    let routes = routes(&com, &sh);
    for handler in mutating_handlers()? {
        ensure!(
            // Creating changes no existing image; its owner rule is checked below.
            handler == "images::create_image"
                || is_metadef_handler(&handler)
                || routes.iter().any(|r| r.handler == handler),
            "{handler} changes images but this walk does not cover it: add a row to routes()"
        );
    }
    let before = snapshot(&c, &com, &sh).await?;
    for r in &routes {
        for (who, status) in r.refused {
            let res = send(&c, who, MEMBER, r).send().await?;
            let needle = match (rules, r.handler) {
                _ if status == 404 => "not found",
                // The policy file lets everyone in; the ownership rules refuse, whatever it says.
                (Rules::QueensStyle, "members::update_member") => "itself",
                // A rule newer than Queens: the file leaves it at its default (service or
                // the owner's member), which refuses first.
                (Rules::QueensStyle, "locations::add_location") => "policy",
                (Rules::QueensStyle, _) => "do not own",
                (Rules::SecureDefaults, _) => "policy",
            };
            expect_error(res, status, needle)
                .await
                .map_err(|e| e.context(format!("{rules:?} {} {} as {who}", r.method, r.path)))?;
        }
    }
    ensure!(
        snapshot(&c, &com, &sh).await? == before,
        "a refused request changed an image"
    );
    ensure!(c.files().is_empty(), "refused upload left {:?}", c.files());
    // Creating an image for another project is an admin's alone.
    let res = c
        .as_(B, MEMBER, Method::POST, "/v2/images")
        .json(&json!({"name": "planted", "owner": A}))
        .send()
        .await?;
    expect_error(res, 403, "owned by").await?;

    // The same requests, from those who may make them.
    for r in &routes {
        let (who, roles, want) = match r.handler {
            "members::update_member" => (B, MEMBER, 200),
            "members::create_member" => (A, MEMBER, 200),
            "images::update_image" => (D, "admin", 200),
            "images::delete_image" => continue, // last, below
            // Past policy and owner: the image is active by now (uploaded above).
            "locations::add_location" => (A, MEMBER, 409),
            // Past policy (admin only) and owner: the store holds the only copy.
            "locations::delete_from_store" => (D, "admin", 403),
            "images::image_action" if r.path.ends_with("deactivate") => (A, MEMBER, 204),
            "import::import_image" => (A, MEMBER, 202),
            _ => (A, MEMBER, 204),
        };
        let res = send(&c, who, roles, r).send().await?;
        let status = res.status().as_u16();
        ensure!(
            status == want,
            "{rules:?} {} {} as {who}: {status} {}",
            r.method,
            r.path,
            res.text().await?
        );
    }
    let after: Value = c
        .as_(A, MEMBER, Method::GET, &format!("/v2/images/{com}"))
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        after["name"] == "taken"
            && after["status"] == "active"
            && after["tags"] == json!(["stolen"]),
        "the owner's changes did not all land: {after}"
    );
    let res = c
        .as_(A, MEMBER, Method::DELETE, &format!("/v2/images/{com}"))
        .send()
        .await?;
    ensure!(res.status() == 204, "owner delete: {}", res.status());
    Ok(())
}

#[actix_web::test]
async fn changes_are_the_owners_under_secure_defaults() -> Result<()> {
    for backend in backends() {
        owners_only(backend, Rules::SecureDefaults).await?;
    }
    Ok(())
}

#[actix_web::test]
async fn changes_are_the_owners_under_a_queens_style_policy() -> Result<()> {
    for backend in backends() {
        owners_only(backend, Rules::QueensStyle).await?;
    }
    Ok(())
}

/// A system-scoped admin (keystonemiddleware's `OpenStack-System-Scope: all`, no project).
fn as_system(c: &TestCloud, method: Method, path: &str) -> reqwest::RequestBuilder {
    c.req(method, path)
        .header("X-Identity-Status", "Confirmed")
        .header("X-User-Id", "cloud-admin")
        .header("X-Roles", "admin,member,reader")
        .header("OpenStack-System-Scope", "all")
}

#[actix_web::test]
async fn system_scoped_admins_are_refused_on_image_calls() -> Result<()> {
    let backend = "sqlite"; // the refusal happens before any query
    for rules in [Rules::SecureDefaults, Rules::QueensStyle] {
        // enforce_scope = false changes nothing, as in Glance 33 (oslo.policy 6).
        let c = TestCloud::with_config(backend, &conf(rules, "enforce_scope = false\n")).await?;
        let (com, sh) = (create(&c, "community").await?, create(&c, "shared").await?);
        let res = as_system(&c, Method::GET, &format!("/v2/images/{com}"))
            .send()
            .await?;
        expect_error(res, 404, "").await?;
        let res = as_system(&c, Method::GET, "/v2/images").send().await?;
        expect_error(res, 403, "project-scoped").await?;
        let res = as_system(&c, Method::POST, "/v2/images")
            .json(&json!({"name": "x"}))
            .send()
            .await?;
        expect_error(res, 403, "project-scoped").await?;
        for r in routes(&com, &sh) {
            let mut req = as_system(&c, r.method.clone(), &r.path);
            if let Some((ct, body)) = &r.body {
                req = req.header("content-type", *ct).body(body.clone());
            }
            expect_error(req.send().await?, 404, "")
                .await
                .map_err(|e| e.context(format!("{rules:?} {} {}", r.method, r.path)))?;
        }
        for path in [
            format!("/v2/images/{com}/file"),
            format!("/v2/images/{sh}/members"),
            format!("/v2/images/{sh}/members/{A}"),
        ] {
            let res = as_system(&c, Method::GET, &path).send().await?;
            expect_error(res, 404, "").await?;
        }
        // The same admin with a project-scoped token may.
        let res = c
            .as_(D, "admin", Method::GET, &format!("/v2/images/{com}"))
            .send()
            .await?;
        ensure!(res.status() == 200, "project admin: {}", res.status());
    }
    Ok(())
}

#[actix_web::test]
async fn without_new_defaults_roles_matter_less_but_owners_still_rule() -> Result<()> {
    let conf = conf(Rules::SecureDefaults, "enforce_new_defaults = false\n");
    let c = TestCloud::with_config("sqlite", &conf).await?;
    // Without a role, the deprecated defaults ("") let a project create and change its own.
    let res = c
        .as_(A, "", Method::POST, "/v2/images")
        .json(&json!({"name": "roleless"}))
        .send()
        .await?;
    ensure!(
        res.status() == 201,
        "create without roles: {}",
        res.status()
    );
    let id = res.json::<Value>().await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    let patch = |who: &'static str| {
        c.as_(who, "", Method::PATCH, &format!("/v2/images/{id}"))
            .header("content-type", PATCH)
            .body(json!([{"op": "replace", "path": "/name", "value": who}]).to_string())
            .send()
    };
    ensure!(patch(A).await?.status() == 200, "owner without roles");
    expect_error(patch(B).await?, 404, "").await?; // private: B cannot see it
    let res = c
        .as_(A, "", Method::PATCH, &format!("/v2/images/{id}"))
        .header("content-type", PATCH)
        .body(json!([{"op": "replace", "path": "/visibility", "value": "community"}]).to_string())
        .send()
        .await?;
    ensure!(res.status() == 200, "communitize: {}", res.status());
    expect_error(patch(B).await?, 403, "do not own").await?;
    // publicize_image has no deprecated default: admins only still.
    let res = c
        .as_(A, "", Method::PATCH, &format!("/v2/images/{id}"))
        .header("content-type", PATCH)
        .body(json!([{"op": "replace", "path": "/visibility", "value": "public"}]).to_string())
        .send()
        .await?;
    expect_error(res, 403, "public").await?;
    Ok(())
}
