//! Listing through the registry: visibility and membership filtering in SQL, every filter
//! kind, both sort syntaxes, and marker pagination that never skips or repeats.

use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestRegistry, backends, expect_error};

async fn names(r: &TestRegistry, project: &str, roles: &str, query: &str) -> Result<Vec<String>> {
    let res = r
        .req(Method::GET, &format!("/v1/images?{query}"), project, roles)
        .send()
        .await?;
    anyhow::ensure!(res.status() == 200, "GET ?{query} -> {}", res.status());
    let body: Value = res.json().await?;
    let mut out: Vec<String> = body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap_or("").to_string())
        .collect();
    out.sort();
    Ok(out)
}

#[actix_web::test]
async fn visibility_and_membership_are_filtered_in_sql() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        r.create("a", json!({"name": "a-public", "visibility": "public"}))
            .await?;
        r.create("a", json!({"name": "a-private", "visibility": "private"}))
            .await?;
        r.create(
            "a",
            json!({"name": "a-community", "visibility": "community"}),
        )
        .await?;
        r.create(
            "a",
            json!({"name": "a-hidden", "visibility": "public", "os_hidden": true}),
        )
        .await?;
        let shared = r.create("a", json!({"name": "a-shared"})).await?;
        let sid = shared["id"].as_str().unwrap();
        let pend = r.create("a", json!({"name": "a-shared-pending"})).await?;
        let pid = pend["id"].as_str().unwrap();
        r.create("b", json!({"name": "b-private", "visibility": "private"}))
            .await?;
        r.create(
            "b",
            json!({"name": "b-community", "visibility": "community"}),
        )
        .await?;
        for (img, member) in [(sid, "b"), (pid, "b")] {
            r.req(
                Method::POST,
                &format!("/v1/images/{img}/members"),
                "a",
                "member",
            )
            .json(&json!({"member": member}))
            .send()
            .await?;
        }
        r.req(
            Method::PUT,
            &format!("/v1/images/{sid}/members/b"),
            "b",
            "member",
        )
        .json(&json!({"status": "accepted"}))
        .send()
        .await?;

        assert_eq!(
            names(&r, "b", "reader", "").await?,
            ["a-public", "a-shared", "b-community", "b-private"],
            "{b}: default list"
        );
        assert_eq!(
            names(&r, "b", "reader", "member_status=pending").await?,
            ["a-public", "a-shared-pending", "b-community", "b-private"],
            "{b}"
        );
        assert_eq!(
            names(&r, "b", "reader", "member_status=all&visibility=shared").await?,
            ["a-shared", "a-shared-pending"],
            "{b}"
        );
        assert_eq!(
            names(&r, "b", "reader", "visibility=community").await?,
            ["a-community", "b-community"],
            "{b}"
        );
        assert_eq!(
            names(&r, "b", "reader", "visibility=private").await?,
            ["b-private"],
            "{b}"
        );
        assert_eq!(
            names(&r, "b", "reader", "visibility=all").await?,
            [
                "a-community",
                "a-public",
                "a-shared",
                "b-community",
                "b-private"
            ],
            "{b}"
        );
        assert_eq!(
            names(&r, "b", "reader", "os_hidden=true").await?,
            ["a-hidden"],
            "{b}"
        );
        assert_eq!(
            names(&r, "c", "reader", "").await?,
            ["a-public"],
            "{b}: stranger"
        );
        let admin = names(&r, "", "admin", "visibility=all").await?;
        assert_eq!(admin.len(), 7, "{b}: admin sees all but hidden: {admin:?}");
        r.stop().await;
    }
    Ok(())
}

#[actix_web::test]
async fn filters_match_glance() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let one = r
            .create(
                "p",
                json!({"name": "one", "disk_format": "qcow2", "container_format": "bare",
            "tags": ["x", "y"], "properties": {"os_distro": "cirros"}, "protected": true}),
            )
            .await?;
        r.create("p", json!({"name": "two", "disk_format": "raw", "tags": ["x"], "properties": {"os_distro": "ubuntu"}})).await?;
        r.create("p", json!({"name": "a,b", "disk_format": "iso"}))
            .await?;
        let id = one["id"].as_str().unwrap();
        r.admin(Method::PATCH, &format!("/v1/images/{id}"))
            .json(&json!({"size": 100, "checksum": "abc"}))
            .send()
            .await?;

        assert_eq!(names(&r, "p", "reader", "name=one").await?, ["one"], "{b}");
        assert_eq!(
            names(&r, "p", "reader", "name=in:one,two").await?,
            ["one", "two"],
            "{b}"
        );
        assert_eq!(
            names(&r, "p", "reader", "name=in:%22a,b%22,two").await?,
            ["a,b", "two"],
            "{b}: quoted in:"
        );
        assert_eq!(
            names(&r, "p", "reader", "disk_format=raw").await?,
            ["two"],
            "{b}"
        );
        assert_eq!(
            names(&r, "p", "reader", "tag=x").await?,
            ["one", "two"],
            "{b}"
        );
        assert_eq!(
            names(&r, "p", "reader", "tag=x&tag=y").await?,
            ["one"],
            "{b}: tags AND"
        );
        assert_eq!(
            names(&r, "p", "reader", "os_distro=ubuntu").await?,
            ["two"],
            "{b}: property filter"
        );
        assert_eq!(
            names(&r, "p", "reader", "protected=true").await?,
            ["one"],
            "{b}"
        );
        assert_eq!(
            names(&r, "p", "reader", "size_min=50").await?,
            ["one"],
            "{b}"
        );
        assert_eq!(
            names(&r, "p", "reader", "size_max=50").await?,
            Vec::<String>::new(),
            "{b}"
        );
        assert_eq!(
            names(&r, "p", "reader", "checksum=abc").await?,
            ["one"],
            "{b}"
        );
        assert_eq!(
            names(&r, "p", "reader", "owner=p&status=queued")
                .await?
                .len(),
            3,
            "{b}"
        );
        assert_eq!(
            names(&r, "p", "reader", "created_at=gte:2000-01-01T00:00:00Z")
                .await?
                .len(),
            3,
            "{b}"
        );
        assert_eq!(
            names(&r, "p", "reader", "created_at=lt:2000-01-01T00:00:00Z")
                .await?
                .len(),
            0,
            "{b}"
        );
        r.stop().await;
    }
    Ok(())
}

async fn page_through(r: &TestRegistry, query: &str, limit: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..100 {
        let mut q = format!("{query}&limit={limit}");
        if let Some(m) = &marker {
            q.push_str(&format!("&marker={m}"));
        }
        let body: Value = r
            .req(Method::GET, &format!("/v1/images?{q}"), "p", "reader")
            .send()
            .await?
            .json()
            .await?;
        let page = body["images"].as_array().cloned().unwrap_or_default();
        out.extend(page.iter().map(|i| i["id"].as_str().unwrap().to_string()));
        if page.len() < limit {
            return Ok(out);
        }
        marker = page.last().map(|i| i["id"].as_str().unwrap().to_string());
    }
    anyhow::bail!("pagination did not end")
}

#[actix_web::test]
async fn marker_pagination_is_complete_in_every_order() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let mut all = Vec::new();
        // Same-second timestamps and NULL names force the tiebreakers and COALESCE paths.
        for i in 0..11 {
            let name = if i % 4 == 0 {
                Value::Null
            } else {
                json!(format!("img-{}", i % 3))
            };
            let img = r
                .create(
                    "p",
                    json!({"name": name, "disk_format": if i % 2 == 0 { "raw" } else { "qcow2" }}),
                )
                .await?;
            all.push(img["id"].as_str().unwrap().to_string());
        }
        let full: Value = r
            .req(
                Method::GET,
                "/v1/images?limit=100&sort=name:asc,disk_format:desc",
                "p",
                "reader",
            )
            .send()
            .await?
            .json()
            .await?;
        let expected: Vec<String> = full["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(expected.len(), 11);
        for (query, limit) in [
            ("sort=name:asc,disk_format:desc", 3),
            ("sort_key=name&sort_dir=asc&sort_key=disk_format", 2),
        ] {
            let mut got = page_through(&r, query, limit).await?;
            if query.starts_with("sort=") {
                assert_eq!(got, expected, "{b}: {query}");
            }
            got.sort();
            let mut want = all.clone();
            want.sort();
            assert_eq!(got, want, "{b}: {query} skipped or repeated rows");
        }
        let default_order = page_through(&r, "", 4).await?;
        let mut rev = all.clone();
        rev.reverse();
        let mut d = default_order.clone();
        d.sort();
        let mut a = all.clone();
        a.sort();
        assert_eq!(d, a, "{b}: default order pages");

        let res = r
            .req(
                Method::GET,
                "/v1/images?marker=00000000-0000-0000-0000-000000000000",
                "p",
                "reader",
            )
            .send()
            .await?;
        expect_error(res, 400, "marker").await?;
        r.stop().await;
    }
    Ok(())
}
