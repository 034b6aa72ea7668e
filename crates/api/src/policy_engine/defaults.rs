//! Glance 33's built-in policy for the Images API (secure RBAC, project scope) written in the
//! policy language, which rules are unscoped, which fall back to their deprecated default when
//! `enforce_new_defaults` is false, and the [`Policy`] built from them. `etc/policy.yaml` lists
//! the same rules for operators; a test below keeps the two equal.

use std::collections::BTreeMap;

use super::Policy;
use super::rule::Rule;

/// Glance's default policy for the Images API (secure RBAC, project scope): Glance 33's rules,
/// as its `oslopolicy-policy-generator --namespace glance` prints them. Every action the API
/// enforces is listed, so an override file can be checked for names Glance does not know.
/// `etc/policy.yaml` lists the same rules, commented out, for operators.
const DEFAULT_RULES: &[(&str, &str)] = &[
    // Base rules the others refer to.
    ("context_is_admin", "role:admin"),
    ("default", ""),
    ("service_api", "role:service or role:admin"),
    ("metadef_default", ""),
    ("metadef_admin", "rule:context_is_admin"),
    // Images.
    (
        "add_image",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s and project_id:%(owner)s)",
    ),
    (
        "get_images",
        "rule:context_is_admin or (role:reader and project_id:%(project_id)s)",
    ),
    (
        "get_image",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))",
    ),
    (
        "download_image",
        "rule:context_is_admin or (role:member and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))",
    ),
    (
        "download_from_store",
        "rule:context_is_admin or (role:member and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))",
    ),
    (
        "modify_image",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s)",
    ),
    (
        "delete_image",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s)",
    ),
    (
        "upload_image",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s)",
    ),
    (
        "deactivate",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s)",
    ),
    (
        "reactivate",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s)",
    ),
    (
        "communitize_image",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s)",
    ),
    ("publicize_image", "rule:context_is_admin"),
    ("copy_image", "rule:context_is_admin"),
    // Locations.
    (
        "get_image_location",
        "rule:context_is_admin or (role:reader and project_id:%(project_id)s)",
    ),
    (
        "set_image_location",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s)",
    ),
    ("delete_image_location", "rule:context_is_admin"),
    (
        "add_image_location",
        "rule:service_api or (role:member and project_id:%(project_id)s and project_id:%(owner)s)",
    ),
    ("fetch_image_location", "rule:service_api"),
    // Members.
    (
        "add_member",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s)",
    ),
    (
        "delete_member",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s)",
    ),
    (
        "get_member",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s))",
    ),
    (
        "get_members",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s))",
    ),
    (
        "modify_member",
        "rule:context_is_admin or (role:member and project_id:%(member_id)s)",
    ),
    // Cache.
    ("manage_image_cache", "rule:context_is_admin"),
    ("cache_image", "rule:context_is_admin"),
    ("cache_list", "rule:context_is_admin"),
    ("cache_delete", "rule:context_is_admin"),
    ("cache_clean", "rule:context_is_admin"),
    ("cache_prune", "rule:context_is_admin"),
    ("list_cached_nodes", "rule:context_is_admin"),
    // Stores.
    (
        "stores_info_detail",
        "rule:context_is_admin or rule:service_api",
    ),
    // Tasks: open by rule, gated by tasks_api_access.
    ("tasks_api_access", "rule:context_is_admin"),
    ("get_task", "rule:default"),
    ("get_tasks", "rule:default"),
    ("add_task", "rule:default"),
    ("modify_task", "rule:default"),
    // Metadata definitions: anyone may read their own project's or public ones (and list their
    // own project's), admins write.
    (
        "get_metadef_namespace",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))",
    ),
    (
        "get_metadef_namespaces",
        "rule:context_is_admin or (role:reader and project_id:%(project_id)s)",
    ),
    (
        "get_metadef_object",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))",
    ),
    (
        "get_metadef_objects",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))",
    ),
    (
        "get_metadef_property",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))",
    ),
    (
        "get_metadef_properties",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))",
    ),
    (
        "get_metadef_tag",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))",
    ),
    (
        "get_metadef_tags",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))",
    ),
    (
        "get_metadef_resource_type",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))",
    ),
    (
        "list_metadef_resource_types",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))",
    ),
    ("add_metadef_namespace", "rule:metadef_admin"),
    ("modify_metadef_namespace", "rule:metadef_admin"),
    ("delete_metadef_namespace", "rule:metadef_admin"),
    ("add_metadef_object", "rule:metadef_admin"),
    ("modify_metadef_object", "rule:metadef_admin"),
    ("delete_metadef_object", "rule:metadef_admin"),
    ("add_metadef_property", "rule:metadef_admin"),
    ("modify_metadef_property", "rule:metadef_admin"),
    ("remove_metadef_property", "rule:metadef_admin"),
    ("add_metadef_tag", "rule:metadef_admin"),
    ("add_metadef_tags", "rule:metadef_admin"),
    ("modify_metadef_tag", "rule:metadef_admin"),
    ("delete_metadef_tag", "rule:metadef_admin"),
    ("delete_metadef_tags", "rule:metadef_admin"),
    (
        "add_metadef_resource_type_association",
        "rule:metadef_admin",
    ),
    (
        "remove_metadef_resource_type_association",
        "rule:metadef_admin",
    ),
];

/// The rules Glance defines without `scope_types` (the building blocks the others refer to).
/// Every other rule in [`DEFAULT_RULES`] is project-scoped, as all of Glance 33's are.
const UNSCOPED_RULES: &[&str] = &[
    "context_is_admin",
    "default",
    "service_api",
    "metadef_default",
    "metadef_admin",
];

/// The image rules whose deprecated (pre-secure-RBAC) default is `rule:default`. With
/// `[oslo_policy] enforce_new_defaults = false` oslo.policy lets either the new or the
/// deprecated default pass, for each of these that the policy file does not set.
const DEPRECATED_TO_DEFAULT: &[&str] = &[
    "add_image",
    "delete_image",
    "get_image",
    "get_images",
    "modify_image",
    "communitize_image",
    "download_image",
    "upload_image",
    "delete_image_location",
    "get_image_location",
    "set_image_location",
    "add_member",
    "delete_member",
    "get_member",
    "get_members",
    "modify_member",
    "deactivate",
    "reactivate",
];

impl Policy {
    /// Glance's secure-RBAC defaults for the Images API.
    pub fn defaults() -> Self {
        let mut rules = BTreeMap::new();
        for (name, text) in DEFAULT_RULES {
            match Rule::parse(name, text) {
                Ok(rule) => {
                    rules.insert((*name).to_owned(), rule);
                }
                // The table is checked by the tests; never reached in a tested build.
                Err(e) => log::error!("built-in {e}"),
            }
        }
        Self { rules }
    }

    /// Whether `name` is one of the rules Glance defines.
    pub fn is_known_rule(name: &str) -> bool {
        DEFAULT_RULES.iter().any(|(n, _)| *n == name)
    }

    /// Whether `action` is one of Glance's project-scoped rules, which refuse a token scoped to
    /// the system or a domain (oslo.policy's scope check; always on in Glance 33).
    pub fn is_project_scoped(action: &str) -> bool {
        !UNSCOPED_RULES.contains(&action) && Self::is_known_rule(action)
    }

    /// Widens each rule of [`DEPRECATED_TO_DEFAULT`] not named in `set_by_file` to
    /// `(<rule>) or rule:default` (`enforce_new_defaults = false`).
    pub fn allow_deprecated_defaults(&mut self, set_by_file: &[String]) {
        for name in DEPRECATED_TO_DEFAULT {
            if set_by_file.iter().any(|n| n == name) {
                continue;
            }
            let Some(current) = self.rules.get(*name) else {
                continue;
            };
            if current.text().trim().is_empty() {
                // "" already allows everyone.
                continue;
            }
            let widened = format!("({}) or rule:default", current.text());
            match Rule::parse(name, &widened) {
                Ok(rule) => {
                    self.rules.insert((*name).to_owned(), rule);
                }
                // A parsed rule in parentheses always parses again.
                Err(e) => log::error!("deprecated default for {e}"),
            }
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::defaults()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use glance_model::Context;

    use super::*;
    use crate::policy_engine::test_support::*;
    use crate::policy_engine::*;

    // --- Glance's defaults ----------------------------------------------------------------------

    /// An image owned by `owner`, as Glance builds the target; `member` is the caller's
    /// membership in it, if any.
    fn image(owner: &str, visibility: &str, member: Option<&str>) -> Target {
        let mut t = Target::new()
            .with("project_id", owner)
            .with("owner", owner)
            .with("visibility", visibility)
            .with("id", "7c7d0b3e-0000-4000-8000-000000000001");
        if let Some(m) = member {
            t.insert("member_id", m);
        }
        t
    }

    fn admin() -> Credentials {
        Credentials::project("admin-project", &["admin"]).with_implied_roles()
    }
    fn owner_member() -> Credentials {
        Credentials::project("p1", &["member"]).with_implied_roles()
    }
    fn owner_reader() -> Credentials {
        Credentials::project("p1", &["reader"])
    }
    fn stranger() -> Credentials {
        Credentials::project("p2", &["member", "reader"])
    }

    #[test]
    fn defaults_parse_and_refer_only_to_defined_rules() {
        let p = Policy::defaults();
        assert_eq!(p.rule_names().count(), DEFAULT_RULES.len());
        for (name, text) in DEFAULT_RULES {
            Rule::parse(name, text).unwrap();
            for r in p.rule(name).unwrap().references() {
                assert!(p.rule(r).is_some(), "{name} refers to undefined {r}");
            }
        }
        assert!(find_cycle(&p.rules).is_none());
        for name in [
            "get_images",
            "add_image",
            "modify_member",
            "get_image_location",
            "context_is_admin",
            "default",
        ] {
            assert!(Policy::is_known_rule(name), "{name}");
        }
    }

    /// The rules `etc/policy.yaml` lists for reference (commented out), parsed.
    fn etc_policy_yaml_reference() -> Policy {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../etc/policy.yaml");
        let text = std::fs::read_to_string(path).expect("read etc/policy.yaml");
        let block: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# The defaults, for reference"))
            .take_while(|l| !l.starts_with("# Example"))
            .filter_map(|l| l.strip_prefix('#').filter(|rule| rule.starts_with('"')))
            .map(|rule| format!("{rule}\n"))
            .collect();
        let mut listed = Policy::empty();
        listed
            .apply_overrides(&block, "etc/policy.yaml")
            .expect("the rules etc/policy.yaml lists parse");
        listed
    }

    #[test]
    fn etc_policy_yaml_lists_the_built_in_defaults() {
        let listed = etc_policy_yaml_reference();
        let built_in = Policy::defaults();
        let names = |p: &Policy| p.rule_names().map(str::to_owned).collect::<BTreeSet<_>>();
        let (in_file, in_code) = (names(&listed), names(&built_in));
        assert_eq!(
            in_file.difference(&in_code).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "rules etc/policy.yaml lists that are not built in"
        );
        assert_eq!(
            in_code.difference(&in_file).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "built-in rules etc/policy.yaml does not list"
        );
        // The same rule, parsed: the text may differ in spacing or redundant parentheses.
        for name in &in_code {
            let (file, code) = (&listed.rules[name], &built_in.rules[name]);
            assert_eq!(
                file.expr, code.expr,
                "{name}: etc/policy.yaml says \"{file}\", the built-in default \"{code}\""
            );
        }
    }

    #[test]
    fn defaults_admin_may_do_everything() {
        let p = Policy::defaults();
        let img = image("p1", "private", None);
        for action in [
            "get_images",
            "get_image",
            "add_image",
            "modify_image",
            "publicize_image",
            "communitize_image",
            "delete_image",
            "upload_image",
            "download_image",
            "deactivate",
            "reactivate",
            "add_member",
            "get_member",
            "get_members",
            "modify_member",
            "delete_member",
            "get_image_location",
            "set_image_location",
            "delete_image_location",
            "add_image_location",
            "fetch_image_location",
            "copy_image",
            "tasks_api_access",
            "get_tasks",
            "manage_image_cache",
            "stores_info_detail",
            "add_metadef_namespace",
        ] {
            assert!(p.enforce(action, &admin(), &img), "admin denied {action}");
        }
    }

    #[test]
    fn admin_only_rules_follow_context_is_admin_as_in_glance() {
        let p = Policy::from_str("context_is_admin: role:cloud_admin\n", "p.yaml").unwrap();
        let cloud_admin = Credentials::project("ops", &["cloud_admin"]);
        let keystone_admin = Credentials::project("ops", &["admin"]).with_implied_roles();
        let img = image("p1", "private", None);
        for action in [
            "publicize_image",
            "copy_image",
            "delete_image_location",
            "manage_image_cache",
            "cache_list",
            "list_cached_nodes",
            "tasks_api_access",
            "add_metadef_namespace",
        ] {
            assert!(p.enforce(action, &cloud_admin, &img), "{action}");
            assert!(!p.enforce(action, &keystone_admin, &img), "{action}");
        }
        // stores_info_detail also lets service_api (role:service or role:admin) in.
        assert!(p.enforce("stores_info_detail", &cloud_admin, &img));
        assert!(p.enforce("stores_info_detail", &keystone_admin, &img));
    }

    #[test]
    fn defaults_owner_member() {
        let p = Policy::defaults();
        let img = image("p1", "private", None);
        let c = owner_member();
        for action in [
            "get_image",
            "modify_image",
            "delete_image",
            "upload_image",
            "download_image",
            "deactivate",
            "reactivate",
            "communitize_image",
            "add_member",
            "delete_member",
            "get_members",
            "get_image_location",
            "set_image_location",
            "add_image_location",
        ] {
            assert!(p.enforce(action, &c, &img), "owner member denied {action}");
        }
        assert!(p.enforce("get_images", &c, &Target::new().with("project_id", "p1")));
        assert!(p.enforce(
            "add_image",
            &c,
            &Target::new().with("project_id", "p1").with("owner", "p1")
        ));
        // Not for another project's ownership.
        assert!(!p.enforce(
            "add_image",
            &c,
            &Target::new().with("project_id", "p1").with("owner", "p2")
        ));
        for action in [
            "publicize_image",
            "delete_image_location",
            "copy_image",
            "fetch_image_location",
            "tasks_api_access",
            "manage_image_cache",
            "add_metadef_namespace",
        ] {
            assert!(
                !p.enforce(action, &c, &img),
                "owner member allowed {action}"
            );
        }
        // The owner cannot accept a membership on behalf of the member project.
        assert!(!p.enforce("modify_member", &c, &image("p1", "shared", Some("p2"))));
    }

    #[test]
    fn defaults_owner_reader() {
        let p = Policy::defaults();
        let img = image("p1", "private", None);
        let c = owner_reader();
        assert!(p.enforce("get_image", &c, &img));
        assert!(p.enforce("get_members", &c, &img));
        assert!(p.enforce("get_image_location", &c, &img));
        assert!(p.enforce("get_images", &c, &Target::new().with("project_id", "p1")));
        for action in [
            "modify_image",
            "delete_image",
            "upload_image",
            "download_image",
            "add_member",
            "deactivate",
            "communitize_image",
            "set_image_location",
        ] {
            assert!(!p.enforce(action, &c, &img), "reader allowed {action}");
        }
        assert!(!p.enforce(
            "add_image",
            &c,
            &Target::new().with("project_id", "p1").with("owner", "p1")
        ));
    }

    #[test]
    fn defaults_member_of_another_project() {
        let p = Policy::defaults();
        let c = stranger();
        let private = image("p1", "private", None);
        for action in [
            "get_image",
            "download_image",
            "modify_image",
            "delete_image",
            "get_members",
        ] {
            assert!(
                !p.enforce(action, &c, &private),
                "stranger allowed {action} on private"
            );
        }
        for vis in ["public", "community"] {
            let img = image("p1", vis, None);
            assert!(p.enforce("get_image", &c, &img), "{vis}");
            assert!(p.enforce("download_image", &c, &img), "{vis}");
            assert!(!p.enforce("modify_image", &c, &img), "{vis}");
            assert!(!p.enforce("delete_image", &c, &img), "{vis}");
            assert!(!p.enforce("add_member", &c, &img), "{vis}");
        }
        // Listing another project's images is not the caller's list.
        assert!(!p.enforce("get_images", &c, &Target::new().with("project_id", "p1")));
    }

    #[test]
    fn defaults_image_member() {
        let p = Policy::defaults();
        let c = stranger();
        let img = image("p1", "shared", Some("p2"));
        for action in [
            "get_image",
            "download_image",
            "get_member",
            "get_members",
            "modify_member",
        ] {
            assert!(p.enforce(action, &c, &img), "image member denied {action}");
        }
        for action in [
            "modify_image",
            "delete_image",
            "add_member",
            "delete_member",
            "upload_image",
        ] {
            assert!(
                !p.enforce(action, &c, &img),
                "image member allowed {action}"
            );
        }
        // A reader in the member project may look but not accept.
        let reader = Credentials::project("p2", &["reader"]);
        let private_member = image("p1", "private", Some("p2"));
        assert!(p.enforce("get_image", &reader, &private_member));
        assert!(!p.enforce("modify_member", &reader, &private_member));
        assert!(!p.enforce("download_image", &reader, &private_member));
    }

    #[test]
    fn defaults_without_roles_or_project() {
        let p = Policy::defaults();
        let img = image("p1", "public", None);
        assert!(!p.enforce("get_image", &nobody(), &img));
        assert!(!p.enforce(
            "get_images",
            &Credentials::project("p1", &[]),
            &Target::new().with("project_id", "p1")
        ));
        // Tasks are open by rule (the gate is tasks_api_access).
        assert!(p.enforce("get_tasks", &nobody(), &Target::new()));
        assert!(!p.enforce("tasks_api_access", &owner_member(), &Target::new()));
    }

    #[test]
    fn defaults_service_role_and_metadefs() {
        let p = Policy::defaults();
        let service = Credentials::project("service", &["service"]);
        let img = image("p1", "private", None);
        assert!(p.enforce("fetch_image_location", &service, &img));
        assert!(p.enforce("add_image_location", &service, &img));
        assert!(p.enforce("stores_info_detail", &service, &img));
        assert!(!p.enforce("modify_image", &service, &img));
        let public_ns = Target::new()
            .with("project_id", "p9")
            .with("visibility", "public");
        let private_ns = Target::new()
            .with("project_id", "p9")
            .with("visibility", "private");
        assert!(p.enforce("get_metadef_namespace", &owner_reader(), &public_ns));
        assert!(!p.enforce("get_metadef_namespace", &owner_reader(), &private_ns));
        assert!(!p.enforce("modify_metadef_namespace", &owner_member(), &public_ns));
    }

    #[test]
    fn implied_roles_and_context_conversion() {
        let c = Credentials::project("p", &["Admin"]).with_implied_roles();
        assert!(c.has_role("member") && c.has_role("reader"));
        assert_eq!(c.roles.len(), 3);
        let ctx = Context::project("p1", &["member"]);
        let from: Credentials = (&ctx).into();
        assert_eq!(from.project_id.as_deref(), Some("p1"));
        assert_eq!(from.roles, vec!["member".to_owned()]);
        assert!(!from.is_admin);
    }

    #[test]
    fn target_constructors() {
        let t: Target = [("a", "1"), ("b", "2")].into_iter().collect();
        assert_eq!(t.get("a"), Some("1"));
        let mut m = HashMap::new();
        m.insert("owner".to_owned(), "p1".to_owned());
        let t2 = Target::from(m);
        assert_eq!(t2.get("owner"), Some("p1"));
        // Dotted keys are plain keys.
        let t3 = Target::new().with("target.image.owner", "p1");
        assert!(eval(
            "project_id:%(target.image.owner)s",
            &Credentials::project("p1", &[]),
            &t3
        ));
    }
}
