//! A download never claims more than it delivers, or other bytes than were stored: an image
//! file truncated or grown behind Glance's back is refused with 503 before the first byte
//! (whole and ranged), and a file that shrinks while it is being sent fails the transfer (the
//! connection closes short of Content-Length) rather than ending cleanly.

use std::time::Duration;

use anyhow::Result;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::cloud::{TestCloud, bytes, md5_hex};
use crate::harness::expect_error;

async fn active_image(c: &TestCloud, data: Vec<u8>) -> Result<String> {
    let img = c
        .create(json!({"disk_format": "raw", "container_format": "bare"}))
        .await?;
    let id = img["id"].as_str().unwrap_or_default().to_string();
    c.upload(&id, data).await?;
    Ok(id)
}

#[actix_web::test]
async fn a_file_of_another_size_than_recorded_is_refused_with_503() -> Result<()> {
    let c = TestCloud::start().await?;
    let size = 5 << 20;
    let data = bytes(21, size);
    let id = active_image(&c, data.clone()).await?;
    let path = c.datadir.path().join(&id);
    let file = std::fs::OpenOptions::new().write(true).open(&path)?;
    let get = |range: Option<&'static str>| {
        let mut r = c.req(Method::GET, &format!("/v2/images/{id}/file"));
        if let Some(range) = range {
            r = r.header("range", range);
        }
        r.send()
    };

    // `truncate -s 1M`: neither the whole image nor any part of it is served.
    file.set_len(1 << 20)?;
    for range in [None, Some("bytes=0-99"), Some("bytes=2000000-")] {
        let res = get(range).await?;
        assert!(res.headers().get("content-md5").is_none(), "{range:?}");
        let body = expect_error(res, 503, "recorded size is 5242880 bytes").await?;
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(msg.contains("1048576 bytes"), "{range:?}: {msg}");
        assert!(
            !msg.contains(&path.display().to_string()),
            "path leaked: {msg}"
        );
    }
    // Grown to 6 MiB: refused as well.
    file.set_len(6 << 20)?;
    let res = get(None).await?;
    expect_error(res, 503, "6291456 bytes").await?;

    // Put back as it was: served again, with the recorded length and digest.
    file.set_len(0)?;
    std::fs::write(&path, &data)?;
    let res = get(None).await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], size.to_string().as_str());
    assert_eq!(res.headers()["content-md5"], md5_hex(&data).as_str());
    assert_eq!(md5_hex(&res.bytes().await?), md5_hex(&data));
    Ok(())
}

/// Reads from `s` until the server closes the connection (or resets it); what arrived.
async fn read_until_closed(s: &mut tokio::net::TcpStream) -> Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 << 10];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .map_err(|_| anyhow::anyhow!("the server kept the connection open"))?;
    Ok(got)
}

#[actix_web::test]
async fn a_file_that_shrinks_during_a_download_fails_the_download() -> Result<()> {
    let c = TestCloud::start().await?;
    let size = 16 << 20;
    let id = active_image(&c, bytes(22, size)).await?;
    let path = c.datadir.path().join(&id);
    let addr: std::net::SocketAddr = c.base.trim_start_matches("http://").parse()?;

    // A slow client: a small receive buffer (which the kernel then does not grow), so the
    // server can only be a few MiB ahead of what the client has read.
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.set_recv_buffer_size(4096)?;
    let mut s = sock.connect(addr).await?;
    s.write_all(
        format!("GET /v2/images/{id}/file HTTP/1.1\r\nHost: glance\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut head = vec![0u8; 4096];
    let n = s.read(&mut head).await?;
    head.truncate(n);
    let text = String::from_utf8_lossy(&head).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains(&format!("content-length: {size}")), "{text}");

    // The file shrinks while the server is sending it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_len(1 << 20)?;
    head.extend(read_until_closed(&mut s).await?);
    let body_at = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| p + 4);
    let delivered = head.len() - body_at;
    assert!(
        delivered < size,
        "the connection ended cleanly after {delivered} of {size} bytes"
    );

    // From now on the shrunken file is refused before any byte.
    let res = c
        .req(Method::GET, &format!("/v2/images/{id}/file"))
        .send()
        .await?;
    assert_eq!(
        res.status(),
        503,
        "the shrunken file is refused from now on"
    );
    Ok(())
}
