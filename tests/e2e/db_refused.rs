//! A database that refuses the registry's logins (its password changed under it, its role
//! locked) fails fast: every request is a prompt 503 naming the database's reason, both
//! daemons' `/healthcheck` answer 503 within a second, and the first request after the
//! login works again succeeds. On MariaDB (a password changed with `ALTER USER`) and on
//! PostgreSQL (`ALTER ROLE … NOLOGIN`: with trust authentication a changed password is never
//! asked for); the registry's sessions are killed, as a server restart would.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use diesel::connection::SimpleConnection;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cloud::TestCloud;
use crate::harness::{TestDb, TestRegistry, backends, server_url};
use glance_registry::db::{DbConnection, DbUrl};

/// The bound every answer must come within (a client timeout, not a timed assertion on
/// speed: before the fix a request waited 30 s and a health check over 3 s).
const PROMPT: Duration = Duration::from_secs(3);

/// A login of the test's own on `backend`, with rights on the test database `name`.
struct Login {
    backend: &'static str,
    user: String,
    admin: DbConnection,
    /// PostgreSQL: the server's admin on the test database, where the role's rights are.
    own: Option<DbConnection>,
}

impl Login {
    fn create(backend: &'static str, name: &str) -> Result<Self> {
        let mut admin = DbConnection::open(&DbUrl::parse(&server_url(backend)?)?)?;
        let user = format!("{name}_u");
        let mut own = None;
        if backend == "mysql" {
            admin.batch_execute(&format!(
                "CREATE USER '{user}'@'%' IDENTIFIED BY 'first-pass'; \
                 GRANT ALL PRIVILEGES ON {name}.* TO '{user}'@'%'; \
                 CREATE USER '{user}'@'localhost' IDENTIFIED BY 'first-pass'; \
                 GRANT ALL PRIVILEGES ON {name}.* TO '{user}'@'localhost';"
            ))?;
        } else {
            admin.batch_execute(&format!("CREATE ROLE {user} LOGIN PASSWORD 'first-pass'"))?;
            let mut conn = DbConnection::open(&DbUrl::parse(&db_url(backend, name, None)?)?)?;
            conn.batch_execute(&format!(
                "GRANT ALL ON SCHEMA public TO {user}; \
                 GRANT ALL ON ALL TABLES IN SCHEMA public TO {user}; \
                 GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {user};"
            ))?;
            own = Some(conn);
        }
        Ok(Self {
            backend,
            user,
            admin,
            own,
        })
    }

    /// Refuses this login and ends its sessions (`refused`), or accepts it again.
    fn refuse(&mut self, refused: bool) -> Result<()> {
        let user = &self.user;
        if self.backend == "mysql" {
            let pass = if refused { "other-pass" } else { "first-pass" };
            self.admin.batch_execute(&format!(
                "ALTER USER '{user}'@'%' IDENTIFIED BY '{pass}'; \
                 ALTER USER '{user}'@'localhost' IDENTIFIED BY '{pass}';"
            ))?;
        } else {
            let login = if refused { "NOLOGIN" } else { "LOGIN" };
            self.admin
                .batch_execute(&format!("ALTER ROLE {user} {login}"))?;
        }
        if refused {
            let kill = if self.backend == "mysql" {
                format!(
                    "SELECT CAST(ID AS SIGNED) AS n FROM information_schema.PROCESSLIST \
                     WHERE USER = '{user}'"
                )
            } else {
                format!(
                    "SELECT CAST(pid AS BIGINT) AS n FROM pg_stat_activity WHERE usename = '{user}'"
                )
            };
            use diesel::RunQueryDsl as _;
            #[derive(diesel::QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            for s in diesel::sql_query(kill).load::<N>(&mut self.admin)? {
                let sql = if self.backend == "mysql" {
                    format!("KILL {}", s.n)
                } else {
                    format!("SELECT pg_terminate_backend({})", s.n)
                };
                // A session may end on its own meanwhile.
                let _ = self.admin.batch_execute(&sql);
            }
            // The server's close reaches the registry's sockets (a query racing it is a lost
            // connection, not a refused login: not what this test is about).
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Ok(())
    }
}

impl Drop for Login {
    fn drop(&mut self) {
        let user = &self.user;
        let sql = if self.backend == "mysql" {
            format!("DROP USER IF EXISTS '{user}'@'%'; DROP USER IF EXISTS '{user}'@'localhost';")
        } else {
            if let Some(own) = &mut self.own {
                let _ = own.batch_execute(&format!("DROP OWNED BY {user}"));
            }
            format!("DROP ROLE IF EXISTS {user}")
        };
        let _ = self.admin.batch_execute(&sql);
    }
}

/// The URL of test database `name` on `backend`, as `user` (password `first-pass`) or as
/// the server's admin.
fn db_url(backend: &str, name: &str, user: Option<&str>) -> Result<String> {
    let mut u = url::Url::parse(&server_url(backend)?)?;
    u.set_path(&format!("/{name}"));
    if let Some(user) = user {
        u.set_username(user)
            .map_err(|()| anyhow::anyhow!("cannot set a user"))?;
        u.set_password(Some("first-pass"))
            .map_err(|()| anyhow::anyhow!("cannot set a password"))?;
    }
    Ok(u.to_string())
}

/// Status and body of `GET url`, which must answer within [`PROMPT`].
async fn get(http: &reqwest::Client, url: &str) -> Result<(StatusCode, String)> {
    let started = Instant::now();
    let res = http
        .get(url)
        .header("accept", "application/json")
        .timeout(PROMPT)
        .send()
        .await
        .with_context(|| format!("GET {url} did not answer within {PROMPT:?}"))?;
    let status = res.status();
    let body = res.text().await?;
    anyhow::ensure!(
        started.elapsed() < PROMPT,
        "GET {url} took {:?}",
        started.elapsed()
    );
    Ok((status, body))
}

#[actix_web::test]
async fn a_database_refusing_logins_fails_fast_and_recovers_at_once() -> Result<()> {
    for b in backends().into_iter().filter(|b| *b != "sqlite") {
        let db = TestDb::new(b)?;
        // Migrated as the server's admin, then served as a login of the test's own.
        TestRegistry::serve(db.alias()).await?.stop().await;
        let name = url::Url::parse(&db.url)?
            .path()
            .trim_start_matches('/')
            .to_string();
        let mut login = Login::create(b, &name)?;
        let mut served = db.alias();
        served.url = db_url(b, &name, Some(&login.user))?;
        let registry = TestRegistry::serve(served).await?;
        let reg = registry.base.clone();
        let cloud = TestCloud::attach(registry, tempfile::tempdir()?, "").await?;
        let http = reqwest::Client::new();
        let image: Value = cloud.create(json!({"name": "steady"})).await?;
        let id = image["id"].as_str().context("id")?.to_string();
        let show = format!("{}/v2/images/{id}", cloud.base);
        assert_eq!(get(&http, &show).await?.0, 200, "{b}: show before");

        login.refuse(true)?;
        for round in 0..3 {
            let (status, body) = get(&http, &show).await?;
            assert_eq!(status, 503, "{b} round {round}: show while refused: {body}");
            let reason = if b == "mysql" {
                "access denied"
            } else {
                "not permitted to log in"
            };
            assert!(
                body.to_lowercase().contains(reason) && body.contains("refuses"),
                "{b}: the 503 does not name the cause: {body}"
            );
            let (status, body) = get(&http, &format!("{reg}/v1/images/{id}")).await?;
            assert_eq!(status, 503, "{b}: registry show while refused: {body}");
            for base in [&reg, &cloud.base] {
                let (status, body) = get(&http, &format!("{base}/healthcheck")).await?;
                assert_eq!(status, 503, "{b}: {base}/healthcheck while refused: {body}");
            }
            let res = http
                .post(format!("{}/v2/images", cloud.base))
                .json(&json!({"name": "during"}))
                .timeout(PROMPT)
                .send()
                .await?;
            assert_eq!(res.status(), 503, "{b}: create while refused");
        }

        // The very first requests after the login works again succeed.
        login.refuse(false)?;
        let (status, body) = get(&http, &show).await?;
        assert_eq!(
            status, 200,
            "{b}: show after the login was restored: {body}"
        );
        for base in [&reg, &cloud.base] {
            let (status, body) = get(&http, &format!("{base}/healthcheck")).await?;
            assert_eq!(status, 200, "{b}: {base}/healthcheck after: {body}");
        }
        cloud.create(json!({"name": "after"})).await?;
    }
    Ok(())
}
