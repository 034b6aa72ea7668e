//! `TestRegistry`: a fresh database (temp SQLite file, or a new database on the MariaDB /
//! PostgreSQL server named by the environment), migrated, and a registry serving it.

use std::net::TcpListener;

use anyhow::{Context as _, Result};
use glance_model::wire::{HEADER_IS_ADMIN, HEADER_PROJECT_ID, HEADER_ROLES};
use glance_registry::db::{Database, DbConnection, DbUrl, PoolOptions, migrate};
use glance_registry::{AppState, RegistryConfig};
use serde_json::Value;

/// Which backends this run covers. SQLite always; the servers when their URL is set.
/// In CI (`CI=true`) a missing server URL is an error, never a silent skip.
pub fn backends() -> Vec<&'static str> {
    let mut out = vec!["sqlite"];
    for (name, var) in [
        ("mysql", "GLANCE_TEST_MYSQL_URL"),
        ("postgres", "GLANCE_TEST_POSTGRES_URL"),
    ] {
        if std::env::var(var).is_ok_and(|v| !v.is_empty()) {
            out.push(name);
        } else if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{var} is not set: CI must run the database suite on {name}");
        } else {
            eprintln!("note: {var} not set, skipping the {name} backend in this run");
        }
    }
    out
}

/// The URL of the test server for `backend` ("mysql" or "postgres"), from the environment.
pub fn server_url(backend: &str) -> Result<String> {
    let var = if backend == "mysql" {
        "GLANCE_TEST_MYSQL_URL"
    } else {
        "GLANCE_TEST_POSTGRES_URL"
    };
    std::env::var(var).with_context(|| format!("{var} not set"))
}

/// A database made for one test, dropped when the test ends.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    drop_sql: Option<(String, String)>,
}

impl TestDb {
    /// A new empty database on `backend`.
    pub fn new(backend: &str) -> Result<Self> {
        let name = format!("glance_t_{}", uuid_simple());
        match backend {
            "sqlite" => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite:///{}", dir.path().join("glance.sqlite").display());
                Ok(Self {
                    url,
                    _dir: Some(dir),
                    drop_sql: None,
                })
            }
            "mysql" | "postgres" => {
                let base = server_url(backend)?;
                let mut conn = DbConnection::open(&DbUrl::parse(&base)?)?;
                use diesel::connection::SimpleConnection;
                conn.batch_execute(&format!("CREATE DATABASE {name}"))?;
                let mut u = url::Url::parse(&base)?;
                u.set_path(&format!("/{name}"));
                Ok(Self {
                    url: u.to_string(),
                    _dir: None,
                    drop_sql: Some((base, format!("DROP DATABASE IF EXISTS {name}"))),
                })
            }
            other => anyhow::bail!("unknown backend {other}"),
        }
    }

    /// The same database under a second handle that does not drop it (for a second
    /// registry on it).
    pub fn alias(&self) -> Self {
        Self {
            url: self.url.clone(),
            _dir: None,
            drop_sql: None,
        }
    }

    /// Opens one connection (for asserting on rows).
    pub fn conn(&self) -> Result<DbConnection> {
        Ok(DbConnection::open(&DbUrl::parse(&self.url)?)?)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, sql)) = self.drop_sql.take()
            && let Ok(url) = DbUrl::parse(&base)
            && let Ok(mut c) = DbConnection::open(&url)
        {
            use diesel::connection::SimpleConnection;
            let _ = c.batch_execute(&sql);
        }
    }
}

fn uuid_simple() -> String {
    glance_model::ImageId::new().to_string().replace('-', "")[..16].to_string()
}

/// A registry serving a fresh, migrated database.
pub struct TestRegistry {
    pub base: String,
    pub db: TestDb,
    pub http: reqwest::Client,
    server: actix_web::dev::ServerHandle,
}

impl TestRegistry {
    /// Starts one on a fresh database on `backend`.
    pub async fn start(backend: &'static str) -> Result<Self> {
        Self::serve(TestDb::new(backend)?).await
    }

    /// Migrates `db` (a no-op when current) and serves it.
    pub async fn serve(db: TestDb) -> Result<Self> {
        Self::serve_with(
            db,
            RegistryConfig {
                workers: 2,
                ..RegistryConfig::default()
            },
        )
        .await
    }

    /// A second registry on this one's database, as the other node of an HA pair.
    pub async fn beside(&self, config: RegistryConfig) -> Result<Self> {
        Self::serve_with(self.db.alias(), config).await
    }

    /// [`TestRegistry::serve`] with these settings.
    pub async fn serve_with(db: TestDb, config: RegistryConfig) -> Result<Self> {
        let url = DbUrl::parse(&db.url)?;
        let database = Database::connect(&url, PoolOptions::default())?;
        migrate::sync(&mut *database.get()?)?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = AppState::new(config, database, None);
        let server = glance_registry::serve(listener, state)?;
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(Self {
            base,
            db,
            http: reqwest::Client::new(),
            server: handle,
        })
    }

    /// A request as project `project` with `roles` (admin if roles contain "admin").
    pub fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        project: &str,
        roles: &str,
    ) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if !project.is_empty() {
            r = r.header(HEADER_PROJECT_ID, project);
        }
        if !roles.is_empty() {
            r = r.header(HEADER_ROLES, roles);
        }
        r
    }

    /// A request as Glance's no-auth admin.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header(HEADER_IS_ADMIN, "true")
    }

    /// Creates an image as `project` (member role) and returns its JSON.
    pub async fn create(&self, project: &str, body: Value) -> Result<Value> {
        let res = self
            .req(reqwest::Method::POST, "/v1/images", project, "member")
            .json(&body)
            .send()
            .await?;
        let status = res.status();
        let json: Value = res.json().await?;
        anyhow::ensure!(status == 201, "create returned {status}: {json}");
        Ok(json)
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.stop(true).await;
    }
}

/// Asserts an error response: status, JSON body with a message containing `needle`.
/// The `n` column (a BIGINT) of the first row `sql` returns; `None` when it returns none.
pub fn first_n(conn: &mut DbConnection, sql: &str) -> Result<Option<i64>> {
    use diesel::RunQueryDsl as _;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let rows = diesel::sql_query(sql).load::<N>(conn)?;
    Ok(rows.first().map(|r| r.n))
}

pub async fn expect_error(res: reqwest::Response, status: u16, needle: &str) -> Result<Value> {
    let got = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = res
        .json()
        .await
        .with_context(|| format!("error body is not JSON (status {got}, {ct})"))?;
    anyhow::ensure!(got == status, "expected {status}, got {got}: {body}");
    let msg = body["message"].as_str().unwrap_or_default();
    anyhow::ensure!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "message {msg:?} does not mention {needle:?}"
    );
    anyhow::ensure!(
        body["code"]
            .as_str()
            .is_some_and(|c| c.starts_with(&status.to_string())),
        "bad code in {body}"
    );
    Ok(body)
}
