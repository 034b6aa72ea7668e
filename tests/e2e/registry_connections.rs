//! glance-registry keeps an idle keep-alive connection open longer than glance-api keeps one
//! in its pool, so the API never sends a request on a connection the registry is closing
//! (which failed as "connection closed before message completed", a 503 to the client).
//! The order of the two limits is checked at compile time (`glance_model::wire`).

use std::time::Duration;

use anyhow::Result;

use crate::cloud::healthcheck_on;
use crate::harness::TestRegistry;

/// The status line of a `GET /healthcheck` sent on `conn`.
async fn healthcheck(conn: &mut tokio::net::TcpStream) -> Result<String> {
    let answer = healthcheck_on(conn).await?;
    Ok(answer.lines().next().unwrap_or_default().to_string())
}

#[actix_web::test]
async fn an_idle_connection_outlives_the_api_pools_idle_time_by_far() -> Result<()> {
    let r = TestRegistry::start("sqlite").await?;
    let addr = r.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await?;
    assert_eq!(healthcheck(&mut conn).await?, "HTTP/1.1 200 OK");
    // actix-web's default keep-alive (5 s) closed such a connection here.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(healthcheck(&mut conn).await?, "HTTP/1.1 200 OK");
    r.stop().await;
    Ok(())
}
