//! glance-api over real HTTP with glance-registry behind it: versions, routing errors, request
//! ids, image create/show/list/update/delete, tags, actions, schemas and discovery.

use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::TestCloud;
use crate::harness::expect_error;

#[actix_web::test]
async fn versions_routing_and_request_ids() -> Result<()> {
    let c = TestCloud::start().await?;
    let res = c.req(Method::GET, "/").send().await?;
    assert_eq!(res.status(), 300);
    let doc: Value = res.json().await?;
    let ids: Vec<&str> = doc["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], "v2.17");
    assert_eq!(doc["versions"][0]["status"], "CURRENT");
    assert!(
        ids.contains(&"v2.0") && ids.contains(&"v2.9") && !ids.contains(&"v2.8"),
        "{ids:?}"
    );
    assert!(
        doc["versions"][0]["links"][0]["href"]
            .as_str()
            .unwrap()
            .ends_with("/v2/")
    );
    assert_eq!(c.req(Method::GET, "/versions").send().await?.status(), 200);
    assert_eq!(c.req(Method::GET, "/v1/images").send().await?.status(), 300);
    assert_eq!(c.req(Method::GET, "/v3/images").send().await?.status(), 300);
    for prefix in ["/v2", "/v2.0", "/v2.7", "/v2.15", "/v2.17"] {
        let res = c
            .req(Method::GET, &format!("{prefix}/images"))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{prefix}");
    }
    // 2.8 exists only with multi-store.
    assert_eq!(
        c.req(Method::GET, "/v2.8/images").send().await?.status(),
        300
    );
    let res = c.req(Method::GET, "/v2/nothing").send().await?;
    let rid = res
        .headers()
        .get("x-openstack-request-id")
        .unwrap()
        .to_str()?
        .to_string();
    assert!(rid.starts_with("req-"), "{rid}");
    expect_error(res, 404, "could not be found").await?;
    let res = c.req(Method::DELETE, "/v2/images").send().await?;
    assert_eq!(res.headers().get("allow").unwrap(), "GET, POST");
    assert!(res.headers().contains_key("x-openstack-request-id"));
    expect_error(res, 405, "not allowed").await?;
    let res = c
        .req(Method::GET, "/v2/images")
        .header("x-openstack-request-id", "req-mine")
        .send()
        .await?;
    assert_eq!(
        res.headers().get("x-openstack-request-id").unwrap(),
        "req-mine"
    );
    Ok(())
}

#[actix_web::test]
async fn create_show_and_glance_rules_on_create() -> Result<()> {
    let c = TestCloud::start().await?;
    let res = c
        .req(Method::POST, "/v2/images")
        .json(
            &json!({"id": "11111111-2222-3333-4444-555555555555", "name": "cirros",
            "disk_format": "qcow2", "container_format": "bare", "visibility": "private",
            "min_disk": 1, "min_ram": 64, "tags": ["t1", "t2", "t1"], "os_distro": "cirros"}),
        )
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    assert!(
        res.headers()
            .get("location")
            .unwrap()
            .to_str()?
            .ends_with("/v2/images/11111111-2222-3333-4444-555555555555")
    );
    let img: Value = res.json().await?;
    for (k, v) in [
        ("name", json!("cirros")),
        ("disk_format", json!("qcow2")),
        ("container_format", json!("bare")),
        ("visibility", json!("private")),
        ("size", Value::Null),
        ("virtual_size", Value::Null),
        ("status", json!("queued")),
        ("checksum", Value::Null),
        ("protected", json!(false)),
        ("min_ram", json!(64)),
        ("min_disk", json!(1)),
        ("owner", Value::Null),
        ("os_hidden", json!(false)),
        ("os_hash_algo", Value::Null),
        ("os_hash_value", Value::Null),
        ("os_distro", json!("cirros")),
        (
            "self",
            json!("/v2/images/11111111-2222-3333-4444-555555555555"),
        ),
        (
            "file",
            json!("/v2/images/11111111-2222-3333-4444-555555555555/file"),
        ),
        ("schema", json!("/v2/schemas/image")),
    ] {
        assert_eq!(img[k], v, "{k}");
    }
    let mut tags: Vec<&str> = img["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["t1", "t2"]);
    assert!(img["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        c.show("11111111-2222-3333-4444-555555555555").await?["name"],
        "cirros"
    );

    let minimal = c.create(json!({})).await?;
    assert_eq!(minimal["visibility"], "shared");
    assert_eq!(minimal["name"], Value::Null);

    let dup = c
        .req(Method::POST, "/v2/images")
        .json(&json!({"id": "11111111-2222-3333-4444-555555555555"}))
        .send()
        .await?;
    expect_error(dup, 409, "").await?;
    for (body, status, needle) in [
        (json!({"status": "active"}), 403, "read-only"),
        (json!({"checksum": "x"}), 403, "read-only"),
        (json!({"self": "x"}), 403, "read-only"),
        (json!({"deleted": true}), 403, "reserved"),
        (json!({"locations": []}), 403, "reserved"),
        (json!({"os_glance_foo": "x"}), 403, "reserved"),
        (json!({"disk_format": "floppy"}), 400, "disk_format"),
        (json!({"visibility": "everyone"}), 400, "visibility"),
        (json!({"min_ram": -1}), 400, "min_ram"),
        (json!({"foo": 1}), 400, "string"),
        (json!({"id": "not-a-uuid"}), 400, "uuid"),
        (json!({"name": "x".repeat(256)}), 400, "too long"),
        (json!(["not", "an", "object"]), 400, "object"),
    ] {
        let res = c.req(Method::POST, "/v2/images").json(&body).send().await?;
        expect_error(res, status, needle).await?;
    }
    let res = c
        .req(Method::POST, "/v2/images")
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await?;
    expect_error(res, 400, "json").await?;
    let res = c
        .req(
            Method::GET,
            "/v2/images/00000000-0000-4000-8000-000000000000",
        )
        .send()
        .await?;
    expect_error(res, 404, "").await?;
    let res = c.req(Method::GET, "/v2/images/not-a-uuid").send().await?;
    expect_error(res, 404, "").await?;
    Ok(())
}

#[actix_web::test]
async fn list_filters_sorting_and_links_as_glance() -> Result<()> {
    let c = TestCloud::start().await?;
    for (name, distro, tag) in [
        ("a-img", "d-a", "x"),
        ("b-img", "d-b", "y"),
        ("c-img", "d-c", "x"),
    ] {
        c.create(
            json!({"name": name, "os_distro": distro, "tags": [tag], "visibility": "public",
            "disk_format": "raw", "container_format": "bare"}),
        )
        .await?;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let list = |q: &'static str| {
        let c = &c;
        async move {
            let res = c.req(Method::GET, &format!("/v2/images{q}")).send().await?;
            anyhow::ensure!(res.status() == 200, "{q}: {}", res.status());
            let v: Value = res.json().await?;
            Ok::<_, anyhow::Error>(v)
        }
    };
    let names = |v: &Value| -> Vec<String> {
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let all = list("").await?;
    assert_eq!(
        names(&all),
        ["c-img", "b-img", "a-img"],
        "default created_at desc"
    );
    assert_eq!(all["first"], "/v2/images");
    assert_eq!(all["schema"], "/v2/schemas/images");
    assert!(all.get("next").is_none());

    let page = list("?limit=2").await?;
    assert_eq!(names(&page), ["c-img", "b-img"]);
    assert_eq!(page["first"], "/v2/images?limit=2");
    let last = page["images"][1]["id"].as_str().unwrap();
    assert_eq!(page["next"], format!("/v2/images?limit=2&marker={last}"));
    let next = c
        .req(Method::GET, page["next"].as_str().unwrap())
        .send()
        .await?
        .json::<Value>()
        .await?;
    assert_eq!(names(&next), ["a-img"]);
    assert_eq!(next["first"], "/v2/images?limit=2");

    assert_eq!(names(&list("?name=b-img").await?), ["b-img"]);
    let inlist = list("?name=in:a-img,c-img&sort=name:asc").await?;
    assert_eq!(names(&inlist), ["a-img", "c-img"]);
    assert_eq!(
        inlist["first"],
        "/v2/images?name=in%3Aa-img%2Cc-img&sort=name%3Aasc"
    );
    assert_eq!(names(&list("?os_distro=d-b").await?), ["b-img"]);
    assert_eq!(
        names(&list("?tag=x&sort_key=name&sort_dir=asc").await?),
        ["a-img", "c-img"]
    );
    assert_eq!(
        names(&list("?created_at=gt:2000-01-01T00:00:00Z&sort=name:desc&limit=1").await?),
        ["c-img"]
    );
    for (q, needle) in [
        ("?limit=-1", "limit"),
        ("?sort_key=nope", "sort"),
        ("?sort=name:sideways", "sort"),
        ("?sort=name&sort_key=name", "sort"),
        ("?marker=00000000-0000-4000-8000-000000000000", "marker"),
        ("?visibility=everyone", "visibility"),
        ("?created_at=gt:yesterday", "created_at"),
        ("?changes-since=2020-01-01", "changes-since"),
        ("?protected=maybe", "protected"),
    ] {
        let res = c.req(Method::GET, &format!("/v2/images{q}")).send().await?;
        expect_error(res, 400, needle).await?;
    }
    Ok(())
}

#[actix_web::test]
async fn patch_follows_glance_rules() -> Result<()> {
    let c = TestCloud::start().await?;
    let img = c
        .create(
            json!({"name": "p", "disk_format": "raw", "container_format": "bare", "foo": "bar"}),
        )
        .await?;
    let id = img["id"].as_str().unwrap();
    let path = format!("/v2/images/{id}");
    let patch = |ct: &'static str, body: Value| {
        c.req(Method::PATCH, &path)
            .header("content-type", ct)
            .body(body.to_string())
            .send()
    };
    const V21: &str = "application/openstack-images-v2.1-json-patch";
    const V20: &str = "application/openstack-images-v2.0-json-patch";
    let res = patch(
        V21,
        json!([
            {"op": "replace", "path": "/name", "value": "renamed"},
            {"op": "add", "path": "/os_distro", "value": "cirros"},
            {"op": "remove", "path": "/foo"},
            {"op": "replace", "path": "/min_ram", "value": 128},
            {"op": "add", "path": "/tags", "value": ["a", "b"]},
        ]),
    )
    .await?;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await?;
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["os_distro"], "cirros");
    assert!(v.get("foo").is_none());
    assert_eq!(v["min_ram"], 128);
    assert_eq!(v["tags"].as_array().unwrap().len(), 2);
    let res = patch(V20, json!([{"add": "/old", "value": "style"}])).await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await?["old"], "style");
    let res = patch(V20, json!([{"add": "/old", "value": "again"}])).await?;
    expect_error(res, 409, "").await?;

    let res = patch("application/json", json!([])).await?;
    assert_eq!(res.status(), 415);
    assert!(
        res.headers()
            .get("accept-patch")
            .unwrap()
            .to_str()?
            .contains("openstack-images-v2.1-json-patch")
    );
    for (body, status, needle) in [
        (
            json!([{"op": "replace", "path": "/status", "value": "active"}]),
            403,
            "read-only",
        ),
        (
            json!([{"op": "add", "path": "/os_glance_x", "value": "1"}]),
            403,
            "reserved",
        ),
        (json!([{"op": "remove", "path": "/nope"}]), 409, "nope"),
        (
            json!([{"op": "replace", "path": "/nope", "value": "x"}]),
            409,
            "nope",
        ),
        (
            json!([{"op": "add", "path": "/num", "value": 5}]),
            400,
            "string",
        ),
        (json!([{"op": "move", "path": "/name"}]), 400, ""),
        (json!({"op": "add"}), 400, ""),
        (
            json!([{"op": "add", "path": "/locations/-", "value": {"url": "http://x", "metadata": {}}}]),
            403,
            "location",
        ),
        (json!([{"op": "remove", "path": "/name"}]), 403, ""),
    ] {
        let res = patch(V21, body.clone()).await?;
        expect_error(res, status, needle)
            .await
            .map_err(|e| e.context(body.to_string()))?;
    }
    let res = c
        .req(Method::PATCH, &path)
        .header("content-type", V21)
        .body("[{")
        .send()
        .await?;
    expect_error(res, 400, "json").await?;
    // Nothing of the refused patches stuck.
    let now = c.show(id).await?;
    assert_eq!(now["name"], "renamed");
    assert!(now.get("num").is_none() && now.get("os_glance_x").is_none());
    Ok(())
}

#[actix_web::test]
async fn tags_actions_protection_and_delete() -> Result<()> {
    let c = TestCloud::start().await?;
    let img = c
        .create(json!({"name": "t", "disk_format": "raw", "container_format": "bare"}))
        .await?;
    let id = img["id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        assert_eq!(
            c.req(Method::PUT, &format!("/v2/images/{id}/tags/blue"))
                .send()
                .await?
                .status(),
            204
        );
    }
    assert_eq!(c.show(&id).await?["tags"], json!(["blue"]));
    let long = "x".repeat(256);
    expect_error(
        c.req(Method::PUT, &format!("/v2/images/{id}/tags/{long}"))
            .send()
            .await?,
        400,
        "",
    )
    .await?;
    assert_eq!(
        c.req(Method::DELETE, &format!("/v2/images/{id}/tags/blue"))
            .send()
            .await?
            .status(),
        204
    );
    expect_error(
        c.req(Method::DELETE, &format!("/v2/images/{id}/tags/blue"))
            .send()
            .await?,
        404,
        "",
    )
    .await?;

    // Deactivate needs an active image.
    let res = c
        .req(Method::POST, &format!("/v2/images/{id}/actions/deactivate"))
        .send()
        .await?;
    expect_error(res, 403, "queued").await?;
    c.upload(&id, b"0123456789".to_vec()).await?;
    assert_eq!(
        c.req(Method::POST, &format!("/v2/images/{id}/actions/deactivate"))
            .send()
            .await?
            .status(),
        204
    );
    assert_eq!(c.show(&id).await?["status"], "deactivated");
    assert_eq!(
        c.req(Method::POST, &format!("/v2/images/{id}/actions/reactivate"))
            .send()
            .await?
            .status(),
        204
    );
    assert_eq!(c.show(&id).await?["status"], "active");
    expect_error(
        c.req(Method::POST, &format!("/v2/images/{id}/actions/explode"))
            .send()
            .await?,
        404,
        "",
    )
    .await?;

    let patch = |v: bool| {
        c.req(Method::PATCH, &format!("/v2/images/{id}"))
            .header(
                "content-type",
                "application/openstack-images-v2.1-json-patch",
            )
            .body(json!([{"op": "replace", "path": "/protected", "value": v}]).to_string())
            .send()
    };
    assert_eq!(patch(true).await?.status(), 200);
    expect_error(
        c.req(Method::DELETE, &format!("/v2/images/{id}"))
            .send()
            .await?,
        403,
        "protected",
    )
    .await?;
    assert_eq!(patch(false).await?.status(), 200);
    assert_eq!(c.files(), vec![id.clone()]);
    assert_eq!(
        c.req(Method::DELETE, &format!("/v2/images/{id}"))
            .send()
            .await?
            .status(),
        204
    );
    expect_error(
        c.req(Method::GET, &format!("/v2/images/{id}"))
            .send()
            .await?,
        404,
        "",
    )
    .await?;
    assert!(
        c.files().is_empty(),
        "data removed with the image: {:?}",
        c.files()
    );
    Ok(())
}

#[actix_web::test]
async fn schemas_and_discovery() -> Result<()> {
    let c = TestCloud::start().await?;
    for name in ["image", "images", "member", "members", "task", "tasks"] {
        let res = c
            .req(Method::GET, &format!("/v2/schemas/{name}"))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{name}");
        let v: Value = res.json().await?;
        assert_eq!(v["name"], name);
    }
    let image: Value = c
        .req(Method::GET, "/v2/schemas/image")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(image["additionalProperties"], json!({"type": "string"}));
    expect_error(
        c.req(Method::GET, "/v2/schemas/nothing").send().await?,
        404,
        "",
    )
    .await?;
    let import: Value = c
        .req(Method::GET, "/v2/info/import")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        import["import-methods"]["value"],
        json!(["glance-direct", "web-download"])
    );
    expect_error(
        c.req(Method::GET, "/v2/info/stores").send().await?,
        404,
        "multi",
    )
    .await?;
    let usage: Value = c
        .req(Method::GET, "/v2/info/usage")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(usage, json!({"usage": {}}));
    let res = c.http.get(format!("{}/healthcheck", c.base)).send().await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await?, "OK");
    assert_eq!(
        c.req(Method::HEAD, "/healthcheck").send().await?.status(),
        204
    );
    Ok(())
}

#[actix_web::test]
async fn multi_store_info_and_upload_to_a_chosen_store() -> Result<()> {
    let second = tempfile::tempdir()?;
    let conf = format!(
        "[DEFAULT]\nenabled_backends = fast:file, slow:file, web:http\n\
         [glance_store]\ndefault_backend = fast\n\
         [fast]\nfilesystem_store_datadir = {{datadir}}\nstore_description = Fast disk\nweight = 10\n\
         [slow]\nfilesystem_store_datadir = {}\n",
        second.path().display()
    );
    let c = TestCloud::with_config("sqlite", &conf).await?;
    let stores: Value = c
        .req(Method::GET, "/v2/info/stores")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        stores,
        json!({"stores": [
            {"id": "fast", "description": "Fast disk", "default": "true"},
            {"id": "slow", "description": "slow"},
            {"id": "web", "description": "web", "read-only": "true"},
        ]})
    );
    assert_eq!(
        c.req(Method::GET, "/v2.8/images").send().await?.status(),
        200
    );
    let res = c
        .req(Method::POST, "/v2/images")
        .json(&json!({"disk_format": "raw", "container_format": "bare"}))
        .send()
        .await?;
    assert_eq!(
        res.headers().get("openstack-image-store-ids").unwrap(),
        "fast,slow,web"
    );
    let img: Value = res.json().await?;
    let id = img["id"].as_str().unwrap();
    let up = |store: &'static str| {
        c.req(Method::PUT, &format!("/v2/images/{id}/file"))
            .header("content-type", "application/octet-stream")
            .header("x-image-meta-store", store)
            .body("hello")
            .send()
    };
    expect_error(up("web").await?, 400, "read-only").await?;
    expect_error(up("nowhere").await?, 400, "unknown store").await?;
    assert_eq!(c.show(id).await?["status"], "queued");
    assert_eq!(up("slow").await?.status(), 204);
    let shown = c.show(id).await?;
    assert_eq!(shown["stores"], "slow");
    assert!(second.path().join(id).exists());
    assert!(c.files().is_empty());
    let data = c
        .req(Method::GET, &format!("/v2/images/{id}/file"))
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(&data[..], b"hello");
    Ok(())
}

#[actix_web::test]
async fn hidden_images_leave_the_default_list_only() -> Result<()> {
    let c = TestCloud::start().await?;
    let shown = c.create(json!({"name": "visible"})).await?;
    let hidden = c
        .create(json!({"name": "hidden", "os_hidden": true}))
        .await?;
    assert_eq!(hidden["os_hidden"], true);
    let names = |v: &Value| -> Vec<String> {
        v["images"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let list: Value = c
        .req(Method::GET, "/v2/images")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(names(&list), vec!["visible"]);
    let list: Value = c
        .req(Method::GET, "/v2/images?os_hidden=true")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(names(&list), vec!["hidden"]);
    let id = hidden["id"].as_str().unwrap();
    assert_eq!(c.show(id).await?["name"], "hidden", "shown by id");
    let res = c
        .req(Method::PATCH, &format!("/v2/images/{id}"))
        .header(
            "content-type",
            "application/openstack-images-v2.1-json-patch",
        )
        .json(&json!([{"op": "replace", "path": "/os_hidden", "value": false}]))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let list: Value = c
        .req(Method::GET, "/v2/images")
        .send()
        .await?
        .json()
        .await?;
    let mut all = names(&list);
    all.sort();
    assert_eq!(all, vec!["hidden", "visible"]);
    assert_eq!(shown["os_hidden"], false);
    Ok(())
}

/// `kernel_id` and `ramdisk_id` are image UUIDs or null (Glance's image schema), on create and
/// on PATCH; anything else is a 400 and changes nothing.
#[actix_web::test]
async fn kernel_and_ramdisk_ids_must_be_uuids() -> Result<()> {
    const V21: &str = "application/openstack-images-v2.1-json-patch";
    let c = TestCloud::start().await?;
    let kernel = "6bbe7cc2-eae7-4c0f-b50d-a7160b0c6a86";
    for key in ["kernel_id", "ramdisk_id"] {
        let res = c
            .req(Method::POST, "/v2/images")
            .json(&json!({"name": "aki", key: "vmlinuz"}))
            .send()
            .await?;
        expect_error(res, 400, key).await?;
        let img = c.create(json!({"name": "ami", key: kernel})).await?;
        assert_eq!(img[key], kernel);
        let img = c.create(json!({"name": "ami", key: null})).await?;
        assert!(img.get(key).is_none(), "{img}");

        let path = format!("/v2/images/{}", img["id"].as_str().unwrap());
        let patch = |body: Value| {
            c.req(Method::PATCH, &path)
                .header("content-type", V21)
                .json(&body)
                .send()
        };
        let res = patch(json!([{"op": "add", "path": format!("/{key}"), "value": "x"}])).await?;
        expect_error(res, 400, key).await?;
        let res = patch(json!([{"op": "add", "path": format!("/{key}"), "value": kernel}])).await?;
        assert_eq!(res.status(), 200);
        let res =
            patch(json!([{"op": "replace", "path": format!("/{key}"), "value": null}])).await?;
        assert_eq!(res.status(), 200);
        let now: Value = res.json().await?;
        assert!(now.get(key).is_none(), "null unsets it: {now}");
    }
    Ok(())
}
