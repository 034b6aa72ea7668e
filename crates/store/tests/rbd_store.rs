//! The rbd store on the real single-node Ceph of scripts/ceph.sh (GLANCE_TEST_CEPH names its
//! ceph.json), as client.glance: Glance's layout (image named by id, grown in chunks, snapshot
//! `snap` protected, location rbd://fsid/pool/id/snap), streamed ranged reads, a Nova-style
//! clone making the delete answer "in use", no partial image after a failed upload, and a
//! cluster that does not answer making the store unavailable while a file store works on.
//! Without a cluster the tests say why and pass, except under CI=true, where they fail.
#![cfg(feature = "rbd")]
#![expect(clippy::unwrap_used, reason = "tests")]

pub mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use common::{chunked, data, digests};
use futures_util::StreamExt;
use glance_config::IniSet;
use glance_model::ErrorKind;
use glance_store::{ByteRange, HashAlgo, StoreError, Stores, StoresConfig, WriteLimits};

struct Ceph {
    conf: PathBuf,
    fsid: String,
    pool: String,
    user: String,
}

fn ceph() -> Option<Ceph> {
    let Ok(path) = std::env::var("GLANCE_TEST_CEPH") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "GLANCE_TEST_CEPH is not set under CI: scripts/test.sh starts the cluster"
        );
        eprintln!("skipped: GLANCE_TEST_CEPH is not set (scripts/ceph.sh start DIR; docs/ceph.md)");
        return None;
    };
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    Some(Ceph {
        conf: PathBuf::from(s("conf")),
        fsid: s("fsid"),
        pool: s("pool"),
        user: s("user"),
    })
}

fn stores(text: &str) -> Stores {
    let mut ini = IniSet::default();
    ini.merge(Path::new("glance-api.conf"), text).unwrap();
    Stores::from_config(&StoresConfig::from_ini(&ini).unwrap()).unwrap()
}

/// rbd store `fast` (default, 1 MiB chunks) and file store `local`.
fn ceph_and_file(c: &Ceph, conf: &Path, dir: &Path) -> Stores {
    stores(&format!(
        "[DEFAULT]\nenabled_backends = fast:rbd, local:file\n\
         [glance_store]\ndefault_backend = fast\n\
         [fast]\nrbd_store_pool = {}\nrbd_store_user = {}\nrbd_store_ceph_conf = {}\n\
         rbd_store_chunk_size = 1\nrados_connect_timeout = 3\n\
         [local]\nfilesystem_store_datadir = {}\n",
        c.pool,
        c.user,
        conf.display(),
        dir.display()
    ))
}

/// The rbd tool as client.admin, always with the config file (never a DNS monitor lookup).
fn rbd(conf: &Path, args: &[&str]) -> String {
    let out = Command::new("rbd")
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rbd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn images_in_pool(c: &Ceph) -> String {
    rbd(&c.conf, &["ls", &c.pool])
}

async fn read(s: &Stores, url: &str, range: Option<ByteRange>) -> Vec<u8> {
    let f = s.get(url, Some("fast"), range, None).await.unwrap();
    f.stream
        .map(|c| c.unwrap().to_vec())
        .collect::<Vec<_>>()
        .await
        .concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbd_layout_ranged_reads_and_delete_refused_while_cloned() {
    let Some(c) = ceph() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = ceph_and_file(&c, &c.conf, dir.path());
    let id = uuid::Uuid::new_v4().to_string();
    // Size unknown: the image grows a chunk at a time and is trimmed to 3.5 MiB + 77 bytes.
    let bytes = data(31, (7 << 19) + 77);
    let added = s
        .add(
            None,
            &id,
            chunked(&bytes),
            &WriteLimits::default(),
            HashAlgo::Sha512,
        )
        .await
        .unwrap();
    assert_eq!(added.store_id, "fast");
    let w = &added.written;
    assert_eq!(w.location, format!("rbd://{}/{}/{id}/snap", c.fsid, c.pool));
    assert_eq!(w.size_bytes, bytes.len() as u64);
    assert_eq!(
        (w.checksum.clone(), w.os_hash_value.clone()),
        digests(&bytes)
    );

    let info = rbd(
        &c.conf,
        &["info", "--format", "json", &format!("{}/{id}", c.pool)],
    );
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["size"].as_u64(), Some(bytes.len() as u64), "{info}");
    assert_eq!(info["order"].as_u64(), Some(20), "1 MiB objects: {info}");
    let snaps = rbd(
        &c.conf,
        &[
            "snap",
            "ls",
            "--format",
            "json",
            &format!("{}/{id}", c.pool),
        ],
    );
    assert!(snaps.contains("\"name\":\"snap\""), "{snaps}");
    let protected = rbd(
        &c.conf,
        &["info", "--format", "json", &format!("{}/{id}@snap", c.pool)],
    );
    assert!(protected.contains("\"protected\":\"true\""), "{protected}");

    assert_eq!(read(&s, &w.location, None).await, bytes);
    let r = |offset, length| Some(ByteRange { offset, length });
    assert_eq!(
        read(&s, &w.location, r(1_000_000, Some(2_500_000))).await,
        &bytes[1_000_000..3_500_000]
    );
    assert_eq!(
        read(&s, &w.location, r(bytes.len() as u64 - 10, None)).await,
        &bytes[bytes.len() - 10..]
    );
    let e = s
        .get(
            &w.location,
            Some("fast"),
            r(bytes.len() as u64 + 1, None),
            None,
        )
        .await;
    assert_eq!(e.err().unwrap().kind(), ErrorKind::RangeNotSatisfiable);
    assert_eq!(s.size(&w.location, None).await.unwrap(), bytes.len() as u64);
    // Found by scheme, pool and fsid without a store hint too.
    let f = s
        .get(&w.location, None, None, Some(bytes.len() as u64))
        .await
        .unwrap();
    assert_eq!(f.total_size, Some(bytes.len() as u64));

    // Nova's part: a copy-on-write clone of the snapshot. The delete is refused, nothing goes.
    let child = format!("{}/{id}-disk", c.pool);
    rbd(
        &c.conf,
        &["clone", &format!("{}/{id}@snap", c.pool), &child],
    );
    let e = s.delete(&w.location, Some("fast")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("in use"), "{e}");
    assert_eq!(read(&s, &w.location, None).await, bytes, "still readable");
    rbd(&c.conf, &["flatten", "--no-progress", &child]);
    rbd(&c.conf, &["rm", "--no-progress", &child]);
    s.delete(&w.location, Some("fast")).await.unwrap();
    assert!(!images_in_pool(&c).contains(&id), "image removed");
    let e = s.delete(&w.location, Some("fast")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = s
        .get(&w.location, Some("fast"), None, None)
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_leaves_no_rbd_image() {
    let Some(c) = ceph() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = ceph_and_file(&c, &c.conf, dir.path());
    let id = uuid::Uuid::new_v4().to_string();
    // 3 MiB arrive, then the client goes away.
    let head = data(5, 3 << 20);
    let body = chunked(&head).chain(futures_util::stream::once(async {
        Err::<Bytes, _>(StoreError::Source("client went away".into()))
    }));
    let e = s
        .add(
            None,
            &id,
            Box::pin(body),
            &WriteLimits::default(),
            HashAlgo::Sha256,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
    assert!(!images_in_pool(&c).contains(&id), "no partial image left");

    // Over the declared size: refused, nothing left either.
    let limits = WriteLimits {
        cap: None,
        declared_size: Some(1000),
    };
    let e = s
        .add(None, &id, chunked(&head), &limits, HashAlgo::Sha256)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
    assert!(!images_in_pool(&c).contains(&id), "no partial image left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceph_that_does_not_answer_makes_only_its_store_unavailable() {
    let Some(c) = ceph() else { return };
    // The cluster's config with the monitor moved to a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut dead = String::new();
    for line in std::fs::read_to_string(&c.conf).unwrap().lines() {
        if line.starts_with("mon host") {
            dead.push_str(&format!("mon host = [v2:127.0.0.1:{port}]\n"));
        } else {
            dead.push_str(line);
            dead.push('\n');
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dead.conf");
    std::fs::write(&conf, dead).unwrap();
    let datadir = dir.path().join("images");
    std::fs::create_dir(&datadir).unwrap();
    let s = ceph_and_file(&c, &conf, &datadir);

    let id = uuid::Uuid::new_v4().to_string();
    let bytes = data(9, 100_000);
    let t = std::time::Instant::now();
    let e = s
        .add(
            None,
            &id,
            chunked(&bytes),
            &WriteLimits::default(),
            HashAlgo::Sha256,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("store fast is unavailable"), "{e}");
    assert!(e.to_string().contains("cannot connect to Ceph"), "{e}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        t.elapsed()
    );
    let added = s
        .add(
            Some("local"),
            &id,
            chunked(&bytes),
            &WriteLimits::default(),
            HashAlgo::Sha256,
        )
        .await
        .unwrap();
    assert_eq!(added.store_id, "local");
    assert_eq!(added.written.size_bytes, bytes.len() as u64);
}
