//! Pooled server connections: the pool hands one out without a round trip when its socket
//! is quiet, and never hands out one the server has closed. Every registry session is
//! killed on the server between requests; the next requests must all succeed.

use anyhow::{Context as _, Result};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use futures_util::future::join_all;
use glance_registry::db::{Database, DbConnection, DbUrl, PoolOptions};
use reqwest::Method;
use serde_json::json;

use crate::harness::{TestRegistry, backends, server_url};

#[derive(QueryableByName)]
struct Session {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Ends every session on the test database `name` from outside, as a server restart or an
/// operator's `KILL` would; returns how many there were.
fn kill_sessions(backend: &str, name: &str) -> Result<usize> {
    let mut admin = DbConnection::open(&DbUrl::parse(&server_url(backend)?)?)?;
    let sql = if backend == "mysql" {
        format!(
            "SELECT CAST(ID AS SIGNED) AS id FROM information_schema.PROCESSLIST WHERE DB = '{name}'"
        )
    } else {
        format!("SELECT CAST(pid AS BIGINT) AS id FROM pg_stat_activity WHERE datname = '{name}'")
    };
    let sessions: Vec<Session> = diesel::sql_query(sql).load(&mut admin)?;
    for s in &sessions {
        let kill = if backend == "mysql" {
            format!("KILL {}", s.id)
        } else {
            format!("SELECT pg_terminate_backend({})", s.id)
        };
        admin.batch_execute(&kill)?;
    }
    Ok(sessions.len())
}

/// 24 shows at once, so the pool holds several connections; every one must be 200.
async fn shows(r: &TestRegistry, id: &str, b: &str) -> Result<()> {
    let answers = join_all((0..24).map(|_| {
        r.req(Method::GET, &format!("/v1/images/{id}"), "proj-a", "reader")
            .send()
    }))
    .await;
    for answer in answers {
        let res = answer?;
        let status = res.status();
        anyhow::ensure!(
            status == 200,
            "{b}: show returned {status}: {}",
            res.text().await?
        );
    }
    Ok(())
}

#[actix_web::test]
async fn killed_sessions_are_never_handed_out() -> Result<()> {
    for b in backends().into_iter().filter(|b| *b != "sqlite") {
        let r = TestRegistry::start(b).await?;
        let name = url::Url::parse(&r.db.url)?
            .path()
            .trim_start_matches('/')
            .to_string();

        // The fast check-out is in use on this server: the pool found the socket.
        let db = Database::connect(&DbUrl::parse(&r.db.url)?, PoolOptions::default())?;
        assert!(
            db.get()?.watches_its_socket(),
            "{b}: the pool did not find its connection's socket and pings on every check-out"
        );

        let img = r.create("proj-a", json!({"name": "survivor"})).await?;
        let id = img["id"].as_str().context("id")?.to_string();
        for round in 0..3 {
            shows(&r, &id, b).await?;
            let killed = kill_sessions(b, &name)?;
            assert!(killed > 0, "{b}: no registry session to kill");
            // The server's close reaches the registry's sockets.
            std::thread::sleep(std::time::Duration::from_millis(100));
            shows(&r, &id, b).await?;
            let res = r
                .req(
                    Method::PATCH,
                    &format!("/v1/images/{id}"),
                    "proj-a",
                    "member",
                )
                .json(&json!({"name": format!("survivor-{round}")}))
                .send()
                .await?;
            assert_eq!(res.status(), 200, "{b}: update after the kill");
            let made = r.create("proj-a", json!({"name": "after"})).await;
            assert!(made.is_ok(), "{b}: create after the kill: {made:?}");
            // A connection taken straight from a pool whose sessions were all killed works.
            kill_sessions(b, &name)?;
            std::thread::sleep(std::time::Duration::from_millis(100));
            let mut conn = db.get()?;
            conn.batch_execute("SELECT 1")
                .with_context(|| format!("{b}: a killed connection was handed out"))?;
        }
        r.stop().await;
    }
    Ok(())
}
