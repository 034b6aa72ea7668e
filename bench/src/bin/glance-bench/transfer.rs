//! Image-sized transfers: streamed uploads of random bytes and downloads that count and
//! discard what arrives. Nothing is ever held whole in memory: an upload cycles through a
//! fixed pool of random 1 MiB chunks (cloned `Bytes`, no copy), so the client costs almost
//! nothing per byte and is not what limits the figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper::{Method, StatusCode};

use crate::load::{Body, Client, Target};

/// Size of one upload chunk.
pub const CHUNK: usize = 1 << 20;

/// A pool of distinct random chunks that uploads cycle through.
#[derive(Clone)]
pub struct RandomData {
    chunks: Arc<Vec<Bytes>>,
}

impl RandomData {
    /// `count` chunks of [`CHUNK`] random bytes (xorshift64*, seeded).
    pub fn new(count: usize, seed: u64) -> Self {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let chunks = (0..count)
            .map(|_| {
                let mut v = Vec::with_capacity(CHUNK);
                while v.len() < CHUNK {
                    x ^= x >> 12;
                    x ^= x << 25;
                    x ^= x >> 27;
                    v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
                }
                Bytes::from(v)
            })
            .collect();
        Self {
            chunks: Arc::new(chunks),
        }
    }

    /// Chunk `i` of the pool (cycled), for the in-memory ceilings.
    pub fn chunk(&self, i: usize) -> &Bytes {
        &self.chunks[i % self.chunks.len()]
    }

    /// A request body of exactly `size` bytes.
    pub fn body(&self, size: u64) -> Body {
        let chunks = self.chunks.clone();
        let n = size.div_ceil(CHUNK as u64);
        let iter = (0..n).map(move |i| {
            let c = &chunks[(i as usize) % chunks.len()];
            let left = size - i * CHUNK as u64;
            let b = if left < CHUNK as u64 {
                c.slice(..left as usize)
            } else {
                c.clone()
            };
            Ok::<_, std::io::Error>(Frame::data(b))
        });
        StreamBody::new(stream::iter(iter)).boxed()
    }
}

/// `PUT /v2/images/{id}/file` with `size` random bytes; returns the time to the 204.
pub async fn upload(
    client: &mut Client,
    id: &str,
    size: u64,
    data: &RandomData,
) -> Result<Duration> {
    let len = size.to_string();
    let t = Instant::now();
    let res = client
        .send(
            Method::PUT,
            &format!("/v2/images/{id}/file"),
            &[
                ("content-type", "application/octet-stream"),
                ("content-length", &len),
            ],
            data.body(size),
        )
        .await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    let elapsed = t.elapsed();
    if status != StatusCode::NO_CONTENT {
        bail!(
            "upload of {size} bytes returned {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(elapsed)
}

/// `GET path` (optionally `Range: bytes={from}-`), reading and discarding the body; checks
/// the status and the byte count and returns the time to the last byte.
pub async fn download(
    client: &mut Client,
    path: &str,
    range_from: Option<u64>,
    expect_bytes: u64,
) -> Result<Duration> {
    let range = range_from.map(|f| format!("bytes={f}-"));
    let headers: Vec<(&str, &str)> = range.iter().map(|r| ("range", r.as_str())).collect();
    let t = Instant::now();
    let res = client
        .send(Method::GET, path, &headers, crate::load::empty())
        .await?;
    let status = res.status();
    let want = if range_from.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut body = res.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len() as u64;
        }
    }
    let elapsed = t.elapsed();
    if status != want {
        bail!("GET {path} returned {status}, expected {want}");
    }
    if n != expect_bytes {
        bail!("GET {path} gave {n} bytes, expected {expect_bytes}");
    }
    Ok(elapsed)
}

/// [`download`] by a client of its own (a new connection) on a thread of its own, whose
/// runtime drives nothing else: the transfer and the reads of its socket share one thread,
/// whichever server it is from.
pub async fn download_from(
    target: &Target,
    path: &str,
    range_from: Option<u64>,
    expect_bytes: u64,
) -> Result<Duration> {
    let (target, path) = (target.clone(), path.to_string());
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("download".into())
        .spawn(move || {
            let run = || -> Result<Duration> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let mut client = Client::new(&target);
                    download(&mut client, &path, range_from, expect_bytes).await
                })
            };
            let _ = tx.send(run());
        })?;
    rx.await
        .map_err(|_| anyhow::anyhow!("the download thread went away"))?
}

/// Decimal megabytes per second.
pub fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}
