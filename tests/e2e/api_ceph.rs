//! glance-api with the rbd store on the real single-node Ceph of scripts/ceph.sh
//! (GLANCE_TEST_CEPH names its ceph.json), configured as Glance operators configure it:
//! single-store (`stores`, `default_store = rbd`) and multi-store (`enabled_backends` with an
//! rbd and a file store). Uploads, ranged downloads and deletes go through the API and are
//! checked in the pool with the `rbd` tool (always given `-c`, so librados never looks the
//! monitors up in DNS). Without a cluster the tests say why and pass, except under CI=true.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::{TestCloud, bytes, md5_hex};
use crate::harness::backends;

/// The cluster the tests use.
pub struct Ceph {
    pub conf: PathBuf,
    pub fsid: String,
    pub pool: String,
    pub user: String,
}

/// The cluster of GLANCE_TEST_CEPH, or `None` (with the reason printed) when it is not set.
pub fn ceph() -> Option<Ceph> {
    let Ok(path) = std::env::var("GLANCE_TEST_CEPH") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "GLANCE_TEST_CEPH is not set under CI: scripts/test.sh starts the cluster"
        );
        eprintln!("skipped: GLANCE_TEST_CEPH is not set (scripts/ceph.sh start DIR; docs/ceph.md)");
        return None;
    };
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    // In-process glance-apis are never stopped (actix's workers outlive their test), so their
    // librados handles, and an rbd store's thread retrying the removal of a partial image on a
    // cluster a test stopped, are live at exit: about one run in ten aborted there.
    glance_ceph::end_with_exit_status();
    Some(Ceph {
        conf: PathBuf::from(s("conf")),
        fsid: s("fsid"),
        pool: s("pool"),
        user: s("user"),
    })
}

impl Ceph {
    /// The rbd options of a store section on this cluster (1 MiB objects).
    pub fn rbd_options(&self) -> String {
        format!(
            "rbd_store_pool = {}\nrbd_store_user = {}\nrbd_store_ceph_conf = {}\n\
             rbd_store_chunk_size = 1\nrados_connect_timeout = 5\n",
            self.pool,
            self.user,
            self.conf.display()
        )
    }

    /// Multi-store: `fast` (rbd, the default) and `local` (file, in the test's datadir).
    pub fn multi_store(&self, extra: &str) -> String {
        format!(
            "[DEFAULT]\nenabled_backends = fast:rbd, local:file\n{extra}\n\
             [glance_store]\ndefault_backend = fast\n\
             [fast]\n{}store_description = Ceph\n\
             [local]\nfilesystem_store_datadir = {{datadir}}\n",
            self.rbd_options()
        )
    }

    /// The `rbd` tool as client.admin with the cluster's config file; fails on a non-zero exit.
    pub fn rbd(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("rbd")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()?;
        ensure!(
            out.status.success(),
            "rbd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The RBD images in the pool.
    pub fn images(&self) -> Result<Vec<String>> {
        Ok(self
            .rbd(&["ls", &self.pool])?
            .lines()
            .map(str::to_string)
            .collect())
    }
}

/// Creates a raw/bare image and returns its id.
pub async fn new_image(c: &TestCloud) -> Result<String> {
    let img = c
        .create(json!({"name": "ceph", "disk_format": "raw", "container_format": "bare"}))
        .await?;
    Ok(img["id"].as_str().unwrap().to_string())
}

/// Downloads (with an optional Range header) as an admin of project p1 and returns status
/// and body.
pub async fn download(c: &TestCloud, id: &str, range: Option<&str>) -> Result<(u16, Vec<u8>)> {
    let mut req = c.as_(
        "p1",
        "admin,member,reader",
        Method::GET,
        &format!("/v2/images/{id}/file"),
    );
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    Ok((status, res.bytes().await?.to_vec()))
}

/// Single-store rbd as the install guides configure it: upload of 2.5 MiB + 5 bytes (the
/// image grows chunk by chunk), the location in Glance's form, a whole and a ranged download,
/// and a delete that leaves nothing in the pool.
#[actix_web::test]
async fn rbd_single_store_upload_ranged_download_delete() -> Result<()> {
    let Some(ceph) = ceph() else { return Ok(()) };
    for backend in backends() {
        let conf = format!(
            "[DEFAULT]\nshow_image_direct_url = true\n\
             [glance_store]\nstores = rbd, http\ndefault_store = rbd\n{}",
            ceph.rbd_options()
        );
        let c = TestCloud::with_config(backend, &conf).await?;
        let id = new_image(&c).await?;
        let data = bytes(7, (5 << 19) + 5);
        c.upload(&id, data.clone()).await?;
        let img = c.show(&id).await?;
        assert_eq!(img["status"], "active", "{backend}");
        assert_eq!(img["size"], data.len() as u64);
        assert_eq!(img["checksum"], md5_hex(&data));
        assert_eq!(
            img["direct_url"],
            format!("rbd://{}/{}/{id}/snap", ceph.fsid, ceph.pool)
        );
        assert!(ceph.images()?.contains(&id), "{backend}: image in the pool");
        let snaps = ceph.rbd(&["snap", "ls", &format!("{}/{id}", ceph.pool)])?;
        assert!(snaps.contains("snap"), "{snaps}");
        let info = ceph.rbd(&[
            "info",
            "--format",
            "json",
            &format!("{}/{id}@snap", ceph.pool),
        ])?;
        let info: Value = serde_json::from_str(&info)?;
        assert_eq!(info["protected"], "true", "{info}");
        assert_eq!(info["size"], data.len() as u64);

        let (status, body) = download(&c, &id, None).await?;
        assert_eq!(status, 200);
        assert_eq!(md5_hex(&body), md5_hex(&data), "{backend}: whole download");
        // A range across an object boundary (1 MiB objects).
        let (status, body) = download(&c, &id, Some("bytes=1048570-1048585")).await?;
        assert_eq!(status, 206);
        assert_eq!(body, &data[1_048_570..=1_048_585]);
        let (status, body) = download(&c, &id, Some("bytes=-5")).await?;
        assert_eq!(status, 206);
        assert_eq!(body, &data[data.len() - 5..]);
        let (status, _) = download(&c, &id, Some(&format!("bytes={}-", data.len()))).await?;
        assert_eq!(status, 416);

        let res = c
            .req(Method::DELETE, &format!("/v2/images/{id}"))
            .send()
            .await?;
        assert_eq!(res.status(), 204, "{backend}: {}", res.text().await?);
        assert!(
            !ceph.images()?.contains(&id),
            "{backend}: image left in the pool"
        );
    }
    Ok(())
}

/// Multi-store: uploads go to the default rbd store or to the store `X-Image-Meta-Store`
/// names; `/v2/info/stores` and `/v2/info/stores/detail` show both; the rbd store's detail
/// has the cluster's fsid, the pool and the chunk size in bytes; the detail is for admins.
#[actix_web::test]
async fn rbd_multi_store_upload_by_header_and_store_info() -> Result<()> {
    let Some(ceph) = ceph() else { return Ok(()) };
    let c = TestCloud::with_config(
        "sqlite",
        &ceph.multi_store("[paste_deploy]\nflavor = trusted-auth\n"),
    )
    .await?;
    let admin = |m: Method, p: &str| c.as_("p1", "admin,member,reader", m, p);
    let created = |res: reqwest::Response| async move {
        let v: Value = res.json().await?;
        let id = v["id"].as_str().map(str::to_string);
        id.ok_or_else(|| anyhow::anyhow!("create answered {v}"))
    };
    let body = json!({"name": "m", "disk_format": "raw", "container_format": "bare"});
    let on_rbd = created(admin(Method::POST, "/v2/images").json(&body).send().await?).await?;
    let on_file = created(admin(Method::POST, "/v2/images").json(&body).send().await?).await?;
    let data = bytes(9, 300_000);
    for (id, store) in [(&on_rbd, None), (&on_file, Some("local"))] {
        let mut req = admin(Method::PUT, &format!("/v2/images/{id}/file"))
            .header("Content-Type", "application/octet-stream")
            .body(data.clone());
        if let Some(s) = store {
            req = req.header("X-Image-Meta-Store", s);
        }
        let res = req.send().await?;
        assert_eq!(res.status(), 204, "{}", res.text().await?);
    }
    let show = |id: String| {
        let req = admin(Method::GET, &format!("/v2/images/{id}"));
        async move { anyhow::Ok(req.send().await?.json::<Value>().await?) }
    };
    assert_eq!(show(on_rbd.clone()).await?["stores"], "fast");
    assert_eq!(show(on_file.clone()).await?["stores"], "local");
    assert!(ceph.images()?.contains(&on_rbd));
    assert!(!ceph.images()?.contains(&on_file));
    assert!(c.files().contains(&on_file), "{:?}", c.files());
    let (status, got) = download(&c, &on_rbd, Some("bytes=100-199")).await?;
    assert_eq!((status, got.as_slice()), (206, &data[100..200]));

    // An unknown store is a 400 naming it.
    let id = created(admin(Method::POST, "/v2/images").json(&body).send().await?).await?;
    let res = admin(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .header("X-Image-Meta-Store", "nosuch")
        .body(data.clone())
        .send()
        .await?;
    assert_eq!(res.status(), 400);
    assert!(res.text().await?.contains("nosuch"));

    let stores: Value = admin(Method::GET, "/v2/info/stores")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        stores,
        json!({"stores": [
            {"id": "fast", "description": "Ceph", "default": "true"},
            {"id": "local", "description": "local"},
        ]})
    );
    let res = admin(Method::GET, "/v2/info/stores/detail").send().await?;
    assert_eq!(res.status(), 200);
    let detail: Value = res.json().await?;
    let fast = &detail["stores"][0];
    assert_eq!(fast["type"], "rbd");
    assert_eq!(fast["weight"], 0);
    assert_eq!(fast["default"], "true");
    assert_eq!(
        fast["properties"],
        json!({"chunk_size": 1 << 20, "pool": ceph.pool, "thin_provisioning": false, "fsid": ceph.fsid})
    );
    let local = &detail["stores"][1];
    assert_eq!(local["type"], "file");
    assert_eq!(local["properties"]["chunk_size"], 65536);
    assert_eq!(
        local["properties"]["data_dir"],
        c.datadir.path().display().to_string()
    );
    // Not for a project member (policy stores_info_detail: admin or service).
    let res = c
        .as_("p1", "member,reader", Method::GET, "/v2/info/stores/detail")
        .send()
        .await?;
    assert_eq!(res.status(), 403);
    let res = c
        .as_("p1", "service", Method::GET, "/v2/info/stores/detail")
        .send()
        .await?;
    assert_eq!(res.status(), 200);

    // Removing the only copy is refused; an unknown store is a 409; a store without the
    // image's data is a 404 (the success path is in api_locations, once a second copy exists).
    let res = admin(Method::DELETE, &format!("/v2/stores/fast/{on_rbd}"))
        .send()
        .await?;
    assert_eq!(res.status(), 403);
    assert!(res.text().await?.contains("only copy"));
    let res = admin(Method::DELETE, &format!("/v2/stores/nosuch/{on_rbd}"))
        .send()
        .await?;
    assert_eq!(res.status(), 409);

    for id in [&on_rbd, &on_file] {
        let res = admin(Method::DELETE, &format!("/v2/images/{id}"))
            .send()
            .await?;
        assert_eq!(res.status(), 204);
    }
    assert!(!ceph.images()?.contains(&on_rbd));
    assert!(!c.files().contains(&on_file));
    Ok(())
}

/// Nova's part: it reads the image's location, clones a disk from `<pool>/<id>@snap` with the
/// rbd tool, and while the clone exists the image cannot be deleted (409 "in use", the image
/// and its RBD image stay); once the clone is flattened and removed, the delete succeeds and
/// nothing is left in the pool. The location comes from the 2.17 API as a service reads it.
#[actix_web::test]
async fn nova_clones_from_the_snapshot_and_the_delete_waits_for_it() -> Result<()> {
    let Some(ceph) = ceph() else { return Ok(()) };
    let c = TestCloud::with_config(
        "sqlite",
        &ceph.multi_store(
            "show_image_direct_url = true\nshow_multiple_locations = true\n\
             [paste_deploy]\nflavor = trusted-auth\n",
        ),
    )
    .await?;
    let admin = |m: Method, p: &str| c.as_("p1", "admin,member,reader", m, p);
    let res = admin(Method::POST, "/v2/images")
        .json(&json!({"name": "cirros", "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await?;
    let id = res.json::<Value>().await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    let data = bytes(3, 2 << 20);
    let res = admin(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await?;
    assert_eq!(res.status(), 204);

    // Nova (with the service role) reads the location and parses it as Nova does.
    let res = c
        .as_(
            "p1",
            "member,reader,service",
            Method::GET,
            &format!("/v2/images/{id}/locations"),
        )
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let locations: Value = res.json().await?;
    let url = locations[0]["url"].as_str().unwrap().to_string();
    assert_eq!(locations[0]["metadata"], json!({"store": "fast"}));
    let parts: Vec<&str> = url.strip_prefix("rbd://").unwrap().split('/').collect();
    assert_eq!(parts, [ceph.fsid.as_str(), &ceph.pool, &id, "snap"]);
    let child = format!("{}/nova-{id}", ceph.pool);
    ceph.rbd(&[
        "clone",
        &format!("{}/{}@{}", parts[1], parts[2], parts[3]),
        &child,
    ])?;

    let res = admin(Method::DELETE, &format!("/v2/images/{id}"))
        .send()
        .await?;
    assert_eq!(res.status(), 409);
    let body = res.text().await?;
    assert!(body.contains("in use"), "{body}");
    let img: Value = admin(Method::GET, &format!("/v2/images/{id}"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(img["status"], "active");
    assert_eq!(img["locations"][0]["url"], url);
    assert!(ceph.images()?.contains(&id));
    // The image still serves its data.
    let (status, got) = download(&c, &id, None).await?;
    assert_eq!((status, md5_hex(&got)), (200, md5_hex(&data)));

    ceph.rbd(&["flatten", &child])?;
    ceph.rbd(&["rm", &child])?;
    let res = admin(Method::DELETE, &format!("/v2/images/{id}"))
        .send()
        .await?;
    assert_eq!(res.status(), 204, "{}", res.text().await?);
    let left = ceph.images()?;
    assert!(
        !left.iter().any(|n| n.contains(&id)),
        "left in the pool: {left:?}"
    );
    Ok(())
}

/// `DELETE /v2/stores/{store}/{id}` removes one store's copy: refused with 409 while a clone
/// of the RBD copy exists (nothing changes), then done: the RBD image goes, the image keeps
/// its other location and stays active.
#[actix_web::test]
async fn delete_from_store_removes_the_rbd_copy_unless_in_use() -> Result<()> {
    let Some(ceph) = ceph() else { return Ok(()) };
    let data = bytes(1, 1000);
    let origin = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let served = data.clone();
        let server = actix_web::HttpServer::new(move || {
            let served = served.clone();
            actix_web::App::new().default_service(actix_web::web::to(move || {
                let body = served.clone();
                async move { actix_web::HttpResponse::Ok().body(body) }
            }))
        })
        .workers(1)
        .listen(listener)?
        .run();
        actix_web::rt::spawn(server);
        format!("http://{addr}/copy")
    };
    let conf = format!(
        "[DEFAULT]\nenabled_backends = fast:rbd, web:http\nshow_multiple_locations = true\n\
         [paste_deploy]\nflavor = trusted-auth\n\
         [glance_store]\ndefault_backend = fast\n\
         [fast]\n{}\n[web]\nhttp_store_allow_private_addresses = true\n",
        ceph.rbd_options()
    );
    let c = TestCloud::with_config("sqlite", &conf).await?;
    let admin = |m: Method, p: &str| c.as_("p1", "admin,member,reader", m, p);
    let res = admin(Method::POST, "/v2/images")
        .json(&json!({"name": "two", "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await?;
    let id = res.json::<Value>().await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = admin(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await?;
    assert_eq!(res.status(), 204);
    let res = admin(Method::PATCH, &format!("/v2/images/{id}"))
        .header(
            "content-type",
            "application/openstack-images-v2.1-json-patch",
        )
        .body(
            json!([{"op": "add", "path": "/locations/-",
                    "value": {"url": origin, "metadata": {}}}])
            .to_string(),
        )
        .send()
        .await?;
    assert_eq!(res.status(), 200, "{}", res.text().await?);

    let child = format!("{}/clone-{id}", ceph.pool);
    ceph.rbd(&["clone", &format!("{}/{id}@snap", ceph.pool), &child])?;
    let res = admin(Method::DELETE, &format!("/v2/stores/fast/{id}"))
        .send()
        .await?;
    assert_eq!(res.status(), 409);
    let img: Value = admin(Method::GET, &format!("/v2/images/{id}"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(img["stores"], "fast,web", "{img}");
    ceph.rbd(&["rm", &child])?;

    let res = admin(Method::DELETE, &format!("/v2/stores/fast/{id}"))
        .send()
        .await?;
    assert_eq!(res.status(), 204, "{}", res.text().await?);
    assert!(!ceph.images()?.contains(&id));
    let img: Value = admin(Method::GET, &format!("/v2/images/{id}"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(img["status"], "active");
    assert_eq!(img["stores"], "web");
    assert_eq!(
        img["locations"],
        json!([{"url": origin, "metadata": {"store": "web"}}])
    );
    let (status, got) = download(&c, &id, None).await?;
    assert_eq!((status, got), (200, data));
    // The web copy is now the only one.
    let res = admin(Method::DELETE, &format!("/v2/stores/web/{id}"))
        .send()
        .await?;
    assert_eq!(res.status(), 403);
    let res = admin(Method::DELETE, &format!("/v2/stores/fast/{id}"))
        .send()
        .await?;
    assert_eq!(res.status(), 403);
    Ok(())
}

/// Ceph down when glance-api starts (here: a cluster whose monitor does not answer): the
/// rbd store is unavailable, an upload to it is a 503 naming the store and the reason, the
/// image stays queued, and the file store beside it takes uploads as usual.
#[actix_web::test]
async fn an_rbd_store_whose_ceph_is_down_answers_503_and_others_work() -> Result<()> {
    let Some(ceph) = ceph() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    // A monitor address nothing listens on (bound, then closed), the real keyring.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let keyring = ceph.conf.with_file_name("keyring");
    let dead = dir.path().join("dead.conf");
    std::fs::write(
        &dead,
        format!(
            "[global]\nfsid = 00000000-0000-4000-8000-000000000000\n\
             mon_host = v2:127.0.0.1:{port}\nkeyring = {}\nms_bind_ipv4 = true\n",
            keyring.display()
        ),
    )?;
    let conf = format!(
        "[DEFAULT]\nenabled_backends = down:rbd, local:file\n\
         [paste_deploy]\nflavor = trusted-auth\n\
         [glance_store]\ndefault_backend = local\n\
         [down]\nrbd_store_pool = {}\nrbd_store_user = {}\nrbd_store_ceph_conf = {}\n\
         rados_connect_timeout = 2\n\
         [local]\nfilesystem_store_datadir = {{datadir}}\n",
        ceph.pool,
        ceph.user,
        dead.display()
    );
    let c = TestCloud::with_config("sqlite", &conf).await?;
    let admin = |m: Method, p: &str| c.as_("p1", "admin,member,reader", m, p);
    let body = json!({"name": "d", "disk_format": "raw", "container_format": "bare"});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let res = admin(Method::POST, "/v2/images").json(&body).send().await?;
        ids.push(
            res.json::<Value>().await?["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let started = std::time::Instant::now();
    let res = admin(Method::PUT, &format!("/v2/images/{}/file", ids[0]))
        .header("Content-Type", "application/octet-stream")
        .header("X-Image-Meta-Store", "down")
        .body(bytes(2, 10_000))
        .send()
        .await?;
    assert_eq!(res.status(), 503);
    let text = res.text().await?;
    assert!(text.contains("down") && text.contains("Ceph"), "{text}");
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    let img: Value = admin(Method::GET, &format!("/v2/images/{}", ids[0]))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(img["status"], "queued");
    // The file store is not held back by the rbd store.
    let res = admin(Method::PUT, &format!("/v2/images/{}/file", ids[1]))
        .header("Content-Type", "application/octet-stream")
        .body(bytes(2, 10_000))
        .send()
        .await?;
    assert_eq!(res.status(), 204);
    assert!(c.files().contains(&ids[1]));
    // The detail shows the store, with no fsid.
    let detail: Value = admin(Method::GET, "/v2/info/stores/detail")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(detail["stores"][0]["id"], "down");
    assert_eq!(detail["stores"][0]["properties"]["fsid"], Value::Null);
    Ok(())
}

/// A private cluster (scripts/ceph.sh, no gateway) for a test that stops its OSD.
struct PrivateCeph {
    dir: tempfile::TempDir,
    ceph: Ceph,
}

impl PrivateCeph {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/ceph.sh")
    }

    fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let out = Command::new(Self::script())
            .args(["start"])
            .arg(dir.path())
            .env("CEPH_WITH_RGW", "0")
            .env("CEPH_MEMSTORE_BYTES", "1073741824")
            .output()?;
        ensure!(
            out.status.success(),
            "ceph.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("ceph.json"))?)?;
        let s = |k: &str| v[k].as_str().unwrap().to_owned();
        let ceph = Ceph {
            conf: PathBuf::from(s("conf")),
            fsid: s("fsid"),
            pool: s("pool"),
            user: s("user"),
        };
        Ok(Self { dir, ceph })
    }

    /// Sends `signal` (STOP or CONT) to the OSD.
    fn signal_osd(&self, signal: &str) -> Result<()> {
        let pid = std::fs::read_to_string(self.dir.path().join("run/osd.0.pid"))?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.trim())
            .status()?;
        ensure!(status.success(), "kill -{signal} the OSD");
        Ok(())
    }
}

impl Drop for PrivateCeph {
    fn drop(&mut self) {
        let _ = self.signal_osd("CONT");
        let _ = Command::new(Self::script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

/// Ceph stops answering in the middle of an upload (its OSD is stopped with SIGSTOP): the
/// upload fails with 503 within `rados_connect_timeout`-bound operations, the image is back to
/// `queued`, and once the OSD runs again the partial RBD image is removed (`rbd ls`).
#[actix_web::test]
async fn ceph_stopping_mid_upload_leaves_the_image_queued_and_no_partial_rbd_image() -> Result<()> {
    let Some(_) = ceph() else { return Ok(()) };
    let private = PrivateCeph::start()?;
    let ceph = &private.ceph;
    let conf = format!(
        "[DEFAULT]\nenabled_backends = fast:rbd, local:file\n\
         [glance_store]\ndefault_backend = fast\n\
         [fast]\nrbd_store_pool = {}\nrbd_store_user = {}\nrbd_store_ceph_conf = {}\n\
         rbd_store_chunk_size = 1\nrados_connect_timeout = 3\n\
         [local]\nfilesystem_store_datadir = {{datadir}}\n",
        ceph.pool,
        ceph.user,
        ceph.conf.display()
    );
    let c = TestCloud::with_config("sqlite", &conf).await?;
    let id = new_image(&c).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let upload = c
        .req(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let upload = tokio::spawn(upload);
    for n in 0..3u64 {
        tx.send(Ok(bytes(n, 1 << 20))).await?;
    }
    // The partial image exists in the pool (written a MiB at a time).
    crate::cloud::eventually(20, || async {
        Ok(ceph.images()?.contains(&id).then_some(()))
    })
    .await?;
    private.signal_osd("STOP")?;
    for n in 3..8u64 {
        if tx.send(Ok(bytes(n, 1 << 20))).await.is_err() {
            break;
        }
    }
    drop(tx);
    let res = upload.await??;
    assert_eq!(res.status(), 503, "{}", res.text().await?);
    let img = c.show(&id).await?;
    assert_eq!(img["status"], "queued");
    private.signal_osd("CONT")?;
    crate::cloud::eventually(60, || async {
        Ok((!ceph.images()?.contains(&id)).then_some(()))
    })
    .await?;
    assert_eq!(c.show(&id).await?["status"], "queued");
    Ok(())
}
