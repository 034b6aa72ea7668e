//! Helpers shared by the store's integration tests: deterministic data, streams, tmpfs mounts.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use glance_store::StoreError;
use md5::Digest as _;

/// Deterministic pseudo-random bytes (xorshift), so a test can regenerate and compare.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `bytes` cut into uneven chunks, as a stream the store accepts.
pub fn chunked(
    bytes: &[u8],
) -> impl futures_util::Stream<Item = Result<Bytes, StoreError>> + Unpin + use<> {
    let mut chunks = Vec::new();
    let mut i = 0;
    let mut n = 1000;
    while i < bytes.len() {
        let end = (i + n).min(bytes.len());
        chunks.push(Ok(Bytes::copy_from_slice(&bytes[i..end])));
        i = end;
        n = n * 7 % 100_003 + 4096;
    }
    futures_util::stream::iter(chunks)
}

/// MD5 and SHA-512 hex of `bytes`, computed in one go for comparison.
pub fn digests(bytes: &[u8]) -> (String, String) {
    let md5 = glance_store::hashing::hex(&md5::Md5::digest(bytes));
    let sha = glance_store::hashing::hex(&sha2::Sha512::digest(bytes));
    (md5, sha)
}

/// Files in `dir` (names), sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A tmpfs mounted for one test (unmounted on drop). Needs root; outside CI a test that
/// cannot mount says why and skips, in CI it fails.
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(options: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).expect("mkdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self { path, _dir: dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                if std::env::var_os("CI").is_some() {
                    panic!("CI must be able to mount a tmpfs (run as root): {why}");
                }
                eprintln!("SKIPPED: cannot mount a tmpfs here ({why}); run as root to test this");
                None
            }
        }
    }

    /// Remounts read-only.
    pub fn make_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "remount read-only failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
