//! Authentication and policy against a real Keystone (started by scripts/keystone.sh, which
//! `scripts/test.sh` runs and names in `GLANCE_TEST_KEYSTONE`): glance-api and glance-registry
//! processes both configured with the install guides' `[keystone_authtoken]` block and
//! `flavor = keystone`, driven with real tokens of the projects `alpha` and `beta`
//! (users with the admin, member and reader roles), for every policy-guarded route; plus
//! revoked and expired tokens, Keystone unreachable, and the registry's own modes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::cloud::{bytes, md5_hex};
use crate::harness::TestDb;
use crate::procs::{Daemon, Kind, write_conf};
use glance_registry::db::{DbConnection, DbUrl, migrate};

/// The Keystone that scripts/keystone.sh started, and fresh tokens of its users.
pub(crate) struct Ks {
    info: Value,
    http: reqwest::Client,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl Ks {
    /// `None` (with a note) outside CI when no Keystone was started; an error in CI.
    pub(crate) fn load() -> Result<Option<Self>> {
        let Ok(path) = std::env::var("GLANCE_TEST_KEYSTONE") else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                bail!("GLANCE_TEST_KEYSTONE is not set: CI must run the Keystone tests");
            }
            eprintln!(
                "note: GLANCE_TEST_KEYSTONE not set (scripts/test.sh starts Keystone); \
                 skipping the Keystone tests"
            );
            return Ok(None);
        };
        let info: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        Ok(Some(Self {
            info,
            http: reqwest::Client::new(),
            tokens: Mutex::new(HashMap::new()),
        }))
    }

    /// What scripts/keystone.sh wrote in keystone.json.
    pub(crate) fn info(&self) -> &Value {
        &self.info
    }

    fn auth_url(&self) -> &str {
        self.info["auth_url"].as_str().unwrap_or_default()
    }

    pub(crate) fn project(&self, name: &str) -> String {
        self.info["projects"][name]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The guides' blocks for glance-api.conf / glance-registry.conf.
    pub(crate) fn conf(&self) -> String {
        let s = &self.info["service"];
        format!(
            "[paste_deploy]\nflavor = keystone\n\
             [keystone_authtoken]\nwww_authenticate_uri = {url}\nauth_url = {url}\n\
             memcached_servers = 127.0.0.1:11211\nauth_type = password\n\
             project_domain_name = Default\nuser_domain_name = Default\n\
             project_name = {proj}\nusername = {user}\npassword = {pw}\n\
             token_cache_time = 2\n",
            url = self.info["url"].as_str().unwrap_or_default(),
            proj = s["project"].as_str().unwrap_or_default(),
            user = s["name"].as_str().unwrap_or_default(),
            pw = s["password"].as_str().unwrap_or_default(),
        )
    }

    /// A new project-scoped token of `user`.
    async fn issue(&self, user: &str) -> Result<String> {
        let project = self.info["users"][user]["project_id"]
            .as_str()
            .context("project")?;
        self.issue_scoped(user, json!({"project": {"id": project}}))
            .await
    }

    /// A new token of `user` with `scope` (Keystone's `auth.scope`, e.g.
    /// `{"system": {"all": true}}`).
    pub(crate) async fn issue_scoped(&self, user: &str, scope: Value) -> Result<String> {
        let u = &self.info["users"][user];
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"},
                "password": u["password"].as_str().context("password")?,
            }}},
            "scope": scope,
        }});
        let res = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.auth_url()))
            .json(&body)
            .send()
            .await?;
        if res.status() != StatusCode::CREATED {
            bail!("token for {user}: {}", res.status());
        }
        Ok(res
            .headers()
            .get("x-subject-token")
            .context("x-subject-token")?
            .to_str()?
            .to_string())
    }

    /// A token of `user` at most 8 s old (tokens live 20 s in the test Keystone).
    pub(crate) async fn token(&self, user: &str) -> Result<String> {
        let mut cache = self.tokens.lock().await;
        if let Some((t, at)) = cache.get(user)
            && at.elapsed() < Duration::from_secs(8)
        {
            return Ok(t.clone());
        }
        let t = self.issue(user).await?;
        cache.insert(user.to_string(), (t.clone(), Instant::now()));
        Ok(t)
    }

    async fn revoke(&self, token: &str) -> Result<()> {
        let res = self
            .http
            .delete(format!("{}/auth/tokens", self.auth_url()))
            .header("x-auth-token", token)
            .header("x-subject-token", token)
            .send()
            .await?;
        if res.status() != StatusCode::NO_CONTENT {
            bail!("revoke: {}", res.status());
        }
        Ok(())
    }
}

/// glance-registry and glance-api processes, both `flavor = keystone`.
pub(crate) struct Cloud {
    _db: TestDb,
    registry: Daemon,
    pub(crate) api: Daemon,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    http: reqwest::Client,
}

impl Cloud {
    pub(crate) async fn start(ks: &Ks, api_extra: &str) -> Result<Self> {
        let db = TestDb::new("sqlite")?;
        migrate::sync(&mut DbConnection::open(&DbUrl::parse(&db.url)?)?)?;
        let dir = tempfile::tempdir()?;
        let datadir = tempfile::tempdir()?;
        let reg_conf = write_conf(
            dir.path(),
            "glance-registry.conf",
            &format!("[database]\nconnection = {}\n{}", db.url, ks.conf()),
        )?;
        let registry = Daemon::start(Kind::Registry, &["--config-file", &reg_conf]).await?;
        let api_conf = write_conf(
            dir.path(),
            "glance-api.conf",
            &format!(
                "{}\n[glance_store]\nfilesystem_store_datadir = {}\n{api_extra}",
                ks.conf(),
                datadir.path().display()
            ),
        )?;
        let api = Daemon::start(
            Kind::Api,
            &["--config-file", &api_conf, "--registry-url", &registry.base],
        )
        .await?;
        Ok(Self {
            _db: db,
            registry,
            api,
            _dirs: (dir, datadir),
            http: reqwest::Client::new(),
        })
    }

    pub(crate) fn req(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api.base))
            .header("accept", "application/json")
            .header("x-auth-token", token)
    }
}

/// Sends and returns the status (body consumed).
pub(crate) async fn status(r: reqwest::RequestBuilder) -> Result<u16> {
    let res = r.send().await?;
    let s = res.status().as_u16();
    let _ = res.bytes().await?;
    Ok(s)
}

pub(crate) fn patch(c: &Cloud, id: &str, token: &str, ops: Value) -> reqwest::RequestBuilder {
    c.req(Method::PATCH, &format!("/v2/images/{id}"), token)
        .header(
            "content-type",
            "application/openstack-images-v2.1-json-patch",
        )
        .json(&ops)
}

#[actix_web::test]
async fn keystone_tokens_and_glance_policy_on_every_route() -> Result<()> {
    let Some(ks) = Ks::load()? else {
        return Ok(());
    };
    let c = Cloud::start(&ks, "").await?;
    let alpha = ks.project("alpha");
    let beta = ks.project("beta");

    // No token, a bad token: 401 with the challenge; versions and health stay open.
    let res = c
        .http
        .get(format!("{}/v2/images", c.api.base))
        .send()
        .await?;
    assert_eq!(res.status(), 401);
    let challenge = res
        .headers()
        .get("www-authenticate")
        .context("WWW-Authenticate")?
        .to_str()?
        .to_string();
    assert_eq!(
        challenge,
        format!(
            "Keystone uri=\"{}\"",
            ks.info["url"].as_str().unwrap_or_default()
        )
    );
    assert_eq!(
        status(c.req(Method::GET, "/v2/images", "garbage")).await?,
        401
    );
    assert_eq!(
        status(c.http.get(format!("{}/versions", c.api.base))).await?,
        200
    );
    assert_eq!(
        status(c.http.get(format!("{}/healthcheck", c.api.base))).await?,
        200
    );
    // The registry authenticates too.
    assert_eq!(
        status(c.http.get(format!("{}/v1/images", c.registry.base))).await?,
        401
    );
    assert_eq!(
        status(
            c.http
                .get(format!("{}/v1/images", c.registry.base))
                .header("x-auth-token", ks.token("alpha-member").await?)
        )
        .await?,
        200
    );

    let am = ks.token("alpha-member").await?;
    let ar = ks.token("alpha-reader").await?;
    // Create: member yes (owner = the token's project), reader no, other project's owner no.
    let res = c
        .req(Method::POST, "/v2/images", &am)
        .json(&json!({"name": "shared-a", "disk_format": "raw", "container_format": "bare", "visibility": "shared"}))
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    let img: Value = res.json().await?;
    let id = img["id"].as_str().context("id")?.to_string();
    assert_eq!(img["owner"], alpha.as_str(), "owner is the token's project");
    assert_eq!(
        status(
            c.req(Method::POST, "/v2/images", &ar)
                .json(&json!({"name": "x"}))
        )
        .await?,
        403
    );
    assert_eq!(
        status(
            c.req(Method::POST, "/v2/images", &am)
                .json(&json!({"name": "x", "owner": beta}))
        )
        .await?,
        403
    );
    // Upload: owner reader no, owner member yes.
    let data = bytes(5, 300_000);
    let put = |token: &str| {
        c.req(Method::PUT, &format!("/v2/images/{id}/file"), token)
            .header("content-type", "application/octet-stream")
            .body(data.clone())
    };
    assert_eq!(status(put(&ar)).await?, 403);
    assert_eq!(status(put(&am)).await?, 204);

    // Who sees it and who may do what, before any sharing.
    let bm = ks.token("beta-member").await?;
    let ba = ks.token("beta-admin").await?;
    let show = format!("/v2/images/{id}");
    assert_eq!(status(c.req(Method::GET, &show, &am)).await?, 200);
    assert_eq!(status(c.req(Method::GET, &show, &ar)).await?, 200);
    assert_eq!(
        status(c.req(Method::GET, &show, &bm)).await?,
        404,
        "not shared yet"
    );
    assert_eq!(
        status(c.req(Method::GET, &show, &ba)).await?,
        200,
        "admin sees all"
    );
    let file = format!("/v2/images/{id}/file");
    assert_eq!(
        status(c.req(Method::GET, &file, &ar)).await?,
        403,
        "readers may not download"
    );
    let body = c.req(Method::GET, &file, &am).send().await?.bytes().await?;
    assert_eq!(md5_hex(&body), md5_hex(&data));
    let rename = |t: &str| {
        patch(
            &c,
            &id,
            t,
            json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
        )
    };
    assert_eq!(status(rename(&ar)).await?, 403);
    assert_eq!(status(rename(&bm)).await?, 404);
    assert_eq!(status(rename(&am)).await?, 200);
    assert_eq!(status(rename(&ba)).await?, 200);
    let publicize = |t: &str| {
        patch(
            &c,
            &id,
            t,
            json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        )
    };
    assert_eq!(
        status(publicize(&am)).await?,
        403,
        "publicize_image is admin only"
    );
    let tag = format!("/v2/images/{id}/tags/gold");
    assert_eq!(status(c.req(Method::PUT, &tag, &ar)).await?, 403);
    assert_eq!(status(c.req(Method::PUT, &tag, &am)).await?, 204);
    assert_eq!(status(c.req(Method::DELETE, &tag, &ar)).await?, 403);
    assert_eq!(status(c.req(Method::DELETE, &tag, &am)).await?, 204);
    let deact = format!("/v2/images/{id}/actions/deactivate");
    let react = format!("/v2/images/{id}/actions/reactivate");
    assert_eq!(status(c.req(Method::POST, &deact, &ar)).await?, 403);
    assert_eq!(status(c.req(Method::POST, &deact, &am)).await?, 204);
    assert_eq!(status(c.req(Method::POST, &react, &ba)).await?, 204);

    // Sharing: only the owner's members add members; the member answers for itself.
    let members = format!("/v2/images/{id}/members");
    assert_eq!(
        status(
            c.req(Method::POST, &members, &ar)
                .json(&json!({"member": beta}))
        )
        .await?,
        403
    );
    assert_eq!(
        status(
            c.req(Method::POST, &members, &am)
                .json(&json!({"member": beta}))
        )
        .await?,
        200
    );
    let bm = ks.token("beta-member").await?;
    let br = ks.token("beta-reader").await?;
    // Pending member: sees the image, not in its list, may not change it.
    assert_eq!(status(c.req(Method::GET, &show, &bm)).await?, 200);
    let listed: Value = c
        .req(Method::GET, "/v2/images", &bm)
        .send()
        .await?
        .json()
        .await?;
    assert!(
        !listed["images"]
            .as_array()
            .context("images")?
            .iter()
            .any(|i| i["id"] == id.as_str()),
        "pending shares are not listed"
    );
    assert_eq!(status(rename(&bm)).await?, 403);
    let me = format!("/v2/images/{id}/members/{beta}");
    assert_eq!(
        status(
            c.req(Method::PUT, &me, &am)
                .json(&json!({"status": "accepted"}))
        )
        .await?,
        403,
        "only the member project accepts"
    );
    assert_eq!(
        status(
            c.req(Method::PUT, &me, &br)
                .json(&json!({"status": "accepted"}))
        )
        .await?,
        403,
        "modify_member needs the member role"
    );
    assert_eq!(
        status(
            c.req(Method::PUT, &me, &bm)
                .json(&json!({"status": "accepted"}))
        )
        .await?,
        200
    );
    // Accepted member: listed, downloads, still may not modify, delete or add members.
    let listed: Value = c
        .req(Method::GET, "/v2/images", &bm)
        .send()
        .await?
        .json()
        .await?;
    assert!(
        listed["images"]
            .as_array()
            .context("images")?
            .iter()
            .any(|i| i["id"] == id.as_str()),
        "accepted shares are listed"
    );
    let body = c.req(Method::GET, &file, &bm).send().await?.bytes().await?;
    assert_eq!(md5_hex(&body), md5_hex(&data));
    assert_eq!(status(c.req(Method::GET, &file, &br)).await?, 403);
    assert_eq!(status(c.req(Method::GET, &me, &bm)).await?, 200);
    assert_eq!(status(c.req(Method::GET, &members, &am)).await?, 200);
    assert_eq!(status(rename(&bm)).await?, 403);
    assert_eq!(status(c.req(Method::DELETE, &show, &bm)).await?, 403);
    assert_eq!(
        status(
            c.req(Method::POST, &members, &bm)
                .json(&json!({"member": alpha}))
        )
        .await?,
        403
    );
    assert_eq!(status(c.req(Method::DELETE, &me, &bm)).await?, 403);
    assert_eq!(status(c.req(Method::DELETE, &me, &am)).await?, 204);
    assert_eq!(
        status(c.req(Method::GET, &show, &bm)).await?,
        404,
        "share removed"
    );

    // Delete: reader no, owner member yes.
    let am = ks.token("alpha-member").await?;
    let ar = ks.token("alpha-reader").await?;
    assert_eq!(status(c.req(Method::DELETE, &show, &ar)).await?, 403);
    assert_eq!(status(c.req(Method::DELETE, &show, &am)).await?, 204);
    assert_eq!(status(c.req(Method::GET, &show, &am)).await?, 404);
    Ok(())
}

#[actix_web::test]
async fn revoked_and_expired_tokens_are_refused() -> Result<()> {
    let Some(ks) = Ks::load()? else {
        return Ok(());
    };
    let c = Cloud::start(&ks, "").await?;
    // Revoked: refused once the cache interval (token_cache_time = 2) has passed.
    let t = ks.issue("alpha-member").await?;
    assert_eq!(status(c.req(Method::GET, "/v2/images", &t)).await?, 200);
    ks.revoke(&t).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(status(c.req(Method::GET, "/v2/images", &t)).await?, 401);
    // Expired: a token used while valid is refused once its expiry has passed.
    let t = ks.issue("alpha-reader").await?;
    let started = Instant::now();
    assert_eq!(status(c.req(Method::GET, "/v2/images", &t)).await?, 200);
    let life = ks.info["token_expiration"].as_u64().unwrap_or(20);
    tokio::time::sleep(Duration::from_secs(life + 1).saturating_sub(started.elapsed())).await;
    assert_eq!(status(c.req(Method::GET, "/v2/images", &t)).await?, 401);
    // The service token outlived its 20 s too: renewed, fresh user tokens still work.
    let fresh = ks.issue("alpha-reader").await?;
    assert_eq!(status(c.req(Method::GET, "/v2/images", &fresh)).await?, 200);
    Ok(())
}

#[actix_web::test]
async fn keystone_unreachable_is_503_never_a_pass() -> Result<()> {
    let Some(ks) = Ks::load()? else {
        return Ok(());
    };
    let dead = crate::procs::free_port()?;
    let url = ks.info["url"].as_str().unwrap_or_default().to_string();
    let mut info = ks.info.clone();
    info["url"] = json!(format!("http://127.0.0.1:{dead}"));
    let broken = Ks {
        info,
        http: reqwest::Client::new(),
        tokens: Mutex::new(HashMap::new()),
    };
    // The registry can reach Keystone; the api cannot.
    let c = Cloud::start(&ks, "").await?;
    let dir = tempfile::tempdir()?;
    let conf = write_conf(
        dir.path(),
        "glance-api.conf",
        &format!(
            "{}\n[glance_store]\nfilesystem_store_datadir = {}\n",
            broken.conf(),
            dir.path().display()
        ),
    )?;
    let api = Daemon::start(
        Kind::Api,
        &["--config-file", &conf, "--registry-url", &c.registry.base],
    )
    .await?;
    let t = ks.issue("alpha-member").await?;
    let res = c
        .http
        .get(format!("{}/v2/images", api.base))
        .header("accept", "application/json")
        .header("x-auth-token", &t)
        .send()
        .await?;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await?;
    assert!(
        body.to_string().contains("identity service"),
        "a message a person can act on: {body}"
    );
    assert!(!url.is_empty());
    Ok(())
}

#[actix_web::test]
async fn registry_trusted_auth_needs_the_shared_secret() -> Result<()> {
    let db = TestDb::new("sqlite")?;
    migrate::sync(&mut DbConnection::open(&DbUrl::parse(&db.url)?)?)?;
    let dir = tempfile::tempdir()?;
    let reg_conf = write_conf(
        dir.path(),
        "glance-registry.conf",
        &format!(
            "[DEFAULT]\nregistry_shared_secret = s3cret-between-daemons\n\
             [paste_deploy]\nflavor = trusted-auth\n[database]\nconnection = {}\n",
            db.url
        ),
    )?;
    let registry = Daemon::start(Kind::Registry, &["--config-file", &reg_conf]).await?;
    let http = reqwest::Client::new();
    let images = format!("{}/v1/images", registry.base);
    assert_eq!(status(http.get(&images)).await?, 401);
    assert_eq!(
        status(
            http.get(&images)
                .header("x-glance-registry-secret", "guess")
        )
        .await?,
        401
    );
    assert_eq!(
        status(
            http.get(&images)
                .header("x-glance-registry-secret", "s3cret-between-daemons")
        )
        .await?,
        200
    );
    // glance-api with the same secret works through it.
    let datadir = tempfile::tempdir()?;
    let api_conf = write_conf(
        dir.path(),
        "glance-api.conf",
        &format!(
            "[DEFAULT]\nregistry_shared_secret = s3cret-between-daemons\n\
             [glance_store]\nfilesystem_store_datadir = {}\n",
            datadir.path().display()
        ),
    )?;
    let api = Daemon::start(
        Kind::Api,
        &["--config-file", &api_conf, "--registry-url", &registry.base],
    )
    .await?;
    let res = http
        .post(format!("{}/v2/images", api.base))
        .json(&json!({"name": "through-trusted-registry"}))
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    Ok(())
}
