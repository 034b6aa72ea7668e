//! The binding against the real single-node Ceph of scripts/ceph.sh (GLANCE_TEST_CEPH names its
//! ceph.json): Glance's rbd layout end to end, a clone made by the rbd tool as Nova makes one,
//! and the errors the store relies on. Without a cluster the tests say why and pass, except
//! under CI=true, where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glance_ceph::{Cluster, ErrorClass, Pool};

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
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).expect("ceph.json");
    let s = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("{k} in {path}"))
            .to_owned()
    };
    Some(Ceph {
        conf: PathBuf::from(s("conf")),
        fsid: s("fsid"),
        pool: s("pool"),
        user: s("user"),
    })
}

/// The rbd tool as client.admin, always with the config file (never a DNS monitor lookup).
fn rbd(conf: &Path, args: &[&str]) -> std::process::Output {
    Command::new("rbd")
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .expect("run rbd")
}

fn pool(c: &Ceph) -> Arc<Pool> {
    let cluster = Cluster::connect(&c.conf, &c.user, &[("client_mount_timeout", "10")])
        .expect("connect as the glance user");
    cluster.pool(&c.pool).expect("open the images pool")
}

#[test]
fn glance_layout_write_snapshot_read_clone_delete() {
    let Some(c) = ceph() else { return };
    let cluster = Cluster::connect(&c.conf, &c.user, &[]).expect("connect");
    assert_eq!(cluster.fsid().expect("fsid"), c.fsid);
    let pool = cluster.pool(&c.pool).expect("pool");
    let id = uuid::Uuid::new_v4().to_string();

    // Written as Glance does when the size is unknown: size 0, grown before each chunk.
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 12_345u32)
        .map(|i| (i * 7 + i / 1000) as u8)
        .collect();
    pool.create_image(&id, 0, 22).expect("create");
    {
        let mut img = pool.open(&id).expect("open for writing");
        let mut offset = 0u64;
        for chunk in data.chunks(1024 * 1024) {
            img.resize(offset + chunk.len() as u64).expect("resize");
            img.write_all_at(offset, chunk).expect("write");
            offset += chunk.len() as u64;
        }
        img.flush().expect("flush");
        assert_eq!(img.size().expect("size"), data.len() as u64);
        img.snap_create("snap").expect("snapshot");
        img.snap_protect("snap").expect("protect");
        assert!(img.snap_is_protected("snap").expect("is protected"));
        // The head changes afterwards; the snapshot must not.
        img.write_all_at(0, b"changed")
            .expect("write after the snapshot");
    }

    let snap = pool
        .open_read_only(&id, Some("snap"))
        .expect("open the snapshot");
    let mut buf = vec![0u8; 100_000];
    let n = snap.read_at(2_000_000, &mut buf).expect("ranged read");
    assert_eq!(&buf[..n], &data[2_000_000..2_100_000]);
    let n = snap.read_at(0, &mut buf[..7]).expect("read");
    assert_eq!(&buf[..n], &data[..7]);
    let n = snap
        .read_at(data.len() as u64 - 5, &mut buf)
        .expect("read at the end");
    assert_eq!(&buf[..n], &data[data.len() - 5..]);
    assert_eq!(
        snap.read_at(data.len() as u64, &mut buf)
            .expect("read past the end"),
        0
    );
    drop(snap);

    // Nova's part: a copy-on-write clone of the protected snapshot, by the rbd tool.
    let parent = format!("{}/{id}@snap", c.pool);
    let child = format!("{}/{id}-disk", c.pool);
    let out = rbd(&c.conf, &["clone", &parent, &child]);
    assert!(
        out.status.success(),
        "rbd clone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut img = pool.open(&id).expect("open");
    let e = img
        .snap_unprotect("snap")
        .expect_err("unprotect while a clone exists");
    assert_eq!(e.class(), ErrorClass::Busy, "{e}");
    assert!(img.snap_is_protected("snap").expect("still protected"));

    let out = rbd(&c.conf, &["rm", "--no-progress", &child]);
    assert!(
        out.status.success(),
        "rbd rm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    img.snap_unprotect("snap").expect("unprotect");
    img.snap_remove("snap").expect("remove the snapshot");
    drop(img);
    pool.remove_image(&id).expect("remove the image");
    let out = rbd(&c.conf, &["ls", &c.pool]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&id),
        "the image is gone"
    );
}

#[test]
fn errors_are_classified() {
    let Some(c) = ceph() else { return };
    let pool = pool(&c);
    let id = uuid::Uuid::new_v4().to_string();
    let e = pool
        .open_read_only(&id, Some("snap"))
        .expect_err("no such image");
    assert_eq!(e.class(), ErrorClass::NotFound, "{e}");
    assert_eq!(
        pool.remove_image(&id).expect_err("no such image").class(),
        ErrorClass::NotFound
    );
    pool.create_image(&id, 4096, 22).expect("create");
    let e = pool.create_image(&id, 4096, 22).expect_err("exists");
    assert_eq!(e.class(), ErrorClass::Exists, "{e}");
    let e = pool
        .open(&id)
        .expect("open")
        .snap_protect("nosuch")
        .expect_err("no such snapshot");
    assert_eq!(e.class(), ErrorClass::NotFound, "{e}");
    assert_eq!(
        pool.create_image("a\0b", 0, 22).expect_err("NUL").class(),
        ErrorClass::Invalid
    );
    pool.remove_image(&id).expect("remove");

    let cluster = Cluster::connect(&c.conf, &c.user, &[]).expect("connect");
    let e = cluster.pool("no-such-pool").expect_err("no such pool");
    assert_eq!(e.class(), ErrorClass::NotFound, "{e}");
    // A cephx user the cluster does not know is refused at connect.
    let e = Cluster::connect(&c.conf, "no-such-user", &[("client_mount_timeout", "5")])
        .expect_err("unknown cephx user");
    assert!(
        matches!(
            e.class(),
            ErrorClass::Denied | ErrorClass::NotFound | ErrorClass::Other
        ),
        "{e}"
    );
}

#[test]
fn a_cluster_that_does_not_answer_times_out() {
    let Some(c) = ceph() else { return };
    // The same config, but the monitor on a port nothing listens on.
    let text = std::fs::read_to_string(&c.conf).expect("conf");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dead: String = text
        .lines()
        .map(|l| {
            if l.starts_with("mon host") {
                format!("mon host = [v2:127.0.0.1:{port}]")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let conf = std::env::temp_dir().join(format!("glance-ceph-dead-{}.conf", uuid::Uuid::new_v4()));
    std::fs::write(&conf, dead).expect("write conf");
    let t = Instant::now();
    let e = Cluster::connect(&conf, &c.user, &[("client_mount_timeout", "2")])
        .expect_err("nobody answers");
    let _ = std::fs::remove_file(&conf);
    assert_eq!(e.class(), ErrorClass::Unreachable, "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
}
