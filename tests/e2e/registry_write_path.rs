//! The registry's one write path, checked from outside: every write route `app.rs`
//! registers is walked, and each must move its image's stripe counter (the record cache's
//! only evidence of a change, see `glance_registry::db::locked`). The set of routes walked
//! must equal the set `app.rs` registers, so a write route added later without a step here
//! fails this test until it has one, and then fails it if it skips the counter.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use diesel::connection::SimpleConnection;
use glance_registry::db::generations::stripe;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestRegistry, backends, first_n};

/// `app.rs`, as compiled into this test: the routes it registers are read from it.
const APP_RS: &str = include_str!("../../crates/registry/src/app.rs");

/// Routes that write without moving a counter, each with why that is safe. Only a create:
/// nothing can have cached an image that did not exist (ids of deleted images stay taken).
const NO_COUNTER: &[(&str, &str)] = &[("POST", "/v1/images")];

/// Routes under this prefix write the `metadef_*` tables, which hold no image rows: they have
/// no counter to move. `registry_metadefs` walks every one of them instead.
pub const METADEF_ROUTES: &str = "/v1/metadefs/";

/// The (method, path) of every route `app.rs` registers whose method writes, read from its
/// `web::resource("…")` and `.route(web::post().to(…))` lines; the metadef routes are left
/// out (see [`METADEF_ROUTES`]).
fn write_routes() -> Result<BTreeSet<(String, String)>> {
    let mut all = all_write_routes()?;
    all.retain(|(_, path)| !path.starts_with(METADEF_ROUTES));
    Ok(all)
}

/// Every write route `app.rs` registers.
pub fn all_write_routes() -> Result<BTreeSet<(String, String)>> {
    let mut out = BTreeSet::new();
    let mut resource: Option<String> = None;
    for line in APP_RS.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("web::resource(\"") {
            resource = rest.split('"').next().map(str::to_string);
        } else if let Some(rest) = line.strip_prefix(".route(web::") {
            let method = rest.split("()").next().unwrap_or_default().to_uppercase();
            let path = resource
                .clone()
                .with_context(|| format!("a route outside a resource: {line}"))?;
            if matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
                out.insert((method, path));
            }
        }
    }
    // Reading app.rs must find the routes it has today; a layout this parser no longer
    // understands fails here, not silently.
    anyhow::ensure!(
        out.len() >= 13,
        "read only {} write routes from app.rs",
        out.len()
    );
    Ok(out)
}

/// The counter of the image's stripe.
fn counter(r: &TestRegistry, id: &str) -> Result<i64> {
    let s = stripe(&id.parse()?);
    first_n(
        &mut r.db.conn()?,
        &format!("SELECT generation AS n FROM glance_record_generations WHERE stripe = {s}"),
    )?
    .with_context(|| format!("stripe {s} has no counter row"))
}

/// One walk of the write routes on one registry, recording the route of each step.
struct Walk<'a> {
    r: &'a TestRegistry,
    backend: &'a str,
    walked: BTreeSet<(String, String)>,
}

impl Walk<'_> {
    /// Sends `req` (a write to the image `id` by route `route`), expects `status`, and checks
    /// that the image's counter moved; returns the body (`Null` when empty).
    async fn step(
        &mut self,
        route: (&str, &str),
        id: &str,
        req: reqwest::RequestBuilder,
        status: u16,
    ) -> Result<Value> {
        let before = counter(self.r, id)?;
        let res = req.send().await?;
        let got = res.status().as_u16();
        let text = res.text().await?;
        anyhow::ensure!(
            got == status,
            "{}: {} {} answered {got}, not {status}: {text}",
            self.backend,
            route.0,
            route.1
        );
        let after = counter(self.r, id)?;
        anyhow::ensure!(
            after > before,
            "{}: {} {} changed image {id} without moving its counter ({before} → {after})",
            self.backend,
            route.0,
            route.1
        );
        self.walked
            .insert((route.0.to_string(), route.1.to_string()));
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.r.req(method, path, "p", "member")
    }

    /// Starts an upload on `id` and returns its lease token.
    async fn start_upload(&mut self, id: &str) -> Result<String> {
        let path = format!("/v1/images/{id}/upload");
        let req = self
            .req(Method::POST, &path)
            .json(&json!({"node": "api-1:9292", "ttl_secs": 30}));
        let lease = self
            .step(("POST", "/v1/images/{id}/upload"), id, req, 201)
            .await?;
        Ok(lease["token"].as_str().unwrap_or_default().to_string())
    }
}

#[actix_web::test]
async fn every_write_route_moves_its_images_counter() -> Result<()> {
    let registered = write_routes()?;
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let mut w = Walk {
            r: &r,
            backend: b,
            walked: BTreeSet::new(),
        };
        // A create needs no counter (see NO_COUNTER): it is walked, not counted.
        let img = r
            .create(
                "p",
                json!({"disk_format": "raw", "container_format": "bare", "visibility": "shared"}),
            )
            .await?;
        w.walked
            .insert(("POST".to_string(), "/v1/images".to_string()));
        let id = img["id"].as_str().unwrap_or_default().to_string();
        let image = format!("/v1/images/{id}");

        let req = w.req(Method::PATCH, &image).json(&json!({"name": "renamed",
            "set_properties": {"os_distro": "debian"}}));
        w.step(("PATCH", "/v1/images/{id}"), &id, req, 200).await?;
        let tag = format!("{image}/tags/blue");
        let req = w.req(Method::PUT, &tag);
        w.step(("PUT", "/v1/images/{id}/tags/{tag}"), &id, req, 204)
            .await?;
        let req = w.req(Method::DELETE, &tag);
        w.step(("DELETE", "/v1/images/{id}/tags/{tag}"), &id, req, 204)
            .await?;
        let members = format!("{image}/members");
        let req = w.req(Method::POST, &members).json(&json!({"member": "q"}));
        w.step(("POST", "/v1/images/{id}/members"), &id, req, 200)
            .await?;
        let member = format!("{members}/q");
        let req = r
            .req(Method::PUT, &member, "q", "member")
            .json(&json!({"status": "accepted"}));
        w.step(("PUT", "/v1/images/{id}/members/{member}"), &id, req, 200)
            .await?;
        let req = w.req(Method::DELETE, &member);
        w.step(
            ("DELETE", "/v1/images/{id}/members/{member}"),
            &id,
            req,
            204,
        )
        .await?;

        // An upload given up, one recovered after its lease ran out, one completed.
        let token = w.start_upload(&id).await?;
        let req = w
            .req(Method::PUT, &format!("{image}/upload"))
            .json(&json!({"token": token, "ttl_secs": 60}));
        w.step(("PUT", "/v1/images/{id}/upload"), &id, req, 200)
            .await?;
        let req = w
            .req(Method::POST, &format!("{image}/upload/abort"))
            .json(&json!({"token": token}));
        w.step(("POST", "/v1/images/{id}/upload/abort"), &id, req, 200)
            .await?;
        w.start_upload(&id).await?;
        // The holder "died" long ago: its lease ran out (set by hand, not waited for).
        r.db.conn()?.batch_execute(&format!(
            "UPDATE glance_upload_leases SET expires_at = '2000-01-01 00:00:00' \
             WHERE image_id = '{id}'"
        ))?;
        let req = w.req(Method::POST, &format!("{image}/upload/recover"));
        let back = w
            .step(("POST", "/v1/images/{id}/upload/recover"), &id, req, 200)
            .await?;
        assert_eq!(back["status"], "queued", "{b}");
        let token = w.start_upload(&id).await?;
        let done = json!({"token": token, "size": 3,
            "checksum": "900150983cd24fb0d6963f7d28e17f72", "os_hash_algo": "sha512",
            "os_hash_value": "ddaf35a1",
            "location": {"url": format!("file:///var/lib/glance/images/{id}"),
                         "metadata": {"store": "file"}}});
        let req = w
            .req(Method::POST, &format!("{image}/upload/complete"))
            .json(&done);
        let active = w
            .step(("POST", "/v1/images/{id}/upload/complete"), &id, req, 200)
            .await?;
        assert_eq!(active["status"], "active", "{b}");
        // A location added under the lock (the quota checked there).
        let change = json!({"ops": [{"op": "add", "location":
            {"url": "http://images.example.org/a.img", "metadata": {}}}], "quota": 10});
        let req = w
            .req(Method::POST, &format!("{image}/locations"))
            .json(&change);
        let located = w
            .step(("POST", "/v1/images/{id}/locations"), &id, req, 200)
            .await?;
        assert_eq!(
            located["locations"].as_array().map(Vec::len),
            Some(2),
            "{b}"
        );

        // Interoperable import (issue 30): a stage, its end, and a glance-direct import's
        // start; the import ends through the lease routes walked above.
        let staged = r
            .create(
                "p",
                json!({"disk_format": "raw", "container_format": "bare", "visibility": "shared"}),
            )
            .await?;
        let sid = staged["id"].as_str().unwrap_or_default().to_string();
        let req = w
            .req(Method::POST, &format!("/v1/images/{sid}/stage"))
            .json(&json!({"node": "api-1:9292", "ttl_secs": 30}));
        let lease = w
            .step(("POST", "/v1/images/{id}/stage"), &sid, req, 201)
            .await?;
        let req = w
            .req(Method::POST, &format!("/v1/images/{sid}/stage/complete"))
            .json(&json!({"token": lease["token"], "size": 3, "stage_host": "http://api-1:9292"}));
        let up = w
            .step(("POST", "/v1/images/{id}/stage/complete"), &sid, req, 200)
            .await?;
        assert_eq!(up["status"], "uploading", "{b}");
        let req = w
            .req(Method::POST, &format!("/v1/images/{sid}/import"))
            .json(&json!({"lease": {"node": "api-1:9292", "ttl_secs": 30},
                          "method": "glance-direct", "input": {}}));
        let started = w
            .step(("POST", "/v1/images/{id}/import"), &sid, req, 201)
            .await?;
        assert_eq!(started["task"]["status"], "processing", "{b}");
        let shown = w
            .req(Method::GET, &format!("/v1/images/{sid}"))
            .send()
            .await?
            .json::<Value>()
            .await?;
        assert_eq!(shown["status"], "importing", "{b}");

        // Deletes: of an image read into the record cache with children (properties, a
        // location), the cached delete with its children; of one just created (cached as
        // created, nothing but its row), the cached delete alone (one joined UPDATE on
        // MariaDB); and of one the cache does not hold.
        let shown = w.req(Method::GET, &image).send().await?;
        anyhow::ensure!(shown.status() == 200, "{b}: show {}", shown.status());
        let req = w.req(Method::DELETE, &image);
        let gone = w.step(("DELETE", "/v1/images/{id}"), &id, req, 200).await?;
        assert_eq!(gone["status"], "deleted", "{b}");
        let live = first_n(
            &mut r.db.conn()?,
            &format!(
                "SELECT COUNT(*) AS n FROM image_properties WHERE image_id = '{id}' AND deleted = false"
            ),
        )?;
        assert_eq!(live, Some(0), "{b}: the delete marked the children");
        let bare = r.create("p", json!({"name": "bare"})).await?;
        let bare = bare["id"].as_str().unwrap_or_default().to_string();
        let req = w.req(Method::DELETE, &format!("/v1/images/{bare}"));
        w.step(("DELETE", "/v1/images/{id}"), &bare, req, 200)
            .await?;
        let uncached = r.create("p", json!({"name": "uncached"})).await?;
        let uncached = uncached["id"].as_str().unwrap_or_default().to_string();
        // The row changes behind the registry's back (and the counter with it), so the
        // cached record no longer holds: the delete goes by the rows.
        r.db.conn()?.batch_execute(&format!(
            "UPDATE images SET min_ram = 1 WHERE id = '{uncached}'; \
             UPDATE glance_record_generations SET generation = generation + 1 \
             WHERE stripe = {}",
            stripe(&uncached.parse()?)
        ))?;
        let req = w.req(Method::DELETE, &format!("/v1/images/{uncached}"));
        let gone = w
            .step(("DELETE", "/v1/images/{id}"), &uncached, req, 200)
            .await?;
        assert_eq!(gone["min_ram"], 1, "{b}: deleted by its rows");

        let exempt: BTreeSet<(String, String)> = NO_COUNTER
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert!(exempt.is_subset(&registered), "{b}: {exempt:?}");
        assert_eq!(
            w.walked, registered,
            "{b}: the routes walked must be exactly the write routes app.rs registers"
        );
        r.stop().await;
    }
    Ok(())
}
