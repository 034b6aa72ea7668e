//! The registry's metadefs routes on every backend: each write route is walked (the set
//! walked must equal the metadef write routes `app.rs` registers), with the rows it leaves in
//! Glance's `metadef_*` tables, the visibility of namespaces to other projects, conflicts,
//! bad definitions, protected namespaces, and the list's paging, sorting and filters.

use std::collections::BTreeSet;

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestRegistry, backends, first_n};
use crate::registry_write_path::{METADEF_ROUTES, all_write_routes};

struct Walk<'a> {
    r: &'a TestRegistry,
    walked: BTreeSet<(String, String)>,
}

impl Walk<'_> {
    /// Sends as `project` (admin when `roles` says so), records the route, checks the status.
    async fn call(
        &mut self,
        route: Option<(&str, &str)>,
        method: Method,
        path: &str,
        who: (&str, &str),
        body: Option<Value>,
        status: u16,
    ) -> Result<Value> {
        if let Some((m, p)) = route {
            self.walked.insert((m.to_string(), p.to_string()));
        }
        let mut req = if who.1 == "admin" {
            self.r.admin(method.clone(), path)
        } else {
            self.r.req(method.clone(), path, who.0, who.1)
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await?;
        let got = res.status().as_u16();
        let text = res.text().await?;
        ensure!(
            got == status,
            "{method} {path}: expected {status}, got {got}: {text}"
        );
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }
}

const ADMIN: (&str, &str) = ("admin-p", "admin");
const OWNER: (&str, &str) = ("owner-p", "reader");
const OTHER: (&str, &str) = ("other-p", "reader");
const NS: &str = "/v1/metadefs/namespaces";

fn count(r: &TestRegistry, sql: &str) -> Result<i64> {
    Ok(first_n(&mut r.db.conn()?, sql)?.unwrap_or(-1))
}

#[actix_web::test]
async fn every_metadef_route_on_every_backend() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let mut w = Walk {
            r: &r,
            walked: BTreeSet::new(),
        };
        let ns_path = "/v1/metadefs/namespaces/{ns}";
        // Create with contents, owned by owner-p, private.
        let created = w
            .call(
                Some(("POST", NS)),
                Method::POST,
                NS,
                ADMIN,
                Some(json!({
                    "namespace": "OS::Test::One",
                    "display_name": "One",
                    "description": "first",
                    "owner": "owner-p",
                    "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"}],
                    "properties": {"cpu": {"title": "CPU", "type": "integer", "minimum": 1}},
                    "objects": [{"name": "Obj", "required": ["a"], "properties": {"a": {"title": "A", "type": "string"}}}],
                    "tags": [{"name": "t1"}, {"name": "t2"}]
                })),
                201,
            )
            .await?;
        assert_eq!(created["visibility"], "private", "{b}");
        assert_eq!(created["protected"], false, "{b}");
        assert_eq!(created["properties"]["cpu"]["minimum"], 1, "{b}");
        assert_eq!(created["objects"][0]["required"], json!(["a"]), "{b}");
        assert_eq!(
            created["resource_type_associations"][0]["prefix"], "hw_",
            "{b}"
        );
        assert_eq!(
            count(&r, "SELECT COUNT(*) AS n FROM metadef_properties")?,
            1
        );
        assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM metadef_tags")?, 2);
        assert_eq!(
            count(&r, "SELECT COUNT(*) AS n FROM metadef_resource_types")?,
            1
        );
        // A second namespace with the same name: 409, nothing written.
        w.call(
            None,
            Method::POST,
            NS,
            ADMIN,
            Some(json!({"namespace": "OS::Test::One"})),
            409,
        )
        .await?;
        // A bad property definition: 400, no namespace left behind.
        w.call(
            None,
            Method::POST,
            NS,
            ADMIN,
            Some(json!({"namespace": "OS::Bad", "properties": {"p": {"title": "P", "type": "colour"}}})),
            400,
        )
        .await?;
        assert_eq!(
            count(
                &r,
                "SELECT COUNT(*) AS n FROM metadef_namespaces WHERE namespace = 'OS::Bad'"
            )?,
            0,
            "{b}: a refused create leaves nothing"
        );
        let one = "/v1/metadefs/namespaces/OS::Test::One";
        // Visibility: the owner sees it, another project does not (404).
        w.call(None, Method::GET, one, OWNER, None, 200).await?;
        w.call(None, Method::GET, one, OTHER, None, 404).await?;
        // Properties.
        let props = format!("{one}/properties");
        w.call(
            Some(("POST", "/v1/metadefs/namespaces/{ns}/properties")),
            Method::POST,
            &props,
            ADMIN,
            Some(json!({"name": "ram", "title": "RAM", "type": "integer"})),
            201,
        )
        .await?;
        w.call(
            None,
            Method::POST,
            &props,
            ADMIN,
            Some(json!({"name": "ram", "title": "RAM", "type": "integer"})),
            409,
        )
        .await?;
        w.call(
            None,
            Method::POST,
            &props,
            ADMIN,
            Some(json!({"name": "x", "type": "integer"})),
            400,
        )
        .await?;
        w.call(
            Some(("PUT", "/v1/metadefs/namespaces/{ns}/properties/{name}")),
            Method::PUT,
            &format!("{props}/ram"),
            ADMIN,
            Some(json!({"name": "memory", "title": "Memory", "type": "integer", "maximum": 64})),
            200,
        )
        .await?;
        let got = w
            .call(
                None,
                Method::GET,
                &format!("{props}/memory"),
                OWNER,
                None,
                200,
            )
            .await?;
        assert_eq!(got["maximum"], 64, "{b}");
        w.call(None, Method::GET, &format!("{props}/ram"), OWNER, None, 404)
            .await?;
        w.call(
            Some(("DELETE", "/v1/metadefs/namespaces/{ns}/properties/{name}")),
            Method::DELETE,
            &format!("{props}/memory"),
            ADMIN,
            None,
            204,
        )
        .await?;
        let all = w.call(None, Method::GET, &props, OWNER, None, 200).await?;
        assert_eq!(
            all["properties"].as_object().map(|m| m.len()),
            Some(1),
            "{b}: {all}"
        );
        w.call(
            Some(("DELETE", "/v1/metadefs/namespaces/{ns}/properties")),
            Method::DELETE,
            &props,
            ADMIN,
            None,
            204,
        )
        .await?;
        assert_eq!(
            count(&r, "SELECT COUNT(*) AS n FROM metadef_properties")?,
            0
        );
        // Objects.
        let objs = format!("{one}/objects");
        w.call(
            Some(("POST", "/v1/metadefs/namespaces/{ns}/objects")),
            Method::POST,
            &objs,
            ADMIN,
            Some(json!({"name": "Obj2", "description": "d", "properties": {"b": {"title": "B", "type": "boolean"}}})),
            201,
        )
        .await?;
        let o = w
            .call(
                Some(("PUT", "/v1/metadefs/namespaces/{ns}/objects/{name}")),
                Method::PUT,
                &format!("{objs}/Obj2"),
                ADMIN,
                Some(json!({"name": "Obj3", "required": ["b"], "properties": {"b": {"title": "B", "type": "boolean"}}})),
                200,
            )
            .await?;
        assert_eq!(o["name"], "Obj3", "{b}");
        w.call(
            None,
            Method::PUT,
            &format!("{objs}/Obj3"),
            ADMIN,
            Some(json!({"name": "Obj"})),
            409,
        )
        .await?;
        w.call(
            Some(("DELETE", "/v1/metadefs/namespaces/{ns}/objects/{name}")),
            Method::DELETE,
            &format!("{objs}/Obj3"),
            ADMIN,
            None,
            204,
        )
        .await?;
        w.call(None, Method::GET, &format!("{objs}/Obj3"), ADMIN, None, 404)
            .await?;
        w.call(
            Some(("DELETE", "/v1/metadefs/namespaces/{ns}/objects")),
            Method::DELETE,
            &objs,
            ADMIN,
            None,
            204,
        )
        .await?;
        assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM metadef_objects")?, 0);
        // Tags: replace, append, single create, rename, delete.
        let tags = format!("{one}/tags");
        let set = w
            .call(
                Some(("POST", "/v1/metadefs/namespaces/{ns}/tags")),
                Method::POST,
                &tags,
                ADMIN,
                Some(json!({"tags": [{"name": "a"}, {"name": "b"}]})),
                201,
            )
            .await?;
        assert_eq!(set["tags"].as_array().map(Vec::len), Some(2), "{b}");
        w.call(
            None,
            Method::POST,
            &tags,
            ADMIN,
            Some(json!({"tags": [{"name": "c"}], "append": true})),
            201,
        )
        .await?;
        w.call(
            None,
            Method::POST,
            &tags,
            ADMIN,
            Some(json!({"tags": [{"name": "c"}], "append": true})),
            409,
        )
        .await?;
        w.call(
            None,
            Method::POST,
            &tags,
            ADMIN,
            Some(json!({"tags": [{"name": "d"}, {"name": "d"}]})),
            409,
        )
        .await?;
        let listed = w.call(None, Method::GET, &tags, OWNER, None, 200).await?;
        let names: Vec<&str> = listed["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["a", "b", "c"],
            "{b}: a refused replace changes nothing"
        );
        w.call(
            Some(("POST", "/v1/metadefs/namespaces/{ns}/tags/{name}")),
            Method::POST,
            &format!("{tags}/e"),
            ADMIN,
            None,
            201,
        )
        .await?;
        w.call(
            Some(("PUT", "/v1/metadefs/namespaces/{ns}/tags/{name}")),
            Method::PUT,
            &format!("{tags}/e"),
            ADMIN,
            Some(json!({"name": "f"})),
            200,
        )
        .await?;
        w.call(None, Method::GET, &format!("{tags}/f"), OWNER, None, 200)
            .await?;
        w.call(
            Some(("DELETE", "/v1/metadefs/namespaces/{ns}/tags/{name}")),
            Method::DELETE,
            &format!("{tags}/f"),
            ADMIN,
            None,
            204,
        )
        .await?;
        w.call(
            Some(("DELETE", "/v1/metadefs/namespaces/{ns}/tags")),
            Method::DELETE,
            &tags,
            ADMIN,
            None,
            204,
        )
        .await?;
        assert_eq!(count(&r, "SELECT COUNT(*) AS n FROM metadef_tags")?, 0);
        // Associations.
        let rts = format!("{one}/resource_types");
        w.call(
            Some(("POST", "/v1/metadefs/namespaces/{ns}/resource_types")),
            Method::POST,
            &rts,
            ADMIN,
            Some(json!({"name": "OS::Nova::Flavor", "properties_target": "flavor"})),
            201,
        )
        .await?;
        w.call(
            None,
            Method::POST,
            &rts,
            ADMIN,
            Some(json!({"name": "OS::Nova::Flavor"})),
            409,
        )
        .await?;
        let all = w
            .call(
                None,
                Method::GET,
                "/v1/metadefs/resource_types",
                OTHER,
                None,
                200,
            )
            .await?;
        assert_eq!(
            all["resource_types"].as_array().map(Vec::len),
            Some(2),
            "{b}: {all}"
        );
        w.call(
            Some(("DELETE", "/v1/metadefs/namespaces/{ns}/resource_types/{rt}")),
            Method::DELETE,
            &format!("{rts}/OS::Nova::Flavor"),
            ADMIN,
            None,
            204,
        )
        .await?;
        w.call(
            None,
            Method::DELETE,
            &format!("{rts}/OS::Nova::Flavor"),
            ADMIN,
            None,
            404,
        )
        .await?;
        // Update: protect and publish; then another project sees it and delete is refused.
        let up = w
            .call(
                Some(("PUT", ns_path)),
                Method::PUT,
                one,
                ADMIN,
                Some(json!({"namespace": "OS::Test::One", "visibility": "public", "protected": true})),
                200,
            )
            .await?;
        assert_eq!(up["owner"], "owner-p", "{b}: the owner stays when left out");
        w.call(None, Method::GET, one, OTHER, None, 200).await?;
        w.call(
            Some(("DELETE", ns_path)),
            Method::DELETE,
            one,
            ADMIN,
            None,
            403,
        )
        .await?;
        w.call(
            None,
            Method::PUT,
            one,
            ADMIN,
            Some(json!({"namespace": "OS::Test::One", "protected": false})),
            200,
        )
        .await?;
        w.call(None, Method::DELETE, one, ADMIN, None, 204).await?;
        assert_eq!(
            count(&r, "SELECT COUNT(*) AS n FROM metadef_namespaces")?,
            0
        );
        assert_eq!(
            count(
                &r,
                "SELECT COUNT(*) AS n FROM metadef_namespace_resource_types"
            )?,
            0
        );

        let mut expected = all_write_routes()?;
        expected.retain(|(_, p)| p.starts_with(METADEF_ROUTES));
        assert_eq!(
            w.walked, expected,
            "{b}: every metadef write route is walked"
        );
        r.stop().await;
    }
    Ok(())
}

#[actix_web::test]
async fn namespace_lists_page_sort_and_filter() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let mut w = Walk {
            r: &r,
            walked: BTreeSet::new(),
        };
        for (i, (vis, owner)) in [
            ("public", "x"),
            ("private", "owner-p"),
            ("private", "x"),
            ("public", "owner-p"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut body = json!({"namespace": format!("N{i}"), "visibility": vis, "owner": owner});
            if i % 2 == 0 {
                body["resource_type_associations"] = json!([{"name": "OS::Cinder::Volume"}]);
            }
            w.call(None, Method::POST, NS, ADMIN, Some(body), 201)
                .await?;
        }
        let names = |v: &Value| -> Vec<String> {
            v["namespaces"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["namespace"].as_str().map(str::to_string))
                .collect()
        };
        let asc = w
            .call(
                None,
                Method::GET,
                &format!("{NS}?sort_key=namespace&sort_dir=asc"),
                ADMIN,
                None,
                200,
            )
            .await?;
        assert_eq!(names(&asc), ["N0", "N1", "N2", "N3"], "{b}");
        let mine = w
            .call(
                None,
                Method::GET,
                &format!("{NS}?sort_key=namespace&sort_dir=asc"),
                OWNER,
                None,
                200,
            )
            .await?;
        assert_eq!(
            names(&mine),
            ["N0", "N1", "N3"],
            "{b}: public ones and the project's own"
        );
        let page = w
            .call(
                None,
                Method::GET,
                &format!("{NS}?sort_key=namespace&sort_dir=desc&limit=2&marker=N3"),
                ADMIN,
                None,
                200,
            )
            .await?;
        assert_eq!(names(&page), ["N2", "N1"], "{b}");
        let private = w
            .call(
                None,
                Method::GET,
                &format!("{NS}?sort_key=namespace&sort_dir=asc&visibility=private"),
                ADMIN,
                None,
                200,
            )
            .await?;
        assert_eq!(names(&private), ["N1", "N2"], "{b}");
        let cinder = w
            .call(
                None,
                Method::GET,
                &format!("{NS}?sort_key=namespace&sort_dir=asc&resource_types=OS::Cinder::Volume"),
                ADMIN,
                None,
                200,
            )
            .await?;
        assert_eq!(names(&cinder), ["N0", "N2"], "{b}");
        assert_eq!(
            cinder["namespaces"][0]["resource_type_associations"][0]["name"],
            "OS::Cinder::Volume"
        );
        w.call(
            None,
            Method::GET,
            &format!("{NS}?sort_key=colour"),
            ADMIN,
            None,
            400,
        )
        .await?;
        w.call(
            None,
            Method::GET,
            &format!("{NS}?marker=nope"),
            ADMIN,
            None,
            400,
        )
        .await?;
        r.stop().await;
    }
    Ok(())
}
