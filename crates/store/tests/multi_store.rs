//! Several stores at once, from the configuration operators write: multi-store
//! `enabled_backends` with a default, per-store descriptions and weights, the store chosen per
//! upload, read-only http, an image held in two stores; and legacy single-store.
#![expect(clippy::unwrap_used, reason = "tests")]

pub mod common;

use std::path::Path;

use common::{chunked, data, digests};
use futures_util::StreamExt;
use glance_config::IniSet;
use glance_model::ErrorKind;
use glance_store::{HashAlgo, StoreInfo, Stores, StoresConfig, WriteLimits};

fn stores(text: &str) -> Stores {
    let mut ini = IniSet::default();
    ini.merge(Path::new("glance-api.conf"), text).unwrap();
    Stores::from_config(&StoresConfig::from_ini(&ini).unwrap()).unwrap()
}

async fn read(stores: &Stores, url: &str, hint: Option<&str>) -> Vec<u8> {
    let f = stores.get(url, hint, None, None).await.unwrap();
    f.stream
        .map(|c| c.unwrap().to_vec())
        .collect::<Vec<_>>()
        .await
        .concat()
}

#[tokio::test]
async fn uploads_go_to_the_chosen_store_and_images_can_live_in_several() {
    let fast = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let s = stores(&format!(
        "[DEFAULT]\nenabled_backends = fast:file, shared:file, web:http\n\
         [glance_store]\ndefault_backend = fast\n\
         [fast]\nfilesystem_store_datadir = {}\nstore_description = Local SSD\nweight = 100\n\
         [shared]\nfilesystem_store_datadir = {}\nweight = 50\n\
         [web]\nstore_description = Read-only web\n",
        fast.path().display(),
        shared.path().display()
    ));
    assert!(s.multi_store());
    assert_eq!(
        s.describe(),
        vec![
            StoreInfo {
                id: "fast".into(),
                description: "Local SSD".into(),
                is_default: true,
                read_only: false,
                weight: 100
            },
            StoreInfo {
                id: "shared".into(),
                description: "shared".into(),
                is_default: false,
                read_only: false,
                weight: 50
            },
            StoreInfo {
                id: "web".into(),
                description: "Read-only web".into(),
                is_default: false,
                read_only: true,
                weight: 0
            },
        ]
    );
    let bytes = data(11, 200_000);
    let id = "0f0e0d0c-0b0a-4908-8706-050403020100";
    let limits = WriteLimits::default();
    let a = s
        .add(None, id, chunked(&bytes), &limits, HashAlgo::Sha512)
        .await
        .unwrap();
    assert_eq!(a.store_id, "fast");
    assert!(fast.path().join(id).exists());
    let b = s
        .add(
            Some("shared"),
            id,
            chunked(&bytes),
            &limits,
            HashAlgo::Sha512,
        )
        .await
        .unwrap();
    assert_eq!(b.store_id, "shared");
    assert!(shared.path().join(id).exists());
    assert_eq!(a.written.checksum, digests(&bytes).0);
    assert_eq!(a.written.os_hash_value, b.written.os_hash_value);

    // Read by the location's store metadata, and by path alone.
    assert_eq!(read(&s, &b.written.location, Some("shared")).await, bytes);
    assert_eq!(read(&s, &a.written.location, None).await, bytes);
    assert_eq!(
        s.reader_for(&b.written.location, None).unwrap().id,
        "shared"
    );
    assert!(s.weight(Some("fast")) > s.weight(Some("shared")));

    // Deleting one copy leaves the other.
    s.delete(&a.written.location, Some("fast")).await.unwrap();
    assert!(!fast.path().join(id).exists());
    assert_eq!(read(&s, &b.written.location, Some("shared")).await, bytes);

    let err = s
        .add(Some("web"), id, chunked(b"x"), &limits, HashAlgo::Sha512)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(err.to_string().contains("read-only"), "{err}");
    let err = s
        .add(Some("nope"), id, chunked(b"x"), &limits, HashAlgo::Sha512)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(err.to_string().contains("unknown store"), "{err}");
    assert!(s.health().iter().all(|(_, h)| h.is_ok()));
}

#[tokio::test]
async fn single_store_configuration_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let s = stores(&format!(
        "[glance_store]\nstores = file,http\ndefault_store = file\nfilesystem_store_datadir = {}\n",
        dir.path().display()
    ));
    assert!(!s.multi_store());
    assert_eq!(s.default_id(), "file");
    let id = "11111111-2222-4333-8444-555555555555";
    let a = s
        .add(
            None,
            id,
            chunked(b"hello"),
            &WriteLimits::default(),
            HashAlgo::Sha512,
        )
        .await
        .unwrap();
    assert_eq!(
        a.written.location,
        format!("file://{}/{id}", dir.path().display())
    );
    assert_eq!(read(&s, &a.written.location, None).await, b"hello");
    // Glance's older scheme name for the same files.
    let legacy = a.written.location.replace("file://", "filesystem://");
    assert_eq!(read(&s, &legacy, None).await, b"hello");
}

#[test]
fn users_may_add_only_public_http_locations() {
    let dir = tempfile::tempdir().unwrap();
    let s = stores(&format!(
        "[glance_store]\nstores = file,http\nfilesystem_store_datadir = {}\n",
        dir.path().display()
    ));
    assert!(
        s.check_user_location("https://download.cirros-cloud.net/0.6.2/cirros.img")
            .is_ok()
    );
    for bad in [
        format!("file://{}/x", dir.path().display()),
        "filesystem:///etc/shadow".to_string(),
        "http://127.0.0.1:9292/v2/images".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "rbd://fsid/pool/image/snap".to_string(),
    ] {
        let err = s.check_user_location(&bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{bad}: {err}");
    }
    let file_only = stores(&format!(
        "[glance_store]\nstores = file\nfilesystem_store_datadir = {}\n",
        dir.path().display()
    ));
    let err = file_only
        .check_user_location("https://example.com/x.img")
        .unwrap_err();
    assert!(err.to_string().contains("no http store"), "{err}");
}
