//! Every store is held to the image's recorded size when read through `Stores::get`: data of
//! another size is refused before any byte, ranges are resolved against the recorded size, and
//! data that ends early during a transfer fails the stream. Shown for the file store and for
//! the http store (a server whose image changed size, and one that sends a short body).
#![expect(clippy::unwrap_used, reason = "tests")]

pub mod common;

use std::net::TcpListener;
use std::path::Path;

use actix_web::{App, HttpResponse, HttpServer, web};
use common::{chunked, data};
use futures_util::StreamExt;
use glance_config::IniSet;
use glance_model::ErrorKind;
use glance_store::{ByteRange, Fetched, HashAlgo, StoreError, Stores, StoresConfig, WriteLimits};

const SIZE: usize = 300_007;

fn stores(datadir: &Path) -> Stores {
    let text = format!(
        "[glance_store]\nstores = file,http\ndefault_store = file\n\
         filesystem_store_datadir = {}\nhttp_store_allow_private_addresses = true\n",
        datadir.display()
    );
    let mut ini = IniSet::default();
    ini.merge(Path::new("glance-api.conf"), &text).unwrap();
    Stores::from_config(&StoresConfig::from_ini(&ini).unwrap()).unwrap()
}

/// Reads a stream to its end: the bytes, and the error it ended with.
async fn drain(f: Fetched) -> (Vec<u8>, Option<StoreError>) {
    let mut out = Vec::new();
    let mut s = f.stream;
    while let Some(c) = s.next().await {
        match c {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

fn size_changed(r: Result<Fetched, StoreError>, recorded: u64, found: u64) {
    match r {
        Err(e @ StoreError::SizeChanged { .. }) => {
            assert_eq!(e.kind(), ErrorKind::Unavailable);
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("{found} bytes"))
                    && msg.contains(&format!("recorded size is {recorded} bytes")),
                "{msg}"
            );
        }
        other => panic!("expected SizeChanged({recorded} vs {found}), got {other:?}"),
    }
}

#[tokio::test]
async fn a_file_of_another_size_is_refused_and_a_shrinking_one_fails_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let s = stores(dir.path());
    let bytes = data(4, SIZE);
    let added = s
        .add(
            None,
            "img",
            chunked(&bytes),
            &WriteLimits::default(),
            HashAlgo::Sha512,
        )
        .await
        .unwrap();
    let url = added.written.location.as_str();
    let path = dir.path().join("img");
    let recorded = SIZE as u64;

    // As recorded: whole and ranged reads carry the recorded sizes.
    let f = s.get(url, None, None, Some(recorded)).await.unwrap();
    assert_eq!((f.total_size, f.length), (Some(recorded), Some(recorded)));
    let (got, err) = drain(f).await;
    assert!(got == bytes && err.is_none(), "{err:?}");
    let part = Some(ByteRange {
        offset: 10,
        length: Some(5),
    });
    let f = s.get(url, None, part, Some(recorded)).await.unwrap();
    assert_eq!((f.offset, f.length), (10, Some(5)));
    assert_eq!(drain(f).await.0, &bytes[10..15]);

    // Truncated, then grown: refused before any byte, the whole and every range alike.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(1000).unwrap();
    size_changed(s.get(url, None, None, Some(recorded)).await, recorded, 1000);
    size_changed(s.get(url, None, part, Some(recorded)).await, recorded, 1000);
    let beyond = Some(ByteRange {
        offset: 5000,
        length: None,
    });
    size_changed(
        s.get(url, None, beyond, Some(recorded)).await,
        recorded,
        1000,
    );
    file.set_len(recorded + 1).unwrap();
    size_changed(
        s.get(url, None, None, Some(recorded)).await,
        recorded,
        recorded + 1,
    );

    // Shrinking after the read began: the stream ends with an error, not short.
    file.set_len(recorded).unwrap();
    let f = s.get(url, None, None, Some(recorded)).await.unwrap();
    let region = f.file.clone().unwrap();
    assert_eq!((region.offset, region.length), (0, recorded));
    file.set_len(100).unwrap();
    let (got, err) = drain(f).await;
    assert!(got.len() < SIZE, "{} bytes", got.len());
    assert!(err.is_some(), "a short read ended cleanly");

    // Without a recorded size (an image whose size is unknown), the store's own size is used.
    let f = s.get(url, None, None, None).await.unwrap();
    assert_eq!(f.total_size, Some(100));
}

async fn whole() -> HttpResponse {
    HttpResponse::Ok().body(data(9, SIZE))
}

/// A chunked body (no Content-Length, so the size is unknown before reading) that ends
/// `SIZE / 2` bytes in.
async fn short() -> HttpResponse {
    let half = bytes::Bytes::from(data(9, SIZE / 2));
    HttpResponse::Ok().streaming(futures_util::stream::once(async move {
        Ok::<_, actix_web::Error>(half)
    }))
}

fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(|| {
        App::new()
            .route("/whole", web::get().to(whole))
            .route("/short", web::get().to(short))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://{addr}")
}

#[actix_web::test]
async fn the_http_store_is_held_to_the_recorded_size_too() {
    let dir = tempfile::tempdir().unwrap();
    let s = stores(dir.path());
    let base = start_server();
    let recorded = SIZE as u64;
    let whole = format!("{base}/whole");
    let f = s.get(&whole, None, None, Some(recorded)).await.unwrap();
    let (got, err) = drain(f).await;
    assert!(got == data(9, SIZE) && err.is_none(), "{err:?}");
    // The remote image is no longer what was recorded.
    size_changed(
        s.get(&whole, None, None, Some(recorded + 7)).await,
        recorded + 7,
        recorded,
    );
    // A server that cannot tell the size up front and then sends less: the stream fails.
    let f = s
        .get(&format!("{base}/short"), None, None, Some(recorded))
        .await
        .unwrap();
    assert_eq!(f.length, Some(recorded));
    let (got, err) = drain(f).await;
    assert_eq!(got.len(), SIZE / 2);
    assert!(
        matches!(
            err,
            Some(StoreError::Truncated { expected, delivered })
                if expected == recorded && delivered == (SIZE / 2) as u64
        ),
        "{err:?}"
    );
}
