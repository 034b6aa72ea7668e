//! `GET /v2/openapi.json` over real HTTP: served under every `/v2.N` prefix, with no identity
//! (even with `flavor = trusted-auth`), and only to GET.

use anyhow::Result;
use reqwest::Method;
use serde_json::Value;

use crate::cloud::TestCloud;
use crate::harness::expect_error;

#[actix_web::test]
async fn the_openapi_document_is_served_without_identity() -> Result<()> {
    let c = TestCloud::with_config("sqlite", "[paste_deploy]\nflavor = trusted-auth\n").await?;
    // Without identity headers the images API refuses, and the document does not.
    let res = c.req(Method::GET, "/v2/images").send().await?;
    expect_error(res, 401, "").await?;
    for path in ["/v2/openapi.json", "/v2.9/openapi.json"] {
        let res = c.req(Method::GET, path).send().await?;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{path}"
        );
        let doc: Value = res.json().await?;
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        assert!(doc["paths"]["/v2/images/{image_id}/file"]["put"].is_object());
    }
    let res = c.req(Method::POST, "/v2/openapi.json").send().await?;
    assert_eq!(
        res.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("GET")
    );
    expect_error(res, 405, "allowed: GET").await?;
    Ok(())
}
