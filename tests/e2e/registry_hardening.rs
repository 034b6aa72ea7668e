//! Requests that once held the registry or got a misleading 503: endless sorts, thousands of
//! filters, oversized property values. Each gets a prompt 4xx with a JSON message, on every
//! backend, and leaves the service answering.

use std::time::Duration;

use anyhow::Result;
use glance_model::image::MAX_PROPERTY_VALUE_BYTES;
use reqwest::Method;
use serde_json::json;

use crate::cloud::TestCloud;
use crate::harness::{TestRegistry, backends, expect_error};

/// A client that gives up long before a hung request would end: the test then fails rather
/// than hangs if a query is ever slow to build again. No timing is asserted beyond that.
fn impatient() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?)
}

/// Sends `request` on a new connection and reads until the server closes it.
async fn raw_exchange(addr: &str, request: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    // The server may answer and close before it has read the whole request.
    let _ = s.write_all(request.as_bytes()).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    anyhow::ensure!(read.is_ok(), "no answer within 10 s");
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// 1,000 sort keys (both syntaxes) and 1,000 property filters, sent to glance-api and to
/// glance-registry itself: each is a 400 naming the problem, and listing still works after.
#[actix_web::test]
async fn a_thousand_sort_keys_or_filters_get_a_prompt_400() -> Result<()> {
    let sort_new = format!("sort={}", vec!["name"; 1000].join(","));
    let sort_old = vec!["sort_key=name"; 1000].join("&");
    let props = (0..1000)
        .map(|i| format!("prop{i}=v"))
        .collect::<Vec<_>>()
        .join("&");
    let cases = [
        (sort_new.as_str(), "more than once"),
        (sort_old.as_str(), "more than once"),
        (props.as_str(), "too many property filters"),
    ];
    for b in backends() {
        let cloud = TestCloud::with_config(b, "").await?;
        let registry = TestRegistry::start(b).await?;
        let http = impatient()?;
        cloud.create(json!({"name": "kept"})).await?;
        for (query, says) in cases {
            let via_api = http
                .get(format!("{}/v2/images?{query}", cloud.base))
                .header("accept", "application/json")
                .send()
                .await?;
            expect_error(via_api, 400, says).await?;
            let direct = http
                .get(format!("{}/v1/images?{query}", registry.base))
                .header(glance_model::wire::HEADER_IS_ADMIN, "true")
                .send()
                .await?;
            expect_error(direct, 400, says).await?;
        }
        // Eight distinct keys, each once, are still a valid sort.
        let all = glance_model::filter::SORT_KEYS.join(",");
        let res = http
            .get(format!("{}/v2/images?sort={all}", cloud.base))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}");
        let body: serde_json::Value = res.json().await?;
        assert_eq!(body["images"].as_array().map(Vec::len), Some(1), "{b}");
    }
    Ok(())
}

/// A property value over 65,535 bytes (what MariaDB's TEXT column holds) is a 400 on every
/// backend, on create and on update, before the database sees it; one at the limit is kept.
#[actix_web::test]
async fn an_oversized_property_value_is_400_on_every_backend() -> Result<()> {
    let at_limit = "v".repeat(MAX_PROPERTY_VALUE_BYTES);
    let over = "v".repeat(MAX_PROPERTY_VALUE_BYTES + 1);
    for b in backends() {
        let cloud = TestCloud::with_config(b, "").await?;
        let res = cloud
            .req(Method::POST, "/v2/images")
            .json(&json!({"name": "big", "big_prop": over}))
            .send()
            .await?;
        expect_error(res, 400, "too long").await?;
        let img = cloud.create(json!({"name": "ok"})).await?;
        let id = img["id"].as_str().unwrap();
        let patch = |value: &str| {
            cloud
                .req(Method::PATCH, &format!("/v2/images/{id}"))
                .header(
                    "content-type",
                    "application/openstack-images-v2.1-json-patch",
                )
                .body(json!([{"op": "add", "path": "/big_prop", "value": value}]).to_string())
                .send()
        };
        expect_error(patch(&over).await?, 400, "too long").await?;
        let res = patch(&at_limit).await?;
        assert_eq!(res.status(), 200, "{b}: {}", res.text().await?);
        let shown = cloud.show(id).await?;
        assert_eq!(
            shown["big_prop"].as_str().map(str::len),
            Some(at_limit.len()),
            "{b}"
        );

        // The registry checks its own input too.
        let registry = TestRegistry::start(b).await?;
        let res = registry
            .req(Method::POST, "/v1/images", "p", "member")
            .json(&json!({"name": "big", "properties": {"big_prop": over}}))
            .send()
            .await?;
        expect_error(res, 400, "too long").await?;
    }
    Ok(())
}

/// A statement that would run for ever is stopped by the statement timeout on every backend:
/// the request gets the 503 kind with a message naming the setting, and the connection (or
/// its replacement) serves the next request. Without the timeout the runaway statement never
/// ends; the test's own deadline then fails it instead of hanging.
#[actix_web::test]
async fn a_runaway_statement_is_stopped_by_the_statement_timeout() -> Result<()> {
    use diesel::RunQueryDsl as _;
    use glance_model::ErrorKind;
    use glance_registry::db::{Database, DbUrl, PoolOptions, migrate};

    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    for b in backends() {
        let test_db = crate::harness::TestDb::new(b)?;
        let url = DbUrl::parse(&test_db.url)?;
        migrate::sync(&mut glance_registry::db::DbConnection::open(&url)?)?;
        let db = Database::connect(
            &url,
            PoolOptions {
                max_size: 1,
                statement_timeout: Some(Duration::from_secs(1)),
                ..PoolOptions::default()
            },
        )?;
        // Counts rows of an endless recursion: never finishes on its own.
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                       SELECT COUNT(*) AS n FROM c";
        let mariadb = b == "mysql";
        let run = db.run(move |conn| {
            if mariadb {
                // MariaDB stops a recursion after 1,000 rounds by default.
                use diesel::connection::SimpleConnection as _;
                conn.batch_execute("SET SESSION max_recursive_iterations = 4294967295")?;
            }
            Ok(diesel::sql_query(endless).load::<N>(conn)?)
        });
        let err = match tokio::time::timeout(Duration::from_secs(20), run).await {
            Err(_) => anyhow::bail!("{b}: the statement was not stopped within 20 s"),
            Ok(Ok(rows)) => anyhow::bail!("{b}: an endless statement returned {} rows", rows.len()),
            Ok(Err(e)) => e,
        };
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{b}: {err:?}");
        assert!(
            err.public_message().contains("statement_timeout"),
            "{b}: {}",
            err.public_message()
        );
        let one = db
            .run(|conn| Ok(diesel::sql_query("SELECT COUNT(*) AS n FROM images").load::<N>(conn)?))
            .await?;
        assert_eq!(one.first().map(|r| r.n), Some(0), "{b}");
    }
    Ok(())
}

/// An overlong request line is a 414 and an oversized PATCH body a 413, each with a JSON body
/// (Glance answers 414 for an overlong URI), and the api keeps serving.
#[actix_web::test]
async fn an_overlong_query_is_414_and_an_oversized_patch_413_both_json() -> Result<()> {
    let cloud = TestCloud::start().await?;
    // reqwest will not send a URI this long; a client that does gets 414 with a JSON body.
    let raw = raw_exchange(
        cloud.base.trim_start_matches("http://"),
        &format!(
            "GET /v2/images?name={} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n",
            "x".repeat(100_000)
        ),
    )
    .await?;
    assert!(
        raw.starts_with("HTTP/1.1 414 "),
        "{}",
        &raw[..raw.len().min(200)]
    );
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let body: serde_json::Value = serde_json::from_str(body)?;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("request line is longer"),
        "{body}"
    );
    assert_eq!(body["code"], "414 URI Too Long");

    let img = cloud.create(json!({"name": "p"})).await?;
    let id = img["id"].as_str().unwrap();
    let huge = json!([{"op": "add", "path": "/k", "value": "v".repeat(300 << 10)}]).to_string();
    let res = cloud
        .req(Method::PATCH, &format!("/v2/images/{id}"))
        .header(
            "content-type",
            "application/openstack-images-v2.1-json-patch",
        )
        .body(huge)
        .send()
        .await?;
    expect_error(res, 413, "too large").await?;
    assert_eq!(cloud.show(id).await?["name"], "p");

    // The registry's own routes answer JSON too: a body over its 1 MiB limit is a 413.
    let registry = TestRegistry::start("sqlite").await?;
    let res = registry
        .req(Method::POST, "/v1/images", "p", "member")
        .header("content-type", "application/json")
        .body(json!({"name": "x".repeat(2 << 20)}).to_string())
        .send()
        .await?;
    expect_error(res, 413, "too large").await?;
    Ok(())
}

/// A row holding a value no writer of the registry makes (here an unknown status) is stored
/// data that cannot be read: the request gets a 500 with the registry's generic JSON message
/// (the value stays in its log), the row is left as it was, and other images are still served.
#[actix_web::test]
async fn an_unreadable_row_is_a_500_that_changes_nothing() -> Result<()> {
    use glance_registry::db::{DbConnection, DbUrl};
    for b in backends() {
        let registry = TestRegistry::start(b).await?;
        let bad = registry.create("proj-a", json!({"name": "bad"})).await?;
        let good = registry.create("proj-a", json!({"name": "good"})).await?;
        let (bad, good) = (
            bad["id"].as_str().unwrap_or_default().to_string(),
            good["id"].as_str().unwrap_or_default().to_string(),
        );
        let mut conn = DbConnection::open(&DbUrl::parse(&registry.db.url)?)?;
        let corrupt = format!("UPDATE images SET status = 'melted' WHERE id = '{bad}'");
        diesel::RunQueryDsl::execute(diesel::sql_query(corrupt), &mut conn)?;
        let res = registry
            .req(
                Method::PATCH,
                &format!("/v1/images/{bad}"),
                "proj-a",
                "member",
            )
            .json(&json!({"name": "renamed"}))
            .send()
            .await?;
        let body = expect_error(res, 500, "internal error").await?;
        assert!(!body.to_string().contains("melted"), "{b}: {body}");
        let kept = crate::harness::first_n(
            &mut conn,
            &format!("SELECT COUNT(*) AS n FROM images WHERE id = '{bad}' AND name = 'bad'"),
        )?;
        assert_eq!(kept, Some(1), "{b}: the unreadable row was changed");
        let res = registry
            .req(
                Method::GET,
                &format!("/v1/images/{good}"),
                "proj-a",
                "member",
            )
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}");
        registry.stop().await;
    }
    Ok(())
}
