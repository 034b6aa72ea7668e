//! Starting the real release daemons for a run: a temporary directory on the real disk with
//! both config files, the SQLite file (or a fresh MariaDB/MySQL database) and the image
//! directory; `glance-manage db_sync`; then glance-registry and glance-api as child
//! processes on free loopback ports, logging to files. Also reads their RSS from /proc.
//! Everything it creates is removed on drop (children killed, database dropped).

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use diesel::connection::SimpleConnection as _;
use glance_registry::db::{DbConnection, DbUrl};
use hyper::{Method, StatusCode};

use crate::load::{Client, Target, empty};

/// Which database the registry gets.
#[derive(Debug, Clone)]
pub enum Db {
    /// A SQLite file in the run directory: empty, or a copy of this (pre-seeded) file.
    Sqlite(Option<PathBuf>),
    /// A fresh database on this MariaDB/MySQL server URL, or this existing (pre-seeded)
    /// database on it, which is kept afterwards.
    Mysql(String, Option<String>),
}

impl Db {
    /// Name in the report.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Mysql(..) => "mariadb",
        }
    }

    /// Whether the run starts from a database seeded beforehand (`scripts/bench-seed.sh`),
    /// whose images count towards `--images`.
    pub fn preseeded(&self) -> bool {
        matches!(self, Self::Sqlite(Some(_)) | Self::Mysql(_, Some(_)))
    }
}

/// Text appended to the generated config files.
#[derive(Debug, Clone, Default)]
pub struct ExtraConf {
    /// Appended to glance-api.conf.
    pub api: String,
    /// Appended to glance-registry.conf.
    pub registry: String,
}

/// One started daemon.
pub struct Daemon {
    /// `glance-api` or `glance-registry`.
    pub name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Both daemons on one database.
pub struct Cloud {
    /// glance-api's address.
    pub api: Target,
    /// The daemons, registry first.
    pub daemons: Vec<Daemon>,
    drop_db: Option<(String, String)>,
    db_url: String,
    dir: tempfile::TempDir,
}

impl Cloud {
    /// The file store's directory: an image's data is the file named by its id.
    pub fn images_dir(&self) -> PathBuf {
        self.dir.path().join("images")
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn bin(bin_dir: &Path, name: &str) -> Result<PathBuf> {
    let p = bin_dir.join(name);
    anyhow::ensure!(
        p.exists(),
        "{} not found; build it first: cargo build --release -p glance-registry -p glance-api --bins \
         (or run scripts/bench.sh)",
        p.display()
    );
    Ok(p)
}

/// Creates (or recreates) `glance_bench_<pid>` on the server and returns its URL plus what
/// drops it afterwards.
fn mysql_database(server: &str) -> Result<(String, (String, String))> {
    let mut admin = url::Url::parse(server).with_context(|| format!("bad --mysql-url {server}"))?;
    if admin.path().len() <= 1 {
        admin.set_path("/mysql");
    }
    let name = format!("glance_bench_{}", std::process::id());
    let mut conn = DbConnection::open(&DbUrl::parse(admin.as_str())?)
        .with_context(|| format!("cannot connect to {server}"))?;
    conn.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name} CHARACTER SET utf8mb4"
    ))?;
    let mut db = admin.clone();
    db.set_path(&format!("/{name}"));
    Ok((
        db.to_string(),
        (admin.to_string(), format!("DROP DATABASE IF EXISTS {name}")),
    ))
}

impl Cloud {
    /// Starts glance-registry and glance-api from `bin_dir` with files under `workdir`.
    pub async fn start(
        bin_dir: &Path,
        workdir: &Path,
        db: &Db,
        log_level: &str,
        extra: &ExtraConf,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("glance-bench-")
            .tempdir_in(workdir)
            .with_context(|| format!("cannot create a directory in {}", workdir.display()))?;
        let images = dir.path().join("images");
        std::fs::create_dir_all(&images)?;
        let (url, drop_db) = match db {
            Db::Sqlite(from) => {
                let file = dir.path().join("glance.sqlite");
                // A copy, so that every run starts from the same seeded file and its
                // db_sync (which may add this build's migrations) leaves the file as it was.
                if let Some(from) = from {
                    std::fs::copy(from, &file)
                        .with_context(|| format!("cannot copy {}", from.display()))?;
                }
                (format!("sqlite:///{}", file.display()), None)
            }
            Db::Mysql(server, Some(name)) => {
                let mut u =
                    url::Url::parse(server).with_context(|| format!("bad --mysql-url {server}"))?;
                u.set_path(&format!("/{name}"));
                (u.to_string(), None)
            }
            Db::Mysql(server, None) => {
                let (u, d) = mysql_database(server)?;
                (u, Some(d))
            }
        };
        let (rport, aport) = (free_port()?, free_port()?);
        let reg_conf = dir.path().join("glance-registry.conf");
        std::fs::write(
            &reg_conf,
            format!(
                "[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {rport}\n[database]\nconnection = {url}\n{}\n",
                extra.registry
            ),
        )?;
        let api_conf = dir.path().join("glance-api.conf");
        std::fs::write(
            &api_conf,
            format!(
                "[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {aport}\nregistry_host = 127.0.0.1\n\
                 registry_port = {rport}\n[glance_store]\nstores = file\ndefault_store = file\n\
                 filesystem_store_datadir = {}/\n{}\n",
                images.display(),
                extra.api
            ),
        )?;
        let out = Command::new(bin(bin_dir, "glance-manage")?)
            .arg("--config-file")
            .arg(&reg_conf)
            .arg("db_sync")
            .output()?;
        if !out.status.success() {
            bail!(
                "glance-manage db_sync failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut cloud = Self {
            api: Target::local(([127, 0, 0, 1], aport).into()),
            daemons: Vec::new(),
            drop_db,
            db_url: url,
            dir,
        };
        let logs = cloud.dir.path().to_path_buf();
        let spawn = |name: &'static str, conf: &Path| -> Result<Daemon> {
            let log = logs.join(format!("{name}.log"));
            let out = File::create(&log)?;
            let child = Command::new(bin(bin_dir, name)?)
                .arg("--config-file")
                .arg(conf)
                .env("RUST_LOG", log_level)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .with_context(|| format!("cannot start {name}"))?;
            Ok(Daemon { name, child, log })
        };
        cloud.daemons.push(spawn("glance-registry", &reg_conf)?);
        cloud
            .wait_healthy(0, &Target::local(([127, 0, 0, 1], rport).into()))
            .await?;
        cloud.daemons.push(spawn("glance-api", &api_conf)?);
        let api = cloud.api.clone();
        cloud.wait_healthy(1, &api).await?;
        Ok(cloud)
    }

    /// The ids of the live images in the registry's database, oldest first: the catalogue
    /// of a pre-seeded database, read in SQL (paging 200,000 images through the API takes
    /// minutes, and is not what is measured).
    pub fn image_ids(&self) -> Result<Vec<String>> {
        use diesel::prelude::*;
        use glance_registry::db::schema::images;
        let mut conn = DbConnection::open(&DbUrl::parse(&self.db_url)?)?;
        Ok(images::table
            .filter(images::deleted.eq(false))
            .order((images::created_at, images::id))
            .select(images::id)
            .load::<String>(&mut conn)?)
    }

    /// Copies the daemons' logs to `dest_dir` (called when a run fails, before the run
    /// directory is removed) and returns where they went.
    pub fn keep_logs(&self, dest_dir: &Path, label: &str) -> Vec<PathBuf> {
        let mut kept = Vec::new();
        for d in &self.daemons {
            let dest = dest_dir.join(format!(
                "glance-bench-{}-{label}-{}.log",
                std::process::id(),
                d.name
            ));
            if std::fs::copy(&d.log, &dest).is_ok() {
                kept.push(dest);
            }
        }
        kept
    }

    async fn wait_healthy(&mut self, which: usize, target: &Target) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut client = Client::new(target);
        loop {
            if let Ok((StatusCode::OK, _)) =
                client.call(Method::GET, "/healthcheck", &[], empty()).await
            {
                return Ok(());
            }
            let d = &mut self.daemons[which];
            if let Some(status) = d.child.try_wait()? {
                let log = std::fs::read_to_string(&d.log).unwrap_or_default();
                bail!("{} exited with {status}:\n{log}", d.name);
            }
            if Instant::now() > deadline {
                bail!("{} did not answer /healthcheck within 30 s", d.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        for d in self.daemons.iter_mut().rev() {
            // Only the children this run started, by their own handle.
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
        if let Some((admin, sql)) = &self.drop_db
            && let Err(e) = DbUrl::parse(admin)
                .map_err(anyhow::Error::from)
                .and_then(|u| Ok(DbConnection::open(&u)?))
                .and_then(|mut c| Ok(c.batch_execute(sql)?))
        {
            eprintln!("warning: could not drop the bench database: {e:#}");
        }
    }
}

/// A `Vm*:` line of /proc/<pid>/status in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// RSS of one process over one sampling window, KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct RssWindow {
    /// Just before the window.
    pub start: u64,
    /// Highest sample.
    pub peak: u64,
    /// Just after the window.
    pub end: u64,
}

/// Samples VmRSS of some processes every 50 ms on a thread until stopped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<RssWindow>>,
}

impl RssSampler {
    /// Starts sampling `pids`.
    pub fn start(pids: Vec<u32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let read = |p: u32| proc_status_kib(p, "VmRSS:").unwrap_or(0);
            let mut w: Vec<RssWindow> = pids
                .iter()
                .map(|&p| {
                    let r = read(p);
                    RssWindow {
                        start: r,
                        peak: r,
                        end: r,
                    }
                })
                .collect();
            loop {
                for (i, &p) in pids.iter().enumerate() {
                    let r = read(p);
                    w[i].peak = w[i].peak.max(r);
                    w[i].end = r;
                }
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            w
        });
        Self { stop, handle }
    }

    /// Stops and returns one window per pid, in the order given.
    pub fn finish(self) -> Vec<RssWindow> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}
