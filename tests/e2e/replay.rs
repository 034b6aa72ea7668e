//! Retries never duplicate. A proxy between glance-api and glance-registry passes a chosen
//! write to the registry (which commits it) and then drops the connection instead of passing
//! the answer back, as a registry dying between commit and answer would. glance-api sends
//! the write again, marked as a resend, and the client gets the first sending's result: one
//! image, one membership, no 503 and no second row. A client's own duplicate (no resend mark)
//! is still refused as Glance refuses it, and a resend that does not match what is stored is
//! refused too.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context as _, Result};
use glance_model::wire::HEADER_REPLAY;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::cloud::api_state;
use crate::harness::{TestRegistry, backends, expect_error, first_n};

/// A TCP proxy to the registry that loses the answer to the next request whose first line
/// starts with the armed trigger.
struct LossyProxy {
    base: String,
    trigger: Arc<std::sync::Mutex<Option<String>>>,
    lost: Arc<AtomicUsize>,
}

impl LossyProxy {
    async fn start(upstream: String) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let trigger = Arc::new(std::sync::Mutex::new(None::<String>));
        let lost = Arc::new(AtomicUsize::new(0));
        let (t, l) = (trigger.clone(), lost.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let armed = Arc::new(AtomicBool::new(false));
                let (trigger, lost, armed2) = (t.clone(), l.clone(), armed.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        {
                            let mut t = trigger.lock().unwrap();
                            if t.as_ref()
                                .is_some_and(|t| buf[..n].starts_with(t.as_bytes()))
                            {
                                *t = None;
                                armed2.store(true, Ordering::SeqCst);
                            }
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if armed.load(Ordering::SeqCst) {
                            // The registry answered (so it committed): the answer is lost and
                            // the connection closed, dropping `cw`.
                            lost.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Ok(Self {
            base,
            trigger,
            lost,
        })
    }

    /// Loses the answer to the next request starting `method path HTTP`.
    fn lose_next(&self, method: &str, path: &str) {
        *self.trigger.lock().unwrap() = Some(format!("{method} {path} HTTP"));
    }

    /// Answers lost so far; and the trigger must have fired.
    fn lost(&self) -> usize {
        assert!(
            self.trigger.lock().unwrap().is_none(),
            "the armed request never went through the proxy"
        );
        self.lost.load(Ordering::SeqCst)
    }
}

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

#[actix_web::test]
async fn a_write_whose_answer_is_lost_is_made_once() -> Result<()> {
    for b in backends() {
        let registry = TestRegistry::start(b).await?;
        let proxy =
            LossyProxy::start(registry.base.trim_start_matches("http://").to_string()).await?;
        let datadir = tempfile::tempdir()?;
        let state = api_state(
            &proxy.base,
            datadir.path(),
            "[paste_deploy]\nflavor = trusted-auth\n",
        )?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let api = format!("http://{}", listener.local_addr()?);
        actix_web::rt::spawn(glance_api::serve(listener, state)?);
        let http = reqwest::Client::new();
        let as_a = |method: Method, path: &str| {
            http.request(method, format!("{api}{path}"))
                .header("accept", "application/json")
                .header("X-Identity-Status", "Confirmed")
                .header("X-Project-Id", A)
                .header("X-User-Id", "user-a")
                .header("X-Roles", "member,reader")
        };
        let name = format!("once-{b}");

        // A create whose answer is lost: 201 with the image the first sending made, one row.
        proxy.lose_next("POST", "/v1/images");
        let res = as_a(Method::POST, "/v2/images")
            .json(&json!({"name": name, "visibility": "shared", "tags": ["t1"], "os_distro": "cirros"}))
            .send()
            .await?;
        assert_eq!(res.status(), 201, "{b}: create whose answer was lost");
        let image: Value = res.json().await?;
        assert_eq!(proxy.lost(), 1, "{b}: the proxy lost no answer");
        let id = image["id"].as_str().context("id")?.to_string();
        assert_eq!(image["name"], name.as_str());
        assert_eq!(image["tags"], json!(["t1"]));
        assert_eq!(image["os_distro"], "cirros");
        let mut conn = registry.db.conn()?;
        let rows = first_n(
            &mut conn,
            &format!("SELECT COUNT(*) AS n FROM images WHERE name = '{name}'"),
        )?;
        assert_eq!(rows, Some(1), "{b}: a lost answer made a second image");
        let listed: Value = as_a(Method::GET, &format!("/v2/images?name={name}"))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(listed["images"].as_array().map(Vec::len), Some(1), "{b}");
        assert_eq!(listed["images"][0]["id"], id.as_str());

        // A client's own second create with that id is still a 409, as in Glance.
        let res = as_a(Method::POST, "/v2/images")
            .json(&json!({"id": id, "name": name, "visibility": "shared", "tags": ["t1"], "os_distro": "cirros"}))
            .send()
            .await?;
        expect_error(res, 409, "already exists").await?;

        // A resend that does not match what is stored is refused: another body, another
        // project.
        let resend = |project: &str, body: Value| {
            registry
                .req(Method::POST, "/v1/images", project, "member")
                .header(HEADER_REPLAY, "1")
                .json(&body)
                .send()
        };
        let same = json!({"id": id, "name": name, "visibility": "shared", "tags": ["t1"],
            "properties": {"os_distro": "cirros"}});
        let res = resend(A, same.clone()).await?;
        assert_eq!(
            res.status(),
            201,
            "{b}: an identical resend is the first answer"
        );
        let again: Value = res.json().await?;
        assert_eq!(again["id"], id.as_str());
        assert_eq!(again["created_at"], image["created_at"]);
        let mut other = same.clone();
        other["name"] = json!("other");
        expect_error(resend(A, other).await?, 409, "already exists").await?;
        expect_error(resend(B, same).await?, 409, "already exists").await?;

        // An add of a member whose answer is lost: the membership, once.
        let members = format!("/v2/images/{id}/members");
        proxy.lose_next("POST", &format!("/v1/images/{id}/members"));
        let res = as_a(Method::POST, &members)
            .json(&json!({"member": B}))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}: member add whose answer was lost");
        assert_eq!(proxy.lost(), 2);
        let m: Value = res.json().await?;
        assert_eq!(
            (m["member_id"].as_str(), m["status"].as_str()),
            (Some(B), Some("pending"))
        );
        let rows = first_n(
            &mut conn,
            &format!("SELECT COUNT(*) AS n FROM image_members WHERE image_id = '{id}'"),
        )?;
        assert_eq!(rows, Some(1), "{b}: a lost answer made a second membership");
        // A client's own second add is a 409, as in Glance.
        let res = as_a(Method::POST, &members)
            .json(&json!({"member": B}))
            .send()
            .await?;
        expect_error(res, 409, "already a member").await?;

        // Tag and member removals whose answers are lost are 204, made once.
        proxy.lose_next("PUT", &format!("/v1/images/{id}/tags/t2"));
        let res = as_a(Method::PUT, &format!("/v2/images/{id}/tags/t2"))
            .send()
            .await?;
        assert_eq!(res.status(), 204, "{b}: tag add whose answer was lost");
        proxy.lose_next("DELETE", &format!("/v1/images/{id}/tags/t1"));
        let res = as_a(Method::DELETE, &format!("/v2/images/{id}/tags/t1"))
            .send()
            .await?;
        assert_eq!(res.status(), 204, "{b}: tag removal whose answer was lost");
        proxy.lose_next("DELETE", &format!("/v1/images/{id}/members/{B}"));
        let res = as_a(Method::DELETE, &format!("{members}/{B}"))
            .send()
            .await?;
        assert_eq!(
            res.status(),
            204,
            "{b}: member removal whose answer was lost"
        );
        assert_eq!(proxy.lost(), 5);
        let shown: Value = as_a(Method::GET, &format!("/v2/images/{id}"))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(shown["tags"], json!(["t2"]), "{b}");
        let listed: Value = as_a(Method::GET, &members).send().await?.json().await?;
        assert_eq!(listed["members"], json!([]), "{b}");
        // Without the resend mark, removing what is gone is still a 404.
        let res = as_a(Method::DELETE, &format!("/v2/images/{id}/tags/t1"))
            .send()
            .await?;
        expect_error(res, 404, "t1").await?;
        let res = registry
            .req(
                Method::DELETE,
                &format!("/v1/images/{id}/tags/t1"),
                A,
                "member",
            )
            .send()
            .await?;
        expect_error(res, 404, "t1").await?;
        // A resent removal on an image the caller cannot see stays a 404.
        let res = registry
            .req(
                Method::DELETE,
                &format!("/v1/images/{id}/tags/t1"),
                B,
                "member",
            )
            .header(HEADER_REPLAY, "1")
            .send()
            .await?;
        expect_error(res, 404, "").await?;
        registry.stop().await;
    }
    Ok(())
}
