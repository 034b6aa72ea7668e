//! Images API v2 metadefs routes end to end (glance-api → glance-registry → SQL), through
//! trusted identity headers: every mutating metadefs handler app.rs registers is walked (the
//! set walked must equal the set registered), with Glance's codes and bodies; the policy
//! defaults per role (admin; member and reader of the owning project; reader of another);
//! the namespace list's paging links; and the ten `/v2/schemas/metadefs/*` documents.

use std::collections::BTreeSet;

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::api_ownership::{is_metadef_handler, mutating_handlers};
use crate::cloud::TestCloud;
use crate::harness::backends;

const P: &str = "11111111111111111111111111111111";
const Q: &str = "22222222222222222222222222222222";
const ADMIN: (&str, &str) = ("99999999999999999999999999999999", "admin,member,reader");
const P_MEMBER: (&str, &str) = (P, "member,reader");
const P_READER: (&str, &str) = (P, "reader");
const Q_READER: (&str, &str) = (Q, "reader");
const NS: &str = "/v2/metadefs/namespaces";

struct Walk<'a> {
    c: &'a TestCloud,
    walked: BTreeSet<String>,
}

impl Walk<'_> {
    async fn call(
        &mut self,
        handler: Option<&str>,
        who: (&str, &str),
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Result<(reqwest::header::HeaderMap, Value)> {
        self.send(handler, who, method, path, body, &[], status)
            .await
    }

    #[expect(clippy::too_many_arguments, reason = "a test helper")]
    async fn send(
        &mut self,
        handler: Option<&str>,
        who: (&str, &str),
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
        status: u16,
    ) -> Result<(reqwest::header::HeaderMap, Value)> {
        if let Some(h) = handler {
            self.walked.insert(h.to_string());
        }
        let mut req = self.c.as_(who.0, who.1, method.clone(), path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await?;
        let got = res.status().as_u16();
        let h = res.headers().clone();
        let text = res.text().await?;
        ensure!(
            got == status,
            "{method} {path} as {who:?}: expected {status}, got {got}: {text}"
        );
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        if got >= 400 {
            ensure!(
                v["message"].is_string() || v["error"].is_object() || v.is_object(),
                "{text}"
            );
        }
        Ok((h, v))
    }
}

async fn cloud(b: &'static str) -> Result<TestCloud> {
    TestCloud::with_config(b, "[paste_deploy]\nflavor = trusted-auth\n").await
}

#[actix_web::test]
async fn every_metadefs_route_with_glances_codes_and_bodies() -> Result<()> {
    for b in backends() {
        let c = cloud(b).await?;
        let mut w = Walk {
            c: &c,
            walked: BTreeSet::new(),
        };
        let (h, made) = w
            .call(
                Some("md::create_namespace"),
                ADMIN,
                Method::POST,
                NS,
                Some(json!({
                    "namespace": "OS::Compute::Test",
                    "display_name": "Test",
                    "description": "for tests",
                    "visibility": "private",
                    "owner": P,
                    "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"}, {"name": "OS::Nova::Flavor", "prefix": "hw:"}],
                    "properties": {"cpu_cores": {"title": "Cores", "type": "integer", "minimum": 1}},
                    "objects": [{"name": "CPU", "properties": {"sockets": {"title": "Sockets", "type": "integer"}}}],
                    "tags": [{"name": "one"}]
                })),
                201,
            )
            .await?;
        assert_eq!(
            h.get("location").and_then(|v| v.to_str().ok()),
            Some("/v2/metadefs/namespaces/OS::Compute::Test"),
            "{b}"
        );
        assert_eq!(
            made["self"], "/v2/metadefs/namespaces/OS::Compute::Test",
            "{b}"
        );
        assert_eq!(made["schema"], "/v2/schemas/metadefs/namespace", "{b}");
        assert_eq!(made["properties"]["cpu_cores"]["title"], "Cores", "{b}");
        assert_eq!(made["tags"], json!([{"name": "one"}]), "{b}");
        assert!(
            made["created_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{b}: {made}"
        );
        let one = format!("{NS}/OS::Compute::Test");
        // Duplicate and invalid creates.
        w.call(
            None,
            ADMIN,
            Method::POST,
            NS,
            Some(json!({"namespace": "OS::Compute::Test"})),
            409,
        )
        .await?;
        w.call(
            None,
            ADMIN,
            Method::POST,
            NS,
            Some(json!({"display_name": "no name"})),
            400,
        )
        .await?;
        w.call(
            None,
            ADMIN,
            Method::POST,
            NS,
            Some(json!({"namespace": "x", "visibility": "shared"})),
            400,
        )
        .await?;
        // Show with a resource type: prefixed names, in properties and objects.
        let (_, shown) = w
            .call(
                None,
                P_READER,
                Method::GET,
                &format!("{one}?resource_type=OS::Nova::Flavor"),
                None,
                200,
            )
            .await?;
        assert!(
            shown["properties"]["hw:cpu_cores"].is_object(),
            "{b}: {shown}"
        );
        assert!(
            shown["objects"][0]["properties"]["hw:sockets"].is_object(),
            "{b}: {shown}"
        );
        // Properties.
        let props = format!("{one}/properties");
        let (_, p) = w
            .call(
                Some("mi::create_property"),
                ADMIN,
                Method::POST,
                &props,
                Some(json!({"name": "ram", "title": "RAM", "type": "integer", "maximum": 512})),
                201,
            )
            .await?;
        assert_eq!(
            p,
            json!({"name": "ram", "title": "RAM", "type": "integer", "maximum": 512}),
            "{b}"
        );
        for bad in [
            json!({"name": "x", "title": "X", "type": "text"}),
            json!({"name": "x", "type": "string"}),
            json!({"name": "x", "title": "X", "type": "string", "minLength": "2"}),
            json!({"title": "X", "type": "string"}),
        ] {
            w.call(None, ADMIN, Method::POST, &props, Some(bad), 400)
                .await?;
        }
        w.call(
            None,
            ADMIN,
            Method::POST,
            &props,
            Some(json!({"name": "ram", "title": "RAM", "type": "integer"})),
            409,
        )
        .await?;
        let (_, p) = w
            .call(
                None,
                P_READER,
                Method::GET,
                &format!("{props}/hw_ram?resource_type=OS::Glance::Image"),
                None,
                200,
            )
            .await?;
        assert_eq!(p["name"], "hw_ram", "{b}");
        w.call(
            None,
            P_READER,
            Method::GET,
            &format!("{props}/ram?resource_type=OS::Glance::Image"),
            None,
            404,
        )
        .await?;
        w.call(
            Some("mi::update_property"),
            ADMIN,
            Method::PUT,
            &format!("{props}/ram"),
            Some(json!({"name": "ram", "title": "Memory", "type": "integer"})),
            200,
        )
        .await?;
        let (_, all) = w
            .call(None, P_READER, Method::GET, &props, None, 200)
            .await?;
        assert_eq!(all["properties"]["ram"]["title"], "Memory", "{b}");
        w.call(
            Some("mi::delete_property"),
            ADMIN,
            Method::DELETE,
            &format!("{props}/ram"),
            None,
            204,
        )
        .await?;
        w.call(
            None,
            ADMIN,
            Method::DELETE,
            &format!("{props}/ram"),
            None,
            404,
        )
        .await?;
        w.call(
            Some("mi::delete_properties"),
            ADMIN,
            Method::DELETE,
            &props,
            None,
            204,
        )
        .await?;
        // Objects.
        let objs = format!("{one}/objects");
        let (_, o) = w
            .call(Some("mi::create_object"), ADMIN, Method::POST, &objs, Some(json!({"name": "Mem", "required": ["size"], "properties": {"size": {"title": "Size", "type": "integer"}}})), 201)
            .await?;
        assert_eq!(
            o["self"], "/v2/metadefs/namespaces/OS::Compute::Test/objects/Mem",
            "{b}"
        );
        assert_eq!(o["schema"], "/v2/schemas/metadefs/object", "{b}");
        w.call(
            None,
            ADMIN,
            Method::POST,
            &objs,
            Some(json!({"name": "Bad", "properties": {"p": {"title": "P"}}})),
            400,
        )
        .await?;
        w.call(
            Some("mi::update_object"),
            ADMIN,
            Method::PUT,
            &format!("{objs}/Mem"),
            Some(json!({"name": "Memory", "description": "d"})),
            200,
        )
        .await?;
        let (_, list) = w
            .call(None, P_READER, Method::GET, &objs, None, 200)
            .await?;
        let names: Vec<&str> = list["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["name"].as_str())
            .collect();
        assert_eq!(names, ["CPU", "Memory"], "{b}");
        w.call(
            Some("mi::delete_object"),
            ADMIN,
            Method::DELETE,
            &format!("{objs}/Memory"),
            None,
            204,
        )
        .await?;
        w.call(
            None,
            P_READER,
            Method::GET,
            &format!("{objs}/Memory"),
            None,
            404,
        )
        .await?;
        w.call(
            Some("mi::delete_objects"),
            ADMIN,
            Method::DELETE,
            &objs,
            None,
            204,
        )
        .await?;
        // Tags.
        let tags = format!("{one}/tags");
        let (_, t) = w
            .call(
                Some("mi::set_tags"),
                ADMIN,
                Method::POST,
                &tags,
                Some(json!({"tags": [{"name": "a"}, {"name": "b"}]})),
                201,
            )
            .await?;
        assert_eq!(t, json!({"tags": [{"name": "a"}, {"name": "b"}]}), "{b}");
        w.send(
            None,
            ADMIN,
            Method::POST,
            &tags,
            Some(json!({"tags": [{"name": "c"}]})),
            &[("X-Openstack-Append", "true")],
            201,
        )
        .await?;
        let (_, all) = w
            .call(None, P_READER, Method::GET, &tags, None, 200)
            .await?;
        assert_eq!(
            all["tags"].as_array().map(Vec::len),
            Some(3),
            "{b}: append keeps the others: {all}"
        );
        w.call(
            None,
            ADMIN,
            Method::POST,
            &tags,
            Some(json!({"tags": [{"name": "z"}]})),
            201,
        )
        .await?;
        let (_, all) = w
            .call(None, P_READER, Method::GET, &tags, None, 200)
            .await?;
        assert_eq!(
            all["tags"].as_array().map(Vec::len),
            Some(1),
            "{b}: without the header, replace: {all}"
        );
        w.call(
            Some("mi::create_tag"),
            ADMIN,
            Method::POST,
            &format!("{tags}/new"),
            None,
            201,
        )
        .await?;
        w.call(None, ADMIN, Method::POST, &format!("{tags}/new"), None, 409)
            .await?;
        let (_, t) = w
            .call(
                Some("mi::update_tag"),
                ADMIN,
                Method::PUT,
                &format!("{tags}/new"),
                Some(json!({"name": "renamed"})),
                200,
            )
            .await?;
        assert_eq!(t["name"], "renamed", "{b}");
        w.call(
            None,
            P_READER,
            Method::GET,
            &format!("{tags}/renamed"),
            None,
            200,
        )
        .await?;
        w.call(
            Some("mi::delete_tag"),
            ADMIN,
            Method::DELETE,
            &format!("{tags}/renamed"),
            None,
            204,
        )
        .await?;
        w.call(
            Some("mi::delete_tags"),
            ADMIN,
            Method::DELETE,
            &tags,
            None,
            204,
        )
        .await?;
        // Resource types and associations.
        let rts = format!("{one}/resource_types");
        let (_, a) = w.call(Some("md::create_association"), ADMIN, Method::POST, &rts, Some(json!({"name": "OS::Cinder::Volume", "prefix": "v_", "properties_target": "image"})), 201).await?;
        assert_eq!(a["properties_target"], "image", "{b}");
        w.call(
            None,
            ADMIN,
            Method::POST,
            &rts,
            Some(json!({"name": "OS::Cinder::Volume"})),
            409,
        )
        .await?;
        let (_, list) = w.call(None, P_READER, Method::GET, &rts, None, 200).await?;
        assert_eq!(
            list["resource_type_associations"].as_array().map(Vec::len),
            Some(3),
            "{b}"
        );
        let (_, all) = w
            .call(
                None,
                Q_READER,
                Method::GET,
                "/v2/metadefs/resource_types",
                None,
                200,
            )
            .await?;
        assert_eq!(
            all["resource_types"].as_array().map(Vec::len),
            Some(3),
            "{b}"
        );
        w.call(
            Some("md::delete_association"),
            ADMIN,
            Method::DELETE,
            &format!("{rts}/OS::Cinder::Volume"),
            None,
            204,
        )
        .await?;
        // Update (rename, protect), then a protected namespace refuses delete.
        let (_, up) = w
            .call(Some("md::update_namespace"), ADMIN, Method::PUT, &one, Some(json!({"namespace": "OS::Compute::Test2", "protected": true, "visibility": "public", "self": "ignored", "schema": "ignored"})), 200)
            .await?;
        assert_eq!(up["namespace"], "OS::Compute::Test2", "{b}");
        assert_eq!(up["owner"], P, "{b}");
        let two = format!("{NS}/OS::Compute::Test2");
        w.call(None, P_READER, Method::GET, &one, None, 404).await?;
        w.call(
            Some("md::delete_namespace"),
            ADMIN,
            Method::DELETE,
            &two,
            None,
            403,
        )
        .await?;
        w.call(
            None,
            ADMIN,
            Method::PUT,
            &two,
            Some(json!({"namespace": "OS::Compute::Test2", "protected": false})),
            200,
        )
        .await?;
        w.call(None, ADMIN, Method::DELETE, &two, None, 204).await?;
        w.call(None, ADMIN, Method::GET, &two, None, 404).await?;

        let registered: BTreeSet<String> = mutating_handlers()?
            .into_iter()
            .filter(|h| is_metadef_handler(h))
            .collect();
        assert_eq!(
            w.walked, registered,
            "{b}: every mutating metadefs handler is walked"
        );
    }
    Ok(())
}

#[actix_web::test]
async fn metadef_policy_by_role() -> Result<()> {
    let c = cloud("sqlite").await?;
    let mut w = Walk {
        c: &c,
        walked: BTreeSet::new(),
    };
    for (name, vis) in [("OS::Private", "private"), ("OS::Public", "public")] {
        w.call(
            None,
            ADMIN,
            Method::POST,
            NS,
            Some(json!({"namespace": name, "visibility": vis, "owner": P})),
            201,
        )
        .await?;
    }
    // Reads.
    for (who, private, public) in [
        (ADMIN, 200, 200),
        (P_MEMBER, 200, 200),
        (P_READER, 200, 200),
        (Q_READER, 404, 200),
    ] {
        w.call(
            None,
            who,
            Method::GET,
            &format!("{NS}/OS::Private"),
            None,
            private,
        )
        .await?;
        w.call(
            None,
            who,
            Method::GET,
            &format!("{NS}/OS::Private/properties"),
            None,
            private,
        )
        .await?;
        w.call(
            None,
            who,
            Method::GET,
            &format!("{NS}/OS::Public/tags"),
            None,
            public,
        )
        .await?;
    }
    let (_, list) = w.call(None, Q_READER, Method::GET, NS, None, 200).await?;
    let names: Vec<&str> = list["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["namespace"].as_str())
        .collect();
    assert_eq!(names, ["OS::Public"]);
    // Writes: metadef_admin only. Hidden namespace: 404; visible: 403.
    let prop = json!({"name": "p", "title": "P", "type": "string"});
    for (who, private, public) in [
        (P_MEMBER, 403, 403),
        (P_READER, 403, 403),
        (Q_READER, 404, 403),
    ] {
        w.call(
            None,
            who,
            Method::POST,
            &format!("{NS}/OS::Private/properties"),
            Some(prop.clone()),
            private,
        )
        .await?;
        w.call(
            None,
            who,
            Method::POST,
            &format!("{NS}/OS::Public/tags/t"),
            None,
            public,
        )
        .await?;
        w.call(
            None,
            who,
            Method::DELETE,
            &format!("{NS}/OS::Public"),
            None,
            public,
        )
        .await?;
    }
    w.call(
        None,
        P_MEMBER,
        Method::POST,
        NS,
        Some(json!({"namespace": "OS::Mine"})),
        403,
    )
    .await?;
    w.call(
        None,
        ADMIN,
        Method::POST,
        &format!("{NS}/OS::Private/properties"),
        Some(prop),
        201,
    )
    .await?;
    Ok(())
}

#[actix_web::test]
async fn namespace_pages_link_to_the_next_and_schemas_are_served() -> Result<()> {
    let c = cloud("sqlite").await?;
    let mut w = Walk {
        c: &c,
        walked: BTreeSet::new(),
    };
    for i in 0..5 {
        w.call(
            None,
            ADMIN,
            Method::POST,
            NS,
            Some(json!({"namespace": format!("N{i}"), "visibility": "public"})),
            201,
        )
        .await?;
    }
    let mut seen = Vec::new();
    let mut path = format!("{NS}?limit=2&sort_key=namespace&sort_dir=asc");
    loop {
        let (_, page) = w
            .call(None, Q_READER, Method::GET, &path, None, 200)
            .await?;
        assert_eq!(page["first"], "/v2/metadefs/namespaces");
        assert_eq!(page["schema"], "/v2/schemas/metadefs/namespaces");
        seen.extend(
            page["namespaces"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["namespace"].as_str().map(str::to_string)),
        );
        match page["next"].as_str() {
            Some(next) => path = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ["N0", "N1", "N2", "N3", "N4"]);
    w.call(
        None,
        Q_READER,
        Method::GET,
        &format!("{NS}?limit=x"),
        None,
        400,
    )
    .await?;
    w.call(
        None,
        Q_READER,
        Method::GET,
        &format!("{NS}?sort_dir=up"),
        None,
        400,
    )
    .await?;
    w.call(
        None,
        Q_READER,
        Method::GET,
        &format!("{NS}?visibility=shared"),
        None,
        400,
    )
    .await?;
    for name in [
        "namespace",
        "namespaces",
        "resource_type",
        "resource_types",
        "property",
        "properties",
        "object",
        "objects",
        "tag",
        "tags",
    ] {
        let (_, s) = w
            .call(
                None,
                Q_READER,
                Method::GET,
                &format!("/v2/schemas/metadefs/{name}"),
                None,
                200,
            )
            .await?;
        assert!(s["properties"].is_object(), "{name}");
    }
    w.call(
        None,
        Q_READER,
        Method::GET,
        "/v2/schemas/metadefs/image",
        None,
        404,
    )
    .await?;
    Ok(())
}

/// The metadef rules are overridden in policy.yaml like any other.
#[actix_web::test]
async fn metadef_rules_follow_the_policy_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policy.yaml");
    std::fs::write(
        &file,
        "\"add_metadef_namespace\": \"role:member\"\n\"get_metadef_namespace\": \"role:admin\"\n",
    )?;
    let conf = format!(
        "[paste_deploy]\nflavor = trusted-auth\n[oslo_policy]\npolicy_file = {}\n",
        file.display()
    );
    let c = TestCloud::with_config("sqlite", &conf).await?;
    let mut w = Walk {
        c: &c,
        walked: BTreeSet::new(),
    };
    w.call(
        None,
        P_MEMBER,
        Method::POST,
        NS,
        Some(json!({"namespace": "OS::ByMember", "visibility": "public"})),
        201,
    )
    .await?;
    w.call(
        None,
        P_READER,
        Method::POST,
        NS,
        Some(json!({"namespace": "OS::ByReader"})),
        403,
    )
    .await?;
    // Reading it is now for admins only: the member's own public namespace is hidden (404).
    w.call(
        None,
        P_MEMBER,
        Method::GET,
        &format!("{NS}/OS::ByMember"),
        None,
        404,
    )
    .await?;
    w.call(
        None,
        ADMIN,
        Method::GET,
        &format!("{NS}/OS::ByMember"),
        None,
        200,
    )
    .await?;
    Ok(())
}

/// A namespace name with bytes a header cannot hold (found by the fuzzer: a 500 when the
/// `Location` header was built from the raw name) gets 201 and a percent-encoded
/// `Location` that leads back to it.
#[actix_web::test]
async fn a_namespace_name_outside_ascii_gets_an_encoded_location() -> Result<()> {
    let c = cloud("sqlite").await?;
    let mut w = Walk {
        c: &c,
        walked: BTreeSet::new(),
    };
    let name = "Ünï code\u{1}x";
    let (h, made) = w
        .call(
            None,
            ADMIN,
            Method::POST,
            NS,
            Some(json!({"namespace": name, "visibility": "public"})),
            201,
        )
        .await?;
    assert_eq!(made["namespace"], name);
    let location = h
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(location, "/v2/metadefs/namespaces/%C3%9Cn%C3%AF%20code%01x");
    let (_, shown) = w
        .call(None, ADMIN, Method::GET, &location, None, 200)
        .await?;
    assert_eq!(shown["namespace"], name);
    Ok(())
}
