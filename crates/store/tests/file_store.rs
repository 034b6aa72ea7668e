//! The file store on real directories: one-pass digests, caps, no partial file under the final
//! name, cleanup on every failure, datadir choice, permissions, full and read-only disks, the
//! mount guard and stale-partial cleanup.
#![expect(clippy::unwrap_used, reason = "tests")]

pub mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::{Tmpfs, chunked, data, digests, files_in};
use futures_util::StreamExt;
use glance_model::ErrorKind;
use glance_store::config::DataDir;
use glance_store::{ByteRange, FileConfig, FileStore, HashAlgo, StoreError, WriteLimits};

const ID: &str = "5b3f2c1e-8d8a-4c3b-9f58-0b8a2a7c1d11";

fn store_at(dirs: &[(&Path, i64)]) -> FileStore {
    FileStore::new(
        "file",
        FileConfig {
            datadirs: dirs
                .iter()
                .map(|(p, prio)| DataDir {
                    path: p.to_path_buf(),
                    priority: *prio,
                })
                .collect(),
            ..FileConfig::default()
        },
    )
}

async fn read_all(store: &FileStore, path: &Path, range: Option<ByteRange>) -> Vec<u8> {
    let fetched = store.get(path, range).await.unwrap();
    fetched
        .stream
        .map(|c| c.unwrap().to_vec())
        .collect::<Vec<_>>()
        .await
        .concat()
}

#[tokio::test]
async fn one_pass_gives_size_md5_and_sha512_and_ranges_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(&[(dir.path(), 0)]);
    let bytes = data(1, 3 * 1024 * 1024 + 17);
    let w = store
        .add(
            ID,
            chunked(&bytes),
            &WriteLimits::default(),
            HashAlgo::Sha512,
        )
        .await
        .unwrap();
    let (md5, sha) = digests(&bytes);
    assert_eq!(w.size_bytes, bytes.len() as u64);
    assert_eq!(w.checksum, md5);
    assert_eq!(
        (w.os_hash_algo.as_str(), w.os_hash_value.as_str()),
        ("sha512", sha.as_str())
    );
    assert_eq!(w.path, dir.path().join(ID));
    assert_eq!(
        w.location,
        format!("file://{}", dir.path().join(ID).display())
    );
    assert_eq!(
        files_in(dir.path()),
        vec![ID.to_string()],
        "no temporary file left"
    );

    assert_eq!(read_all(&store, &w.path, None).await, bytes);
    let r = |offset, length| Some(ByteRange { offset, length });
    assert_eq!(
        read_all(&store, &w.path, r(100, Some(5000))).await,
        &bytes[100..5100]
    );
    let half = bytes.len() as u64 / 2;
    assert_eq!(
        read_all(&store, &w.path, r(half, None)).await,
        &bytes[half as usize..]
    );
    let err = store
        .get(&w.path, r(bytes.len() as u64, None))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RangeNotSatisfiable);
    assert_eq!(store.size(&w.path).await.unwrap(), bytes.len() as u64);

    let err = store
        .add(
            ID,
            chunked(b"again"),
            &WriteLimits::default(),
            HashAlgo::Sha512,
        )
        .await;
    assert_eq!(
        err.unwrap_err().kind(),
        ErrorKind::Conflict,
        "same id twice"
    );
    store.delete(&w.path).await.unwrap();
    assert_eq!(
        store.delete(&w.path).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(files_in(dir.path()).is_empty());
}

#[tokio::test]
async fn a_file_cut_short_under_a_download_ends_it_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(&[(dir.path(), 0)]);
    let bytes = data(2, 3 * 1024 * 1024);
    let w = store
        .add(
            ID,
            chunked(&bytes),
            &WriteLimits::default(),
            HashAlgo::Sha512,
        )
        .await
        .unwrap();
    let fetched = store.get(&w.path, None).await.unwrap();
    // Only the first chunk is read before the stream is polled; the rest finds the file short.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&w.path)
        .unwrap()
        .set_len(1536 * 1024)
        .unwrap();
    let items: Vec<Result<bytes::Bytes, StoreError>> = fetched.stream.collect().await;
    let got: usize = items
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .map(|b| b.len())
        .sum();
    let err = items
        .iter()
        .find_map(|i| i.as_ref().err())
        .expect("a short file must end the stream with an error, not a short success");
    assert!(got < bytes.len(), "{got} bytes delivered");
    let cause = std::error::Error::source(err)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        cause.contains("ends at byte"),
        "the error says what happened: {err}: {cause}"
    );
}

#[tokio::test]
async fn other_hash_algorithms_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(&[(dir.path(), 0)]);
    let w = store
        .add(
            ID,
            chunked(b"abc"),
            &WriteLimits::default(),
            HashAlgo::Sha256,
        )
        .await
        .unwrap();
    assert_eq!(w.os_hash_algo, "sha256");
    assert_eq!(
        w.os_hash_value,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[tokio::test]
async fn caps_size_mismatch_and_source_errors_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(&[(dir.path(), 0)]);
    let bytes = data(2, 300_000);
    let cases = [
        (
            WriteLimits {
                cap: Some((100_000, "image_size_cap".into())),
                declared_size: None,
            },
            ErrorKind::TooLarge,
            "image_size_cap",
        ),
        (
            WriteLimits {
                cap: None,
                declared_size: Some(1000),
            },
            ErrorKind::BadRequest,
            "larger than the image's declared size",
        ),
        (
            WriteLimits {
                cap: None,
                declared_size: Some(400_000),
            },
            ErrorKind::BadRequest,
            "declared 400000",
        ),
    ];
    for (limits, kind, needle) in cases {
        let err = store
            .add(ID, chunked(&bytes), &limits, HashAlgo::Sha512)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert!(err.to_string().contains(needle), "{err}");
        assert!(
            files_in(dir.path()).is_empty(),
            "left behind: {:?}",
            files_in(dir.path())
        );
    }
    // The client goes away halfway.
    let broken = futures_util::stream::iter(vec![
        Ok(Bytes::from(data(3, 70_000))),
        Err(StoreError::Source("connection reset by peer".into())),
    ]);
    let err = store
        .add(ID, broken, &WriteLimits::default(), HashAlgo::Sha512)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(files_in(dir.path()).is_empty());
}

#[tokio::test]
async fn no_reader_sees_a_partial_image_and_a_dropped_upload_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(store_at(&[(dir.path(), 0)]));
    for finish in [true, false] {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, StoreError>>(1);
        let s = store.clone();
        let task = spawn_add(s, rx);
        tx.send(Ok(Bytes::from(data(4, 100_000)))).await.unwrap();
        let partial = wait_for(|| {
            files_in(dir.path())
                .into_iter()
                .find(|f| f.starts_with(&format!(".{ID}.")))
        })
        .await;
        assert!(partial.ends_with(".partial"));
        assert!(
            !dir.path().join(ID).exists(),
            "final name visible before the end"
        );
        if finish {
            tx.send(Ok(Bytes::from(data(5, 1000)))).await.unwrap();
            drop(tx);
            let w = task.await.unwrap().unwrap();
            assert_eq!(w.size_bytes, 101_000);
            assert_eq!(files_in(dir.path()), vec![ID.to_string()]);
            std::fs::remove_file(dir.path().join(ID)).unwrap();
        } else {
            task.abort();
            let _ = task.await;
            wait_for(|| files_in(dir.path()).is_empty().then_some(())).await;
        }
    }
}

/// Spawns `store.add` fed from `rx` on the runtime.
fn spawn_add(
    store: std::sync::Arc<FileStore>,
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, StoreError>>,
) -> tokio::task::JoinHandle<Result<glance_store::Written, StoreError>> {
    tokio::spawn(async move {
        let stream = tokio_stream(rx);
        store
            .add(ID, stream, &WriteLimits::default(), HashAlgo::Sha512)
            .await
    })
}

fn tokio_stream(
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, StoreError>>,
) -> impl futures_util::Stream<Item = Result<Bytes, StoreError>> + Unpin + Send {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn file_perm_is_applied_and_the_datadir_opened_for_group() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("images");
    let store = FileStore::new(
        "file",
        FileConfig {
            datadirs: vec![DataDir {
                path: datadir.clone(),
                priority: 0,
            }],
            file_perm: Some(0o640),
            ..FileConfig::default()
        },
    );
    assert!(datadir.is_dir(), "datadir created at start-up");
    let mode = std::fs::metadata(&datadir).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o010,
        0o010,
        "group may traverse the datadir: {mode:o}"
    );
    let w = store
        .add(ID, chunked(b"x"), &WriteLimits::default(), HashAlgo::Sha512)
        .await
        .unwrap();
    let mode = std::fs::metadata(&w.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[tokio::test]
async fn reads_are_confined_to_the_datadirs() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(&[(dir.path(), 0)]);
    for p in ["/etc/passwd", &format!("{}/../x", dir.path().display())] {
        let err = store.get(Path::new(p), None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{p}: {err}");
    }
}

#[tokio::test]
async fn datadirs_by_priority_then_free_space() {
    let Some(small) = Tmpfs::mount("size=1m") else {
        return;
    };
    let big = tempfile::tempdir().unwrap();
    let low = tempfile::tempdir().unwrap();
    let store = store_at(&[(&small.path, 200), (big.path(), 100), (low.path(), 0)]);
    let w = store
        .add(
            "a",
            chunked(b"small"),
            &WriteLimits::default(),
            HashAlgo::Sha512,
        )
        .await
        .unwrap();
    assert_eq!(w.path, small.path.join("a"), "highest priority first");
    let limits = WriteLimits {
        cap: None,
        declared_size: Some(2 * 1024 * 1024),
    };
    let bytes = data(6, 2 * 1024 * 1024);
    let w = store
        .add("b", chunked(&bytes), &limits, HashAlgo::Sha512)
        .await
        .unwrap();
    assert_eq!(
        w.path,
        big.path().join("b"),
        "does not fit the 1 MiB dir: next priority"
    );

    // Same priority: the one with the most free space.
    let same = store_at(&[(&small.path, 5), (big.path(), 5)]);
    let w = same
        .add(
            "c",
            chunked(b"x"),
            &WriteLimits::default(),
            HashAlgo::Sha512,
        )
        .await
        .unwrap();
    assert_eq!(w.path, big.path().join("c"));
}

#[tokio::test]
async fn a_full_disk_is_a_413_kind_error_and_leaves_nothing() {
    let Some(fs) = Tmpfs::mount("size=1m") else {
        return;
    };
    let store = store_at(&[(&fs.path, 0)]);
    let bytes = data(7, 3 * 1024 * 1024);
    let err = store
        .add(
            ID,
            chunked(&bytes),
            &WriteLimits::default(),
            HashAlgo::Sha512,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(err.to_string().contains("not enough space"), "{err}");
    assert!(files_in(&fs.path).is_empty(), "{:?}", files_in(&fs.path));
}

#[tokio::test]
async fn a_read_only_datadir_is_a_503_kind_error_reported_by_the_check() {
    let Some(fs) = Tmpfs::mount("size=1m") else {
        return;
    };
    let store = store_at(&[(&fs.path, 0)]);
    assert!(store.check().is_ok());
    fs.make_read_only();
    let why = store.check().unwrap_err();
    assert!(
        why.contains("not writable") && why.contains(&fs.path.display().to_string()),
        "{why}"
    );
    let err = store
        .add(
            ID,
            chunked(b"data"),
            &WriteLimits::default(),
            HashAlgo::Sha512,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("cannot write"), "{err}");
}

#[tokio::test]
async fn the_mount_guard_refuses_an_unmounted_datadir() {
    let plain = tempfile::tempdir().unwrap();
    let guarded = |path: PathBuf| {
        FileStore::new(
            "shared",
            FileConfig {
                datadirs: vec![DataDir { path, priority: 0 }],
                require_mount: true,
                ..FileConfig::default()
            },
        )
    };
    let store = guarded(plain.path().to_path_buf());
    let err = store
        .add(ID, chunked(b"x"), &WriteLimits::default(), HashAlgo::Sha512)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("not a mount point"), "{err}");
    assert!(
        store
            .check()
            .unwrap_err()
            .contains("filesystem_store_require_mount")
    );
    assert!(files_in(plain.path()).is_empty());

    let Some(fs) = Tmpfs::mount("size=1m") else {
        return;
    };
    let store = guarded(fs.path.clone());
    assert!(store.check().is_ok());
    store
        .add(ID, chunked(b"x"), &WriteLimits::default(), HashAlgo::Sha512)
        .await
        .unwrap();
}

#[test]
fn stale_partials_are_removed_by_age_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(
        "file",
        FileConfig {
            datadirs: vec![DataDir {
                path: dir.path().to_path_buf(),
                priority: 0,
            }],
            partial_max_age_secs: 600,
            ..FileConfig::default()
        },
    );
    let old = dir.path().join(format!(".{ID}.dead.partial"));
    let live = dir.path().join(".other.live.partial");
    let image = dir.path().join("old-image");
    for p in [&old, &live, &image] {
        std::fs::write(p, b"x").unwrap();
    }
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for p in [&old, &image] {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
    }
    assert_eq!(store.clean_stale_partials(), 1);
    assert!(!old.exists());
    assert!(live.exists(), "a fresh partial belongs to a live writer");
    assert!(image.exists(), "images are never touched");
}

/// Image data is written with O_DIRECT through an aligned 1 MiB stage, and the tail through
/// the page cache; every size around those boundaries must come back byte for byte, with
/// direct I/O on and off, on a disk directory and (where it can be mounted) on tmpfs.
#[tokio::test]
async fn every_size_is_written_whole_with_and_without_direct_io() {
    const MIB: usize = 1 << 20;
    let disk = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::mount("size=64m");
    if tmpfs.is_none() {
        eprintln!(
            "note: tmpfs cannot be mounted here (not root?); checking the disk directory only"
        );
    }
    let mut dirs = vec![disk.path().to_path_buf()];
    dirs.extend(tmpfs.as_ref().map(|t| t.path.clone()));
    let sizes = [
        1,
        4095,
        4096,
        4097,
        MIB - 1,
        MIB,
        MIB + 1,
        3 * MIB + 3 * 4096 + 5,
    ];
    for dir in &dirs {
        for direct_io in [true, false] {
            let store = FileStore::new(
                "file",
                FileConfig {
                    datadirs: vec![DataDir {
                        path: dir.clone(),
                        priority: 0,
                    }],
                    direct_io,
                    ..FileConfig::default()
                },
            );
            for (i, &len) in sizes.iter().enumerate() {
                let id = format!("5b3f2c1e-8d8a-4c3b-9f58-0b8a2a7c{i:04}");
                let bytes = data(i as u64 + 7, len);
                let w = store
                    .add(
                        &id,
                        chunked(&bytes),
                        &WriteLimits::default(),
                        HashAlgo::Sha512,
                    )
                    .await
                    .unwrap();
                let (md5, sha) = digests(&bytes);
                let at = format!("{} direct_io={direct_io} size={len}", dir.display());
                assert_eq!(w.size_bytes, len as u64, "{at}");
                assert_eq!(
                    (w.checksum.as_str(), w.os_hash_value.as_str()),
                    (md5.as_str(), sha.as_str()),
                    "{at}"
                );
                assert!(
                    std::fs::read(&w.path).unwrap() == bytes,
                    "{at}: file differs"
                );
                assert!(
                    read_all(&store, &w.path, None).await == bytes,
                    "{at}: read back differs"
                );
                store.delete(&w.path).await.unwrap();
            }
            assert!(
                files_in(dir).is_empty(),
                "{}: {:?}",
                dir.display(),
                files_in(dir)
            );
        }
    }
}
