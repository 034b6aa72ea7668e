//! The caller's context: who is asking, on behalf of which project, with which roles.
//! glance-api builds it from authentication and forwards it on every registry call.

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// The authenticated user, if any.
    pub user_id: Option<String>,
    /// The project the caller acts for; image ownership is by project.
    pub project_id: Option<String>,
    /// Role names, lower-cased.
    pub roles: Vec<String>,
    /// Whether the caller has admin rights (role `admin`, or Glance's no-auth mode).
    pub is_admin: bool,
    /// The request id every log line and response carries.
    pub request_id: String,
    /// The Keystone token to present to glance-registry on this caller's behalf.
    pub auth_token: Option<AuthToken>,
    /// The token's system scope (`"all"`) when it is scoped to the system rather than to a
    /// project. Glance's image rules are project-scoped, so such a caller is refused.
    pub system_scope: Option<String>,
    /// The domain a domain-scoped token is scoped to (refused by the image rules, as above).
    pub domain_id: Option<String>,
}

/// Role names from a comma-separated header (`X-Roles`), trimmed and lower-cased as Glance
/// does.
pub fn parse_roles(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A Keystone token; never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthToken(pub String);

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

impl Context {
    /// Glance's unauthenticated context (no `flavor`): every request is an admin with no project.
    pub fn unauthenticated_admin(request_id: impl Into<String>) -> Self {
        Self {
            is_admin: true,
            request_id: request_id.into(),
            ..Self::default()
        }
    }

    /// A project-scoped caller with the given roles; admin follows the `admin` role.
    pub fn project(project_id: &str, roles: &[&str]) -> Self {
        let roles: Vec<String> = roles.iter().map(|r| r.to_ascii_lowercase()).collect();
        Self {
            user_id: None,
            project_id: Some(project_id.to_string()),
            is_admin: roles.iter().any(|r| r == "admin"),
            roles,
            request_id: String::new(),
            auth_token: None,
            system_scope: None,
            domain_id: None,
        }
    }

    /// An authenticated caller; admin follows the `admin` role.
    pub fn authenticated(
        user_id: Option<String>,
        project_id: Option<String>,
        roles: Vec<String>,
        request_id: String,
    ) -> Self {
        Self {
            user_id,
            project_id,
            is_admin: roles.iter().any(|r| r == "admin"),
            roles,
            request_id,
            auth_token: None,
            system_scope: None,
            domain_id: None,
        }
    }

    /// Whether the caller's token is scoped to a project (or is Glance's no-auth context),
    /// as oslo.policy judges it: a token with a system or domain scope is not. Glance 33's
    /// image rules all have `scope_types = ['project']`.
    pub fn is_project_scoped(&self) -> bool {
        self.system_scope.is_none() && self.domain_id.is_none()
    }

    /// Whether the caller holds a role (case-insensitive, as Glance lower-cases roles).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    /// Whether the caller's project owns something owned by `owner`.
    pub fn owns(&self, owner: Option<&str>) -> bool {
        matches!((self.project_id.as_deref(), owner), (Some(p), Some(o)) if p == o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthenticated_is_admin_without_project() {
        let c = Context::unauthenticated_admin("req-1");
        assert!(c.is_admin);
        assert_eq!(c.project_id, None);
        assert!(!c.owns(Some("p")));
    }

    #[test]
    fn roles_are_case_insensitive_and_admin_follows_role() {
        let c = Context::project("p1", &["Member", "READER"]);
        assert!(c.has_role("member") && c.has_role("reader"));
        assert!(!c.is_admin);
        assert!(Context::project("p1", &["Admin"]).is_admin);
        assert!(c.owns(Some("p1")));
        assert!(!c.owns(Some("p2")));
        assert!(!c.owns(None));
    }
}
