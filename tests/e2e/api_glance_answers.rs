//! The answers that differed from Glance 33 for the same request (issue 28 point 5), one test
//! per row of the table, each checked against the reference Glance 33.

use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::TestCloud;
use crate::harness::expect_error;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const MEMBER: &str = "member,reader";

async fn queued(c: &TestCloud) -> Result<String> {
    let img = c
        .create(json!({"name": "q", "disk_format": "raw", "container_format": "bare"}))
        .await?;
    Ok(img["id"].as_str().unwrap().to_string())
}

#[actix_web::test]
async fn actions_on_an_image_in_the_wrong_status_are_forbidden() -> Result<()> {
    let c = TestCloud::start().await?;
    let id = queued(&c).await?;
    for action in ["deactivate", "reactivate"] {
        let res = c
            .req(Method::POST, &format!("/v2/images/{id}/actions/{action}"))
            .send()
            .await?;
        expect_error(res, 403, "queued").await?;
    }
    assert_eq!(c.show(&id).await?["status"], "queued");
    Ok(())
}

#[actix_web::test]
async fn member_bodies_and_members_of_images_no_longer_shared() -> Result<()> {
    let c = TestCloud::with_config("sqlite", "[paste_deploy]\nflavor = trusted-auth\n").await?;
    let res = c
        .as_(A, MEMBER, Method::POST, "/v2/images")
        .json(&json!({"name": "s", "visibility": "shared"}))
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    let members = format!("/v2/images/{id}/members");
    // A JSON list is not a member: 400, and nothing was added.
    for body in [json!([B]), json!("x"), json!({"memberr": B})] {
        let res = c
            .as_(A, MEMBER, Method::POST, &members)
            .json(&body)
            .send()
            .await?;
        expect_error(res, 400, "member").await?;
    }
    let list: Value = c
        .as_(A, MEMBER, Method::GET, &members)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(list["members"], json!([]), "{list}");
    let res = c
        .as_(A, MEMBER, Method::POST, &members)
        .json(&json!({"member": B}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let one = format!("{members}/{B}");
    assert_eq!(
        c.as_(A, MEMBER, Method::GET, &one).send().await?.status(),
        200
    );
    // The image becomes private: its membership is not found, the member list is forbidden.
    let res = c
        .as_(A, MEMBER, Method::PATCH, &format!("/v2/images/{id}"))
        .header(
            "content-type",
            "application/openstack-images-v2.1-json-patch",
        )
        .body(json!([{"op": "replace", "path": "/visibility", "value": "private"}]).to_string())
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let res = c.as_(A, MEMBER, Method::GET, &one).send().await?;
    expect_error(res, 404, B).await?;
    let res = c.as_(A, MEMBER, Method::GET, &members).send().await?;
    expect_error(res, 403, "").await?;
    Ok(())
}

#[actix_web::test]
async fn bodies_where_none_is_expected_are_refused() -> Result<()> {
    let c = TestCloud::start().await?;
    let id = queued(&c).await?;
    let image = format!("/v2/images/{id}");
    // DELETE with a body: 400, and the image is still there.
    let res = c.req(Method::DELETE, &image).body("{}").send().await?;
    expect_error(res, 400, "no body").await?;
    assert_eq!(c.show(&id).await?["status"], "queued");
    for (method, path) in [
        (Method::GET, image.clone()),
        (Method::GET, format!("{image}/members")),
        (Method::GET, "/v2/schemas/image".to_string()),
        (Method::PUT, format!("{image}/tags/t1")),
        (Method::POST, format!("{image}/actions/deactivate")),
    ] {
        let res = c.req(method.clone(), &path).body("x").send().await?;
        expect_error(res, 400, "no body")
            .await
            .map_err(|e| e.context(format!("{method} {path}")))?;
    }
    assert_eq!(c.show(&id).await?["tags"], json!([]));
    // The image list ignores a body, as Glance 33 does; an empty body is no body.
    let res = c.req(Method::GET, "/v2/images").body("x").send().await?;
    assert_eq!(res.status(), 200);
    let res = c.req(Method::GET, &image).body("").send().await?;
    assert_eq!(res.status(), 200);
    // A method the resource does not allow: a body that is not JSON is 400 first, a JSON one
    // (or none) is 405.
    let file = format!("{image}/file");
    let res = c.req(Method::POST, &file).body("x").send().await?;
    expect_error(res, 400, "malformed json").await?;
    let res = c.req(Method::POST, &file).body("{}").send().await?;
    assert_eq!(res.headers().get("allow").unwrap(), "GET, PUT");
    expect_error(res, 405, "not allowed").await?;
    let res = c.req(Method::POST, &file).send().await?;
    expect_error(res, 405, "not allowed").await?;
    Ok(())
}

#[actix_web::test]
async fn legacy_content_range_request_header_gets_part_of_the_data() -> Result<()> {
    let c = TestCloud::start().await?;
    let id = queued(&c).await?;
    let data = crate::cloud::bytes(7, 1000);
    c.upload(&id, data.clone()).await?;
    let file = format!("/v2/images/{id}/file");
    let res = c
        .req(Method::GET, &file)
        .header("content-range", "bytes 0-9/*")
        .send()
        .await?;
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.headers().get("content-range").unwrap(),
        "bytes 0-9/1000"
    );
    assert_eq!(res.bytes().await?.as_ref(), &data[..10]);
    // `Range` wins when both are sent.
    let res = c
        .req(Method::GET, &file)
        .header("content-range", "bytes 0-9/*")
        .header("range", "bytes=990-")
        .send()
        .await?;
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await?.as_ref(), &data[990..]);
    // A legacy range past the end is unsatisfiable, as a `Range` one would be.
    let res = c
        .req(Method::GET, &file)
        .header("content-range", "bytes 2000-2009/*")
        .send()
        .await?;
    assert_eq!(res.status(), 416);
    Ok(())
}

#[actix_web::test]
async fn request_ids_as_glance_gives_them() -> Result<()> {
    let c = TestCloud::start().await?;
    for path in ["/", "/versions", "/healthcheck"] {
        let res = c.req(Method::GET, path).send().await?;
        assert!(res.status().as_u16() < 400, "{path}: {}", res.status());
        assert!(
            !res.headers().contains_key("x-openstack-request-id"),
            "{path} has a request id"
        );
    }
    let res = c.req(Method::HEAD, "/healthcheck").send().await?;
    assert!(!res.headers().contains_key("x-openstack-request-id"));
    let res = c.req(Method::GET, "/v2/images").send().await?;
    assert!(res.headers().contains_key("x-openstack-request-id"));
    // 64 characters are kept; 65 are refused with 431.
    let ok = format!("req-{}", "a".repeat(60));
    let res = c
        .req(Method::GET, "/v2/images")
        .header("x-openstack-request-id", &ok)
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("x-openstack-request-id").unwrap(),
        ok.as_str()
    );
    let res = c
        .req(Method::GET, "/v2/images")
        .header("x-openstack-request-id", format!("{ok}a"))
        .send()
        .await?;
    expect_error(res, 431, "too long").await?;
    Ok(())
}

/// Where Glance 33 is plainly wrong the correct answer stays (docs/api-compat.md, "deliberate
/// differences"): `Range: bytes=-0` asks for nothing (Glance: 206), and a JSON-patch path `/`
/// names no property (Glance creates one named `""`).
#[actix_web::test]
async fn deliberate_differences_keep_the_correct_answer() -> Result<()> {
    let c = TestCloud::start().await?;
    let id = queued(&c).await?;
    c.upload(&id, b"0123456789".to_vec()).await?;
    let res = c
        .req(Method::GET, &format!("/v2/images/{id}/file"))
        .header("range", "bytes=-0")
        .send()
        .await?;
    assert_eq!(res.status(), 416);
    let res = c
        .req(Method::PATCH, &format!("/v2/images/{id}"))
        .header(
            "content-type",
            "application/openstack-images-v2.1-json-patch",
        )
        .body(json!([{"op": "add", "path": "/", "value": "x"}]).to_string())
        .send()
        .await?;
    assert_eq!(res.status(), 400, "{}", res.text().await?);
    let img = c.show(&id).await?;
    assert!(img.get("").is_none(), "{img}");
    Ok(())
}

/// An image id given in upper case on create. Glance 33 keeps it as given, and what a later
/// GET finds depends on its database: on MariaDB (case-insensitive collation) the lower-case
/// spelling finds the same image and a second create with it is 409; on SQLite it is 404 and
/// a second create makes a second image with the "same" UUID. Here ids are UUIDs: stored and
/// shown in lower case, found by either spelling, and never two images for one UUID, on every
/// backend (a deliberate difference, docs/api-compat.md).
#[actix_web::test]
async fn upper_case_id_on_create_is_one_uuid_in_lower_case() -> Result<()> {
    const UPPER: &str = "ABCDEF12-3456-4789-ABCD-0123456789AB";
    let lower = UPPER.to_ascii_lowercase();
    for backend in crate::harness::backends() {
        let c = TestCloud::with_config(backend, "").await?;
        let img = c.create(json!({"id": UPPER, "name": "up"})).await?;
        assert_eq!(img["id"], lower.as_str(), "{backend}");
        assert_eq!(img["self"], format!("/v2/images/{lower}"), "{backend}");
        for spelling in [
            UPPER,
            lower.as_str(),
            "ABCDEF12-3456-4789-abcd-0123456789ab",
        ] {
            let res = c
                .req(Method::GET, &format!("/v2/images/{spelling}"))
                .send()
                .await?;
            assert_eq!(res.status(), 200, "{backend} GET {spelling}");
            let body: Value = res.json().await?;
            assert_eq!(body["id"], lower.as_str(), "{backend} GET {spelling}");
        }
        let res = c
            .req(Method::POST, "/v2/images")
            .json(&json!({"id": lower, "name": "low"}))
            .send()
            .await?;
        expect_error(res, 409, &lower).await?;
        let list: Value = c
            .req(Method::GET, "/v2/images")
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(
            list["images"].as_array().map(Vec::len),
            Some(1),
            "{backend}"
        );
    }
    Ok(())
}
