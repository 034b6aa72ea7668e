//! The daemons as operators run them: config files and directories, start-up errors that
//! name the file, section and option, the unimplemented-option warning, the access log, SIGHUP
//! reopening the log file, SIGTERM draining an upload in flight before exiting 0, and client
//! connections kept as `http_keepalive` and `client_socket_timeout` say.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context as _, Result};
use glance_model::wire::HEADER_IS_ADMIN;
use glance_registry::db::{DbConnection, DbUrl, migrate};
use serde_json::{Value, json};

use crate::cloud::{bytes, eventually, md5_hex};
use crate::harness::TestDb;
use crate::procs::{Daemon, Kind, run_to_exit, write_conf};

/// A fresh SQLite database, migrated, and a registry process serving it.
async fn registry(dir: &std::path::Path) -> Result<(TestDb, Daemon)> {
    let db = TestDb::new("sqlite")?;
    migrate::sync(&mut DbConnection::open(&DbUrl::parse(&db.url)?)?)?;
    let conf = write_conf(
        dir,
        "glance-registry.conf",
        &format!("[database]\nconnection = {}\n", db.url),
    )?;
    let reg = Daemon::start(Kind::Registry, &["--config-file", &conf]).await?;
    Ok((db, reg))
}

/// The `x-openstack-request-id` a response carries.
fn request_id(res: &reqwest::Response) -> Result<String> {
    Ok(res
        .headers()
        .get("x-openstack-request-id")
        .context("request id")?
        .to_str()?
        .to_string())
}

/// Creates a raw/bare image through glance-api; its id.
async fn create_raw_image(http: &reqwest::Client, base: &str) -> Result<String> {
    let img: Value = http
        .post(format!("{base}/v2/images"))
        .json(&json!({"disk_format": "raw", "container_format": "bare"}))
        .send()
        .await?
        .json()
        .await?;
    Ok(img["id"].as_str().context("id")?.to_string())
}

#[actix_web::test]
async fn config_files_and_config_dir_later_wins() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = TestDb::new("sqlite")?;
    migrate::sync(&mut DbConnection::open(&DbUrl::parse(&db.url)?)?)?;
    // First file: a database that does not exist; the second file fixes it; the directory
    // sets the page size, and its files apply in name order.
    let a = write_conf(
        dir.path(),
        "a.conf",
        "[database]\nconnection = sqlite:////nonexistent/dir/glance.sqlite\n",
    )?;
    let b = write_conf(
        dir.path(),
        "b.conf",
        &format!("[database]\nconnection = {}\n", db.url),
    )?;
    let d = dir.path().join("glance-registry.conf.d");
    std::fs::create_dir(&d)?;
    write_conf(&d, "10-limits.conf", "[DEFAULT]\nlimit_param_default = 7\n")?;
    write_conf(&d, "20-limits.conf", "[DEFAULT]\nlimit_param_default = 2\n")?;
    write_conf(&d, "ignored.txt", "[DEFAULT]\nlimit_param_default = x\n")?;
    let reg = Daemon::start(
        Kind::Registry,
        &[
            "--config-file",
            &a,
            "--config-file",
            &b,
            "--config-dir",
            &d.display().to_string(),
        ],
    )
    .await?;
    let http = reqwest::Client::new();
    for i in 0..3 {
        let res = http
            .post(format!("{}/v1/images", reg.base))
            .header(HEADER_IS_ADMIN, "true")
            .json(&json!({"name": format!("img-{i}")}))
            .send()
            .await?;
        assert!(res.status().is_success(), "{}", res.text().await?);
    }
    let page: Value = http
        .get(format!("{}/v1/images", reg.base))
        .header(HEADER_IS_ADMIN, "true")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        page["images"].as_array().context("images")?.len(),
        2,
        "limit_param_default from the last file of the config dir: {page}"
    );
    Ok(())
}

#[test]
fn bad_values_stop_start_up_naming_file_section_and_option() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = write_conf(
        dir.path(),
        "glance-api.conf",
        "[DEFAULT]\nimage_size_cap = lots\n",
    )?;
    let (status, err) = run_to_exit(Kind::Api, &["--config-file", &api])?;
    assert!(!status.success());
    assert!(
        err.contains(&api) && err.contains("[DEFAULT] image_size_cap") && err.contains("lots"),
        "{err}"
    );
    let reg = write_conf(
        dir.path(),
        "glance-registry.conf",
        "[database]\nmax_pool_size = many\n",
    )?;
    let (status, err) = run_to_exit(Kind::Registry, &["--config-file", &reg])?;
    assert!(!status.success());
    assert!(
        err.contains(&reg) && err.contains("[database] max_pool_size"),
        "{err}"
    );
    let (status, err) = run_to_exit(
        Kind::Api,
        &["--config-file", "/nonexistent/glance-api.conf"],
    )?;
    assert!(!status.success());
    assert!(err.contains("/nonexistent/glance-api.conf"), "{err}");
    let (status, err) = run_to_exit(Kind::Registry, &["--config-dir", "/nonexistent/conf.d"])?;
    assert!(!status.success());
    assert!(err.contains("/nonexistent/conf.d"), "{err}");
    Ok(())
}

#[actix_web::test]
async fn unimplemented_options_are_warned_about_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_db, reg) = registry(dir.path()).await?;
    let datadir = tempfile::tempdir()?;
    let conf = write_conf(
        dir.path(),
        "glance-api.conf",
        &format!(
            "[DEFAULT]\nenable_v1_api = false\nimage_cache_dir = /var/lib/glance/image-cache\n\
             [glance_store]\nfilesystem_store_datadir = {}\n",
            datadir.path().display()
        ),
    )?;
    let api = Daemon::start(
        Kind::Api,
        &["--config-file", &conf, "--registry-url", &reg.base],
    )
    .await?;
    let err = api.stderr();
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("does not implement"))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("[DEFAULT] enable_v1_api")
            && warnings[0].contains("[DEFAULT] image_cache_dir"),
        "{err}"
    );
    Ok(())
}

#[actix_web::test]
async fn access_log_lines_and_sighup_reopens_the_log_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_db, reg) = registry(dir.path()).await?;
    let datadir = tempfile::tempdir()?;
    let logdir = tempfile::tempdir()?;
    let conf = write_conf(
        dir.path(),
        "glance-api.conf",
        &format!(
            "[DEFAULT]\nlog_dir = {}\n[glance_store]\nfilesystem_store_datadir = {}\n",
            logdir.path().display(),
            datadir.path().display()
        ),
    )?;
    let api = Daemon::start(
        Kind::Api,
        &["--config-file", &conf, "--registry-url", &reg.base],
    )
    .await?;
    let log = logdir.path().join("glance-api.log");
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let http = http.clone();
        let base = api.base.clone();
        async move {
            let res = http.get(format!("{base}{path}")).send().await?;
            let id = request_id(&res)?;
            let status = res.status().as_u16();
            let body = res.bytes().await?;
            Ok::<_, anyhow::Error>((id, status, body.len()))
        }
    };
    // The access line of the request with this id, once it is written.
    let access_line = |id: String| {
        let log = log.clone();
        eventually(10, move || {
            let (log, id) = (log.clone(), id.clone());
            async move {
                Ok(std::fs::read_to_string(&log)?
                    .lines()
                    .find(|l| l.contains(&id))
                    .map(str::to_string))
            }
        })
    };
    let (id, status, len) = get("/v2/images").await?;
    let line = access_line(id.clone()).await?;
    assert!(
        line.contains("\"GET /v2/images HTTP/1.1\"")
            && line.contains(&format!(" {status} {len} "))
            && line.contains("ms"),
        "access line has method, path, status, bytes, duration: {line}"
    );

    // A download's line has the bytes sent, whole and for a range (its body is written by
    // glance-api's own connection handler, not actix-web's).
    let image = create_raw_image(&http, &api.base).await?;
    let data = bytes(7, 3 << 20);
    let put = http
        .put(format!("{}/v2/images/{image}/file", api.base))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await?;
    assert_eq!(put.status(), 204);
    for (range, want) in [(None, &data[..]), (Some("bytes=1000-"), &data[1000..])] {
        let mut req = http.get(format!("{}/v2/images/{image}/file", api.base));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let id = request_id(&res)?;
        let body = res.bytes().await?;
        assert!(body == want, "downloaded bytes differ (range {range:?})");
        let line = access_line(id.clone()).await?;
        assert!(
            line.contains(&format!(" {status} {} ", want.len())),
            "download access line has the bytes sent: {line}"
        );
    }

    // logrotate: move the file away, SIGHUP, and the next lines go to a new file.
    let rotated = logdir.path().join("glance-api.log.1");
    std::fs::rename(&log, &rotated)?;
    api.signal("HUP")?;
    // An images request, not `/versions`: Glance (and so this api) gives that no request id.
    let (id2, _, _) = eventually(10, || async {
        let (id, _, _) = get("/v2/images").await?;
        Ok(log.exists().then_some((id, 0, 0)))
    })
    .await?;
    eventually(10, || async {
        Ok(std::fs::read_to_string(&log)?.contains(&id2).then_some(()))
    })
    .await
    .context("the reopened log file gets new access lines")?;
    assert!(std::fs::read_to_string(&rotated)?.contains(&id));
    assert!(
        api.stderr().is_empty() || !api.stderr().contains("panicked"),
        "{}",
        api.stderr()
    );
    let (_, status, _) = get("/v2/images").await?;
    assert_eq!(status, 200, "the daemon survives SIGHUP");
    Ok(())
}

#[actix_web::test]
async fn sigterm_lets_an_upload_in_flight_finish_then_exits_zero() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_db, reg) = registry(dir.path()).await?;
    let datadir = tempfile::tempdir()?;
    let conf = write_conf(
        dir.path(),
        "glance-api.conf",
        &format!(
            "[DEFAULT]\ngraceful_shutdown_timeout = 30\n\
             [glance_store]\nfilesystem_store_datadir = {}\n",
            datadir.path().display()
        ),
    )?;
    let mut api = Daemon::start(
        Kind::Api,
        &["--config-file", &conf, "--registry-url", &reg.base],
    )
    .await?;
    let http = reqwest::Client::new();
    let id = create_raw_image(&http, &api.base).await?;
    let data = bytes(31, 8 << 20);
    let addr = format!("127.0.0.1:{}", api.port);
    let mut sock = std::net::TcpStream::connect(&addr)?;
    write!(
        sock,
        "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        data.len()
    )?;
    let (first, rest) = data.split_at(data.len() / 2);
    sock.write_all(first)?;
    sock.flush()?;
    eventually(10, || async {
        let v: Value = http
            .get(format!("{}/v1/images/{id}", reg.base))
            .header(HEADER_IS_ADMIN, "true")
            .send()
            .await?
            .json()
            .await?;
        Ok((v["status"] == "saving").then_some(()))
    })
    .await?;

    api.signal("TERM")?;
    // Draining: no new connections are accepted...
    eventually(10, || async {
        Ok(std::net::TcpStream::connect(&addr).is_err().then_some(()))
    })
    .await
    .context("the listener closes on SIGTERM")?;
    assert!(
        api.child.try_wait()?.is_none(),
        "still running while an upload is in flight"
    );
    // ...while the upload in flight completes.
    sock.write_all(rest)?;
    sock.flush()?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut answer = String::new();
    sock.read_to_string(&mut answer)?;
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    let status = api.wait_exit(Duration::from_secs(20))?;
    assert!(status.success(), "exit status after draining: {status}");
    let v: Value = http
        .get(format!("{}/v1/images/{id}", reg.base))
        .header(HEADER_IS_ADMIN, "true")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(v["status"], "active");
    assert_eq!(v["checksum"], md5_hex(&data));
    Ok(())
}

#[actix_web::test]
async fn healthcheck_disable_file_drains_and_detail_names_each_check() -> Result<()> {
    let flag = tempfile::tempdir()?;
    let disable = flag.path().join("healthcheck_disable");
    let c = crate::cloud::TestCloud::with_config(
        "sqlite",
        &format!(
            "[healthcheck]\ndisable_by_file_path = {}\n",
            disable.display()
        ),
    )
    .await?;
    let plain = |path: &str| c.http.get(format!("{}{path}", c.base));
    let res = plain("/healthcheck").send().await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await?, "OK");
    let res = c
        .req(reqwest::Method::GET, "/healthcheck")
        .header("accept", "application/json")
        .send()
        .await?;
    assert_eq!(
        res.json::<Value>().await?,
        json!({"detailed": false, "reasons": ["OK"]})
    );
    let detail: Value = c
        .req(reqwest::Method::GET, "/healthcheck?detailed")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(detail["checks"]["registry"], "OK", "{detail}");
    assert_eq!(detail["checks"]["database"], "OK", "{detail}");
    assert_eq!(detail["checks"]["store:file"], "OK", "{detail}");

    std::fs::write(&disable, "")?;
    let res = plain("/healthcheck").send().await?;
    assert_eq!(res.status(), 503);
    assert_eq!(res.text().await?, "DISABLED BY FILE");
    assert_eq!(
        c.req(reqwest::Method::HEAD, "/healthcheck")
            .send()
            .await?
            .status(),
        503
    );
    // A drained node still serves the requests that reach it.
    assert_eq!(
        c.req(reqwest::Method::GET, "/v2/images")
            .send()
            .await?
            .status(),
        200
    );
    std::fs::remove_file(&disable)?;
    assert_eq!(
        c.req(reqwest::Method::HEAD, "/healthcheck")
            .send()
            .await?
            .status(),
        204
    );
    Ok(())
}

#[test]
fn the_install_guides_config_blocks_load_unchanged() -> Result<()> {
    use glance_api::config::AuthMode;
    use glance_config::IniSet;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/guides");
    let api = IniSet::load(&[dir.join("glance-api.conf")])?;
    let cfg = glance_api::ApiConfig::from_ini(&api)?;
    assert_eq!(cfg.auth, AuthMode::Keystone);
    let k = cfg.keystone.as_ref().context("keystone settings")?;
    assert_eq!(k.auth_url, "http://controller:5000");
    assert_eq!(k.www_authenticate_uri, "http://controller:5000");
    assert_eq!(
        (k.username.as_str(), k.password.as_str()),
        ("glance", "glance123")
    );
    assert_eq!(k.ignored, vec!["[keystone_authtoken] memcached_servers"]);
    assert_eq!(
        cfg.bind_host, "0.0.0.0",
        "with authentication the api listens everywhere"
    );
    assert_eq!(cfg.bind_port, 9292);
    assert_eq!(cfg.stores.default_id, "file");
    assert!(
        cfg.ignored_options
            .iter()
            .any(|o| o == "[database] connection"),
        "glance-api has no database of its own; warned, not fatal: {:?}",
        cfg.ignored_options
    );

    let reg = IniSet::load(&[dir.join("glance-registry.conf")])?;
    let rcfg = glance_registry::RegistryConfig::from_ini(&reg)?;
    assert_eq!(
        rcfg.database_connection,
        "mysql+pymysql://glance:glance123@127.0.0.1/glance"
    );
    assert_eq!(rcfg.flavor, glance_auth::Flavor::Keystone);
    glance_registry::db::DbUrl::parse(&rcfg.database_connection)?;
    Ok(())
}

/// A non-loopback address of this machine, if it has one.
fn outside_address() -> Option<std::net::IpAddr> {
    // Connecting a UDP socket sends nothing; it picks the interface a packet would leave by.
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect("192.0.2.1:9").ok()?;
    let ip = sock.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[actix_web::test]
async fn registry_without_authentication_serves_loopback_only() -> Result<()> {
    let Some(ip) = outside_address() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            anyhow::bail!("this machine has no non-loopback address to test from");
        }
        eprintln!("note: no non-loopback address here; skipping the loopback-only test");
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let db = TestDb::new("sqlite")?;
    migrate::sync(&mut DbConnection::open(&DbUrl::parse(&db.url)?)?)?;
    let conf = write_conf(
        dir.path(),
        "glance-registry.conf",
        &format!("[database]\nconnection = {}\n", db.url),
    )?;
    let port = crate::procs::free_port()?;
    let reg = Daemon::start_at(Kind::Registry, &["--config-file", &conf], "0.0.0.0", port).await?;
    let http = reqwest::Client::new();
    let res = http
        .get(format!("http://{ip}:{port}/v1/images"))
        .send()
        .await?;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await?;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("loopback"),
        "{body}"
    );
    let res = http.get(format!("{}/v1/images", reg.base)).send().await?;
    assert_eq!(res.status(), 200);
    assert!(
        reg.stderr().contains("loopback callers only"),
        "{}",
        reg.stderr()
    );
    Ok(())
}

#[test]
fn a_malformed_policy_file_stops_start_up_naming_the_rule() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let policy = write_conf(
        dir.path(),
        "policy.yaml",
        "\"get_images\": \"role:reader\"\n\"modify_image\": \"role:admin or (role:member\"\n",
    )?;
    let conf = write_conf(
        dir.path(),
        "glance-api.conf",
        &format!(
            "[oslo_policy]\npolicy_file = {policy}\n[glance_store]\nfilesystem_store_datadir = {}\n",
            dir.path().display()
        ),
    )?;
    let (status, err) = run_to_exit(Kind::Api, &["--config-file", &conf])?;
    assert!(!status.success());
    assert!(err.contains("modify_image"), "{err}");
    let conf = write_conf(
        dir.path(),
        "glance-api2.conf",
        "[oslo_policy]\npolicy_file = /nonexistent/custom-policy.yaml\n",
    )?;
    let (status, err) = run_to_exit(Kind::Api, &["--config-file", &conf])?;
    assert!(!status.success());
    assert!(err.contains("/nonexistent/custom-policy.yaml"), "{err}");
    Ok(())
}

/// A `GET /healthcheck` sent on `conn`: the whole answer, lower-cased.
async fn healthcheck_lower(conn: &mut tokio::net::TcpStream) -> Result<String> {
    Ok(crate::cloud::healthcheck_on(conn).await?.to_lowercase())
}

/// Waits up to `limit` for the server to close `conn`; how long that took, `None` if it did not.
async fn closed_within(
    conn: &mut tokio::net::TcpStream,
    limit: Duration,
) -> Result<Option<Duration>> {
    use tokio::io::AsyncReadExt as _;
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    match tokio::time::timeout(limit, conn.read_to_end(&mut rest)).await {
        Ok(read) => {
            read?;
            anyhow::ensure!(rest.is_empty(), "unexpected bytes: {rest:?}");
            Ok(Some(started.elapsed()))
        }
        Err(_) => Ok(None),
    }
}

#[actix_web::test]
async fn client_connections_follow_http_keepalive_and_client_socket_timeout() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_db, reg) = registry(dir.path()).await?;
    let datadir = tempfile::tempdir()?;
    let start = |name: &str, extra: &str| -> Result<String> {
        write_conf(
            dir.path(),
            name,
            &format!(
                "[DEFAULT]\n{extra}\n[glance_store]\nfilesystem_store_datadir = {}\n",
                datadir.path().display()
            ),
        )
    };
    let default = start("default.conf", "")?;
    let short = start("short.conf", "client_socket_timeout = 2")?;
    let off = start("off.conf", "http_keepalive = False")?;
    let mut apis = Vec::new();
    for conf in [&default, &short, &off] {
        apis.push(
            Daemon::start(
                Kind::Api,
                &["--config-file", conf, "--registry-url", &reg.base],
            )
            .await?,
        );
    }
    let connect = |api: &Daemon| tokio::net::TcpStream::connect(("127.0.0.1", api.port));
    let (mut by_default, mut with_short, mut with_off) = (
        connect(&apis[0]).await?,
        connect(&apis[1]).await?,
        connect(&apis[2]).await?,
    );

    // Glance's default (900 s): an idle connection outlives HAProxy's and most clients' own
    // idle limits, here 7 s (actix-web's 5 s used to close it first).
    let head = healthcheck_lower(&mut by_default).await?;
    assert!(!head.contains("connection: close"), "{head}");
    // `client_socket_timeout = 2`: closed after about 2 s idle.
    healthcheck_lower(&mut with_short).await?;
    let waited = closed_within(&mut with_short, Duration::from_secs(6))
        .await?
        .context("client_socket_timeout = 2 did not close the idle connection")?;
    assert!(
        waited >= Duration::from_millis(1500),
        "closed after {waited:?}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let head = healthcheck_lower(&mut by_default).await?;
    assert!(head.starts_with("http/1.1 200"), "{head}");

    // `http_keepalive = False`: the answer says close, and the connection is closed.
    let head = healthcheck_lower(&mut with_off).await?;
    assert!(head.contains("connection: close"), "{head}");
    let waited = closed_within(&mut with_off, Duration::from_secs(2)).await?;
    assert!(
        waited.is_some(),
        "http_keepalive = False left the connection open"
    );
    for api in &apis {
        assert!(
            !api.stderr().contains("does not implement"),
            "{}",
            api.stderr()
        );
    }
    Ok(())
}
