//! A rule engine for the policy language operators already write for Glance (oslo.policy's):
//! `role:admin`, `project_id:%(project_id)s`, `'public':%(visibility)s`, `rule:other`, `@`, `!`,
//! `and` / `or` / `not` and parentheses, plus the old list-of-lists form of JSON policy files.
//!
//! [`Policy::defaults`] holds Glance's secure-RBAC defaults for the Images API written in that
//! language; [`Policy::load`] overlays an operator's `policy.yaml` or `policy.json` on them rule by
//! rule. [`Policy::enforce`] answers one question: may these [`Credentials`] perform this action on
//! this [`Target`]?
//!
//! Semantics follow oslo.policy: `and` binds tighter than `or`, `not` tighter than both; `role:`
//! compares case-insensitively; any other `kind:match` check substitutes `%(key)s` from the target
//! into `match` and compares it with the caller's `kind` field (or with `kind` itself when that is
//! a quoted literal, `True`, `False`, `None` or an integer). A substitution whose key the target
//! lacks makes the check false. Two deliberate differences, both failing closed: a `rule:` naming
//! an undefined rule is false (oslo falls back to the `default` rule), and a credential field the
//! caller does not have (no project, say) never matches (oslo compares it as the text `None`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use glance_model::Context;

/// How deep `rule:` references and parentheses may nest before a rule is refused (parsing) or
/// treated as false (evaluation). Real policies nest two or three levels.
const MAX_DEPTH: usize = 64;

/// Glance's default policy for the Images API (secure RBAC, project scope). Every action the API
/// enforces is listed, so an override file can be checked for names Glance does not know.
const DEFAULT_RULES: &[(&str, &str)] = &[
    // Base rules the others refer to.
    ("context_is_admin", "role:admin"),
    ("default", ""),
    ("service_api", "role:service or role:admin"),
    ("metadef_admin", "role:admin"),
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
    ("publicize_image", "role:admin"),
    ("copy_image", "role:admin"),
    // Locations.
    (
        "get_image_location",
        "rule:context_is_admin or (role:reader and project_id:%(project_id)s)",
    ),
    (
        "set_image_location",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s)",
    ),
    ("delete_image_location", "role:admin"),
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
    ("manage_image_cache", "role:admin"),
    ("cache_image", "role:admin"),
    ("cache_list", "role:admin"),
    ("cache_delete", "role:admin"),
    ("cache_clean", "role:admin"),
    ("cache_prune", "role:admin"),
    ("list_cached_nodes", "role:admin"),
    // Stores.
    (
        "stores_info_detail",
        "rule:context_is_admin or role:service",
    ),
    // Tasks: open by rule, gated by tasks_api_access.
    ("tasks_api_access", "role:admin"),
    ("get_task", "rule:default"),
    ("get_tasks", "rule:default"),
    ("add_task", "rule:default"),
    ("modify_task", "rule:default"),
    // Metadata definitions: anyone may read their own project's or public ones, admins write.
    (
        "get_metadef_namespace",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))",
    ),
    (
        "get_metadef_namespaces",
        "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))",
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
    ("delete_metadef_objects", "rule:metadef_admin"),
    ("add_metadef_property", "rule:metadef_admin"),
    ("modify_metadef_property", "rule:metadef_admin"),
    ("remove_metadef_property", "rule:metadef_admin"),
    ("delete_metadef_properties", "rule:metadef_admin"),
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

// ---------------------------------------------------------------------------------------------
// Inputs: who is asking, about what.
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------

/// A rule that is not valid policy language. The message names the rule, says what is wrong and
/// where (1-based character column), and quotes the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy rule \"{rule}\": {message} in \"{text}\"")]
pub struct ParseError {
    /// The rule's name (`modify_image`).
    pub rule: String,
    /// The rule's text as written.
    pub text: String,
    /// 1-based character column of the problem within `text`.
    pub column: usize,
    /// What is wrong, including the column.
    pub message: String,
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("policy file {source_name} is not valid YAML or JSON: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    #[error("policy file {source_name}: {message}")]
    Shape {
        source_name: String,
        message: String,
    },
    #[error("policy file {source_name}: {error}")]
    Rule {
        source_name: String,
        error: ParseError,
    },
    #[error("policy file {source_name}: policy rules refer to each other in a loop: {cycle}")]
    Cycle { source_name: String, cycle: String },
}

// ---------------------------------------------------------------------------------------------
// Rules: parsed expressions.
// ---------------------------------------------------------------------------------------------

/// One parsed policy rule, ready to evaluate. `Display` writes it back in the policy language
/// (normalised: `and`/`or` chains flattened, parentheses only where needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    text: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Always,
    Never,
    /// `role:<template>`: the caller holds the role (case-insensitive).
    Role(Template),
    /// `rule:<name>`: another rule of the policy; false when undefined.
    Ref(String),
    /// `kind:<template>` for any other kind. `kind_text` is the kind as written.
    Generic {
        kind_text: String,
        subject: Subject,
        expected: Template,
    },
    /// `http:` / `https:` remote checks (oslo POSTs to the URL); never allowed here.
    Remote(String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// The left side of a generic check: a literal value or a credential field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    Literal(String),
    Credential(String),
}

/// The right side of a check: text with `%(key)s` holes filled from the target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    raw: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Key(String),
}

impl Template {
    /// Parses Python `%`-formatting as oslo applies it to a match: `%(key)s` and `%%`. On error,
    /// returns the byte offset of the bad `%` and the message.
    fn parse(raw: &str) -> Result<Self, (usize, String)> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = raw.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            match chars.next() {
                Some((_, '%')) => text.push('%'),
                Some((open, '(')) => {
                    let rest = &raw[open + 1..];
                    let Some(close) = rest.find(')') else {
                        return Err((
                            at,
                            format!("unclosed substitution '%({rest}': write %({rest})s"),
                        ));
                    };
                    let key = &rest[..close];
                    let after = open + 1 + close + 1;
                    if raw[after..].starts_with('s') {
                        if !text.is_empty() {
                            parts.push(Part::Text(std::mem::take(&mut text)));
                        }
                        parts.push(Part::Key(key.to_owned()));
                        // Skip the key, ')' and 's'.
                        while chars.peek().is_some_and(|&(i, _)| i <= after) {
                            chars.next();
                        }
                    } else {
                        return Err((
                            at,
                            format!("substitution '%({key})' must end in 's', as in %({key})s"),
                        ));
                    }
                }
                _ => {
                    return Err((
                        at,
                        "a '%' must start a %(name)s substitution or be doubled as %%".to_owned(),
                    ));
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self {
            raw: raw.to_owned(),
            parts,
        })
    }

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

impl Rule {
    /// Parses one rule in the policy language. An empty (or all-blank) text allows everyone, as
    /// in oslo. `name` only labels errors.
    pub fn parse(name: &str, text: &str) -> Result<Self, ParseError> {
        let fail = |at: usize, message: String| ParseError {
            rule: name.to_owned(),
            text: text.to_owned(),
            column: column(text, at),
            message,
        };
        let tokens = tokenize(text).map_err(|(at, msg)| fail(at, msg))?;
        let expr = if tokens.is_empty() {
            Expr::Always
        } else {
            let mut parser = Parser {
                text,
                tokens: &tokens,
                pos: 0,
                depth: 0,
            };
            let expr = parser.or_expr().map_err(|(at, msg)| fail(at, msg))?;
            if let Some(tok) = tokens.get(parser.pos) {
                let col = column(text, tok.at);
                let msg = if tok.kind == Tok::RParen {
                    format!("unbalanced parenthesis: the ')' at column {col} has no matching '('")
                } else {
                    format!(
                        "expected 'and' or 'or' at column {col} before '{}'",
                        tok.text(text)
                    )
                };
                return Err(fail(tok.at, msg));
            }
            expr
        };
        Ok(Self {
            text: text.to_owned(),
            expr,
        })
    }

    /// Parses the old list-of-lists form: the rule passes when every check of any one inner list
    /// passes. An empty outer list allows everyone; a list whose inner lists are all empty allows
    /// no one (both as in oslo). Each string is a single check, not an expression.
    pub fn parse_list(name: &str, alternatives: &[Vec<String>]) -> Result<Self, ParseError> {
        let mut any = Vec::new();
        for all in alternatives.iter().filter(|all| !all.is_empty()) {
            let mut checks = Vec::new();
            for check in all {
                let fail = |at: usize, message: String| ParseError {
                    rule: name.to_owned(),
                    text: check.clone(),
                    column: column(check, at),
                    message,
                };
                let trimmed = check.trim();
                let offset = check.len() - check.trim_start().len();
                let expr = match trimmed {
                    "@" => Expr::Always,
                    "!" => Expr::Never,
                    _ => parse_check(trimmed, offset).map_err(|(at, msg)| fail(at, msg))?,
                };
                checks.push(expr);
            }
            any.push(and_of(checks));
        }
        let expr = if alternatives.is_empty() {
            Expr::Always
        } else if any.is_empty() {
            Expr::Never
        } else {
            or_of(any)
        };
        let text = expr.to_string();
        Ok(Self { text, expr })
    }

    /// The rule as it was written (for the list form: its rendering in the policy language).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Names of the rules this one refers to with `rule:`.
    pub fn references(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.expr.references(&mut out);
        out
    }

    fn has_remote_check(&self) -> bool {
        self.expr.any(&|e| matches!(e, Expr::Remote(_)))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

fn and_of(mut items: Vec<Expr>) -> Expr {
    if items.len() == 1 {
        return items.remove(0);
    }
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Expr::And(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    Expr::And(flat)
}

fn or_of(mut items: Vec<Expr>) -> Expr {
    if items.len() == 1 {
        return items.remove(0);
    }
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Expr::Or(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    Expr::Or(flat)
}

impl Expr {
    fn references<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Self::Ref(name) => {
                out.insert(name);
            }
            Self::Not(inner) => inner.references(out),
            Self::And(items) | Self::Or(items) => items.iter().for_each(|e| e.references(out)),
            _ => {}
        }
    }

    fn any(&self, pred: &dyn Fn(&Expr) -> bool) -> bool {
        pred(self)
            || match self {
                Self::Not(inner) => inner.any(pred),
                Self::And(items) | Self::Or(items) => items.iter().any(|e| e.any(pred)),
                _ => false,
            }
    }

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

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Parenthesise an operand only when its operator binds more loosely than the context.
        fn operand(f: &mut fmt::Formatter<'_>, e: &Expr, parent_and: bool) -> fmt::Result {
            let needs = matches!(e, Expr::Or(_)) || (!parent_and && matches!(e, Expr::And(_)));
            if needs {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        }
        match self {
            Self::Always => f.write_str("@"),
            Self::Never => f.write_str("!"),
            Self::Role(t) => write!(f, "role:{}", t.raw),
            Self::Ref(name) => write!(f, "rule:{name}"),
            Self::Generic {
                kind_text,
                expected,
                ..
            } => write!(f, "{kind_text}:{}", expected.raw),
            Self::Remote(text) => f.write_str(text),
            Self::Not(inner) => {
                f.write_str("not ")?;
                match **inner {
                    Self::And(_) | Self::Or(_) => write!(f, "({inner})"),
                    _ => write!(f, "{inner}"),
                }
            }
            Self::And(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    operand(f, item, true)?;
                }
                Ok(())
            }
            Self::Or(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    // An `and` inside an `or` needs no parentheses; a nested `or` was flattened.
                    write!(f, "{item}")?;
                }
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer and parser.
// ---------------------------------------------------------------------------------------------

/// 1-based character column of byte offset `at`.
fn column(text: &str, at: usize) -> usize {
    text.get(..at).map_or(at, |s| s.chars().count()) + 1
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Check(Expr),
}

#[derive(Debug)]
struct Token {
    kind: Tok,
    /// Byte offsets of the token in the rule text.
    at: usize,
    end: usize,
}

impl Token {
    fn text<'t>(&self, text: &'t str) -> &'t str {
        text.get(self.at..self.end).unwrap_or("")
    }
}

/// Splits a rule the way oslo does: on whitespace, with leading `(` and trailing `)` of each
/// word split off as parentheses. One extension: a word that starts with a quote runs to the
/// matching quote first, so a quoted literal may contain spaces (`'my value':%(name)s`).
fn tokenize(text: &str) -> Result<Vec<Token>, (usize, String)> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let char_at = |i: usize| text[i..].chars().next().unwrap_or(' ');
    while i < text.len() {
        let c = char_at(i);
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c == '(' {
            tokens.push(Token {
                kind: Tok::LParen,
                at: i,
                end: i + 1,
            });
            i += 1;
            continue;
        }
        let start = i;
        if c == '\'' || c == '"' {
            i = closing_quote(text, start).ok_or((
                start,
                format!(
                    "unterminated quoted string at column {}",
                    column(text, start)
                ),
            ))?;
        }
        let quoted_end = i;
        while i < text.len() && !char_at(i).is_whitespace() {
            i += char_at(i).len_utf8();
        }
        let word_end = i;
        let mut body_end = word_end;
        while body_end > quoted_end.max(start) && text.as_bytes()[body_end - 1] == b')' {
            body_end -= 1;
        }
        let body = &text[start..body_end];
        if !body.is_empty() {
            let kind = match body.to_ascii_lowercase().as_str() {
                "and" => Tok::And,
                "or" => Tok::Or,
                "not" => Tok::Not,
                "@" => Tok::Check(Expr::Always),
                "!" => Tok::Check(Expr::Never),
                _ => Tok::Check(parse_check(body, start)?),
            };
            tokens.push(Token {
                kind,
                at: start,
                end: body_end,
            });
        }
        for at in body_end..word_end {
            tokens.push(Token {
                kind: Tok::RParen,
                at,
                end: at + 1,
            });
        }
    }
    Ok(tokens)
}

/// Byte offset just past the quote matching the one at `start` (backslash escapes honoured).
fn closing_quote(text: &str, start: usize) -> Option<usize> {
    let mut chars = text[start..].char_indices();
    let (_, quote) = chars.next()?;
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == quote {
            return Some(start + i + c.len_utf8());
        }
    }
    None
}

/// Parses one `kind:match` check (not `@`/`!`) found at byte `offset` of the rule text.
fn parse_check(body: &str, offset: usize) -> Result<Expr, (usize, String)> {
    let not_a_check = || {
        (
            offset,
            format!(
                "'{body}' is not a check (expected kind:match, '@', '!', 'and', 'or' or 'not')"
            ),
        )
    };
    let colon = if body.starts_with(['\'', '"']) {
        let end =
            closing_quote(body, 0).ok_or((offset, "unterminated quoted string".to_owned()))?;
        if !body[end..].starts_with(':') {
            return Err(if end == body.len() {
                (
                    offset,
                    format!("a quoted string on its own is not a check: {body}"),
                )
            } else {
                (
                    offset + end,
                    format!("expected ':' after the quoted literal {}", &body[..end]),
                )
            });
        }
        end
    } else {
        body.find(':').ok_or_else(not_a_check)?
    };
    let (kind, matched) = (&body[..colon], &body[colon + 1..]);
    let match_at = offset + colon + 1;
    if kind.is_empty() {
        return Err((offset, format!("'{body}' has nothing before its ':'")));
    }
    // oslo only splits parentheses off the ends of words, so `(a)or(b)` reads as one odd check
    // there. Refuse it: no kind, rule or role name contains a parenthesis.
    let stray_paren = || {
        (
            offset,
            format!(
                "'{body}' contains a parenthesis; separate parentheses, 'and', 'or' and 'not' \
                 from checks with spaces"
            ),
        )
    };
    let template = || {
        let t = Template::parse(matched).map_err(|(at, msg)| (match_at + at, msg))?;
        let paren = t
            .parts
            .iter()
            .any(|p| matches!(p, Part::Text(s) if s.contains(['(', ')'])));
        if paren { Err(stray_paren()) } else { Ok(t) }
    };
    let subject = literal(kind).map_err(|msg| (offset, msg))?;
    if matches!(&subject, Subject::Credential(k) if k.contains(['(', ')'])) {
        return Err(stray_paren());
    }
    Ok(match kind {
        "rule" if matched.is_empty() => {
            return Err((offset, "'rule:' must name a rule".to_owned()));
        }
        "rule" if matched.contains(['(', ')']) => return Err(stray_paren()),
        "rule" => Expr::Ref(matched.to_owned()),
        "role" => Expr::Role(template()?),
        "http" | "https" => Expr::Remote(body.to_owned()),
        _ => Expr::Generic {
            kind_text: kind.to_owned(),
            subject,
            expected: template()?,
        },
    })
}

/// Reads the left side of a generic check as oslo does with Python's `literal_eval`: quoted
/// strings, `True`, `False`, `None` and integers are values; anything else names a credential.
fn literal(kind: &str) -> Result<Subject, String> {
    if let Some(quote) = kind.chars().next().filter(|c| *c == '\'' || *c == '"') {
        let inner = kind
            .strip_prefix(quote)
            .and_then(|k| k.strip_suffix(quote))
            .filter(|_| kind.len() >= 2)
            .ok_or_else(|| format!("unterminated quoted string {kind}"))?;
        let mut value = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(other) => value.push(other),
                    None => value.push('\\'),
                }
            } else {
                value.push(c);
            }
        }
        return Ok(Subject::Literal(value));
    }
    if matches!(kind, "True" | "False" | "None") {
        return Ok(Subject::Literal(kind.to_owned()));
    }
    let digits = kind.strip_prefix(['-', '+']).unwrap_or(kind);
    let is_int = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if is_int {
        let negative = kind.starts_with('-') && digits != "0";
        let value = if negative {
            format!("-{digits}")
        } else {
            digits.to_owned()
        };
        return Ok(Subject::Literal(value));
    }
    Ok(Subject::Credential(kind.to_owned()))
}

/// Recursive descent: `or` over `and` over `not` over atoms.
struct Parser<'a> {
    text: &'a str,
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn or_expr(&mut self) -> Result<Expr, (usize, String)> {
        let mut items = vec![self.and_expr()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            items.push(self.and_expr()?);
        }
        Ok(or_of(items))
    }

    fn and_expr(&mut self) -> Result<Expr, (usize, String)> {
        let mut items = vec![self.not_expr()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            items.push(self.not_expr()?);
        }
        Ok(and_of(items))
    }

    fn not_expr(&mut self) -> Result<Expr, (usize, String)> {
        if self.peek() == Some(&Tok::Not) {
            self.enter()?;
            self.pos += 1;
            let inner = self.not_expr()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.atom()
    }

    fn enter(&mut self) -> Result<(), (usize, String)> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let at = self.tokens.get(self.pos).map_or(0, |t| t.at);
            return Err((
                at,
                format!(
                    "nested more than {MAX_DEPTH} levels deep at column {}",
                    column(self.text, at)
                ),
            ));
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<Expr, (usize, String)> {
        let Some(tok) = self.tokens.get(self.pos) else {
            let end = self.text.trim_end().len();
            let prev = self
                .pos
                .checked_sub(1)
                .and_then(|p| self.tokens.get(p))
                .map_or("", |t| t.text(self.text));
            return Err((
                end,
                format!(
                    "expected a check after '{prev}' at column {}, found the end of the rule",
                    column(self.text, end)
                ),
            ));
        };
        let col = column(self.text, tok.at);
        match &tok.kind {
            Tok::Check(expr) => {
                self.pos += 1;
                Ok(expr.clone())
            }
            Tok::LParen => {
                let open = tok.at;
                self.enter()?;
                self.pos += 1;
                if self.peek() == Some(&Tok::RParen) {
                    return Err((open, format!("empty parentheses at column {col}")));
                }
                let inner = self.or_expr()?;
                match self.tokens.get(self.pos) {
                    None => Err((
                        open,
                        format!("unbalanced parenthesis: the '(' at column {col} is never closed"),
                    )),
                    Some(t) if t.kind == Tok::RParen => {
                        self.pos += 1;
                        self.depth -= 1;
                        Ok(inner)
                    }
                    Some(t) => Err((
                        t.at,
                        format!(
                            "expected 'and', 'or' or ')' at column {} before '{}'",
                            column(self.text, t.at),
                            t.text(self.text)
                        ),
                    )),
                }
            }
            Tok::RParen | Tok::And | Tok::Or | Tok::Not => Err((
                tok.at,
                format!(
                    "expected a check at column {col}, found '{}'",
                    tok.text(self.text)
                ),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The policy: named rules, defaults, files.
// ---------------------------------------------------------------------------------------------

/// A set of named rules. Cheap to share behind an `Arc`; evaluation never allocates much and
/// never fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: BTreeMap<String, Rule>,
}

/// The value of one rule in a policy file.
enum RawRule {
    Text(String),
    List(Vec<Vec<String>>),
}

impl Policy {
    /// A policy with no rules: every action is denied (there is no `default` either).
    pub fn empty() -> Self {
        Self {
            rules: BTreeMap::new(),
        }
    }

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

    /// The policy in force: the defaults, the operator's file (if any) laid over them and, with
    /// `enforce_new_defaults` false, each image rule the file does not set widened to its new
    /// *or* its deprecated default, as oslo.policy does.
    pub fn configured(
        path: Option<&Path>,
        enforce_new_defaults: bool,
    ) -> Result<Self, PolicyError> {
        let mut policy = Self::defaults();
        let mut set_by_file = Vec::new();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|error| PolicyError::Read {
                path: path.to_owned(),
                error,
            })?;
            set_by_file = policy.apply_overrides(&text, &path.display().to_string())?;
        }
        if !enforce_new_defaults {
            policy.allow_deprecated_defaults(&set_by_file);
        }
        Ok(policy)
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

    /// The defaults with an operator's policy file (YAML or JSON, told apart by content) laid over
    /// them rule by rule.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| PolicyError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::from_str(&text, &path.display().to_string())
    }

    /// The defaults with the rules in `text` (YAML or JSON) laid over them. `source_name`
    /// labels errors and warnings (usually the file name).
    pub fn from_str(text: &str, source_name: &str) -> Result<Self, PolicyError> {
        let mut policy = Self::defaults();
        policy.apply_overrides(text, source_name)?;
        Ok(policy)
    }

    /// Lays the rules in `text` (YAML or JSON) over this policy. All or nothing: on error the
    /// policy is unchanged. Logs a warning for each rule Glance does not define that nothing
    /// refers to, each `rule:` reference to an undefined rule (it is always false) and each
    /// `http:`/`https:` check (not supported; always false). Returns the names it set.
    pub fn apply_overrides(
        &mut self,
        text: &str,
        source_name: &str,
    ) -> Result<Vec<String>, PolicyError> {
        let raw = parse_document(text, source_name)?;
        let mut rules = self.rules.clone();
        let mut names = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            let rule = match value {
                RawRule::Text(t) => Rule::parse(&name, &t),
                RawRule::List(l) => Rule::parse_list(&name, &l),
            }
            .map_err(|error| PolicyError::Rule {
                source_name: source_name.to_owned(),
                error,
            })?;
            rules.insert(name.clone(), rule);
            names.push(name);
        }
        if let Some(cycle) = find_cycle(&rules) {
            return Err(PolicyError::Cycle {
                source_name: source_name.to_owned(),
                cycle,
            });
        }
        self.rules = rules;
        self.warn_about(&names, source_name);
        log::info!(
            "{source_name}: {} policy rule(s) override or add to the defaults",
            names.len()
        );
        Ok(names)
    }

    /// Sets one rule from its text; an error leaves the policy unchanged.
    pub fn set_rule(&mut self, name: &str, text: &str) -> Result<(), PolicyError> {
        let rule = Rule::parse(name, text).map_err(|error| PolicyError::Rule {
            source_name: "(set_rule)".to_owned(),
            error,
        })?;
        let previous = self.rules.insert(name.to_owned(), rule);
        if let Some(cycle) = find_cycle(&self.rules) {
            match previous {
                Some(p) => self.rules.insert(name.to_owned(), p),
                None => self.rules.remove(name),
            };
            return Err(PolicyError::Cycle {
                source_name: "(set_rule)".to_owned(),
                cycle,
            });
        }
        Ok(())
    }

    /// The rule called `name`, if defined.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.get(name)
    }

    /// Every rule name, sorted.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }

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

    /// The policy as a YAML document (`name: rule text`, sorted), the format of `policy.yaml`.
    pub fn to_yaml(&self) -> String {
        let map: BTreeMap<&str, &str> = self
            .rules
            .iter()
            .map(|(k, v)| (k.as_str(), v.text()))
            .collect();
        serde_norway::to_string(&map).unwrap_or_default()
    }

    fn warn_about(&self, names: &[String], source_name: &str) {
        let referenced: BTreeSet<&str> = self.rules.values().flat_map(Rule::references).collect();
        for name in names {
            if !Self::is_known_rule(name) && !referenced.contains(name.as_str()) {
                log::warn!(
                    "{source_name}: \"{name}\" is not a Glance policy rule and no rule refers to it; \
                     it is kept but has no effect unless an action of that name is enforced"
                );
            }
        }
        for (name, rule) in &self.rules {
            for missing in rule
                .references()
                .into_iter()
                .filter(|r| !self.rules.contains_key(*r))
            {
                log::warn!(
                    "{source_name}: policy rule \"{name}\" refers to undefined rule \"{missing}\"; \
                     that check always fails"
                );
            }
            if rule.has_remote_check() {
                log::warn!(
                    "{source_name}: policy rule \"{name}\" uses an http:/https: check, which is not \
                     supported; that check always fails"
                );
            }
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::defaults()
    }
}

/// Reads a policy document: JSON when it looks like JSON, YAML otherwise (YAML also reads most
/// JSON). An empty document or one with only comments has no rules.
fn parse_document(text: &str, source_name: &str) -> Result<Vec<(String, RawRule)>, PolicyError> {
    let text = text.trim_start_matches('\u{feff}');
    let syntax = |message: String| PolicyError::Syntax {
        source_name: source_name.to_owned(),
        message,
    };
    let shape = |message: String| PolicyError::Shape {
        source_name: source_name.to_owned(),
        message,
    };
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        match serde_json::from_str(text) {
            Ok(v) => v,
            Err(json_err) => {
                serde_norway::from_str(text).map_err(|_| syntax(json_err.to_string()))?
            }
        }
    } else if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_norway::from_str(text).map_err(|e| syntax(e.to_string()))?
    };
    let map = match value {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::Object(map) => map,
        other => {
            return Err(shape(format!(
                "expected a mapping of rule names to rules, found {}",
                json_kind(&other)
            )));
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let raw = match value {
            serde_json::Value::String(s) => RawRule::Text(s),
            serde_json::Value::Null => {
                // oslo reads a missing value as "allow everyone"; a typo should not do that.
                return Err(shape(format!(
                    "policy rule \"{name}\" has no value; write \"\" to allow everyone or \"!\" \
                     to allow no one"
                )));
            }
            serde_json::Value::Array(items) => {
                let mut alternatives = Vec::with_capacity(items.len());
                for item in items {
                    let all = match item {
                        serde_json::Value::String(s) => vec![s],
                        serde_json::Value::Array(checks) => checks
                            .into_iter()
                            .map(|c| match c {
                                serde_json::Value::String(s) => Ok(s),
                                other => Err(shape(format!(
                                    "policy rule \"{name}\": a check in the list form must be a string, found {}",
                                    json_kind(&other)
                                ))),
                            })
                            .collect::<Result<_, _>>()?,
                        other => {
                            return Err(shape(format!(
                                "policy rule \"{name}\": the list form takes strings or lists of strings, found {}",
                                json_kind(&other)
                            )));
                        }
                    };
                    alternatives.push(all);
                }
                RawRule::List(alternatives)
            }
            other => {
                return Err(shape(format!(
                    "policy rule \"{name}\" must be a string (or the old list form), found {}; \
                     quote it",
                    json_kind(&other)
                )));
            }
        };
        out.push((name, raw));
    }
    Ok(out)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "nothing",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}

/// A loop of `rule:` references, written `a -> b -> a`, if there is one.
fn find_cycle(rules: &BTreeMap<String, Rule>) -> Option<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    fn visit<'a>(
        name: &'a str,
        rules: &'a BTreeMap<String, Rule>,
        marks: &mut HashMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<String> {
        match marks.get(name) {
            Some(Mark::Done) => return None,
            Some(Mark::Active) => {
                let from = stack.iter().position(|n| *n == name).unwrap_or(0);
                let mut path: Vec<&str> = stack[from..].to_vec();
                path.push(name);
                return Some(path.join(" -> "));
            }
            None => {}
        }
        let rule = rules.get(name)?;
        marks.insert(name, Mark::Active);
        stack.push(name);
        for next in rule.references() {
            if let Some(cycle) = visit(next, rules, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(name, Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for name in rules.keys() {
        let mut stack = Vec::new();
        if let Some(cycle) = visit(name, rules, &mut marks, &mut stack) {
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Rule {
        Rule::parse("test", text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Evaluates `text` as rule `r` of a policy that also has `extra` rules.
    fn eval_with(text: &str, extra: &[(&str, &str)], creds: &Credentials, target: &Target) -> bool {
        let mut p = Policy::empty();
        for (name, body) in extra {
            p.set_rule(name, body).unwrap();
        }
        p.set_rule("r", text).unwrap();
        p.enforce("r", creds, target)
    }

    fn eval(text: &str, creds: &Credentials, target: &Target) -> bool {
        eval_with(text, &[], creds, target)
    }

    fn nobody() -> Credentials {
        Credentials::new()
    }

    fn err(text: &str) -> ParseError {
        Rule::parse("modify_image", text).expect_err(text)
    }

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

    // --- errors ----------------------------------------------------------------------------

    #[test]
    fn unclosed_parenthesis_is_named() {
        let e = err("role:admin or (role:member and project_id:%(project_id)s");
        assert_eq!(e.rule, "modify_image");
        assert_eq!(e.column, 15);
        let msg = e.to_string();
        assert!(
            msg.starts_with("policy rule \"modify_image\": unbalanced parenthesis"),
            "{msg}"
        );
        assert!(msg.contains("column 15"), "{msg}");
        assert!(msg.contains("role:admin or (role:member"), "{msg}");
    }

    #[test]
    fn stray_close_parenthesis() {
        let e = err("role:admin) or role:member");
        assert!(e.message.contains("unbalanced parenthesis"), "{e}");
        assert!(e.message.contains("no matching '('"), "{e}");
        assert_eq!(e.column, 11);
    }

    #[test]
    fn missing_operands() {
        let e = err("role:admin or");
        assert!(e.message.contains("after 'or'"), "{e}");
        assert!(e.message.contains("end of the rule"), "{e}");
        let e = err("and role:admin");
        assert!(e.message.contains("found 'and'"), "{e}");
        let e = err("role:a and or role:b");
        assert_eq!(e.column, 12);
        let e = err("not");
        assert!(e.message.contains("after 'not'"), "{e}");
        let e = err("()");
        assert!(e.message.contains("empty parentheses"), "{e}");
    }

    #[test]
    fn adjacent_checks_need_an_operator() {
        let e = err("role:a role:b");
        assert!(e.message.contains("expected 'and' or 'or'"), "{e}");
        assert_eq!(e.column, 8);
        let e = err("(role:a role:b)");
        assert!(e.message.contains("expected 'and', 'or' or ')'"), "{e}");
    }

    #[test]
    fn malformed_checks() {
        assert!(err("admin").message.contains("is not a check"));
        assert!(err(":admin").message.contains("nothing before"));
        assert!(err("rule:").message.contains("must name a rule"));
        assert!(err("'public'").message.contains("on its own"));
        assert!(
            err("'public:%(visibility)s")
                .message
                .contains("unterminated")
        );
        assert!(
            err("'public'x:%(visibility)s")
                .message
                .contains("expected ':'")
        );
        // oslo splits the trailing ')' off as a parenthesis, so this is an unclosed substitution.
        let e = err("role:admin or project_id:%(owner)");
        assert!(e.message.contains("unclosed substitution '%(owner'"), "{e}");
        assert_eq!(e.column, 26);
        assert!(
            err("project_id:%(owner)d")
                .message
                .contains("must end in 's'")
        );
        assert!(err("project_id:100%").message.contains("'%'"));
        // The mid-word parentheses oslo cannot read either are an error here, not a silent deny.
        assert!(err("(role:a)or(role:b)").message.contains("parenthesis"));
        assert!(err("role:a and(role:b)").message.contains("parenthesis"));
    }

    #[test]
    fn nesting_limit() {
        let deep = format!("{}@{}", "(".repeat(200), ")".repeat(200));
        assert!(err(&deep).message.contains("nested more than"));
        let nots = format!("{}@", "not ".repeat(200));
        assert!(err(&nots).message.contains("nested more than"));
        let fine = format!("{}@{}", "(".repeat(50), ")".repeat(50));
        assert!(eval(&fine, &nobody(), &Target::new()));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let e = err("'é':%(x)s (");
        assert_eq!(e.column, 11);
    }

    // --- list-of-lists form -----------------------------------------------------------------

    #[test]
    fn list_form_is_or_of_ands() {
        let c = Credentials::project("p1", &["member"]);
        let t = Target::new().with("owner", "p1");
        let yes = Rule::parse_list(
            "x",
            &[
                vec!["role:admin".into()],
                vec!["role:member".into(), "project_id:%(owner)s".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            yes.to_string(),
            "role:admin or role:member and project_id:%(owner)s"
        );
        let mut p = Policy::empty();
        p.rules.insert("x".into(), yes);
        assert!(p.enforce("x", &c, &t));
        assert!(!p.enforce("x", &c, &Target::new().with("owner", "p2")));
        // Empty outer list: always; only empty inner lists: never.
        assert_eq!(Rule::parse_list("e", &[]).unwrap().expr, Expr::Always);
        assert_eq!(Rule::parse_list("e", &[vec![]]).unwrap().expr, Expr::Never);
        let e = Rule::parse_list("bad", &[vec!["nocolon".into()]]).unwrap_err();
        assert_eq!(e.rule, "bad");
    }

    // --- policy documents ---------------------------------------------------------------------

    #[test]
    fn yaml_file_overrides_a_default() {
        let reader = Credentials::project("p1", &["reader"]);
        let image = Target::new().with("project_id", "p1").with("owner", "p1");
        assert!(!Policy::defaults().enforce("modify_image", &reader, &image));
        let yaml = "# operators' overrides\n\"modify_image\": \"role:reader and project_id:%(project_id)s\"\npublicize_image: '!'\n";
        let p = Policy::from_str(yaml, "policy.yaml").unwrap();
        assert!(p.enforce("modify_image", &reader, &image));
        let admin = Credentials::project("p1", &["admin", "member", "reader"]);
        assert!(!p.enforce("publicize_image", &admin, &image));
        // Untouched defaults stay.
        assert!(!p.enforce("delete_image", &reader, &image));
        assert_eq!(
            p.rule("get_images").map(Rule::text),
            Policy::defaults().rule("get_images").map(Rule::text)
        );
    }

    #[test]
    fn json_file_with_list_form() {
        let json = r#"{
            "context_is_admin": "role:cloud_admin",
            "delete_image": [["role:cloud_admin"], ["role:member", "project_id:%(project_id)s"]],
            "get_image": ""
        }"#;
        let p = Policy::from_str(json, "policy.json").unwrap();
        let cloud_admin = Credentials::project("ops", &["cloud_admin"]);
        let image = Target::new().with("project_id", "p1");
        assert!(p.enforce("delete_image", &cloud_admin, &image));
        // context_is_admin was overridden, so every rule built on it follows.
        assert!(p.enforce("modify_image", &cloud_admin, &image));
        assert!(!p.enforce(
            "modify_image",
            &Credentials::project("ops", &["admin"]),
            &image
        ));
        assert!(p.enforce("get_image", &nobody(), &image));
    }

    #[test]
    fn load_reads_files() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("policy.yaml");
        std::fs::write(&yaml, "add_image: role:admin\n").unwrap();
        let p = Policy::load(&yaml).unwrap();
        assert_eq!(p.rule("add_image").map(Rule::text), Some("role:admin"));
        let json = dir.path().join("policy.json");
        std::fs::write(&json, "{\"add_image\": \"!\"}").unwrap();
        let p = Policy::load(&json).unwrap();
        assert_eq!(p.rule("add_image").map(Rule::text), Some("!"));
        let missing = dir.path().join("nope.yaml");
        let e = Policy::load(&missing).unwrap_err();
        assert!(matches!(e, PolicyError::Read { .. }));
        assert!(e.to_string().contains("nope.yaml"), "{e}");
    }

    #[test]
    fn empty_and_comment_only_files_change_nothing() {
        assert_eq!(Policy::from_str("", "p").unwrap(), Policy::defaults());
        assert_eq!(
            Policy::from_str("# nothing\n", "p").unwrap(),
            Policy::defaults()
        );
        assert_eq!(Policy::from_str("{}", "p").unwrap(), Policy::defaults());
    }

    #[test]
    fn bad_rule_in_file_names_file_and_rule() {
        let e = Policy::from_str(
            "modify_image: \"role:admin or (role:member\"\n",
            "/etc/glance/policy.yaml",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/etc/glance/policy.yaml"), "{msg}");
        assert!(
            msg.contains("policy rule \"modify_image\": unbalanced parenthesis"),
            "{msg}"
        );
    }

    #[test]
    fn bad_documents() {
        let e = Policy::from_str("a: [unclosed", "p.yaml").unwrap_err();
        assert!(matches!(e, PolicyError::Syntax { .. }), "{e}");
        let e = Policy::from_str("{\"a\": [}", "p.json").unwrap_err();
        assert!(matches!(e, PolicyError::Syntax { .. }), "{e}");
        // Bad JSON that happens to be YAML is read as YAML, and a missing value is refused.
        let e = Policy::from_str("{\"a\": }", "p.json").unwrap_err();
        assert!(e.to_string().contains("\"a\" has no value"), "{e}");
        let e = Policy::from_str("- a\n- b\n", "p.yaml").unwrap_err();
        assert!(e.to_string().contains("expected a mapping"), "{e}");
        let e = Policy::from_str("get_image: true\n", "p.yaml").unwrap_err();
        assert!(
            e.to_string().contains("\"get_image\" must be a string"),
            "{e}"
        );
        let e = Policy::from_str("get_image: [[1]]\n", "p.yaml").unwrap_err();
        assert!(
            e.to_string().contains("must be a string, found a number"),
            "{e}"
        );
    }

    #[test]
    fn missing_value_is_refused() {
        let e = Policy::from_str("get_images:\n", "p.yaml").unwrap_err();
        assert!(matches!(e, PolicyError::Shape { .. }), "{e}");
        assert!(e.to_string().contains("get_images"), "{e}");
    }

    #[test]
    fn yaml_reads_flow_mapping_that_is_not_json() {
        let p = Policy::from_str("{add_image: '!', get_image: '@'}", "p.yaml").unwrap();
        assert_eq!(p.rule("add_image").map(Rule::text), Some("!"));
    }

    #[test]
    fn unknown_rules_are_kept_and_referenceable() {
        let yaml = "owner_or_admin: \"rule:context_is_admin or project_id:%(project_id)s\"\n\
                    delete_image: rule:owner_or_admin\n";
        let p = Policy::from_str(yaml, "p.yaml").unwrap();
        assert!(!Policy::is_known_rule("owner_or_admin"));
        assert!(p.rule("owner_or_admin").is_some());
        let owner = Credentials::project("p1", &["reader"]);
        assert!(p.enforce(
            "delete_image",
            &owner,
            &Target::new().with("project_id", "p1")
        ));
    }

    #[test]
    fn cycles_are_refused_and_policy_left_unchanged() {
        let e = Policy::from_str("a: rule:b\nb: rule:a or @\n", "p.yaml").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("a -> b -> a"), "{msg}");
        let mut p = Policy::defaults();
        let before = p.clone();
        assert!(
            p.apply_overrides("context_is_admin: rule:get_images\n", "p.yaml")
                .is_err()
        );
        assert_eq!(p, before);
        assert!(p.set_rule("x", "rule:x").is_err());
        assert!(p.rule("x").is_none());
    }

    #[test]
    fn unknown_action_uses_default_rule() {
        let mut p = Policy::defaults();
        assert!(p.enforce("no_such_action", &nobody(), &Target::new()));
        p.set_rule("default", "role:admin").unwrap();
        assert!(!p.enforce("no_such_action", &nobody(), &Target::new()));
        assert!(!Policy::empty().enforce("anything", &nobody(), &Target::new()));
    }

    #[test]
    fn to_yaml_round_trips() {
        let p = Policy::defaults();
        let again = Policy::from_str(&p.to_yaml(), "generated").unwrap();
        assert_eq!(p, again);
    }

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
