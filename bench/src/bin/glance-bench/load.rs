//! The load generator: one raw hyper HTTP/1.1 keep-alive connection per simulated client
//! (no pool, no redirects, no JSON unless the figure needs an id), duration-based runs with
//! every request's latency kept, so p50/p99 come from the full sorted sample.
//! It must not assert anything about speed: it measures and returns figures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::cpu::{Procs, Usage};

/// Request body type shared by every call (small JSON and streamed uploads alike).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// Where requests go: a socket address plus the `Host` header to send.
#[derive(Debug, Clone)]
pub struct Target {
    /// Resolved address.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
}

impl Target {
    /// Resolves `http://host:port` (any path is ignored).
    pub async fn parse(base: &str) -> Result<Self> {
        let url = url::Url::parse(base).with_context(|| format!("bad endpoint URL {base}"))?;
        anyhow::ensure!(
            url.scheme() == "http",
            "only http:// endpoints are supported, not {base}"
        );
        let host = url.host_str().context("endpoint has no host")?.to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .with_context(|| format!("{host} does not resolve"))?;
        Ok(Self {
            addr,
            host: format!("{host}:{port}"),
        })
    }

    /// A target on a local socket address.
    pub fn local(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
        }
    }
}

/// An empty request body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A request body of fixed bytes.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// One keep-alive connection, reopened when the server closes it.
pub struct Client {
    target: Target,
    tx: Option<SendRequest<Body>>,
}

impl Client {
    /// A client for `target`; connects lazily.
    pub fn new(target: &Target) -> Self {
        Self {
            target: target.clone(),
            tx: None,
        }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Body>> {
        if self.tx.as_ref().is_none_or(SendRequest::is_closed) {
            let tcp = TcpStream::connect(self.target.addr)
                .await
                .with_context(|| format!("cannot connect to {}", self.target.addr))?;
            tcp.set_nodelay(true)?;
            let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                // A connection error surfaces on the next send; nothing to do here.
                let _ = conn.await;
            });
            self.tx = Some(tx);
        }
        let ready = match self.tx.as_mut() {
            Some(tx) => tx.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            self.tx = None;
            bail!("connection to {} closed", self.target.addr);
        }
        self.tx.as_mut().context("no connection")
    }

    /// Sends one request and returns the response head with its still-unread body.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Response<Incoming>> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.target.host.as_str());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(body)?;
        let tx = self.sender().await?;
        match tx.send_request(req).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.tx = None;
                Err(e.into())
            }
        }
    }

    /// Sends a request and reads the whole (small) response body.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<(StatusCode, Bytes)> {
        let res = self.send(method, path, headers, body).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// What each simulated client does in a loop.
#[derive(Clone)]
pub enum Op {
    /// `GET` of a fixed path, expecting 200.
    Get(String),
    /// `GET /v2/images/{id}` of a random id from the list.
    Show(Arc<Vec<String>>),
    /// `POST /v2/images` then `DELETE /v2/images/{id}`: one pair per iteration.
    CreateDelete,
}

const CREATE_BODY: &str =
    r#"{"name": "glance-bench-pair", "disk_format": "raw", "container_format": "bare"}"#;

/// Creates an image (no-auth admin) and returns its id.
pub async fn create_image(client: &mut Client, body: String) -> Result<String> {
    let (status, bytes) = client
        .call(
            Method::POST,
            "/v2/images",
            &[("content-type", "application/json")],
            full(body),
        )
        .await?;
    if status != StatusCode::CREATED {
        bail!(
            "create returned {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes)?;
    Ok(v["id"].as_str().context("create: no id")?.to_string())
}

/// Deletes an image, expecting 204.
pub async fn delete_image(client: &mut Client, id: &str) -> Result<()> {
    let (status, bytes) = client
        .call(Method::DELETE, &format!("/v2/images/{id}"), &[], empty())
        .await?;
    if status != StatusCode::NO_CONTENT {
        bail!(
            "delete {id} returned {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(())
}

async fn once(client: &mut Client, op: &Op, rng: &mut fastrand::Rng) -> Result<()> {
    match op {
        Op::Get(path) => expect_ok(client.call(Method::GET, path, &[], empty()).await?),
        Op::Show(ids) => {
            let id = &ids[rng.usize(..ids.len())];
            expect_ok(
                client
                    .call(Method::GET, &format!("/v2/images/{id}"), &[], empty())
                    .await?,
            )
        }
        Op::CreateDelete => {
            let id = create_image(client, CREATE_BODY.to_string()).await?;
            delete_image(client, &id).await
        }
    }
}

fn expect_ok((status, body): (StatusCode, Bytes)) -> Result<()> {
    if status == StatusCode::OK {
        Ok(())
    } else {
        bail!("{status}: {}", String::from_utf8_lossy(&body))
    }
}

/// The outcome of one duration-based run.
#[derive(Debug, Clone)]
pub struct RateRun {
    /// Iterations completed inside the measured window.
    pub ops: u64,
    /// Iterations that failed (non-2xx or connection error).
    pub errors: u64,
    /// First error seen, for the report.
    pub first_error: Option<String>,
    /// Length of the measured window.
    pub secs: f64,
    /// Sorted latencies of the measured iterations, microseconds.
    pub lat_us: Vec<u32>,
    /// CPU of the accounted processes, and the disk's use, over the measured window.
    pub cpu: Usage,
}

impl RateRun {
    /// Iterations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    /// The `q` quantile of latency in milliseconds (nearest rank).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        let idx = ((self.lat_us.len() as f64 * q).ceil() as usize).clamp(1, self.lat_us.len());
        f64::from(self.lat_us[idx - 1]) / 1000.0
    }
}

/// Runs `concurrency` clients doing `op` for `warmup` (discarded) then `duration` (measured),
/// counting the CPU and disk use of `procs` over the measured window.
pub async fn run_rate(
    target: &Target,
    op: &Op,
    concurrency: usize,
    (warmup, duration): (Duration, Duration),
    procs: &Procs,
) -> Result<RateRun> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let target = target.clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(&target);
            let mut rng = fastrand::Rng::with_seed(w as u64 + 1);
            let mut lat = Vec::with_capacity(1 << 16);
            let (mut errors, mut first_error) = (0u64, None);
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let r = once(&mut client, &op, &mut rng).await;
                let us = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
                if t0 < measure_from {
                    continue;
                }
                match r {
                    Ok(()) => lat.push(us),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                        if errors > 1000 {
                            break;
                        }
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_start = procs.sample();
    let mut run = RateRun {
        ops: 0,
        errors: 0,
        first_error: None,
        secs: 0.0,
        lat_us: Vec::new(),
        cpu: Usage::default(),
    };
    for t in tasks {
        let (lat, errors, first_error) = t.await?;
        run.lat_us.extend(lat);
        run.errors += errors;
        if run.first_error.is_none() {
            run.first_error = first_error;
        }
    }
    run.secs = measure_from.elapsed().as_secs_f64();
    run.cpu = procs.since(&cpu_start);
    run.ops = run.lat_us.len() as u64;
    run.lat_us.sort_unstable();
    Ok(run)
}

/// Runs `bodies.len()` requests produced by `make` with `concurrency` clients: the seeding
/// and cleanup path (count-based, not timed figures).
pub async fn run_count<F, Fut, T>(
    target: &Target,
    n: usize,
    concurrency: usize,
    make: F,
) -> Result<Vec<T>>
where
    F: Fn(Client, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(Client, T)>> + Send,
    T: Send + 'static,
{
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (target, next, make) = (target.clone(), next.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(&target);
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let (c, v) = make(client, i).await?;
                client = c;
                out.push((i, v));
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, v)| v).collect())
}
