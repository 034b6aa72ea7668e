//! The http store against a real HTTP server started on loopback: size from HEAD, streamed
//! GET, ranges, 301/302 redirects (at most 5), other redirects, 404, unreachable servers,
//! read-only, and the SSRF guard that refuses loopback unless the operator allows it.
#![expect(clippy::unwrap_used, reason = "tests")]

pub mod common;

use std::net::TcpListener;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::data;
use futures_util::StreamExt;
use glance_model::ErrorKind;
use glance_store::{ByteRange, HttpConfig, HttpStore, StoreError};

const SIZE: usize = 1_000_003;

async fn image(req: HttpRequest) -> HttpResponse {
    let bytes = data(9, SIZE);
    // /ranged honours a single "bytes=a-b" or "bytes=a-" range; /image ignores ranges.
    if req.path() == "/ranged"
        && let Some(r) = req.headers().get("range").and_then(|v| v.to_str().ok())
        && let Some((a, b)) = r.strip_prefix("bytes=").and_then(|s| s.split_once('-'))
    {
        let a: usize = a.parse().unwrap();
        let b: usize = if b.is_empty() {
            SIZE - 1
        } else {
            b.parse::<usize>().unwrap().min(SIZE - 1)
        };
        if a >= SIZE {
            return HttpResponse::RangeNotSatisfiable()
                .insert_header(("content-range", format!("bytes */{SIZE}")))
                .finish();
        }
        return HttpResponse::PartialContent()
            .insert_header(("content-range", format!("bytes {a}-{b}/{SIZE}")))
            .body(bytes[a..=b].to_vec());
    }
    HttpResponse::Ok().body(bytes)
}

async fn hop(path: web::Path<u32>) -> HttpResponse {
    let n = path.into_inner();
    let next = if n == 0 {
        "/image".to_string()
    } else {
        format!("/hop/{}", n - 1)
    };
    let mut resp = if n.is_multiple_of(2) {
        HttpResponse::Found()
    } else {
        HttpResponse::MovedPermanently()
    };
    resp.insert_header(("location", next)).finish()
}

fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(|| {
        App::new()
            .route("/image", web::get().to(image))
            .route("/image", web::head().to(image))
            .route("/ranged", web::get().to(image))
            .route("/hop/{n}", web::get().to(hop))
            .route("/hop/{n}", web::head().to(hop))
            .route(
                "/temporary",
                web::get().to(|| async {
                    HttpResponse::TemporaryRedirect()
                        .insert_header(("location", "/image"))
                        .finish()
                }),
            )
            .route(
                "/broken",
                web::get().to(|| async { HttpResponse::InternalServerError().finish() }),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://{addr}")
}

fn allowed() -> HttpStore {
    HttpStore::new(
        "web",
        &HttpConfig {
            allow_private: true,
            ..HttpConfig::default()
        },
    )
    .unwrap()
}

async fn body(
    store: &HttpStore,
    url: &str,
    range: Option<ByteRange>,
) -> Result<Vec<u8>, StoreError> {
    let f = store.get(url, range).await?;
    let mut out = Vec::new();
    let mut s = f.stream;
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

#[actix_web::test]
async fn size_get_and_ranges() {
    let base = start_server();
    let store = allowed();
    let bytes = data(9, SIZE);
    assert_eq!(
        store.size(&format!("{base}/image")).await.unwrap(),
        SIZE as u64
    );
    assert_eq!(
        body(&store, &format!("{base}/image"), None).await.unwrap(),
        bytes
    );
    let r = Some(ByteRange {
        offset: 500_000,
        length: Some(1234),
    });
    for path in ["/image", "/ranged"] {
        let got = body(&store, &format!("{base}{path}"), r).await.unwrap();
        assert_eq!(got, &bytes[500_000..501_234], "{path}");
        let tail = body(
            &store,
            &format!("{base}{path}"),
            Some(ByteRange {
                offset: 999_000,
                length: None,
            }),
        )
        .await
        .unwrap();
        assert_eq!(tail, &bytes[999_000..], "{path}");
    }
    let past = Some(ByteRange {
        offset: SIZE as u64 + 5,
        length: None,
    });
    for path in ["/image", "/ranged"] {
        let err = store.get(&format!("{base}{path}"), past).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RangeNotSatisfiable, "{path}: {err}");
    }
}

#[actix_web::test]
async fn redirects_are_followed_up_to_five() {
    let base = start_server();
    let store = allowed();
    // hop/4 → hop/3 → … → hop/0 → /image: five redirects.
    assert_eq!(
        store.size(&format!("{base}/hop/4")).await.unwrap(),
        SIZE as u64
    );
    assert_eq!(
        body(&store, &format!("{base}/hop/4"), None)
            .await
            .unwrap()
            .len(),
        SIZE
    );
    let err = store.size(&format!("{base}/hop/5")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(err.to_string().contains("more than 5"), "{err}");
    let err = store
        .get(&format!("{base}/temporary"), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only 301 and 302"), "{err}");
}

#[actix_web::test]
async fn errors_are_mapped_clearly() {
    let base = start_server();
    let store = allowed();
    let err = store
        .get(&format!("{base}/nothing-here"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = store
        .get(&format!("{base}/broken"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest, "{err}");
    assert!(err.to_string().contains("500"), "{err}");
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = store
        .get(&format!("http://{closed}/x"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("cannot reach"), "{err}");
}

#[actix_web::test]
async fn loopback_and_private_targets_are_refused_by_default() {
    let base = start_server();
    let guarded = HttpStore::new("web", &HttpConfig::default()).unwrap();
    for url in [
        format!("{base}/image"),
        base.replace("127.0.0.1", "localhost") + "/image",
    ] {
        let err = guarded.get(&url, None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{url}: {err}");
        assert!(
            err.to_string()
                .contains("http_store_allow_private_addresses"),
            "{err}"
        );
    }
    // A name that resolves to a non-public address is refused by the resolver, which also
    // covers redirects and DNS rebinding. This machine's own name resolves to such an address.
    let host = std::fs::read_to_string("/etc/hostname")
        .unwrap()
        .trim()
        .to_string();
    let port = base.rsplit(':').next().unwrap();
    let resolves_private = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 0))
        .map(|mut a| a.all(|a| !glance_store::http::is_public(a.ip())))
        .unwrap_or(false);
    assert!(
        resolves_private,
        "expected {host} to resolve to a non-public address"
    );
    let err = guarded
        .get(&format!("http://{host}:{port}/image"), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no address this store may contact"),
        "{err}"
    );
}
