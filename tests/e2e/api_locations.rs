//! The location APIs over real HTTP, on every database backend: `show_multiple_locations`
//! and `show_image_direct_url` showing locations only to callers `get_image_location` allows;
//! PATCH add/replace/remove of `/locations` with Glance's checks (a configured store's scheme,
//! never `file://`, the http store's guard, data that is not empty and has the image's size,
//! no duplicate, positions, the last location kept); `image_location_quota` held by the
//! registry even against concurrent adds; the 2.17 `GET`/`POST /v2/images/{id}/locations`.
//! The http locations point at a small origin server on loopback (allowed by
//! `http_store_allow_private_addresses`; without it the guard refuses them, also tested).

use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::{TestCloud, bytes, eventually, md5_hex, sha512_hex};
use crate::harness::backends;

const PATCH: &str = "application/openstack-images-v2.1-json-patch";

/// 1,000 bytes at every `/d/{name}`, none at `/empty`, 999 at `/short`.
fn origin() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let serve = |n: usize| {
        move || async move {
            HttpResponse::Ok()
                .content_type("application/octet-stream")
                .body(bytes(1, 1000)[..n].to_vec())
        }
    };
    let server = HttpServer::new(move || {
        App::new()
            .route("/d/{name}", web::get().to(serve(1000)))
            .route("/d/{name}", web::head().to(serve(1000)))
            .route("/empty", web::get().to(serve(0)))
            .route("/empty", web::head().to(serve(0)))
            .route("/short", web::get().to(serve(999)))
            .route("/short", web::head().to(serve(999)))
    })
    .workers(1)
    .listen(listener)?
    .run();
    actix_web::rt::spawn(server);
    Ok(format!("http://{addr}"))
}

fn conf(extra: &str) -> String {
    format!(
        "[DEFAULT]\nshow_multiple_locations = true\nshow_image_direct_url = true\n\
         image_location_quota = 3\n{extra}\n[paste_deploy]\nflavor = trusted-auth\n\
         [glance_store]\nstores = file, http\ndefault_store = file\n\
         http_store_allow_private_addresses = true\n"
    )
}

struct Caller<'a> {
    c: &'a TestCloud,
    project: &'a str,
    roles: &'a str,
}

impl Caller<'_> {
    fn req(&self, m: Method, p: &str) -> reqwest::RequestBuilder {
        self.c.as_(self.project, self.roles, m, p)
    }

    async fn patch(&self, id: &str, ops: Value) -> Result<(u16, Value)> {
        let res = self
            .req(Method::PATCH, &format!("/v2/images/{id}"))
            .header("content-type", PATCH)
            .body(ops.to_string())
            .send()
            .await?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    async fn show(&self, id: &str) -> Result<Value> {
        Ok(self
            .req(Method::GET, &format!("/v2/images/{id}"))
            .send()
            .await?
            .json()
            .await?)
    }

    async fn create(&self, extra: Value) -> Result<String> {
        let mut body = json!({"name": "l", "disk_format": "raw", "container_format": "bare"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let res = self
            .req(Method::POST, "/v2/images")
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(res.status() == 201, "create: {}", res.status());
        let v: Value = res.json().await?;
        Ok(v["id"].as_str().unwrap().to_string())
    }
}

fn add(url: &str, at: &str) -> Value {
    json!([{"op": "add", "path": format!("/locations/{at}"), "value": {"url": url, "metadata": {}}}])
}

fn urls(img: &Value) -> Vec<String> {
    img["locations"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| l["url"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn message(v: &Value) -> String {
    v.to_string()
}

#[actix_web::test]
async fn patch_locations_follow_glance_rules_on_every_backend() -> Result<()> {
    let o = origin()?;
    let (a, b, c3, d) = (
        format!("{o}/d/a"),
        format!("{o}/d/b"),
        format!("{o}/d/c"),
        format!("{o}/d/d"),
    );
    for backend in backends() {
        let c = TestCloud::with_config(backend, &conf("")).await?;
        let admin = Caller {
            c: &c,
            project: "p1",
            roles: "admin,member,reader",
        };
        let id = admin.create(json!({})).await?;
        let img = admin.show(&id).await?;
        assert_eq!(img["locations"], json!([]), "{backend}: shown, empty");

        // The first location makes a queued image active, with the data's size.
        let (s, img) = admin.patch(&id, add(&a, "-")).await?;
        assert_eq!(s, 200, "{backend}: {img}");
        assert_eq!(img["status"], "active");
        assert_eq!(img["size"], 1000);
        assert_eq!(img["locations"], json!([{"url": a, "metadata": {}}]));
        assert_eq!(img["direct_url"], a);
        let res = admin
            .req(Method::GET, &format!("/v2/images/{id}/file"))
            .send()
            .await?;
        assert_eq!(res.status(), 200);
        assert_eq!(md5_hex(&res.bytes().await?), md5_hex(&bytes(1, 1000)));

        let (s, img) = admin.patch(&id, add(&b, "0")).await?;
        assert_eq!(s, 200, "{img}");
        assert_eq!(
            urls(&img),
            [b.clone(), a.clone()],
            "{backend}: inserted first"
        );

        // Refused: local files, empty data, data of another size, a duplicate, a scheme no
        // store reads, a bad position.
        for (url, needle) in [
            ("file:///etc/passwd".to_string(), "Invalid location"),
            (format!("{o}/empty"), "empty"),
            (format!("{o}/short"), "999"),
            (a.clone(), "twice"),
            ("swift+config://ref/c/o".to_string(), "Invalid location"),
            ("s3://bucket/key".to_string(), "Invalid location"),
        ] {
            let (s, body) = admin.patch(&id, add(&url, "-")).await?;
            assert_eq!(s, 400, "{backend}: {url}: {body}");
            assert!(message(&body).contains(needle), "{url}: {body}");
        }
        let (s, body) = admin.patch(&id, add(&c3, "x")).await?;
        assert_eq!(s, 400, "{body}");

        // The quota (3 here) is a 413 and changes nothing.
        let (s, _) = admin.patch(&id, add(&c3, "-")).await?;
        assert_eq!(s, 200);
        let (s, body) = admin.patch(&id, add(&d, "-")).await?;
        assert_eq!(s, 413, "{backend}: {body}");
        assert!(message(&body).contains("image_location_quota"), "{body}");
        assert_eq!(
            urls(&admin.show(&id).await?),
            [b.clone(), a.clone(), c3.clone()]
        );

        // Replace may change metadata only; another set of URLs, or none, is refused.
        let (s, img) = admin
            .patch(
                &id,
                json!([{"op": "replace", "path": "/locations", "value": [
                    {"url": b, "metadata": {}}, {"url": a, "metadata": {"k": "v"}},
                    {"url": c3, "metadata": {}}]}]),
            )
            .await?;
        assert_eq!(s, 200, "{img}");
        assert_eq!(
            img["locations"][1],
            json!({"url": a, "metadata": {"k": "v"}})
        );
        assert_eq!(urls(&img), [b.clone(), a.clone(), c3.clone()]);
        let (s, body) = admin
            .patch(
                &id,
                json!([{"op": "replace", "path": "/locations", "value": [{"url": d, "metadata": {}}]}]),
            )
            .await?;
        assert_eq!(s, 400, "{body}");
        assert!(message(&body).contains("Original locations is not empty"));
        let (s, _) = admin
            .patch(
                &id,
                json!([{"op": "replace", "path": "/locations", "value": []}]),
            )
            .await?;
        assert_eq!(s, 403);

        // Remove by position; never the last one.
        let (s, body) = admin
            .patch(&id, json!([{"op": "remove", "path": "/locations/7"}]))
            .await?;
        assert_eq!(s, 400, "{body}");
        let (s, img) = admin
            .patch(&id, json!([{"op": "remove", "path": "/locations/0"}]))
            .await?;
        assert_eq!(s, 200, "{img}");
        assert_eq!(urls(&img), [a.clone(), c3.clone()]);
        assert_eq!(img["direct_url"], a);
        let (s, _) = admin
            .patch(&id, json!([{"op": "remove", "path": "/locations/1"}]))
            .await?;
        assert_eq!(s, 200);
        let (s, body) = admin
            .patch(&id, json!([{"op": "remove", "path": "/locations/0"}]))
            .await?;
        assert_eq!(s, 403, "{backend}: {body}");
        assert_eq!(urls(&admin.show(&id).await?), std::slice::from_ref(&a));

        // Who sees and who changes: the owner's member may add (set_image_location) but not
        // remove (delete_image_location: admin); another project sees no location at all.
        let (s, _) = admin
            .patch(
                &id,
                json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
            )
            .await?;
        assert_eq!(s, 200);
        let member = Caller {
            c: &c,
            project: "p1",
            roles: "member,reader",
        };
        assert_eq!(urls(&member.show(&id).await?), std::slice::from_ref(&a));
        let (s, body) = member.patch(&id, add(&b, "-")).await?;
        assert_eq!(s, 200, "{body}");
        let (s, _) = member
            .patch(&id, json!([{"op": "remove", "path": "/locations/1"}]))
            .await?;
        assert_eq!(s, 403);
        let other = Caller {
            c: &c,
            project: "p2",
            roles: "member,reader",
        };
        let seen = other.show(&id).await?;
        assert_eq!(seen["locations"], json!([]), "{backend}: {seen}");
        assert!(seen.get("direct_url").is_none(), "{seen}");

        // Adding to an image that is neither queued nor active is a 409.
        let (s, _) = admin
            .req(Method::POST, &format!("/v2/images/{id}/actions/deactivate"))
            .send()
            .await
            .map(|r| (r.status().as_u16(), ()))?;
        assert_eq!(s, 204);
        let (s, body) = admin.patch(&id, add(&d, "-")).await?;
        assert_eq!(s, 409, "{body}");
    }
    Ok(())
}

#[actix_web::test]
async fn locations_stay_hidden_and_guarded_by_default() -> Result<()> {
    let o = origin()?;
    // Without show_multiple_locations: no `locations`, and the edits are 403 (Glance's answer).
    let c = TestCloud::with_config("sqlite", "[paste_deploy]\nflavor = trusted-auth\n").await?;
    let admin = Caller {
        c: &c,
        project: "p1",
        roles: "admin,member,reader",
    };
    let id = admin.create(json!({})).await?;
    assert!(admin.show(&id).await?.get("locations").is_none());
    let (s, _) = admin.patch(&id, add(&format!("{o}/d/a"), "-")).await?;
    assert_eq!(s, 403);
    // With it, but without http_store_allow_private_addresses: the guard refuses loopback.
    let c = TestCloud::with_config(
        "sqlite",
        "[DEFAULT]\nshow_multiple_locations = true\n[glance_store]\nstores = file, http\n",
    )
    .await?;
    let id = c
        .create(json!({"disk_format": "raw", "container_format": "bare"}))
        .await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = c
        .req(Method::PATCH, &format!("/v2/images/{id}"))
        .header("content-type", PATCH)
        .body(add(&format!("{o}/d/a"), "-").to_string())
        .send()
        .await?;
    assert_eq!(res.status(), 400);
    assert!(res.text().await?.contains("non-public address"));
    Ok(())
}

/// Two glance-api nodes on one registry adding at once cannot pass the quota together: the
/// registry counts under the image's lock.
#[actix_web::test]
async fn concurrent_adds_cannot_pass_the_location_quota() -> Result<()> {
    let o = origin()?;
    for backend in backends() {
        let c = TestCloud::with_config(backend, &conf("")).await?;
        let admin = Caller {
            c: &c,
            project: "p1",
            roles: "admin,member,reader",
        };
        let id = admin.create(json!({})).await?;
        let (s, _) = admin.patch(&id, add(&format!("{o}/d/first"), "-")).await?;
        assert_eq!(s, 200);
        let tries = (0..8).map(|n| {
            let req = admin
                .req(Method::PATCH, &format!("/v2/images/{id}"))
                .header("content-type", PATCH)
                .body(add(&format!("{o}/d/n{n}"), "-").to_string());
            async move { req.send().await.map(|r| r.status().as_u16()) }
        });
        let statuses = futures_util::future::join_all(tries).await;
        let ok = statuses.iter().filter(|s| matches!(s, Ok(200))).count();
        let over = statuses.iter().filter(|s| matches!(s, Ok(413))).count();
        assert_eq!((ok, over), (2, 6), "{backend}: {statuses:?}");
        assert_eq!(urls(&admin.show(&id).await?).len(), 3, "{backend}");
    }
    Ok(())
}

#[actix_web::test]
async fn the_2_17_location_api_is_for_services() -> Result<()> {
    let o = origin()?;
    let data = bytes(1, 1000);
    for backend in backends() {
        let c = TestCloud::with_config(backend, &conf("")).await?;
        let member = Caller {
            c: &c,
            project: "p1",
            roles: "member,reader",
        };
        let service = Caller {
            c: &c,
            project: "p1",
            roles: "service,member,reader",
        };
        let id = member.create(json!({})).await?;
        let post = |who: &Caller<'_>, body: Value| {
            who.req(Method::POST, &format!("/v2/images/{id}/locations"))
                .json(&body)
                .send()
        };
        // Not a service: only http(s) locations.
        let res = post(&member, json!({"url": "rbd://f/images/x/snap"})).await?;
        assert_eq!(res.status(), 403, "{backend}");
        let res = post(&member, json!({"url": format!("{o}/d/a"), "bogus": 1})).await?;
        assert_eq!(res.status(), 400);
        let res = post(
            &member,
            json!({"url": format!("{o}/d/a"), "validation_data": {"os_hash_algo": "sha256",
                   "os_hash_value": "00"}}),
        )
        .await?;
        assert_eq!(res.status(), 409, "wrong algorithm");
        // Hashed in the background, checked against validation_data, then active.
        let res = post(
            &member,
            json!({"url": format!("{o}/d/a"), "validation_data": {"os_hash_algo": "sha512",
                   "os_hash_value": sha512_hex(&data)}}),
        )
        .await?;
        assert_eq!(res.status(), 202, "{backend}: {}", res.text().await?);
        let img = eventually(10, || async {
            let img = member.show(&id).await?;
            Ok((img["status"] == "active").then_some(img))
        })
        .await?;
        assert_eq!(img["checksum"], md5_hex(&data));
        assert_eq!(img["os_hash_value"], sha512_hex(&data));
        assert_eq!(img["size"], 1000);
        let res = post(&member, json!({"url": format!("{o}/d/b")})).await?;
        assert_eq!(res.status(), 409, "not queued any more");

        // GET is for services.
        let res = member
            .req(Method::GET, &format!("/v2/images/{id}/locations"))
            .send()
            .await?;
        assert_eq!(res.status(), 403);
        let res = service
            .req(Method::GET, &format!("/v2/images/{id}/locations"))
            .send()
            .await?;
        assert_eq!(res.status(), 200);
        let list: Value = res.json().await?;
        assert_eq!(list, json!([{"url": format!("{o}/d/a"), "metadata": {}}]));

        // Data that does not match validation_data: the image goes back to queued.
        let id2 = member.create(json!({})).await?;
        let res = member
            .req(Method::POST, &format!("/v2/images/{id2}/locations"))
            .json(
                &json!({"url": format!("{o}/d/a"), "validation_data": {"os_hash_algo": "sha512",
                   "os_hash_value": "ab".repeat(64)}}),
            )
            .send()
            .await?;
        assert_eq!(res.status(), 202);
        eventually(10, || async {
            let img = member.show(&id2).await?;
            Ok((img["status"] == "queued").then_some(()))
        })
        .await?;
        assert_eq!(member.show(&id2).await?["locations"], json!([]));
    }
    Ok(())
}
