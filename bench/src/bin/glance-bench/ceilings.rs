//! This machine's ceilings, measured in the same run so each figure can be read as a
//! fraction of what the box can do at all: MD5 ∥ SHA-512 over in-memory bytes (the
//! store's own hashers, one thread each), an fsync'd sequential write to the image disk
//! (buffered, and direct as the file store writes),
//! both at once (what an upload must do), a sendfile(2) HTTP download over loopback, and a
//! trivial actix-web handler's request rate. Needs no unsafe: sendfile comes from rustix.

use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use glance_store::HashAlgo;

use crate::transfer::{CHUNK, RandomData};

fn hash_all(algo: HashAlgo, data: &RandomData, total: u64) -> Duration {
    let t = Instant::now();
    let mut h = algo.hasher();
    for i in 0..total.div_ceil(CHUNK as u64) {
        h.update(data.chunk(i as usize));
    }
    // The digest itself is not needed; finishing keeps the work from being optimised away.
    let _ = std::hint::black_box(h.finish_hex());
    t.elapsed()
}

/// Writes `total` bytes in 1 MiB writes, then fsync. `direct`: with `O_DIRECT`, each chunk
/// copied into an aligned buffer first (as the file store does); fails where the file system
/// refuses direct I/O.
fn write_all(path: &Path, data: &RandomData, total: u64, direct: bool) -> Result<Duration> {
    let _ = std::fs::remove_file(path);
    let t = Instant::now();
    let mut f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    if direct {
        let fl = rustix::fs::fcntl_getfl(&f)?;
        rustix::fs::fcntl_setfl(&f, fl | rustix::fs::OFlags::DIRECT)
            .context("this file system refuses O_DIRECT")?;
        let mut stage = vec![0u8; CHUNK + 4096];
        let at = stage.as_ptr().align_offset(4096);
        for i in 0..total.div_ceil(CHUNK as u64) {
            let chunk = data.chunk(i as usize);
            stage[at..at + chunk.len()].copy_from_slice(chunk);
            f.write_all(&stage[at..at + chunk.len()])?;
        }
    } else {
        for i in 0..total.div_ceil(CHUNK as u64) {
            f.write_all(data.chunk(i as usize))?;
        }
    }
    f.sync_all()?;
    Ok(t.elapsed())
}

/// MD5 on one thread and SHA-512 on another over the same `total` bytes; MB/s of the pair.
pub fn hashing(data: &RandomData, total: u64) -> f64 {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| hash_all(HashAlgo::Md5, data, total));
        let b = s.spawn(|| hash_all(HashAlgo::Sha512, data, total));
        (a.join(), b.join())
    });
    let slowest = a.unwrap_or_default().max(b.unwrap_or_default());
    total as f64 / slowest.as_secs_f64() / 1e6
}

/// Sequential 1 MiB writes of `total` bytes then fsync, to `path` (buffered, or `direct`);
/// MB/s.
pub fn fsync_write(path: &Path, data: &RandomData, total: u64, direct: bool) -> Result<f64> {
    let d = write_all(path, data, total, direct)?;
    Ok(total as f64 / d.as_secs_f64() / 1e6)
}

/// MD5, SHA-512 and the fsync'd write (buffered, or `direct`) of the same bytes, each on its
/// own thread at once — the work an upload has to do, without HTTP or the registry; MB/s.
pub fn hashing_and_write(path: &Path, data: &RandomData, total: u64, direct: bool) -> Result<f64> {
    let t = Instant::now();
    let w = std::thread::scope(|s| {
        let a = s.spawn(|| hash_all(HashAlgo::Md5, data, total));
        let b = s.spawn(|| hash_all(HashAlgo::Sha512, data, total));
        let w = write_all(path, data, total, direct);
        let _ = (a.join(), b.join());
        w
    });
    w?;
    Ok(total as f64 / t.elapsed().as_secs_f64() / 1e6)
}

/// A minimal HTTP/1.1 server sending files with sendfile(2) from the page cache: the whole
/// of one file for every request, or (serving a directory) the file named by the request
/// path's last segment. `Range: bytes=N-` gets the bytes from N on, as a 206.
pub struct SendfileServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl SendfileServer {
    /// Listens on a loopback port and serves `path`, a file or a directory of files.
    pub fn start(path: PathBuf) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let path = path.clone();
                std::thread::spawn(move || {
                    if let Err(e) = serve_conn(conn, &path) {
                        eprintln!("sendfile server: {e}");
                    }
                });
            }
        });
        Ok(Self { addr, stop })
    }
}

impl Drop for SendfileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// The file a request path names under `root`, and where a `Range: bytes=N-` starts.
struct Wanted {
    file: PathBuf,
    from: Option<u64>,
}

fn read_head(reader: &mut impl BufRead, root: &Path) -> std::io::Result<Option<Wanted>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let name = target.rsplit('/').next().unwrap_or_default();
    let file = if root.is_dir() && !name.is_empty() && name != "." && name != ".." {
        root.join(name)
    } else {
        root.to_path_buf()
    };
    let mut from = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            from = v
                .trim()
                .strip_prefix("bytes=")
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse().ok());
        }
    }
    Ok(Some(Wanted { file, from }))
}

fn serve_conn(mut sock: TcpStream, root: &Path) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let mut reader = BufReader::new(sock.try_clone()?);
    while let Some(wanted) = read_head(&mut reader, root)? {
        let file = File::open(&wanted.file)?;
        let size = file.metadata()?.len();
        let mut off = wanted.from.unwrap_or(0).min(size);
        let len = size - off;
        match wanted.from {
            Some(_) => write!(
                sock,
                "HTTP/1.1 206 Partial Content\r\ncontent-type: application/octet-stream\r\n\
                 content-range: bytes {off}-{}/{size}\r\ncontent-length: {len}\r\n\r\n",
                size.saturating_sub(1)
            )?,
            None => write!(
                sock,
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {len}\r\n\r\n"
            )?,
        }
        while off < size {
            let want = usize::try_from(size - off)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            let n = rustix::fs::sendfile(&sock, &file, Some(&mut off), want)
                .map_err(std::io::Error::from)?;
            if n == 0 {
                break;
            }
        }
    }
    Ok(())
}

/// An actix-web server (as many workers as the daemons use) whose one route answers `ok`.
pub struct TrivialServer {
    /// Where it listens.
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl TrivialServer {
    /// Starts it on its own thread and actix system.
    pub fn start(workers: usize) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                use actix_web::{App, HttpServer, web};
                let server =
                    HttpServer::new(|| App::new().route("/", web::get().to(|| async { "ok" })))
                        .workers(workers)
                        .listen(listener);
                match server {
                    Ok(s) => {
                        let s = s.run();
                        let _ = tx.send(Ok(s.handle()));
                        let _ = s.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        });
        let handle = rx.recv()??;
        Ok(Self { addr, handle })
    }

    /// Stops it.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
