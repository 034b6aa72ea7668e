//! Smoke tests of the real `glance-manage` and `glance-registry` binaries: CLI parsing,
//! config files, operator-readable output and non-zero exits with the reason.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn manage(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_glance-manage"))
        .args(args)
        .env_remove("GLANCE_DATABASE_URL")
        .output()
        .expect("run glance-manage");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn db_sync_is_idempotent_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("glance-registry.conf");
    std::fs::write(
        &conf,
        format!(
            "[database]\nconnection = sqlite:///{}/glance.sqlite\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let (ok, out, err) = manage(&["--config-file", conf, "db_sync"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Applied 6 migration(s)"), "{out}");
    let (ok, out, _) = manage(&["--config-file", conf, "db", "sync"]);
    assert!(ok);
    assert!(out.contains("is up to date"), "{out}");
    let (ok, out, _) = manage(&["--config-file", conf, "db", "version"]);
    assert!(ok);
    // Glance's revision first on the line, as Glance prints it, ours beside it.
    assert!(
        out.starts_with("2024_1_contract01 (this project's schema: 20261128000006)\n"),
        "{out}"
    );
    let (ok, out, err) = manage(&[
        "--config-file",
        conf,
        "db",
        "purge",
        "--age_in_days",
        "1",
        "--max_rows",
        "-1",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("Purged 0 row(s)"), "{out}");
    let (ok, _, err) = manage(&["--config-file", conf, "db", "purge", "--max_rows", "0"]);
    assert!(!ok);
    assert!(err.contains("--max_rows"), "{err}");
}

#[test]
fn failures_exit_non_zero_with_the_reason() {
    let (ok, _, err) = manage(&["--database-url", "oracle://u:secret@h/db", "db_sync"]);
    assert!(!ok);
    assert!(
        err.contains("unsupported database scheme 'oracle'"),
        "{err}"
    );
    assert!(!err.contains("secret"), "password leaked: {err}");
    let (ok, _, err) = manage(&[
        "--database-url",
        "mysql+pymysql://glance:pw@127.0.0.1:1/glance",
        "db_sync",
    ]);
    assert!(!ok);
    assert!(err.contains("cannot connect to the database"), "{err}");
    let (ok, _, err) = manage(&["--config-file", "/nonexistent/glance.conf", "db_sync"]);
    assert!(!ok);
    assert!(
        err.contains("config file /nonexistent/glance.conf does not exist"),
        "{err}"
    );
    if let Ok(base) = std::env::var("GLANCE_TEST_MYSQL_URL") {
        let mut u = url::Url::parse(&base).unwrap();
        u.set_username("glance_nobody").unwrap();
        u.set_password(Some("wrong")).unwrap();
        let (ok, _, err) = manage(&["--database-url", u.as_str(), "db_sync"]);
        assert!(!ok);
        assert!(
            err.contains("cannot connect") && err.contains("Access denied"),
            "{err}"
        );
        assert!(!err.contains("wrong@"), "{err}");
    }
}

#[test]
fn registry_binary_serves_healthcheck_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("glance-registry.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nbind_port = {port}\nunknown_thing = 1\n[database]\nconnection = sqlite:///{}/g.sqlite\n[paste_deploy]\nflavor =\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    // Serving an unmigrated database is refused with the fix in the message.
    let out = Command::new(env!("CARGO_BIN_EXE_glance-registry"))
        .args(["--config-file", conf])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("glance-manage db_sync"), "{err}");
    assert!(manage(&["--config-file", conf, "db_sync"]).0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_glance-registry"))
        .args(["--config-file", conf])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answered = false;
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write as _;
            s.write_all(b"GET /healthcheck HTTP/1.0\r\n\r\n").unwrap();
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            assert!(
                buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200"),
                "{buf}"
            );
            assert!(buf.ends_with("OK"), "{buf}");
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    assert!(answered, "registry never answered: {err}");
    assert!(
        err.contains("[DEFAULT] unknown_thing"),
        "unknown option not warned about: {err}"
    );
}

#[test]
fn migration_folders_hold_the_same_names() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let names = |b: &str| {
        let mut v: Vec<String> = std::fs::read_dir(root.join(b))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let sqlite = names("sqlite");
    assert!(sqlite.len() >= 2, "{sqlite:?}");
    assert_eq!(sqlite, names("mysql"));
    assert_eq!(sqlite, names("postgres"));
    for b in ["sqlite", "mysql", "postgres"] {
        for n in &sqlite {
            for f in ["up.sql", "down.sql"] {
                assert!(
                    root.join(b).join(n).join(f).is_file(),
                    "{b}/{n}/{f} missing"
                );
            }
        }
    }
}
