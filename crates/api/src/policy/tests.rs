//! Unit tests of the enforcer: defaults, overrides, ownership, scope, deprecated defaults.
use super::*;
use glance_model::{ImageId, ImageStatus};

fn image(owner: &str, visibility: Visibility) -> Image {
    Image {
        id: ImageId::new(),
        name: None,
        status: ImageStatus::Queued,
        visibility,
        protected: false,
        os_hidden: false,
        checksum: None,
        os_hash_algo: None,
        os_hash_value: None,
        owner: Some(owner.to_string()),
        size: None,
        virtual_size: None,
        container_format: None,
        disk_format: None,
        min_disk: 0,
        min_ram: 0,
        created_at: glance_model::time::now(),
        updated_at: None,
        deleted_at: None,
        deleted: false,
        tags: vec![],
        properties: Default::default(),
        locations: vec![],
    }
}

#[test]
fn owners_members_modify_readers_and_others_do_not() {
    let e = Enforcer::default();
    let img = image("p1", Visibility::Shared);
    let ok = |ctx: &Context| e.change(Change::Modify, ctx, &img).is_ok();
    assert!(ok(&Context::project("p1", &["member"])));
    assert!(!ok(&Context::project("p1", &["reader"])));
    assert!(!ok(&Context::project("p2", &["member"])));
    assert!(ok(&Context::project("p2", &["admin"])));
    assert!(ok(&Context::unauthenticated_admin("r")));
}

#[test]
fn publicize_is_admin_only_and_members_answer_for_themselves() {
    let e = Enforcer::default();
    let img = image("p1", Visibility::Shared);
    let owner = Context::project("p1", &["member"]);
    assert!(e.set_visibility(&owner, &img, Visibility::Public).is_err());
    assert!(
        e.set_visibility(&owner, &img, Visibility::Community)
            .is_ok()
    );
    assert!(e.set_member_status(&owner, &img, "p2").is_err());
    assert!(
        e.set_member_status(&Context::project("p2", &["member"]), &img, "p2")
            .is_ok()
    );
    assert!(e.list(&Context::project("p3", &["reader"])).is_ok());
    assert!(e.list(&Context::project("p3", &[])).is_err());
    assert!(
        e.read(Read::Download, &Context::project("p2", &["reader"]), &img)
            .is_err()
    );
    assert!(e.add_image(&owner, Some("p2")).is_err());
    assert!(e.add_image(&owner, None).is_ok());
}

#[test]
fn refusals_of_invisible_images_are_404_and_others_403() {
    let mut p = Policy::defaults();
    p.set_rule("get_image", "role:admin or project_id:%(project_id)s")
        .expect("rule");
    let e = Enforcer::new(p);
    let img = image("p1", Visibility::Public);
    let other = Context::project("p2", &["member"]);
    let err = e.show(&other, &img).expect_err("hidden by policy");
    assert_eq!(actix_web::ResponseError::status_code(&err).as_u16(), 404);
    let err = e
        .change(Change::Delete, &other, &img)
        .expect_err("not visible");
    assert_eq!(actix_web::ResponseError::status_code(&err).as_u16(), 404);
    let err = Enforcer::default()
        .change(Change::Delete, &other, &img)
        .expect_err("visible, not the owner");
    assert_eq!(actix_web::ResponseError::status_code(&err).as_u16(), 403);
}

#[test]
fn the_shipped_policy_file_loads_and_its_example_overrides() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../etc/policy.yaml");
    let shipped = Policy::load(path).expect("etc/policy.yaml loads");
    assert_eq!(
        shipped,
        Policy::defaults(),
        "everything in it is commented out"
    );
    let text = std::fs::read_to_string(path).expect("read");
    let example: String = text
        .lines()
        .filter(|l| l.starts_with("#\"deactivate\": \"role:admin\""))
        .map(|l| l.trim_start_matches('#'))
        .collect();
    let e = Enforcer::new(Policy::from_str(&example, "example").expect("example parses"));
    let img = image("p1", Visibility::Private);
    let owner = Context::project("p1", &["member"]);
    assert!(
        Enforcer::default()
            .change(Change::Deactivate, &owner, &img)
            .is_ok()
    );
    assert_eq!(
        actix_web::ResponseError::status_code(
            &e.change(Change::Deactivate, &owner, &img)
                .expect_err("admins only")
        )
        .as_u16(),
        403
    );
}

fn status(err: &ApiError) -> u16 {
    actix_web::ResponseError::status_code(err).as_u16()
}

/// Queens' policy.json style: every image rule open.
fn open_policy() -> Enforcer {
    let mut p = Policy::defaults();
    for action in [
        "add_image",
        "get_image",
        "get_images",
        "modify_image",
        "delete_image",
        "upload_image",
        "deactivate",
        "reactivate",
        "add_member",
        "delete_member",
        "modify_member",
        "communitize_image",
    ] {
        p.set_rule(action, "").expect("rule");
    }
    Enforcer::new(p)
}

#[test]
fn an_open_policy_still_leaves_changes_to_the_owner() {
    let e = open_policy();
    let img = image("p1", Visibility::Community);
    let other = Context::project("p2", &["member"]);
    for change in Change::ALL {
        let err = e.change(change, &other, &img).expect_err("not the owner");
        assert_eq!(status(&err), 403, "{change:?}");
        assert!(
            e.change(change, &Context::project("p1", &["member"]), &img)
                .is_ok()
        );
        assert!(
            e.change(change, &Context::project("p3", &["admin"]), &img)
                .is_ok()
        );
    }
    assert_eq!(
        status(&e.add_image(&other, Some("p1")).expect_err("owner")),
        403
    );
    let shared = image("p1", Visibility::Shared);
    for who in ["p1", "p3"] {
        let err = e
            .set_member_status(&Context::project(who, &["member"]), &shared, "p2")
            .expect_err("not the member");
        assert_eq!(status(&err), 403);
    }
    assert!(e.set_member_status(&other, &shared, "p2").is_ok());
}

#[test]
fn tokens_not_scoped_to_a_project_are_refused_even_for_admins() {
    let img = image("p1", Visibility::Public);
    for e in [Enforcer::default(), open_policy()] {
        for scoped in [
            Context {
                system_scope: Some("all".to_string()),
                ..Context::authenticated(None, None, vec!["admin".into()], String::new())
            },
            Context {
                domain_id: Some("default".to_string()),
                ..Context::authenticated(None, None, vec!["admin".into()], String::new())
            },
        ] {
            assert_eq!(status(&e.list(&scoped).expect_err("list")), 403);
            let err = e.add_image(&scoped, None).expect_err("create");
            assert_eq!(status(&err), 403);
            assert!(err.to_string().contains("project-scoped"), "{err}");
            assert!(e.before_show(&scoped).is_ok());
            assert_eq!(status(&e.show(&scoped, &img).expect_err("show")), 404);
            assert!(!e.can_show(&scoped, &img));
            for change in Change::ALL {
                let err = e.change(change, &scoped, &img).expect_err("change");
                assert_eq!(status(&err), 404, "{change:?}");
            }
            let err = e.read(Read::Download, &scoped, &img).expect_err("download");
            assert_eq!(status(&err), 404);
        }
    }
    // Glance's no-auth admin has no project and no other scope: it is not refused.
    let noauth = Context::unauthenticated_admin("r");
    assert!(Enforcer::default().list(&noauth).is_ok());
    assert!(
        Enforcer::default()
            .change(Change::Delete, &noauth, &img)
            .is_ok()
    );
}

#[test]
fn without_new_defaults_the_rules_open_up_but_ownership_holds() {
    let legacy = Enforcer::new(Policy::configured(None, false).expect("defaults"));
    let img = image("p1", Visibility::Private);
    let roleless = Context::project("p1", &[]);
    // The secure-RBAC default needs the member role; the deprecated one (rule:default, "")
    // does not.
    assert!(
        Enforcer::default()
            .change(Change::Modify, &roleless, &img)
            .is_err()
    );
    assert!(legacy.change(Change::Modify, &roleless, &img).is_ok());
    assert!(legacy.list(&Context::project("p2", &[])).is_ok());
    let err = legacy
        .change(Change::Modify, &Context::project("p2", &["member"]), &img)
        .expect_err("not the owner");
    assert_eq!(status(&err), 403);
    // publicize_image has no deprecated default: still admins only.
    let err = legacy
        .set_visibility(&roleless, &img, Visibility::Public)
        .expect_err("admins only");
    assert_eq!(status(&err), 403);
}
