//! The answers each daemon's HTTP plumbing (`glance-http`, described per daemon by `ApiHttp`
//! and `RegistryHttp`) gives before any handler runs, byte for byte as before the plumbing
//! was shared: a wrong method (405, `Allow`, the daemon's wording), a malformed JSON body
//! (400, the daemon's prefix), an unknown path, and the request id on each.

use anyhow::Result;
use reqwest::Method;

use crate::cloud::TestCloud;
use crate::harness::TestRegistry;

async fn answer(res: reqwest::Response) -> Result<(u16, String, String, String)> {
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (allow, request_id) = (header("allow"), header("x-openstack-request-id"));
    let status = res.status().as_u16();
    anyhow::ensure!(request_id == "req-plumbing", "request id {request_id:?}");
    Ok((status, allow, header("content-type"), res.text().await?))
}

#[actix_web::test]
async fn each_daemon_keeps_its_405_and_malformed_json_answers() -> Result<()> {
    let registry = TestRegistry::start("sqlite").await?;
    let send = |method: Method, url: String| {
        registry
            .http
            .request(method, url)
            .header("x-openstack-request-id", "req-plumbing")
            .header("accept", "application/json")
    };
    let reg = &registry.base;
    assert_eq!(
        answer(send(Method::DELETE, format!("{reg}/v1/images")).send().await?).await?,
        (
            405,
            "GET, POST".to_string(),
            "application/json".to_string(),
            r#"{"message":"This resource allows only GET, POST","code":"405 Method Not Allowed","title":"Method Not Allowed"}"#.to_string()
        )
    );
    let (status, _, _, body) = answer(
        send(Method::POST, format!("{reg}/v1/images"))
            .header("content-type", "application/json")
            .body("{nope")
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 400);
    assert!(
        body.starts_with(r#"{"message":"Malformed request body: "#),
        "{body}"
    );
    assert_eq!(
        answer(send(Method::GET, format!("{reg}/v2/images")).send().await?).await?,
        (
            404,
            String::new(),
            "application/json".to_string(),
            r#"{"message":"No such registry resource","code":"404 Not Found","title":"Not Found"}"#
                .to_string()
        )
    );

    let cloud = TestCloud::with_config("sqlite", "").await?;
    let api = &cloud.base;
    assert_eq!(
        answer(send(Method::PUT, format!("{api}/v2/images")).send().await?).await?,
        (
            405,
            "GET, POST".to_string(),
            "application/json".to_string(),
            r#"{"message":"The method is not allowed for this resource; allowed: GET, POST","code":"405 Method Not Allowed","title":"Method Not Allowed"}"#.to_string()
        )
    );
    let (status, _, _, body) = answer(
        send(Method::POST, format!("{api}/v2/images"))
            .header("content-type", "application/json")
            .body("{nope")
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 400);
    assert!(
        body.starts_with(r#"{"message":"Malformed JSON in request body: "#),
        "{body}"
    );
    registry.stop().await;
    Ok(())
}
