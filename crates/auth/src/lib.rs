//! Keystone authentication as the install guides configure it (`[paste_deploy] flavor =
//! keystone` and `[keystone_authtoken]`), shared by glance-api and glance-registry.
//!
//! [`Keystone::validate`] checks a user's token against Keystone v3 (`GET /v3/auth/tokens`
//! with this service's own token) and returns who it is: user, project, roles and expiry.
//! Answers are cached, bounded in size, never past the token's expiry and never longer than
//! `token_cache_time`, so a revoked token stops working within that interval. The service
//! token is obtained with the `[keystone_authtoken]` password credentials and renewed before it
//! expires. Keystone unreachable is [`AuthError::Unavailable`] (a 503), never a pass.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use glance_config::{ConfigError, IniSet, parse_u32_in};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The `[paste_deploy] flavor` of a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Unset: no authentication (Glance's default).
    None,
    /// `keystone` (and `keystone+caching`, `keystone+cachemanagement`).
    Keystone,
    /// `trusted-auth`: identity from headers set by a trusted party.
    TrustedAuth,
}

impl Flavor {
    /// Reads `[paste_deploy] flavor`; an unknown flavor stops start-up.
    pub fn from_ini(ini: &IniSet) -> Result<Self, ConfigError> {
        match ini.get("paste_deploy", "flavor").map(str::trim) {
            None | Some("") => Ok(Self::None),
            Some("keystone" | "keystone+caching" | "keystone+cachemanagement") => {
                Ok(Self::Keystone)
            }
            Some("trusted-auth" | "trusted-auth+cachemanagement") => Ok(Self::TrustedAuth),
            Some(other) => Err(ConfigError(format!(
                "{}: [paste_deploy] flavor = {other:?} is not known; use keystone, trusted-auth, \
                 or leave it unset",
                ini.source("paste_deploy", "flavor")
                    .map_or_else(|| "config".to_string(), |p| p.display().to_string())
            ))),
        }
    }
}

/// `[keystone_authtoken]` options this implementation uses.
pub const KEYSTONE_OPTIONS: &[&str] = &[
    "auth_url",
    "auth_type",
    "username",
    "password",
    "project_name",
    "user_domain_name",
    "project_domain_name",
    "user_domain_id",
    "project_domain_id",
    "www_authenticate_uri",
    "auth_uri",
    "token_cache_time",
    "cache_size",
    "http_connect_timeout",
    "http_request_timeout",
];

/// The `[keystone_authtoken]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeystoneConfig {
    /// Identity API base, e.g. `http://controller:5000` or `.../v3`.
    pub auth_url: String,
    /// The service user's name, password and project.
    pub username: String,
    /// Password of `username`.
    pub password: String,
    /// The service project (`service` in the guides).
    pub project_name: String,
    /// Domain of the user (name; `Default`).
    pub user_domain_name: String,
    /// Domain of the project (name; `Default`).
    pub project_domain_name: String,
    /// What the 401 challenge names: `www_authenticate_uri`, else `auth_uri`, else `auth_url`.
    pub www_authenticate_uri: String,
    /// Longest time a validation is trusted before asking Keystone again (seconds; 300).
    pub token_cache_time: Duration,
    /// Most tokens kept in the cache (10,000).
    pub cache_size: usize,
    /// Timeout of one call to Keystone.
    pub request_timeout: Duration,
    /// Options of `[keystone_authtoken]` found but not used, for one warning.
    pub ignored: Vec<String>,
}

impl KeystoneConfig {
    /// Reads `[keystone_authtoken]`; every option the password plugin needs must be there.
    pub fn from_ini(ini: &IniSet) -> Result<Self, ConfigError> {
        let s = "keystone_authtoken";
        let need = |o: &str| {
            ini.get(s, o)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "[paste_deploy] flavor = keystone needs [keystone_authtoken] {o}"
                    ))
                })
        };
        if let Some(t) = ini.get(s, "auth_type").map(str::trim)
            && t != "password"
            && t != "v3password"
        {
            return Err(ConfigError(format!(
                "{}: [keystone_authtoken] auth_type = {t:?} is not supported; use password",
                ini.source(s, "auth_type")
                    .map_or_else(|| "config".to_string(), |p| p.display().to_string())
            )));
        }
        let auth_url = need("auth_url")?;
        let challenge = ini
            .get(s, "www_authenticate_uri")
            .or_else(|| ini.get(s, "auth_uri"))
            .map_or_else(|| auth_url.clone(), str::to_string);
        let ignored = ini
            .options(s)
            .into_iter()
            .filter(|o| !KEYSTONE_OPTIONS.contains(&o.as_str()))
            .map(|o| format!("[{s}] {o}"))
            .collect();
        Ok(Self {
            username: need("username")?,
            password: need("password")?,
            project_name: need("project_name")?,
            user_domain_name: ini
                .get(s, "user_domain_name")
                .or_else(|| ini.get(s, "user_domain_id"))
                .unwrap_or("Default")
                .to_string(),
            project_domain_name: ini
                .get(s, "project_domain_name")
                .or_else(|| ini.get(s, "project_domain_id"))
                .unwrap_or("Default")
                .to_string(),
            www_authenticate_uri: challenge,
            token_cache_time: Duration::from_secs(u64::from(
                ini.parse(s, "token_cache_time", parse_u32_in(0, 86_400))?
                    .unwrap_or(300),
            )),
            cache_size: ini
                .parse(s, "cache_size", parse_u32_in(1, 10_000_000))?
                .unwrap_or(10_000) as usize,
            request_timeout: Duration::from_secs(u64::from(
                ini.parse(s, "http_request_timeout", parse_u32_in(1, 3600))?
                    .unwrap_or(10),
            )),
            auth_url,
            ignored,
        })
    }

    fn v3(&self) -> String {
        v3_url(&self.auth_url)
    }
}

/// Keystone's v3 API under an `auth_url` given with or without its `/v3`.
pub fn v3_url(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") {
        base.to_string()
    } else {
        format!("{base}/v3")
    }
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Keystone user id.
    pub user_id: String,
    /// Project the token is scoped to (None for unscoped/domain/system tokens).
    pub project_id: Option<String>,
    /// Role names, lower-cased (Keystone includes implied roles).
    pub roles: Vec<String>,
    /// `"all"` for a system-scoped token (`"system": {"all": true}`).
    pub system_scope: Option<String>,
    /// The domain of a domain-scoped token.
    pub domain_id: Option<String>,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token, or Keystone does not know it (invalid, expired, revoked): 401.
    #[error("{0}")]
    Invalid(String),
    /// Keystone could not be asked: 503.
    #[error("{0}")]
    Unavailable(String),
}

struct Cached {
    identity: Identity,
    until: Instant,
}

struct ServiceToken {
    token: String,
    renew_at: Instant,
}

/// A Keystone client for one daemon: validates tokens, holds the service token.
pub struct Keystone {
    cfg: KeystoneConfig,
    http: reqwest::Client,
    cache: Mutex<lru::LruCache<[u8; 32], Cached>>,
    service: tokio::sync::Mutex<Option<ServiceToken>>,
}

impl std::fmt::Debug for Keystone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystone")
            .field("auth_url", &self.cfg.auth_url)
            .field("username", &self.cfg.username)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &reqwest::Error) -> AuthError {
    let mut msg = format!("the identity service (Keystone) is unavailable: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    AuthError::Unavailable(msg)
}

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Time from now until `t` (zero when past).
fn until(t: DateTime<Utc>) -> Duration {
    (t - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

impl Keystone {
    /// A client; no network call until the first request.
    pub fn new(cfg: KeystoneConfig) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|e| ConfigError(format!("keystone client: {e}")))?;
        let size = NonZeroUsize::new(cfg.cache_size).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            cfg,
            http,
            cache: Mutex::new(lru::LruCache::new(size)),
            service: tokio::sync::Mutex::new(None),
        })
    }

    /// The settings.
    pub fn config(&self) -> &KeystoneConfig {
        &self.cfg
    }

    /// The `WWW-Authenticate` value of a 401.
    pub fn challenge(&self) -> String {
        format!("Keystone uri=\"{}\"", self.cfg.www_authenticate_uri)
    }

    /// This service's own token, renewed when less than a tenth of its life (at most five
    /// minutes) is left.
    pub async fn service_token(&self) -> Result<String, AuthError> {
        let mut slot = self.service.lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.token.clone());
        }
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.cfg.username,
                "domain": {"name": self.cfg.user_domain_name},
                "password": self.cfg.password,
            }}},
            "scope": {"project": {
                "name": self.cfg.project_name,
                "domain": {"name": self.cfg.project_domain_name},
            }},
        }});
        let resp = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.cfg.v3()))
            .json(&body)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let status = resp.status();
        if !status.is_success() {
            // Wrong service credentials are the operator's problem, not the caller's: 503.
            return Err(AuthError::Unavailable(format!(
                "the identity service refused this service's credentials \
                 ([keystone_authtoken] username {:?}, project {:?}): {status}",
                self.cfg.username, self.cfg.project_name
            )));
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                AuthError::Unavailable("Keystone issued no X-Subject-Token".to_string())
            })?;
        let v: Value = resp
            .json()
            .await
            .map_err(|e| AuthError::Unavailable(format!("unreadable Keystone answer: {e}")))?;
        let life = parse_time(&v["token"]["expires_at"]).map_or(Duration::from_secs(60), until);
        let margin = (life / 10).min(Duration::from_secs(300));
        *slot = Some(ServiceToken {
            token: token.clone(),
            renew_at: Instant::now() + life.saturating_sub(margin),
        });
        log::info!(
            "obtained a service token from {} (valid {}s)",
            self.cfg.auth_url,
            life.as_secs()
        );
        Ok(token)
    }

    /// Validates a user's token: from the cache, else by asking Keystone.
    pub async fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let identity = self.ask(token, true).await?;
        let ttl = until(identity.expires_at).min(self.cfg.token_cache_time);
        if !ttl.is_zero() {
            self.cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .put(
                    key,
                    Cached {
                        identity: identity.clone(),
                        until: Instant::now() + ttl,
                    },
                );
        }
        Ok(identity)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Identity> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match cache.get(key) {
            Some(c) if Instant::now() < c.until && c.identity.expires_at > Utc::now() => {
                Some(c.identity.clone())
            }
            Some(_) => {
                cache.pop(key);
                None
            }
            None => None,
        }
    }

    async fn ask(&self, token: &str, retry: bool) -> Result<Identity, AuthError> {
        let service = self.service_token().await?;
        let resp = self
            .http
            .get(format!("{}/auth/tokens?nocatalog", self.cfg.v3()))
            .header("x-auth-token", &service)
            .header("x-subject-token", token)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        match resp.status().as_u16() {
            200 => {}
            404 => {
                return Err(AuthError::Invalid(
                    "The token is not valid (unknown, expired or revoked)".to_string(),
                ));
            }
            401 | 403 if retry => {
                // Our service token was revoked or lacks the right: get a new one once.
                *self.service.lock().await = None;
                return Box::pin(self.ask(token, false)).await;
            }
            s => {
                return Err(AuthError::Unavailable(format!(
                    "the identity service answered {s} when validating a token"
                )));
            }
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| AuthError::Unavailable(format!("unreadable Keystone answer: {e}")))?;
        identity_of(&v)
    }
}

/// The identity in a Keystone v3 token body.
pub fn identity_of(v: &Value) -> Result<Identity, AuthError> {
    let t = &v["token"];
    let user_id = t["user"]["id"]
        .as_str()
        .ok_or_else(|| AuthError::Unavailable("Keystone token body has no user".to_string()))?
        .to_string();
    let expires_at = parse_time(&t["expires_at"])
        .ok_or_else(|| AuthError::Unavailable("Keystone token body has no expiry".to_string()))?;
    if expires_at <= Utc::now() {
        return Err(AuthError::Invalid("The token has expired".to_string()));
    }
    Ok(Identity {
        user_id,
        project_id: t["project"]["id"].as_str().map(str::to_string),
        roles: t["roles"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| r["name"].as_str())
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default(),
        system_scope: (t["system"]["all"] == Value::Bool(true)).then(|| "all".to_string()),
        domain_id: t["domain"]["id"].as_str().map(str::to_string),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ini(text: &str) -> IniSet {
        let mut s = IniSet::default();
        s.merge(Path::new("glance-api.conf"), text).expect("parses");
        s
    }

    const GUIDE: &str = "[keystone_authtoken]\n\
        www_authenticate_uri = http://controller:5000\n\
        auth_url = http://controller:5000\n\
        memcached_servers = controller:11211\n\
        auth_type = password\n\
        project_domain_name = Default\n\
        user_domain_name = Default\n\
        project_name = service\n\
        username = glance\n\
        password = GLANCE_PASS\n\
        [paste_deploy]\nflavor = keystone\n";

    #[test]
    fn the_install_guide_block_loads() {
        let set = ini(GUIDE);
        assert_eq!(Flavor::from_ini(&set).expect("flavor"), Flavor::Keystone);
        let c = KeystoneConfig::from_ini(&set).expect("loads");
        assert_eq!(c.username, "glance");
        assert_eq!(c.project_name, "service");
        assert_eq!(c.v3(), "http://controller:5000/v3");
        assert_eq!(c.www_authenticate_uri, "http://controller:5000");
        assert_eq!(c.token_cache_time, Duration::from_secs(300));
        assert_eq!(c.ignored, vec!["[keystone_authtoken] memcached_servers"]);
    }

    #[test]
    fn missing_credentials_and_other_plugins_are_refused() {
        let err = KeystoneConfig::from_ini(&ini("[keystone_authtoken]\nauth_url = http://k\n"))
            .expect_err("no username");
        assert!(err.0.contains("[keystone_authtoken] username"), "{err}");
        let err = KeystoneConfig::from_ini(&ini(&GUIDE.replace("= password\n", "= token\n")))
            .expect_err("token plugin");
        assert!(err.0.contains("auth_type"), "{err}");
        let err = Flavor::from_ini(&ini("[paste_deploy]\nflavor = magic\n")).expect_err("flavor");
        assert!(
            err.0.contains("glance-api.conf") && err.0.contains("magic"),
            "{err}"
        );
    }

    #[test]
    fn auth_uri_is_the_older_challenge_name() {
        let c = KeystoneConfig::from_ini(&ini(&GUIDE.replace("www_authenticate_uri", "auth_uri")))
            .expect("loads");
        assert_eq!(c.www_authenticate_uri, "http://controller:5000");
        let c = KeystoneConfig::from_ini(&ini(
            &GUIDE.replace("www_authenticate_uri = http://controller:5000\n", "")
        ))
        .expect("loads");
        assert_eq!(c.www_authenticate_uri, "http://controller:5000");
    }

    #[test]
    fn token_bodies_give_identity_and_expired_ones_are_invalid() {
        let later = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let v = json!({"token": {"user": {"id": "u1"}, "project": {"id": "p1"},
            "roles": [{"name": "Member"}, {"name": "reader"}], "expires_at": later}});
        let id = identity_of(&v).expect("valid");
        assert_eq!(id.user_id, "u1");
        assert_eq!(id.project_id.as_deref(), Some("p1"));
        assert_eq!(id.roles, vec!["member", "reader"]);
        assert_eq!((id.system_scope, id.domain_id), (None, None));
        let v = json!({"token": {"user": {"id": "u0"}, "system": {"all": true},
            "roles": [{"name": "admin"}], "expires_at": later}});
        let id = identity_of(&v).expect("system-scoped");
        assert_eq!(id.system_scope.as_deref(), Some("all"));
        assert_eq!(id.project_id, None);
        let v = json!({"token": {"user": {"id": "u0"}, "domain": {"id": "d1", "name": "D"},
            "roles": [{"name": "admin"}], "expires_at": later}});
        assert_eq!(
            identity_of(&v).expect("domain").domain_id.as_deref(),
            Some("d1")
        );
        let past = (Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
        let v = json!({"token": {"user": {"id": "u1"}, "roles": [], "expires_at": past}});
        assert!(matches!(identity_of(&v), Err(AuthError::Invalid(_))));
    }

    #[actix_web::test]
    async fn keystone_unreachable_is_unavailable_never_a_pass() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let cfg = KeystoneConfig::from_ini(&ini(&GUIDE.replace(
            "auth_url = http://controller:5000",
            &format!("auth_url = http://127.0.0.1:{port}"),
        )))
        .expect("loads");
        let k = Keystone::new(cfg).expect("client");
        assert!(matches!(
            k.validate("some-token").await,
            Err(AuthError::Unavailable(_))
        ));
    }
}
