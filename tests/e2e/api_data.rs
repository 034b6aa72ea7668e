//! Image data through glance-api: upload state machine, caps, errors that leave nothing behind,
//! a client that hangs up halfway, an image deleted during its upload, downloads and ranges.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::{TestCloud, bytes, eventually, md5_hex, sha512_hex};
use crate::harness::expect_error;

async fn new_image(c: &TestCloud) -> Result<String> {
    let img = c
        .create(json!({"disk_format": "raw", "container_format": "bare"}))
        .await?;
    Ok(img["id"].as_str().unwrap_or_default().to_string())
}

#[actix_web::test]
async fn upload_then_download_with_digests_and_ranges() -> Result<()> {
    let c = TestCloud::start().await?;
    let id = new_image(&c).await?;
    let data = bytes(1, 3 * 1024 * 1024 + 5);
    c.upload(&id, data.clone()).await?;
    let img = c.show(&id).await?;
    assert_eq!(img["status"], "active");
    assert_eq!(img["size"], data.len());
    assert_eq!(img["checksum"], md5_hex(&data));
    assert_eq!(img["os_hash_algo"], "sha512");
    assert_eq!(img["os_hash_value"], sha512_hex(&data));
    assert_eq!(c.files(), vec![id.clone()]);

    let res = c
        .req(Method::GET, &format!("/v2/images/{id}/file"))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    assert_eq!(
        res.headers()["content-length"],
        data.len().to_string().as_str()
    );
    assert_eq!(res.headers()["content-md5"], md5_hex(&data).as_str());
    let got = res.bytes().await?;
    assert_eq!(md5_hex(&got), md5_hex(&data), "bytes come back identical");

    let size = data.len();
    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        (
            &format!("bytes={}-", size - 10) as &str,
            size - 10,
            size - 1,
        ),
        ("bytes=-16", size - 16, size - 1),
        (
            &format!("bytes={}-{}", size / 2, size + 100) as &str,
            size / 2,
            size - 1,
        ),
    ] {
        let res = c
            .req(Method::GET, &format!("/v2/images/{id}/file"))
            .header("range", range)
            .send()
            .await?;
        assert_eq!(res.status(), 206, "{range}");
        assert_eq!(
            res.headers()["content-range"],
            format!("bytes {start}-{end}/{size}").as_str(),
            "{range}"
        );
        assert_eq!(
            res.headers()["content-length"],
            (end - start + 1).to_string().as_str()
        );
        assert_eq!(&res.bytes().await?[..], &data[start..=end], "{range}");
    }
    let res = c
        .req(Method::GET, &format!("/v2/images/{id}/file"))
        .header("range", "bytes=0-1,5-6")
        .send()
        .await?;
    expect_error(res, 400, "multiple").await?;
    // A range past the end is 416.
    let res = c
        .req(Method::GET, &format!("/v2/images/{id}/file"))
        .header("range", format!("bytes={size}-"))
        .send()
        .await?;
    expect_error(res, 416, "range").await?;
    // A Range header that is not a well-formed byte range is ignored: 200 with the whole image
    // (issue 26, RFC 9110 §14.2; the reference Glance 33 answers 416 here).
    for ignored in ["bytes=10-5", "bytes=abc", "items=0-1", ""] {
        let res = c
            .req(Method::GET, &format!("/v2/images/{id}/file"))
            .header("range", ignored)
            .send()
            .await?;
        assert_eq!(res.status(), 200, "Range: {ignored:?}");
        assert!(res.headers().get("content-range").is_none(), "{ignored:?}");
        assert_eq!(&res.bytes().await?[..], &data[..], "Range: {ignored:?}");
    }
    // A second upload to an active image is a conflict.
    let res = c
        .req(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream")
        .body("x")
        .send()
        .await?;
    expect_error(res, 409, "queued").await?;
    Ok(())
}

#[actix_web::test]
async fn chunked_and_empty_uploads_and_no_data_is_204() -> Result<()> {
    let c = TestCloud::start().await?;
    let id = new_image(&c).await?;
    assert_eq!(
        c.req(Method::GET, &format!("/v2/images/{id}/file"))
            .send()
            .await?
            .status(),
        204
    );
    let data = bytes(2, 200_000);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(7000).map(|c| Ok(c.to_vec())).collect();
    let res = c
        .req(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await?;
    assert_eq!(res.status(), 204);
    assert_eq!(c.show(&id).await?["checksum"], md5_hex(&data));
    let zero = new_image(&c).await?;
    c.upload(&zero, Vec::new()).await?;
    let z = c.show(&zero).await?;
    assert_eq!(
        (z["status"].as_str(), z["size"].as_i64()),
        (Some("active"), Some(0))
    );
    assert_eq!(z["checksum"], "d41d8cd98f00b204e9800998ecf8427e");
    Ok(())
}

#[actix_web::test]
async fn refused_uploads_leave_the_image_queued_and_no_files() -> Result<()> {
    let c = TestCloud::with_config("sqlite", "[DEFAULT]\nimage_size_cap = 1000\n").await?;
    let id = new_image(&c).await?;
    let put = |ct: &'static str, body: Vec<u8>| {
        c.req(Method::PUT, &format!("/v2/images/{id}/file"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    expect_error(
        put("application/json", b"{}".to_vec()).await?,
        415,
        "octet-stream",
    )
    .await?;
    expect_error(
        put("application/octet-stream", vec![0; 5000]).await?,
        413,
        "image_size_cap",
    )
    .await?;
    // Without a length up front, the cap is enforced while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![1u8; 300])).collect();
    let res = c
        .req(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await?;
    expect_error(res, 413, "image_size_cap").await?;
    let img = c.show(&id).await?;
    assert_eq!(img["status"], "queued");
    assert_eq!(img["size"], Value::Null);
    assert!(c.files().is_empty(), "{:?}", c.files());

    let bare = c.create(json!({})).await?;
    let res = c
        .req(
            Method::PUT,
            &format!("/v2/images/{}/file", bare["id"].as_str().unwrap()),
        )
        .header("content-type", "application/octet-stream")
        .body("x")
        .send()
        .await?;
    expect_error(res, 400, "disk_format and container_format").await?;
    let res = c
        .req(
            Method::PUT,
            "/v2/images/00000000-0000-4000-8000-000000000000/file",
        )
        .header("content-type", "application/octet-stream")
        .body("x")
        .send()
        .await?;
    expect_error(res, 404, "").await?;
    Ok(())
}

#[actix_web::test]
async fn user_storage_quota_is_enforced() -> Result<()> {
    let c = TestCloud::with_config("sqlite", "[DEFAULT]\nuser_storage_quota = 1500\n").await?;
    let a = new_image(&c).await?;
    c.upload(&a, vec![7; 1000]).await?;
    let b = new_image(&c).await?;
    let res = c
        .req(Method::PUT, &format!("/v2/images/{b}/file"))
        .header("content-type", "application/octet-stream")
        .body(vec![7; 1000])
        .send()
        .await?;
    expect_error(res, 413, "user_storage_quota").await?;
    assert_eq!(c.show(&b).await?["status"], "queued");
    c.upload(&b, vec![7; 500]).await?;
    Ok(())
}

#[actix_web::test]
async fn a_client_hanging_up_halfway_leaves_a_queued_image_and_no_data() -> Result<()> {
    let c = TestCloud::start().await?;
    let id = new_image(&c).await?;
    let addr = c.base.trim_start_matches("http://").to_string();
    let mut sock = std::net::TcpStream::connect(&addr)?;
    write!(
        sock,
        "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n"
    )?;
    sock.write_all(&bytes(3, 300_000))?;
    sock.flush()?;
    eventually(10, || async {
        Ok((c.show(&id).await?["status"] == "saving").then_some(()))
    })
    .await?;
    assert!(
        c.files().iter().any(|f| f.ends_with(".partial")),
        "{:?}",
        c.files()
    );
    drop(sock);
    eventually(10, || async {
        let img = c.show(&id).await?;
        Ok((img["status"] == "queued" && c.files().is_empty()).then_some(()))
    })
    .await?;
    // The image takes a fresh upload afterwards.
    c.upload(&id, b"fine".to_vec()).await?;
    Ok(())
}

#[actix_web::test]
async fn an_image_deleted_during_upload_answers_410_and_its_data_goes() -> Result<()> {
    let c = TestCloud::start().await?;
    let id = new_image(&c).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let upload = c
        .req(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send();
    let upload = tokio::spawn(upload);
    tx.send(Ok(bytes(4, 100_000))).await?;
    eventually(10, || async {
        Ok((c.show(&id).await?["status"] == "saving").then_some(()))
    })
    .await?;
    assert_eq!(
        c.req(Method::DELETE, &format!("/v2/images/{id}"))
            .send()
            .await?
            .status(),
        204
    );
    tx.send(Ok(bytes(5, 1000))).await?;
    drop(tx);
    let res = upload.await??;
    expect_error(res, 410, "deleted").await?;
    assert!(c.files().is_empty(), "{:?}", c.files());
    Ok(())
}

#[actix_web::test]
async fn deactivated_images_are_downloadable_by_admins_only() -> Result<()> {
    let c = TestCloud::with_config("sqlite", "[paste_deploy]\nflavor = trusted-auth\n").await?;
    let res = c
        .as_("p1", "member,reader", Method::POST, "/v2/images")
        .json(&json!({"disk_format": "raw", "container_format": "bare", "visibility": "shared"}))
        .send()
        .await?;
    let id = res.json::<Value>().await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = c
        .as_(
            "p1",
            "member,reader",
            Method::PUT,
            &format!("/v2/images/{id}/file"),
        )
        .header("content-type", "application/octet-stream")
        .body("abc")
        .send()
        .await?;
    assert_eq!(res.status(), 204);
    let res = c
        .as_(
            "p1",
            "member",
            Method::POST,
            &format!("/v2/images/{id}/actions/deactivate"),
        )
        .send()
        .await?;
    assert_eq!(res.status(), 204);
    let res = c
        .as_(
            "p1",
            "member,reader",
            Method::GET,
            &format!("/v2/images/{id}/file"),
        )
        .send()
        .await?;
    expect_error(res, 403, "deactivated").await?;
    let res = c
        .as_("p9", "admin", Method::GET, &format!("/v2/images/{id}/file"))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(&res.bytes().await?[..], b"abc");
    let res = c
        .req(Method::GET, &format!("/v2/images/{id}"))
        .send()
        .await?;
    expect_error(res, 401, "").await?;
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}

#[actix_web::test]
async fn errors_are_html_unless_json_is_accepted_and_rejected_uploads_close() -> Result<()> {
    let c = TestCloud::start().await?;
    let missing = "/v2/images/00000000-0000-0000-0000-000000000000";
    // What python-requests (glanceclient) sends: Accept: */* -> an HTML page, as Glance.
    let res = c
        .http
        .get(format!("{}{missing}", c.base))
        .header("accept", "*/*")
        .send()
        .await?;
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.headers()["content-type"].to_str()?,
        "text/html; charset=UTF-8"
    );
    let page = res.text().await?;
    assert!(
        page.contains("<h1>404 Not Found</h1>") && page.contains("No image found"),
        "{page}"
    );
    let res = c.req(Method::GET, missing).send().await?;
    assert_eq!(res.headers()["content-type"].to_str()?, "application/json");

    // A chunked upload refused before any byte is stored: its body is read and discarded (up
    // to a bound) so a client that sends it all before reading gets the answer, then the
    // connection closes.
    let addr = c.base.trim_start_matches("http://").to_string();
    let mut sock = std::net::TcpStream::connect(&addr)?;
    write!(
        sock,
        "PUT {missing}/file HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Transfer-Encoding: chunked\r\n\r\n10000\r\n"
    )?;
    sock.write_all(&vec![b'x'; 0x10000])?;
    sock.write_all(b"\r\n0\r\n\r\n")?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut sock, &mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    Ok(())
}
