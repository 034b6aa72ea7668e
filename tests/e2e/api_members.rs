//! Sharing through glance-api with trusted identity headers: only shared images have members,
//! only the owner adds and removes them, only the member answers, visibility follows, and
//! callers who may not see an image get 404.

use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::TestCloud;
use crate::harness::expect_error;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccc";
const MEMBER: &str = "member,reader";

#[actix_web::test]
async fn members_follow_glance_rules() -> Result<()> {
    let c = TestCloud::with_config("sqlite", "[paste_deploy]\nflavor = trusted-auth\n").await?;
    let create = |project: &'static str, visibility: &'static str| {
        c.as_(project, MEMBER, Method::POST, "/v2/images")
            .json(&json!({"name": format!("{visibility}-img"), "visibility": visibility}))
            .send()
    };
    let res = create(A, "shared").await?;
    assert_eq!(res.status(), 201);
    let shared: Value = res.json().await?;
    assert_eq!(shared["owner"], A);
    let id = shared["id"].as_str().unwrap().to_string();
    let private: Value = create(A, "private").await?.json().await?;
    let pid = private["id"].as_str().unwrap().to_string();
    let members = format!("/v2/images/{id}/members");

    // Only shared images have members.
    let res = c
        .as_(
            A,
            MEMBER,
            Method::POST,
            &format!("/v2/images/{pid}/members"),
        )
        .json(&json!({"member": B}))
        .send()
        .await?;
    expect_error(res, 403, "shared").await?;
    // Only the owner adds members.
    let res = c
        .as_(B, MEMBER, Method::POST, &members)
        .json(&json!({"member": B}))
        .send()
        .await?;
    expect_error(res, 404, "").await?;
    let res = c
        .as_(A, "reader", Method::POST, &members)
        .json(&json!({"member": B}))
        .send()
        .await?;
    expect_error(res, 403, "").await?;
    let res = c
        .as_(A, MEMBER, Method::POST, &members)
        .json(&json!({"member": B}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let m: Value = res.json().await?;
    assert_eq!(
        (m["member_id"].as_str(), m["status"].as_str()),
        (Some(B), Some("pending"))
    );
    assert_eq!(m["schema"], "/v2/schemas/member");
    let res = c
        .as_(A, MEMBER, Method::POST, &members)
        .json(&json!({"member": B}))
        .send()
        .await?;
    expect_error(res, 409, "").await?;
    assert_eq!(
        c.as_(A, MEMBER, Method::POST, &members)
            .json(&json!({"member": C}))
            .send()
            .await?
            .status(),
        200
    );

    // A pending member sees the image but not in its default list.
    assert_eq!(
        c.as_(B, MEMBER, Method::GET, &format!("/v2/images/{id}"))
            .send()
            .await?
            .status(),
        200
    );
    let names = |v: Value| -> Vec<String> {
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    let listed = c
        .as_(B, MEMBER, Method::GET, "/v2/images")
        .send()
        .await?
        .json::<Value>()
        .await?;
    assert!(!names(listed).contains(&id));
    let pending = c
        .as_(B, MEMBER, Method::GET, "/v2/images?member_status=pending")
        .send()
        .await?
        .json::<Value>()
        .await?;
    assert_eq!(names(pending), vec![id.clone()]);

    // Only the member answers; the owner may not accept for it.
    let res = c
        .as_(A, MEMBER, Method::PUT, &format!("{members}/{B}"))
        .json(&json!({"status": "accepted"}))
        .send()
        .await?;
    expect_error(res, 403, "member").await?;
    let res = c
        .as_(B, MEMBER, Method::PUT, &format!("{members}/{B}"))
        .json(&json!({"status": "maybe"}))
        .send()
        .await?;
    expect_error(res, 400, "status").await?;
    let res = c
        .as_(B, MEMBER, Method::PUT, &format!("{members}/{B}"))
        .json(&json!({"status": "accepted"}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await?["status"], "accepted");
    let listed = c
        .as_(B, MEMBER, Method::GET, "/v2/images")
        .send()
        .await?
        .json::<Value>()
        .await?;
    assert_eq!(names(listed), vec![id.clone()]);

    // The owner lists every member; a member sees only itself.
    let all: Value = c
        .as_(A, MEMBER, Method::GET, &members)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(all["members"].as_array().unwrap().len(), 2);
    assert_eq!(all["schema"], "/v2/schemas/members");
    let own: Value = c
        .as_(B, MEMBER, Method::GET, &members)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(own["members"].as_array().unwrap().len(), 1);

    // A project with no membership sees nothing: 404, never 403.
    let outsider = "dddddddddddddddddddddddddddddddd";
    for path in [
        format!("/v2/images/{id}"),
        members.clone(),
        format!("/v2/images/{pid}"),
    ] {
        let res = c.as_(outsider, MEMBER, Method::GET, &path).send().await?;
        expect_error(res, 404, "").await?;
    }
    // A member may not modify or delete the owner's image.
    let res = c
        .as_(B, MEMBER, Method::DELETE, &format!("/v2/images/{id}"))
        .send()
        .await?;
    expect_error(res, 403, "").await?;
    let res = c
        .as_(B, MEMBER, Method::PATCH, &format!("/v2/images/{id}"))
        .header(
            "content-type",
            "application/openstack-images-v2.1-json-patch",
        )
        .body(json!([{"op": "replace", "path": "/name", "value": "mine"}]).to_string())
        .send()
        .await?;
    expect_error(res, 403, "").await?;
    // Publicizing is for admins; communitizing for the owner.
    let vis = |project: &'static str, roles: &'static str, v: &'static str| {
        c.as_(project, roles, Method::PATCH, &format!("/v2/images/{pid}"))
            .header(
                "content-type",
                "application/openstack-images-v2.1-json-patch",
            )
            .body(json!([{"op": "replace", "path": "/visibility", "value": v}]).to_string())
            .send()
    };
    expect_error(vis(A, MEMBER, "public").await?, 403, "public").await?;
    assert_eq!(vis(A, MEMBER, "community").await?.status(), 200);
    assert_eq!(vis(C, "admin", "public").await?.status(), 200);

    // The owner removes a member, who then loses sight of the image.
    assert_eq!(
        c.as_(A, MEMBER, Method::DELETE, &format!("{members}/{B}"))
            .send()
            .await?
            .status(),
        204
    );
    let res = c
        .as_(B, MEMBER, Method::GET, &format!("/v2/images/{id}"))
        .send()
        .await?;
    expect_error(res, 404, "").await?;
    // Readers may read but not create.
    let res = c
        .as_(C, "reader", Method::POST, "/v2/images")
        .json(&json!({}))
        .send()
        .await?;
    expect_error(res, 403, "member").await?;
    let res = c
        .as_(A, MEMBER, Method::POST, "/v2/images")
        .json(&json!({"owner": B}))
        .send()
        .await?;
    expect_error(res, 403, "another project").await?;
    Ok(())
}
