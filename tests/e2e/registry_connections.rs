//! glance-registry keeps an idle keep-alive connection open longer than glance-api keeps one
//! in its pool, so the API never sends a request on a connection the registry is closing
//! (which failed as "connection closed before message completed", a 503 to the client).
//! The order of the two limits is checked at compile time (`glance_model::wire`).

use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::TestRegistry;

/// Sends one `GET /healthcheck` on `conn` and reads its whole answer; the status line.
async fn healthcheck(conn: &mut tokio::net::TcpStream) -> Result<String> {
    conn.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: registry\r\n\r\n")
        .await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "the registry closed the connection");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return Ok(text.lines().next().unwrap_or_default().to_string());
            }
        }
    }
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
