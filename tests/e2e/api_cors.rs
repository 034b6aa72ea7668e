//! CORS (issue 28): with `[cors] allowed_origin`, glance-api answers browsers as Glance 33's
//! oslo.middleware filter does (checked against the real Glance 33 with the same `[cors]`):
//! a preflight `OPTIONS` is 200 with no body, with the `Access-Control-Allow-*` headers only
//! when origin, method and headers are allowed; an ordinary request from an allowed origin is
//! marked, whatever its status; `/healthcheck` is left alone. Without `[cors]` nothing changes.

use anyhow::Result;
use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::cloud::TestCloud;

const ORIGIN: &str = "https://dashboard.example";

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn cors_headers(h: &HeaderMap) -> Vec<String> {
    h.keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

async fn preflight(
    cloud: &TestCloud,
    path: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> Result<(u16, HeaderMap, String)> {
    let mut req = cloud
        .http
        .request(Method::OPTIONS, format!("{}{path}", cloud.base))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method);
    if let Some(h) = headers {
        req = req.header("Access-Control-Request-Headers", h);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let h = res.headers().clone();
    Ok((status, h, res.text().await?))
}

#[actix_web::test]
async fn preflight_from_an_allowed_origin_is_answered() -> Result<()> {
    let cloud = TestCloud::with_config(
        "sqlite",
        &format!("[cors]\nallowed_origin = {ORIGIN}, https://other.example\nmax_age = 3600\n"),
    )
    .await?;
    let (status, h, body) = preflight(
        &cloud,
        "/v2/images",
        ORIGIN,
        "PATCH",
        Some("X-Auth-Token, content-type"),
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(body, "");
    assert_eq!(header(&h, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(header(&h, "access-control-allow-methods"), Some("PATCH"));
    assert_eq!(
        header(&h, "access-control-allow-headers"),
        Some("X-Auth-Token,content-type")
    );
    assert_eq!(header(&h, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&h, "access-control-max-age"), Some("3600"));
    assert_eq!(header(&h, "vary"), Some("Origin"));
    // A preflight is answered before any handler, as Glance's outermost filter does.
    assert_eq!(header(&h, "x-openstack-request-id"), None);
    assert_eq!(header(&h, "allow"), None);

    // Refused origin, method (HEAD is not in Glance's default allow_methods), header:
    // still 200 with no body, but no CORS header at all, so the browser stops there.
    for (origin, method, hdrs) in [
        ("https://evil.example", "GET", None),
        (ORIGIN, "HEAD", None),
        (ORIGIN, "get", None),
        (ORIGIN, "GET", Some("X-Not-Allowed")),
    ] {
        let (status, h, body) = preflight(&cloud, "/v2/images/x", origin, method, hdrs).await?;
        assert_eq!(status, 200, "{origin} {method}");
        assert_eq!(body, "");
        assert!(cors_headers(&h).is_empty(), "{origin} {method}: {h:?}");
    }
    Ok(())
}

#[actix_web::test]
async fn simple_requests_from_allowed_origins_are_marked() -> Result<()> {
    let cloud = TestCloud::with_config(
        "sqlite",
        &format!("[cors]\nallowed_origin = {ORIGIN}\nexpose_headers = X-OpenStack-Request-ID\n"),
    )
    .await?;
    for (path, status) in [
        ("/v2/images", 200),
        ("/versions", 200),
        ("/v2/images/00000000-0000-0000-0000-000000000000", 404),
    ] {
        let res = cloud
            .req(Method::GET, path)
            .header("Origin", ORIGIN)
            .send()
            .await?;
        assert_eq!(res.status(), status, "{path}");
        let h = res.headers();
        assert_eq!(header(h, "access-control-allow-origin"), Some(ORIGIN));
        assert_eq!(header(h, "access-control-allow-credentials"), Some("true"));
        assert_eq!(
            header(h, "access-control-expose-headers"),
            Some("X-OpenStack-Request-ID")
        );
        assert_eq!(header(h, "vary"), Some("Origin"));
        assert_eq!(header(h, "access-control-allow-methods"), None);
    }
    // Another origin, or no Origin: nothing.
    let res = cloud
        .req(Method::GET, "/v2/images")
        .header("Origin", "https://evil.example")
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert!(cors_headers(res.headers()).is_empty());
    let res = cloud.req(Method::GET, "/v2/images").send().await?;
    assert!(cors_headers(res.headers()).is_empty());
    // /healthcheck lies outside Glance's pipeline: no CORS, and OPTIONS is not a preflight.
    let res = cloud
        .req(Method::GET, "/healthcheck")
        .header("Origin", ORIGIN)
        .send()
        .await?;
    assert!(cors_headers(res.headers()).is_empty());
    let (_, h, _) = preflight(&cloud, "/healthcheck", ORIGIN, "GET", None).await?;
    assert!(cors_headers(&h).is_empty());
    Ok(())
}

#[actix_web::test]
async fn wildcard_origin_and_no_credentials() -> Result<()> {
    let cloud = TestCloud::with_config(
        "sqlite",
        "[cors]\nallowed_origin = *\nallow_credentials = false\nallow_methods = GET,DELETE\n",
    )
    .await?;
    let (status, h, _) = preflight(&cloud, "/v2/images/x", ORIGIN, "DELETE", None).await?;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&h, "access-control-allow-credentials"), None);
    assert_eq!(header(&h, "access-control-allow-headers"), None);
    assert_eq!(header(&h, "access-control-max-age"), None);
    let (_, h, _) = preflight(&cloud, "/v2/images/x", ORIGIN, "PATCH", None).await?;
    assert!(cors_headers(&h).is_empty(), "PATCH is not allowed: {h:?}");
    Ok(())
}

#[actix_web::test]
async fn without_cors_nothing_changes() -> Result<()> {
    let cloud = TestCloud::start().await?;
    let (status, h, _) = preflight(&cloud, "/v2/images", ORIGIN, "GET", None).await?;
    assert_eq!(status, 405);
    assert!(cors_headers(&h).is_empty());
    let res = cloud
        .req(Method::GET, "/v2/images")
        .header("Origin", ORIGIN)
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert!(cors_headers(res.headers()).is_empty());
    Ok(())
}
