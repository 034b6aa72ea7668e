//! What a rule answers: the caller ([`Credentials`]) and the object ([`Target`]) a rule is
//! evaluated against, and the evaluation itself, which never fails and never allocates much
//! (a missing target key or credential field makes its check false). Parsing is not done here.

use std::collections::HashMap;

use glance_model::Context;

use super::rule::{Expr, Part, Subject, Template};
use super::{MAX_DEPTH, Policy};

/// The caller, as the policy language sees it (oslo's "credentials"). A check `kind:match` reads
/// the field named `kind`: `user_id`, `project_id` (also `tenant` and `tenant_id`), `domain_id`,
/// `user_domain_id`, `project_domain_id`, `system_scope`, `roles` (matches any one role),
/// `is_admin` (the text `True` or `False`), then anything in `extra`. An absent field matches
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub domain_id: Option<String>,
    pub user_domain_id: Option<String>,
    pub project_domain_id: Option<String>,
    pub system_scope: Option<String>,
    /// Role names as the token carries them (Keystone has already added implied roles).
    pub roles: Vec<String>,
    pub is_admin: bool,
    /// Further fields a check may name, keyed by the exact `kind` (dotted names included).
    pub extra: HashMap<String, String>,
}

/// One credential field's value, as a check compares it.
enum CredValue<'a> {
    Missing,
    Text(&'a str),
    Flag(bool),
    List(&'a [String]),
}

impl Credentials {
    /// No user, no project, no roles.
    pub fn new() -> Self {
        Self::default()
    }

    /// A caller scoped to `project_id` with the given roles.
    pub fn project(project_id: impl Into<String>, roles: &[&str]) -> Self {
        Self {
            project_id: Some(project_id.into()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            ..Self::default()
        }
    }

    /// The same caller with `user_id` set.
    #[must_use]
    pub fn with_user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// The same caller with `is_admin` set.
    #[must_use]
    pub fn with_admin(mut self, is_admin: bool) -> Self {
        self.is_admin = is_admin;
        self
    }

    /// Adds the roles Keystone's default role hierarchy implies (`admin` ⇒ `member` ⇒ `reader`),
    /// for callers whose roles did not come from a token (no-auth and trusted-header modes).
    #[must_use]
    pub fn with_implied_roles(mut self) -> Self {
        let implied: &[(&str, &[&str])] =
            &[("admin", &["member", "reader"]), ("member", &["reader"])];
        for (role, implies) in implied {
            if self.has_role(role) {
                for extra in *implies {
                    if !self.has_role(extra) {
                        self.roles.push((*extra).to_owned());
                    }
                }
            }
        }
        self
    }

    /// Whether the caller holds `role` (compared case-insensitively, as `role:` checks do).
    pub fn has_role(&self, role: &str) -> bool {
        let wanted = role.to_lowercase();
        self.roles.iter().any(|r| r.to_lowercase() == wanted)
    }

    fn lookup(&self, kind: &str) -> CredValue<'_> {
        fn text(v: Option<&str>) -> CredValue<'_> {
            v.map_or(CredValue::Missing, CredValue::Text)
        }
        match kind {
            "user_id" => text(self.user_id.as_deref()),
            "project_id" | "tenant" | "tenant_id" => text(self.project_id.as_deref()),
            "domain_id" => text(self.domain_id.as_deref()),
            "user_domain_id" => text(self.user_domain_id.as_deref()),
            "project_domain_id" => text(self.project_domain_id.as_deref()),
            "system_scope" => text(self.system_scope.as_deref()),
            "roles" => CredValue::List(&self.roles),
            "is_admin" => CredValue::Flag(self.is_admin),
            other => self
                .extra
                .get(other)
                .map_or(CredValue::Missing, |v| CredValue::Text(v)),
        }
    }
}

impl From<&Context> for Credentials {
    fn from(ctx: &Context) -> Self {
        Self {
            user_id: ctx.user_id.clone(),
            project_id: ctx.project_id.clone(),
            roles: ctx.roles.clone(),
            is_admin: ctx.is_admin,
            system_scope: ctx.system_scope.clone(),
            domain_id: ctx.domain_id.clone(),
            ..Self::default()
        }
    }
}

/// What the action is about (oslo's "target"): the values `%(key)s` substitutions read. For an
/// image Glance supplies `project_id` (the owner), `owner`, `visibility`, `member_id` (the
/// caller's membership, when there is one), `id` and the image's other attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target(HashMap<String, String>);

impl Target {
    /// An empty target: every substitution fails, so only checks without one can pass.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same target with `key` set to `value`.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Sets `key`, returning its previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.0.insert(key.into(), value.into())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl From<HashMap<String, String>> for Target {
    fn from(map: HashMap<String, String>) -> Self {
        Self(map)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Target {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl Template {
    /// The text with every key filled from the target; `None` when the target lacks a key.
    fn render(&self, target: &Target) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Key(k) => out.push_str(target.get(k)?),
            }
        }
        Some(out)
    }
}

impl Expr {
    fn eval(&self, policy: &Policy, creds: &Credentials, target: &Target, depth: usize) -> bool {
        match self {
            Self::Always => true,
            Self::Never | Self::Remote(_) => false,
            Self::Role(template) => template
                .render(target)
                .is_some_and(|role| creds.has_role(&role)),
            Self::Ref(name) => {
                if depth >= MAX_DEPTH {
                    log::warn!("policy rule \"{name}\" is referenced too deeply; denying");
                    return false;
                }
                policy
                    .rules
                    .get(name)
                    .is_some_and(|rule| rule.expr.eval(policy, creds, target, depth + 1))
            }
            Self::Generic {
                subject, expected, ..
            } => {
                let Some(expected) = expected.render(target) else {
                    return false;
                };
                match subject {
                    Subject::Literal(value) => *value == expected,
                    Subject::Credential(field) => match creds.lookup(field) {
                        CredValue::Missing => false,
                        CredValue::Text(value) => value == expected,
                        CredValue::Flag(flag) => expected == if flag { "True" } else { "False" },
                        CredValue::List(values) => values.contains(&expected),
                    },
                }
            }
            Self::Not(inner) => !inner.eval(policy, creds, target, depth),
            Self::And(items) => items.iter().all(|e| e.eval(policy, creds, target, depth)),
            Self::Or(items) => items.iter().any(|e| e.eval(policy, creds, target, depth)),
        }
    }
}

impl Policy {
    /// May `creds` perform `action` on `target`? An action without a rule of its own is judged
    /// by the `default` rule (denied when there is none), as oslo does.
    pub fn enforce(&self, action: &str, creds: &Credentials, target: &Target) -> bool {
        let rule = self.rules.get(action).or_else(|| self.rules.get("default"));
        let allowed = rule.is_some_and(|r| r.expr.eval(self, creds, target, 0));
        log::debug!(
            "policy {action}: {} for user {:?} project {:?}",
            if allowed { "allowed" } else { "denied" },
            creds.user_id,
            creds.project_id
        );
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_engine::test_support::*;
    use crate::policy_engine::*;

    // --- single checks -------------------------------------------------------------------

    #[test]
    fn always_never_and_empty() {
        let t = Target::new();
        assert!(eval("@", &nobody(), &t));
        assert!(!eval("!", &nobody(), &t));
        assert!(eval("", &nobody(), &t));
        assert!(eval("   ", &nobody(), &t));
    }

    #[test]
    fn role_check_is_case_insensitive() {
        let c = Credentials::project("p1", &["Member"]);
        let t = Target::new();
        assert!(eval("role:member", &c, &t));
        assert!(eval("role:MEMBER", &c, &t));
        assert!(!eval("role:admin", &c, &t));
        assert!(!eval("role:admin", &nobody(), &t));
    }

    #[test]
    fn role_check_substitutes_from_target() {
        let c = Credentials::project("p1", &["creator"]);
        assert!(eval(
            "role:%(needed)s",
            &c,
            &Target::new().with("needed", "Creator")
        ));
        assert!(!eval("role:%(needed)s", &c, &Target::new()));
    }

    #[test]
    fn generic_check_substitutes_target_values() {
        let c = Credentials::project("p1", &[]).with_user("u1");
        let t = Target::new()
            .with("owner", "p1")
            .with("user_id", "u1")
            .with("project_id", "p2");
        assert!(eval("project_id:%(owner)s", &c, &t));
        assert!(!eval("project_id:%(project_id)s", &c, &t));
        assert!(eval("user_id:%(user_id)s", &c, &t));
        // Missing target key: false, not an error.
        assert!(!eval("project_id:%(member_id)s", &c, &t));
        // Constant match (no substitution).
        assert!(eval("project_id:p1", &c, &t));
        // Text around the substitution.
        let t2 = Target::new().with("n", "1");
        assert!(eval("project_id:p%(n)s", &c, &t2));
    }

    #[test]
    fn tenant_aliases_project_id() {
        let c = Credentials::project("p1", &[]);
        let t = Target::new().with("owner", "p1");
        assert!(eval("tenant:%(owner)s", &c, &t));
        assert!(eval("tenant_id:%(owner)s", &c, &t));
    }

    #[test]
    fn missing_credential_never_matches() {
        // An unscoped caller does not match an image without an owner (oslo would compare "None").
        let t = Target::new().with("owner", "None");
        assert!(!eval("project_id:%(owner)s", &nobody(), &t));
        assert!(!eval("domain_id:d1", &nobody(), &t));
    }

    #[test]
    fn is_admin_compares_as_python_bool_text() {
        let admin = Credentials::new().with_admin(true);
        let t = Target::new();
        assert!(eval("is_admin:True", &admin, &t));
        assert!(!eval("is_admin:True", &nobody(), &t));
        assert!(eval("is_admin:False", &nobody(), &t));
        assert!(!eval("is_admin:true", &admin, &t));
    }

    #[test]
    fn roles_field_and_other_credential_fields() {
        let mut c = Credentials::project("p1", &["reader", "member"]);
        c.system_scope = Some("all".into());
        c.domain_id = Some("d1".into());
        c.extra.insert("service_user_id".into(), "nova".into());
        let t = Target::new().with("domain_id", "d1");
        assert!(eval("roles:member", &c, &t));
        assert!(!eval("roles:Member", &c, &t)); // a generic check is case-sensitive
        assert!(eval("system_scope:all", &c, &t));
        assert!(eval("domain_id:%(domain_id)s", &c, &t));
        assert!(eval("service_user_id:nova", &c, &t));
        assert!(!eval("unknown_field:x", &c, &t));
    }

    #[test]
    fn quoted_literal_on_the_left() {
        let t = Target::new().with("visibility", "public");
        assert!(eval("'public':%(visibility)s", &nobody(), &t));
        assert!(eval("\"public\":%(visibility)s", &nobody(), &t));
        assert!(!eval("'shared':%(visibility)s", &nobody(), &t));
        assert!(!eval("'public':%(missing)s", &nobody(), &t));
    }

    #[test]
    fn quoted_literal_with_spaces() {
        let t = Target::new().with("name", "my image");
        assert!(eval("'my image':%(name)s", &nobody(), &t));
        assert!(eval("role:x or ('my image':%(name)s)", &nobody(), &t));
        assert!(!eval("'my  image':%(name)s", &nobody(), &t));
        let r = rule("not 'a b':%(name)s and @");
        assert_eq!(r.to_string(), "not 'a b':%(name)s and @");
    }

    #[test]
    fn bool_none_and_integer_literals() {
        let t = Target::new()
            .with("enabled", "True")
            .with("gone", "None")
            .with("n", "42");
        assert!(eval("True:%(enabled)s", &nobody(), &t));
        assert!(!eval("False:%(enabled)s", &nobody(), &t));
        assert!(eval("None:%(gone)s", &nobody(), &t));
        assert!(eval("42:%(n)s", &nobody(), &t));
        assert!(eval("+42:%(n)s", &nobody(), &t));
    }

    #[test]
    fn percent_escapes() {
        let c = Credentials::project("50%", &[]);
        assert!(eval("project_id:50%%", &c, &Target::new()));
    }

    #[test]
    fn rule_references() {
        let c = Credentials::project("p1", &["admin"]);
        let t = Target::new();
        assert!(eval_with(
            "rule:is_admin",
            &[("is_admin", "role:admin")],
            &c,
            &t
        ));
        assert!(!eval_with(
            "rule:is_admin",
            &[("is_admin", "role:admin")],
            &nobody(),
            &t
        ));
        // Chained references.
        let extra = [("a", "rule:b"), ("b", "role:admin")];
        assert!(eval_with("rule:a", &extra, &c, &t));
    }

    #[test]
    fn undefined_rule_reference_is_false_even_with_open_default() {
        let mut p = Policy::empty();
        p.set_rule("default", "@").unwrap();
        p.set_rule("r", "rule:nonexistent").unwrap();
        assert!(!p.enforce("r", &nobody(), &Target::new()));
        p.set_rule("r2", "not rule:nonexistent").unwrap();
        assert!(p.enforce("r2", &nobody(), &Target::new()));
    }

    #[test]
    fn remote_checks_parse_but_deny() {
        let r = rule("http://policy.example/check");
        assert!(r.has_remote_check());
        assert!(!eval(
            "https://policy.example/check",
            &nobody(),
            &Target::new()
        ));
        assert!(eval(
            "https://policy.example/check or @",
            &nobody(),
            &Target::new()
        ));
    }

    // --- operators and precedence --------------------------------------------------------

    #[test]
    fn and_or_not() {
        let t = Target::new();
        assert!(eval("@ and @", &nobody(), &t));
        assert!(!eval("@ and !", &nobody(), &t));
        assert!(eval("! or @", &nobody(), &t));
        assert!(!eval("! or !", &nobody(), &t));
        assert!(eval("not !", &nobody(), &t));
        assert!(!eval("not @", &nobody(), &t));
        assert!(eval("not not @", &nobody(), &t));
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let t = Target::new();
        assert!(eval("! OR @", &nobody(), &t));
        assert!(!eval("@ AND NOT @", &nobody(), &t));
        assert_eq!(rule("@ Or !").to_string(), "@ or !");
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let t = Target::new();
        // a or (b and c): true because a is true.
        assert!(eval("@ or ! and !", &nobody(), &t));
        // (a and b) or c
        assert!(eval("! and ! or @", &nobody(), &t));
        assert!(!eval("@ and ! or !", &nobody(), &t));
        // Explicit grouping changes the answer.
        assert!(!eval("(@ or !) and !", &nobody(), &t));
        assert_eq!(rule("@ or ! and !").to_string(), "@ or ! and !");
        assert_eq!(rule("(@ or !) and !").to_string(), "(@ or !) and !");
    }

    #[test]
    fn not_binds_to_the_next_operand_only() {
        let t = Target::new();
        // (not !) and ! -> false; not (! and !) would be true.
        assert!(!eval("not ! and !", &nobody(), &t));
        assert!(eval("not (! and !)", &nobody(), &t));
        // not applies before or: (not @) or @ -> true
        assert!(eval("not @ or @", &nobody(), &t));
        assert_eq!(rule("not ! and !").to_string(), "not ! and !");
        assert_eq!(rule("not (! and !)").to_string(), "not (! and !)");
    }

    #[test]
    fn nested_parentheses() {
        let c = Credentials::project("p1", &["member"]);
        let t = Target::new()
            .with("owner", "p1")
            .with("visibility", "private");
        assert!(eval(
            "((role:admin) or ((role:member) and (project_id:%(owner)s or ('public':%(visibility)s))))",
            &c,
            &t
        ));
        assert!(!eval(
            "((role:admin) or ((role:reader) and (project_id:%(owner)s)))",
            &c,
            &t
        ));
        assert!(eval("(((((@)))))", &nobody(), &t));
        // Parentheses stuck to the ends of words, as oslo splits them.
        assert!(eval("(role:member and (project_id:%(owner)s))", &c, &t));
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "role:admin or (role:member and project_id:%(project_id)s)",
            "not (role:a or role:b) and rule:x",
            "'public':%(visibility)s or True:%(enabled)s",
            "@",
            "!",
        ] {
            let r = rule(text);
            let again = rule(&r.to_string());
            assert_eq!(r.expr, again.expr, "{text}");
        }
        assert_eq!(
            rule("(a:b and (c:d and e:f))").to_string(),
            "a:b and c:d and e:f"
        );
        assert_eq!(rule("").to_string(), "@");
        assert_eq!(rule("  role:a  ").text(), "  role:a  ");
    }
}
