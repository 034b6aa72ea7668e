//! A stand-alone store user for the shared-directory tests: each invocation is one process, as
//! each glance-api node is, working on a datadir other processes use at the same time.
//!
//! ```text
//! store-peer write --dir D --id ID --size N --seed S [--delay-ms M]   # prints JSON
//! store-peer read --dir D --location URL                               # prints JSON
//! store-peer clean --dir D --max-age SECS                              # prints JSON
//! store-peer gen-md5 --size N --seed S                                 # MD5 without any store
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use glance_store::config::DataDir;
use glance_store::{FileConfig, FileStore, HashAlgo, StoreError, WriteLimits};

const CHUNK: usize = 64 * 1024;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn need(name: &str) -> Result<String> {
    arg(name).with_context(|| format!("{name} is required"))
}

/// Deterministic data, generated chunk by chunk so no image is ever held whole.
fn generate(
    seed: u64,
    size: u64,
    delay: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, StoreError>> + Unpin {
    let state = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, size);
    Box::pin(futures_util::stream::unfold(
        state,
        move |(mut x, left)| async move {
            if left == 0 {
                return None;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let n = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            let mut buf = Vec::with_capacity(n + 8);
            while buf.len() < n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.extend_from_slice(&x.to_le_bytes());
            }
            buf.truncate(n);
            Some((Ok(Bytes::from(buf)), (x, left - n as u64)))
        },
    ))
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn store(dir: &str, max_age: u64) -> FileStore {
    FileStore::new(
        "shared",
        FileConfig {
            datadirs: vec![DataDir {
                path: PathBuf::from(dir),
                priority: 0,
            }],
            partial_max_age_secs: max_age,
            ..FileConfig::default()
        },
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    match cmd.as_str() {
        "write" => {
            let s = store(&need("--dir")?, 3600);
            let size: u64 = need("--size")?.parse()?;
            let seed: u64 = need("--seed")?.parse()?;
            let delay = Duration::from_millis(arg("--delay-ms").map_or(Ok(0), |v| v.parse())?);
            let w = s
                .add(
                    &need("--id")?,
                    generate(seed, size, delay),
                    &WriteLimits::default(),
                    HashAlgo::Sha512,
                )
                .await?;
            println!(
                "{}",
                serde_json::json!({
                    "location": w.location, "size": w.size_bytes, "checksum": w.checksum,
                    "os_hash_value": w.os_hash_value, "vm_hwm_kib": vm_hwm_kib(),
                })
            );
        }
        "read" => {
            let s = store(&need("--dir")?, 3600);
            let loc = need("--location")?;
            let path = loc
                .strip_prefix("file://")
                .context("not a file:// location")?;
            let mut f = s.get(std::path::Path::new(path), None).await?;
            let mut h = HashAlgo::Md5.hasher();
            let mut n = 0u64;
            while let Some(c) = f.stream.next().await {
                let c = c?;
                n += c.len() as u64;
                h.update(&c);
            }
            println!(
                "{}",
                serde_json::json!({"size": n, "checksum": h.finish_hex()?})
            );
        }
        "clean" => {
            let s = store(&need("--dir")?, need("--max-age")?.parse()?);
            println!(
                "{}",
                serde_json::json!({"removed": s.clean_stale_partials()})
            );
        }
        "gen-md5" => {
            let mut g = generate(
                need("--seed")?.parse()?,
                need("--size")?.parse()?,
                Duration::ZERO,
            );
            let mut h = HashAlgo::Md5.hasher();
            while let Some(c) = g.next().await {
                h.update(&c?);
            }
            println!("{}", serde_json::json!({"checksum": h.finish_hex()?}));
        }
        other => bail!("unknown command {other:?}; use write, read, clean or gen-md5"),
    }
    Ok(())
}
