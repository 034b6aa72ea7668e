//! Registry listing benchmark (prints figures; asserts nothing about speed).
//!
//! Fills a fresh database with 100,000 images (10 custom properties and 2 tags each, 100
//! owners, a mix of visibilities, 2 members on every shared image), starts glance-registry
//! in-process, and times list requests through its HTTP API: a first page of 25 and a page
//! of 1,000, for an ordinary project and for admin, with a property filter, with a sort, and
//! a second page by marker. Prints p50/p99 and each query's plan.
//!
//! ```sh
//! cargo run --release -p glance-bench --bin registry-bench -- [--images 100000] [--mysql mysql://root@127.0.0.1:3306/mysql] [--postgres URL]
//! ```
//! SQLite always; MariaDB / PostgreSQL when their server URL is given (a fresh database is
//! created on that server and dropped afterwards).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use diesel::connection::{Connection as _, InstrumentationEvent, SimpleConnection};
use glance_model::Context;
use glance_model::filter::{ListQuery, PageLimits, parse_query_string};
use glance_registry::db::{Backend, Database, DbConnection, DbUrl, PoolOptions, images, migrate};
use glance_registry::{AppState, RegistryConfig};

const OWNERS: usize = 100;
const DISTROS: [&str; 10] = [
    "ubuntu", "debian", "centos", "rhel", "fedora", "cirros", "alpine", "arch", "suse", "windows",
];

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<()> {
    let n: usize = arg("--images").map_or(Ok(100_000), |v| v.parse())?;
    let mut targets: Vec<(String, Option<(String, String)>)> = Vec::new();
    let dir = tempfile::tempdir()?;
    targets.push((
        format!("sqlite:///{}/bench.sqlite", dir.path().display()),
        None,
    ));
    for flag in ["--mysql", "--postgres"] {
        if let Some(base) = arg(flag) {
            let name = format!("glance_bench_{}", std::process::id());
            let mut c = DbConnection::open(&DbUrl::parse(&base)?)?;
            c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"
            ))?;
            let mut u = url::Url::parse(&base)?;
            u.set_path(&format!("/{name}"));
            targets.push((
                u.to_string(),
                Some((base, format!("DROP DATABASE IF EXISTS {name}"))),
            ));
        }
    }
    let rt = actix_web::rt::System::new();
    for (url, drop_sql) in targets {
        let r = rt.block_on(bench_one(&url, n));
        if let Some((base, sql)) = drop_sql {
            DbConnection::open(&DbUrl::parse(&base)?)?.batch_execute(&sql)?;
        }
        r?;
    }
    Ok(())
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn fill(conn: &mut DbConnection, n: usize) -> Result<()> {
    let bool_lit = |b: bool| {
        if conn_is_pg(conn) {
            if b { "true" } else { "false" }
        } else if b {
            "1"
        } else {
            "0"
        }
    };
    let (f, t) = (bool_lit(false), bool_lit(true));
    let base = chrono::NaiveDate::from_ymd_opt(2025, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .context("date")?;
    let batch = 500;
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        let (mut imgs, mut props, mut tags, mut members) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for k in i..end {
            let id = format!("{:08x}-0000-4000-8000-{:012x}", k, k);
            let owner = format!("proj-{}", k % OWNERS);
            let vis = match k % 10 {
                0..=3 => "public",
                4..=6 => "private",
                7 | 8 => "shared",
                _ => "community",
            };
            let ts = (base + chrono::Duration::seconds(k as i64))
                .format("%Y-%m-%d %H:%M:%S")
                .to_string();
            imgs.push(format!(
                "({}, {}, {}, 'active', {}, {}, {f}, 'qcow2', 'bare', {}, {}, 0, 0, {f}, {}, '{vis}', {f}, 'sha512', {})",
                sql_str(&id), sql_str(&format!("image-{k:06}")), 1_000_000 + k as i64, sql_str(&ts), sql_str(&ts),
                sql_str(&format!("{k:032x}")), sql_str(&owner), 2_000_000 + k as i64, sql_str(&format!("{k:0128x}"))
            ));
            props.push(format!(
                "({}, 'os_distro', {}, {}, {f})",
                sql_str(&id),
                sql_str(DISTROS[k % 10]),
                sql_str(&ts)
            ));
            for p in 1..10 {
                props.push(format!(
                    "({}, 'prop_{p}', {}, {}, {f})",
                    sql_str(&id),
                    sql_str(&format!("value-{}", k % (p * 7))),
                    sql_str(&ts)
                ));
            }
            for tg in [k % 20, 20 + k % 7] {
                tags.push(format!(
                    "({}, 'tag-{tg}', {}, {f})",
                    sql_str(&id),
                    sql_str(&ts)
                ));
            }
            if vis == "shared" {
                for m in [1, 2] {
                    let status = if m == 1 { "accepted" } else { "pending" };
                    members.push(format!(
                        "({}, 'proj-{}', {f}, '{status}', {}, {f})",
                        sql_str(&id),
                        (k + m * 13) % OWNERS,
                        sql_str(&ts)
                    ));
                }
            }
        }
        let mut sql = format!(
            "INSERT INTO images (id, name, size, status, created_at, updated_at, deleted, disk_format, container_format, checksum, owner, min_disk, min_ram, protected, virtual_size, visibility, os_hidden, os_hash_algo, os_hash_value) VALUES {};\n",
            imgs.join(",")
        );
        sql.push_str(&format!("INSERT INTO image_properties (image_id, name, value, created_at, deleted) VALUES {};\n", props.join(",")));
        sql.push_str(&format!(
            "INSERT INTO image_tags (image_id, value, created_at, deleted) VALUES {};\n",
            tags.join(",")
        ));
        if !members.is_empty() {
            sql.push_str(&format!("INSERT INTO image_members (image_id, member, can_share, status, created_at, deleted) VALUES {};\n", members.join(",")));
        }
        conn.transaction(|c| c.batch_execute(&sql))?;
        i = end;
        let _ = t;
    }
    Ok(())
}

fn conn_is_pg(conn: &DbConnection) -> bool {
    conn.backend() == Backend::Postgres
}

struct Case {
    label: &'static str,
    project: Option<&'static str>,
    query: &'static str,
}

const CASES: &[Case] = &[
    Case {
        label: "project, first page 25",
        project: Some("proj-7"),
        query: "limit=25",
    },
    Case {
        label: "project, page of 1000",
        project: Some("proj-7"),
        query: "limit=1000",
    },
    Case {
        label: "admin, first page 25",
        project: None,
        query: "limit=25",
    },
    Case {
        label: "admin, page of 1000",
        project: None,
        query: "limit=1000",
    },
    Case {
        label: "project, os_distro=cirros, 25",
        project: Some("proj-7"),
        query: "limit=25&os_distro=cirros",
    },
    Case {
        label: "admin, os_distro=cirros, 25",
        project: None,
        query: "limit=25&os_distro=cirros",
    },
    Case {
        label: "project, sort=name:asc, 25",
        project: Some("proj-7"),
        query: "limit=25&sort=name:asc",
    },
    Case {
        label: "project, tag=tag-3, 25",
        project: Some("proj-7"),
        query: "limit=25&tag=tag-3",
    },
];

fn ctx_for(project: Option<&str>) -> Context {
    match project {
        Some(p) => Context::project(p, &["member", "reader"]),
        None => Context::unauthenticated_admin("bench"),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn bench_one(url: &str, n: usize) -> Result<()> {
    let dburl = DbUrl::parse(url)?;
    let db = Database::connect(&dburl, PoolOptions::default())?;
    {
        let mut conn = db.get()?;
        migrate::sync(&mut conn)?;
        let t = Instant::now();
        fill(&mut conn, n)?;
        let analyze = match dburl.backend {
            Backend::Sqlite => "ANALYZE",
            Backend::Mysql => "ANALYZE TABLE images, image_properties, image_tags, image_members",
            Backend::Postgres => "ANALYZE",
        };
        conn.batch_execute(analyze)?;
        println!(
            "\n## {} — {n} images filled in {:.1} s",
            dburl.backend.name(),
            t.elapsed().as_secs_f64()
        );
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let state = AppState::new(
        RegistryConfig {
            workers: 2,
            ..RegistryConfig::default()
        },
        db.clone(),
        None,
    );
    let server = glance_registry::serve(listener, state)?;
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let http = reqwest::Client::new();
    println!("| case | rows | p50 ms | p99 ms | requests |");
    println!("|---|---|---|---|---|");
    for case in CASES {
        let reps = if case.query.contains("1000") { 30 } else { 200 };
        let mut times = Vec::with_capacity(reps);
        let mut rows = 0;
        for _ in 0..reps {
            let mut req = http.get(format!("{base}/v1/images?{}", case.query));
            req = match case.project {
                Some(p) => req
                    .header("x-project-id", p)
                    .header("x-roles", "member,reader"),
                None => req.header("x-glance-is-admin", "true"),
            };
            let t = Instant::now();
            let res = req.send().await?;
            anyhow::ensure!(res.status() == 200, "{}: {}", case.label, res.status());
            let body: serde_json::Value = res.json().await?;
            times.push(t.elapsed());
            rows = body["images"].as_array().map_or(0, Vec::len);
        }
        times.sort();
        println!(
            "| {} | {rows} | {:.2} | {:.2} | {reps} |",
            case.label,
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3
        );
    }
    // Second page by marker, the common pagination path.
    let first: serde_json::Value = http
        .get(format!("{base}/v1/images?limit=25"))
        .header("x-project-id", "proj-7")
        .header("x-roles", "reader")
        .send()
        .await?
        .json()
        .await?;
    let marker = first["images"][24]["id"]
        .as_str()
        .context("no 25th image")?
        .to_string();
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let res = http
            .get(format!("{base}/v1/images?limit=25&marker={marker}"))
            .header("x-project-id", "proj-7")
            .header("x-roles", "reader")
            .send()
            .await?;
        anyhow::ensure!(res.status() == 200);
        let _ = res.bytes().await?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "| project, second page by marker, 25 | 25 | {:.2} | {:.2} | 200 |",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3
    );
    handle.stop(true).await;

    println!("\nQuery plans of the list query (first statement of each case):");
    for case in CASES.iter().filter(|c| {
        c.query == "limit=25" || c.query.contains("os_distro") || c.query.contains("sort")
    }) {
        let sql = capture_list_sql(&db, case)?;
        println!("\n### {}\n```\n{}\n```", case.label, explain(&db, &sql)?);
    }
    Ok(())
}

/// Runs the registry's own list query with Diesel instrumentation on, and returns its SQL
/// with the bind values inlined, ready for EXPLAIN.
fn capture_list_sql(db: &Database, case: &Case) -> Result<String> {
    let captured: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = captured.clone();
    let mut conn = db.get()?;
    conn.set_instrumentation(move |ev: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = ev
            && let Ok(mut v) = sink.lock()
        {
            v.push(format!("{query}"));
        }
    });
    let pairs = parse_query_string(case.query)?;
    let q = ListQuery::parse(&pairs, PageLimits::default())?;
    images::list(&mut conn, &ctx_for(case.project), &q)?;
    conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
    let all = captured
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let stmt = all
        .into_iter()
        .find(|s| s.contains("FROM `images`") || s.contains("FROM \"images\""))
        .context("list query not captured")?;
    Ok(inline_binds(&stmt))
}

/// Turns Diesel's `SQL -- binds: [a, b]` debug form into plain SQL.
fn inline_binds(debug: &str) -> String {
    let (sql, binds) = debug.split_once(" -- binds: ").unwrap_or((debug, "[]"));
    let binds = binds.trim().trim_start_matches('[').trim_end_matches(']');
    let mut values: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_str = false;
    for ch in binds.chars() {
        match ch {
            '"' => {
                in_str = !in_str;
                cur.push(ch);
            }
            ',' if !in_str => {
                values.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(ch),
        }
    }
    if !cur.trim().is_empty() {
        values.push(cur.trim().to_string());
    }
    let lit = |v: &str| -> String {
        if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            sql_str(s)
        } else if v == "true" {
            "1".into()
        } else if v == "false" {
            "0".into()
        } else if v.starts_with("Some(") {
            v.trim_start_matches("Some(")
                .trim_end_matches(')')
                .to_string()
        } else {
            v.to_string()
        }
    };
    let mut out = String::new();
    let mut vals = values.iter();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' {
            out.push_str(&vals.next().map(|v| lit(v)).unwrap_or_else(|| "?".into()));
        } else if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push_str(&vals.next().map(|v| lit(v)).unwrap_or_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn explain(db: &Database, sql: &str) -> Result<String> {
    use diesel::prelude::*;
    #[derive(diesel::QueryableByName)]
    struct SqlitePlan {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let mut conn = db.get()?;
    match db.url().backend {
        Backend::Sqlite => {
            let rows: Vec<SqlitePlan> =
                diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(&mut **conn)?;
            Ok(rows
                .into_iter()
                .map(|r| r.detail)
                .collect::<Vec<_>>()
                .join("\n"))
        }
        Backend::Mysql => {
            #[derive(diesel::QueryableByName)]
            struct Row {
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
                table: Option<String>,
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
                r#type: Option<String>,
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
                key: Option<String>,
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
                #[diesel(column_name = "Extra")]
                extra: Option<String>,
            }
            let rows: Vec<Row> = diesel::sql_query(format!("EXPLAIN {sql}")).load(&mut **conn)?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    format!(
                        "{:<18} type={:<8} key={:<28} {}",
                        r.table.unwrap_or_default(),
                        r.r#type.unwrap_or_default(),
                        r.key.unwrap_or_default(),
                        r.extra.unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        Backend::Postgres => {
            #[derive(diesel::QueryableByName)]
            struct Row {
                #[diesel(sql_type = diesel::sql_types::Text)]
                #[diesel(column_name = "QUERY PLAN")]
                plan: String,
            }
            let rows: Vec<Row> = diesel::sql_query(format!("EXPLAIN {sql}")).load(&mut **conn)?;
            Ok(rows
                .into_iter()
                .map(|r| r.plan)
                .collect::<Vec<_>>()
                .join("\n"))
        }
    }
}
