//! `TestCloud`: glance-registry and glance-api both in-process on loopback (port 0), the api
//! with a temporary image directory, driven over HTTP as a client would.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::Result;
use glance_api::{ApiConfig, AppState};
use glance_config::IniSet;
use reqwest::Method;
use serde_json::Value;

use crate::harness::TestRegistry;

/// Both daemons and the api's image directory.
pub struct TestCloud {
    /// Kept alive for the api's lifetime.
    _registry: TestRegistry,
    pub base: String,
    pub datadir: tempfile::TempDir,
    /// The staging area of imports (`node_staging_uri`), unless the config names one.
    pub staging: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl TestCloud {
    /// Glance's defaults (no auth: every caller is admin), SQLite.
    pub async fn start() -> Result<Self> {
        Self::with_config("sqlite", "").await
    }

    /// With extra glance-api.conf text; `{datadir}` is replaced by the image directory.
    pub async fn with_config(backend: &'static str, conf: &str) -> Result<Self> {
        let registry = TestRegistry::start(backend).await?;
        let datadir = tempfile::tempdir()?;
        Self::attach(registry, datadir, conf).await
    }

    /// An api node on an existing registry and image directory.
    pub async fn attach(
        registry: TestRegistry,
        datadir: tempfile::TempDir,
        conf: &str,
    ) -> Result<Self> {
        let staging = tempfile::tempdir()?;
        let conf = if conf.contains("node_staging_uri") {
            conf.to_string()
        } else {
            format!(
                "{conf}\n[DEFAULT]\nnode_staging_uri = file://{}\n",
                staging.path().display()
            )
        };
        let state = api_state(&registry.base, datadir.path(), &conf)?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = glance_api::serve(listener, state)?;
        actix_web::rt::spawn(server);
        Ok(Self {
            _registry: registry,
            base,
            datadir,
            staging,
            http: reqwest::Client::new(),
        })
    }

    /// A request with no identity headers, accepting JSON (as openstacksdk does; error bodies
    /// are then JSON).
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("accept", "application/json")
    }

    /// A request as `project` with `roles` (trusted-auth headers).
    pub fn as_(
        &self,
        project: &str,
        roles: &str,
        method: Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.req(method, path)
            .header("X-Identity-Status", "Confirmed")
            .header("X-Project-Id", project)
            .header("X-User-Id", format!("user-{project}"))
            .header("X-Roles", roles)
    }

    /// Creates an image (no-auth admin) and returns its JSON.
    pub async fn create(&self, body: Value) -> Result<Value> {
        let res = self
            .req(Method::POST, "/v2/images")
            .json(&body)
            .send()
            .await?;
        let status = res.status();
        let json: Value = res.json().await?;
        anyhow::ensure!(status == 201, "create returned {status}: {json}");
        Ok(json)
    }

    /// Uploads `data` to image `id` and expects 204.
    pub async fn upload(&self, id: &str, data: Vec<u8>) -> Result<()> {
        let res = self
            .req(Method::PUT, &format!("/v2/images/{id}/file"))
            .header("Content-Type", "application/octet-stream")
            .body(data)
            .send()
            .await?;
        let status = res.status();
        anyhow::ensure!(
            status == 204,
            "upload returned {status}: {}",
            res.text().await?
        );
        Ok(())
    }

    /// The image's JSON (no-auth admin).
    pub async fn show(&self, id: &str) -> Result<Value> {
        Ok(self
            .req(Method::GET, &format!("/v2/images/{id}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Files in the image directory (including partial uploads).
    pub fn files(&self) -> Vec<String> {
        list_files(self.datadir.path())
    }
}

/// Builds an api state the way the daemon does, from config text.
pub fn api_state(registry: &str, datadir: &Path, conf: &str) -> Result<AppState> {
    let text = format!(
        "[glance_store]\nfilesystem_store_datadir = {}\n{}",
        datadir.display(),
        conf.replace("{datadir}", &datadir.display().to_string())
    );
    let mut ini = IniSet::default();
    ini.merge(&PathBuf::from("glance-api.conf"), &text)?;
    let mut config = ApiConfig::from_ini(&ini)?;
    config.registry_url = registry.to_string();
    config.workers = 2;
    Ok(AppState::from_config(config)?)
}

/// Sorted file names in `dir`.
pub fn list_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Deterministic test bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// MD5 hex.
pub fn md5_hex(data: &[u8]) -> String {
    let mut h = glance_store::HashAlgo::Md5.hasher();
    h.update(data);
    h.finish_hex().expect("digest")
}

/// SHA-512 hex.
pub fn sha512_hex(data: &[u8]) -> String {
    let mut h = glance_store::HashAlgo::Sha512.hasher();
    h.update(data);
    h.finish_hex().expect("digest")
}

/// Polls `f` until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "condition not met within {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Sends `GET /healthcheck` on a raw keep-alive connection and reads its whole answer (head
/// and body, as sent), so the same connection can be used again.
pub async fn healthcheck_on(conn: &mut tokio::net::TcpStream) -> Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    conn.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: glance\r\n\r\n")
        .await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "the server closed the connection");
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
                return Ok(text);
            }
        }
    }
}
