//! The daemons as real processes (the `api-node` and `registry-node` binaries run the very
//! code of `glance-api` and `glance-registry`), for tests that signal, kill or restart them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// A port free right now on loopback.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One daemon process; killed when dropped. Its stderr goes to `stderr_path`.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub port: u16,
    pub stderr_path: PathBuf,
    _stderr_dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which daemon.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Api,
    Registry,
}

impl Kind {
    fn exe(self) -> &'static str {
        match self {
            Self::Api => env!("CARGO_BIN_EXE_api-node"),
            Self::Registry => env!("CARGO_BIN_EXE_registry-node"),
        }
    }
}

/// Runs a daemon to completion (for start-up failures): exit status and stderr.
pub fn run_to_exit(kind: Kind, args: &[&str]) -> Result<(ExitStatus, String)> {
    let out = Command::new(kind.exe())
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

impl Daemon {
    /// Spawns `kind` with `args` plus `--bind-port <free port>` and waits until
    /// `/healthcheck` answers (any status: the api may be unhealthy on purpose).
    pub async fn start(kind: Kind, args: &[&str]) -> Result<Self> {
        Self::start_on(kind, args, free_port()?).await
    }

    /// As [`Daemon::start`] on a given port (a restart on the same address).
    pub async fn start_on(kind: Kind, args: &[&str], port: u16) -> Result<Self> {
        Self::start_at(kind, args, "127.0.0.1", port).await
    }

    /// As [`Daemon::start`], bound to `host`.
    pub async fn start_at(kind: Kind, args: &[&str], host: &str, port: u16) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let stderr_path = dir.path().join("stderr.log");
        let child = Command::new(kind.exe())
            .args(args)
            .args(["--bind-host", host, "--bind-port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path)?)
            .spawn()?;
        let mut daemon = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            stderr_path,
            _stderr_dir: dir,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = daemon.child.try_wait()? {
                bail!(
                    "{kind:?} exited at start-up ({status}): {}",
                    daemon.stderr()
                );
            }
            let url = format!("{}/healthcheck", daemon.base);
            if http.get(&url).send().await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("{kind:?} did not come up: {}", daemon.stderr());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(daemon)
    }

    /// What the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends a signal by name (`TERM`, `HUP`, `KILL`).
    pub fn signal(&self, name: &str) -> Result<()> {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()?
            .success();
        if !ok {
            bail!("kill -{name} {} failed", self.child.id());
        }
        Ok(())
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() > limit {
                bail!("process {} still running after {limit:?}", self.child.id());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Writes a config file into `dir` and returns its path as a string.
pub fn write_conf(dir: &Path, name: &str, text: &str) -> Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}
