//! Keystone unified limits (`[DEFAULT] use_keystone_limits = True` and `[oslo_limit]`): the
//! per-project `image_size_total` (MiB), `image_stage_total` (MiB), `image_count_total` and
//! `image_count_uploading`, read from Keystone's project limits, else its registered (default)
//! limits, for the image service's endpoint; and the one place that enforces them
//! ([`enforce`]), which create, upload and (when they exist) stage and import call.
//!
//! Keystone is asked at most once per project every [`LIMITS_CACHE_SECS`]; usage is always
//! read from the registry. This module does not decide when a limit applies: its callers do.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use glance_config::{ConfigError, IniSet, parse_bool};
use glance_model::wire::Usage;
use glance_model::{Context, ErrorKind};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::ApiError;

/// How long the limits Keystone gave for one project are used before asking again, seconds.
pub const LIMITS_CACHE_SECS: u64 = 15;

const MIB: u64 = 1 << 20;

/// One of Glance's four unified-limit resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// MiB of image data the project's images hold.
    ImageSizeTotal,
    /// MiB of staged data.
    ImageStageTotal,
    /// Images the project owns.
    ImageCountTotal,
    /// The project's uploads and imports in progress.
    ImageCountUploading,
}

impl Resource {
    /// All four, in the order Glance reports them.
    pub const ALL: [Self; 4] = [
        Self::ImageSizeTotal,
        Self::ImageStageTotal,
        Self::ImageCountTotal,
        Self::ImageCountUploading,
    ];

    /// Keystone's resource name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ImageSizeTotal => "image_size_total",
            Self::ImageStageTotal => "image_stage_total",
            Self::ImageCountTotal => "image_count_total",
            Self::ImageCountUploading => "image_count_uploading",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The project's usage of this resource, as Glance counts it (sizes in whole MiB).
    pub fn usage(self, u: &Usage) -> i64 {
        let n = match self {
            Self::ImageSizeTotal => u.size_bytes / MIB,
            Self::ImageStageTotal => u.staging_bytes / MIB,
            Self::ImageCountTotal => u.image_count,
            Self::ImageCountUploading => u.uploading_count,
        };
        i64::try_from(n).unwrap_or(i64::MAX)
    }
}

/// How the service user's token is scoped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `system_scope = all`.
    System,
    /// `project_name` in `project_domain_name`.
    Project {
        /// The project.
        name: String,
        /// Its domain's name.
        domain: String,
    },
}

/// Which endpoint's limits apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `endpoint_id`.
    Id(String),
    /// `endpoint_service_type` / `endpoint_service_name`, `endpoint_region_name`,
    /// `endpoint_interface`.
    Lookup {
        /// Service type (`image`).
        service_type: Option<String>,
        /// Service name (`glance`).
        service_name: Option<String>,
        /// Region name.
        region: Option<String>,
        /// Interface (`public`).
        interface: String,
    },
}

/// `[oslo_limit]`, read when `use_keystone_limits` is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Identity API base.
    pub auth_url: String,
    /// User that reads the limits.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Its domain's name.
    pub user_domain_name: String,
    /// Scope of its token.
    pub scope: Scope,
    /// The image service's endpoint.
    pub endpoint: Endpoint,
}

/// Options of `[oslo_limit]` this daemon reads.
pub const OSLO_LIMIT_OPTIONS: &[&str] = &[
    "auth_url",
    "auth_type",
    "username",
    "password",
    "user_domain_name",
    "user_domain_id",
    "system_scope",
    "project_name",
    "project_domain_name",
    "project_domain_id",
    "endpoint_id",
    "endpoint_service_type",
    "endpoint_service_name",
    "endpoint_region_name",
    "endpoint_interface",
];

impl LimitsConfig {
    /// `None` unless `[DEFAULT] use_keystone_limits` is true; then `[oslo_limit]` must name
    /// credentials and an endpoint.
    pub fn from_ini(ini: &IniSet) -> Result<Option<Self>, ConfigError> {
        if !ini
            .parse("DEFAULT", "use_keystone_limits", parse_bool)?
            .unwrap_or(false)
        {
            return Ok(None);
        }
        let s = "oslo_limit";
        let get = |o: &str| {
            ini.get(s, o)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let need = |o: &str| {
            get(o).ok_or_else(|| {
                ConfigError(format!(
                    "[DEFAULT] use_keystone_limits = True needs [oslo_limit] {o}"
                ))
            })
        };
        let scope = match (get("system_scope"), get("project_name")) {
            (Some(_), _) => Scope::System,
            (None, Some(name)) => Scope::Project {
                name,
                domain: get("project_domain_name")
                    .or_else(|| get("project_domain_id"))
                    .unwrap_or_else(|| "Default".to_string()),
            },
            (None, None) => {
                return Err(ConfigError(
                    "[DEFAULT] use_keystone_limits = True needs [oslo_limit] system_scope = all \
                     or project_name: the user must be able to read limits"
                        .to_string(),
                ));
            }
        };
        let endpoint = match get("endpoint_id") {
            Some(id) => Endpoint::Id(id),
            None => {
                let service_type = get("endpoint_service_type");
                let service_name = get("endpoint_service_name");
                if service_type.is_none() && service_name.is_none() {
                    return Err(ConfigError(
                        "[DEFAULT] use_keystone_limits = True needs [oslo_limit] endpoint_id, \
                         or endpoint_service_type (image) to find the endpoint"
                            .to_string(),
                    ));
                }
                Endpoint::Lookup {
                    service_type,
                    service_name,
                    region: get("endpoint_region_name"),
                    interface: get("endpoint_interface")
                        .map(|i| i.trim_end_matches("URL").to_string())
                        .unwrap_or_else(|| "public".to_string()),
                }
            }
        };
        Ok(Some(Self {
            auth_url: need("auth_url")?,
            username: need("username")?,
            password: need("password")?,
            user_domain_name: get("user_domain_name")
                .or_else(|| get("user_domain_id"))
                .unwrap_or_else(|| "Default".to_string()),
            scope,
            endpoint,
        }))
    }

    fn v3(&self) -> String {
        glance_auth::v3_url(&self.auth_url)
    }
}

/// A project's limit of each [`Resource`] (by `Resource::index`); negative is unlimited.
pub type Limits = [i64; 4];

#[derive(Default)]
struct Session {
    token: Option<(String, Instant)>,
    /// Service id and region id of the endpoint.
    target: Option<(String, Option<String>)>,
}

/// Reads limits from Keystone, caching them per project for [`LIMITS_CACHE_SECS`].
pub struct KeystoneLimits {
    cfg: LimitsConfig,
    http: reqwest::Client,
    session: tokio::sync::Mutex<Session>,
    cache: Mutex<HashMap<String, (Instant, Limits)>>,
}

impl std::fmt::Debug for KeystoneLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneLimits")
            .field("auth_url", &self.cfg.auth_url)
            .field("username", &self.cfg.username)
            .finish_non_exhaustive()
    }
}

fn unavailable(what: impl std::fmt::Display) -> ApiError {
    ApiError::IdentityUnavailable(format!(
        "cannot read the unified limits from Keystone ([oslo_limit]): {what}"
    ))
}

impl KeystoneLimits {
    /// A client; nothing is asked until the first check.
    pub fn new(cfg: LimitsConfig) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ApiError::Startup(format!("[oslo_limit] client: {e}")))?;
        Ok(Self {
            cfg,
            http,
            session: tokio::sync::Mutex::new(Session::default()),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The limits of `project`: cached, else Keystone's project limits over its registered
    /// ones. A resource with neither is 0 (nothing allowed), as oslo.limit treats it.
    pub async fn limits(&self, project: &str) -> Result<Limits, ApiError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, l)) = cache.get(project)
            && at.elapsed() < Duration::from_secs(LIMITS_CACHE_SECS)
        {
            return Ok(*l);
        }
        let mut session = self.session.lock().await;
        let (service, region) = self.target(&mut session).await?;
        let mut query = format!("service_id={service}");
        if let Some(r) = &region {
            query.push_str(&format!("&region_id={r}"));
        }
        let registered = self
            .get(&mut session, &format!("/registered_limits?{query}"))
            .await?;
        let own = self
            .get(
                &mut session,
                &format!("/limits?{query}&project_id={project}"),
            )
            .await?;
        drop(session);
        let mut limits: [Option<i64>; 4] = [None; 4];
        let mut fill = |list: &Value, key: &str, field: &str, only: Option<&str>| {
            for l in list[key].as_array().into_iter().flatten() {
                if only.is_some_and(|p| l["project_id"].as_str() != Some(p)) {
                    continue;
                }
                if let Some(r) = Resource::ALL
                    .iter()
                    .find(|r| Some(r.name()) == l["resource_name"].as_str())
                    && let Some(n) = l[field].as_i64()
                {
                    limits[r.index()] = Some(n);
                }
            }
        };
        fill(&registered, "registered_limits", "default_limit", None);
        fill(&own, "limits", "resource_limit", Some(project));
        let limits = Resource::ALL.map(|r| {
            limits[r.index()].unwrap_or_else(|| {
                log::error!(
                    "Keystone has no limit registered for {} of service {service}: it counts as 0",
                    r.name()
                );
                0
            })
        });
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(project.to_string(), (Instant::now(), limits));
        }
        Ok(limits)
    }

    /// The service and region ids of the configured endpoint (found once).
    async fn target(&self, s: &mut Session) -> Result<(String, Option<String>), ApiError> {
        if let Some(t) = &s.target {
            return Ok(t.clone());
        }
        let endpoint = match &self.cfg.endpoint {
            Endpoint::Id(id) => self.get(s, &format!("/endpoints/{id}")).await?["endpoint"].clone(),
            Endpoint::Lookup {
                service_type,
                service_name,
                region,
                interface,
            } => {
                let mut q = Vec::new();
                if let Some(t) = service_type {
                    q.push(format!("type={t}"));
                }
                if let Some(n) = service_name {
                    q.push(format!("name={n}"));
                }
                let services = self.get(s, &format!("/services?{}", q.join("&"))).await?;
                let ids: Vec<&str> = services["services"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v["id"].as_str())
                    .collect();
                let [service] = ids[..] else {
                    return Err(unavailable(format!(
                        "{} services match endpoint_service_type/name; exactly one must",
                        ids.len()
                    )));
                };
                let mut q = format!("service_id={service}&interface={interface}");
                if let Some(r) = region {
                    q.push_str(&format!("&region_id={r}"));
                }
                let found = self.get(s, &format!("/endpoints?{q}")).await?;
                match found["endpoints"].as_array().map(Vec::as_slice) {
                    Some([one]) => one.clone(),
                    other => {
                        return Err(unavailable(format!(
                            "{} {interface} endpoints of service {service} match; exactly one must",
                            other.map_or(0, <[Value]>::len)
                        )));
                    }
                }
            }
        };
        let service = endpoint["service_id"]
            .as_str()
            .ok_or_else(|| unavailable("the endpoint names no service"))?
            .to_string();
        let region = endpoint["region_id"].as_str().map(str::to_string);
        s.target = Some((service.clone(), region.clone()));
        Ok((service, region))
    }

    async fn get(&self, s: &mut Session, path: &str) -> Result<Value, ApiError> {
        let token = self.token(s).await?;
        let resp = self
            .http
            .get(format!("{}{path}", self.cfg.v3()))
            .header("x-auth-token", token)
            .send()
            .await
            .map_err(|e| unavailable(crate::error::chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            if status == reqwest::StatusCode::UNAUTHORIZED {
                s.token = None;
            }
            return Err(unavailable(format!("GET {path} answered {status}")));
        }
        resp.json().await.map_err(unavailable)
    }

    async fn token(&self, s: &mut Session) -> Result<String, ApiError> {
        if let Some((t, renew)) = &s.token
            && Instant::now() < *renew
        {
            return Ok(t.clone());
        }
        let scope = match &self.cfg.scope {
            Scope::System => json!({"system": {"all": true}}),
            Scope::Project { name, domain } => {
                json!({"project": {"name": name, "domain": {"name": domain}}})
            }
        };
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.cfg.username,
                "domain": {"name": self.cfg.user_domain_name},
                "password": self.cfg.password,
            }}},
            "scope": scope,
        }});
        let resp = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.cfg.v3()))
            .json(&body)
            .send()
            .await
            .map_err(|e| unavailable(crate::error::chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(unavailable(format!(
                "Keystone refused [oslo_limit] username {:?}: {status}",
                self.cfg.username
            )));
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| unavailable("Keystone issued no X-Subject-Token"))?;
        let v: Value = resp.json().await.map_err(unavailable)?;
        let life = v["token"]["expires_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .and_then(|t| {
                (t.with_timezone(&chrono::Utc) - chrono::Utc::now())
                    .to_std()
                    .ok()
            })
            .unwrap_or(Duration::from_secs(60));
        s.token = Some((token.clone(), Instant::now() + life / 2));
        Ok(token)
    }
}

/// Each resource's limit and the project's usage of it, for `GET /v2/info/usage`; `None`
/// when unified limits are off or the caller has no project.
pub async fn usage(
    state: &AppState,
    ctx: &Context,
) -> Result<Option<Vec<(Resource, i64, i64)>>, ApiError> {
    let (Some(limits), Some(project)) = (&state.limits, ctx.project_id.as_deref()) else {
        return Ok(None);
    };
    let l = limits.limits(project).await?;
    let u = state.registry.usage(ctx).await?;
    Ok(Some(
        Resource::ALL
            .iter()
            .map(|r| (*r, l[r.index()], r.usage(&u)))
            .collect(),
    ))
}

/// The one check of unified limits: refuses (413) when the caller's project, with `deltas`
/// added to its usage, would be over a limit. Nothing when unified limits are off or the
/// caller has no project. Create calls it with `(ImageCountTotal, 1)`; upload with
/// `(ImageSizeTotal, declared MiB)` before and `(ImageCountUploading, 0)` once the image is
/// `saving`; stage and import are to call it the same way (`ImageStageTotal`,
/// `ImageCountUploading`, and `ImageSizeTotal` for import), as Glance does.
pub async fn enforce(
    state: &AppState,
    ctx: &Context,
    deltas: &[(Resource, i64)],
) -> Result<(), ApiError> {
    let (Some(limits), Some(project)) = (&state.limits, ctx.project_id.as_deref()) else {
        return Ok(());
    };
    let l = limits.limits(project).await?;
    let u = state.registry.usage(ctx).await?;
    let over: Vec<String> = deltas
        .iter()
        .filter_map(|(r, delta)| {
            let (limit, used) = (l[r.index()], r.usage(&u));
            (limit >= 0 && used.saturating_add(*delta) > limit).then(|| {
                format!(
                    "{} is over its limit of {limit} with usage {used} and delta {delta}",
                    r.name()
                )
            })
        })
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    Err(ApiError::rule(
        ErrorKind::TooLarge,
        format!(
            "Project {project} is over a limit: {}; free some or ask for a higher limit",
            over.join("; ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(text: &str) -> Result<Option<LimitsConfig>, ConfigError> {
        let mut ini = IniSet::default();
        ini.merge(Path::new("glance-api.conf"), text)?;
        LimitsConfig::from_ini(&ini)
    }

    #[test]
    fn off_by_default_and_checked_when_on() {
        assert_eq!(cfg("[oslo_limit]\nauth_url = http://k/v3\n").unwrap(), None);
        let on = "[DEFAULT]\nuse_keystone_limits = True\n";
        let e = cfg(on).unwrap_err().0;
        assert!(e.contains("system_scope"), "{e}");
        let e = cfg(&format!("{on}[oslo_limit]\nsystem_scope = all\n"))
            .unwrap_err()
            .0;
        assert!(e.contains("endpoint_id"), "{e}");
        let c = cfg(&format!(
            "{on}[oslo_limit]\nauth_url = http://k:5000\nusername = glance\npassword = p\n\
             system_scope = all\nendpoint_service_type = image\nendpoint_region_name = R1\n\
             endpoint_interface = publicURL\n"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.scope, Scope::System);
        assert_eq!(c.v3(), "http://k:5000/v3");
        assert_eq!(
            c.endpoint,
            Endpoint::Lookup {
                service_type: Some("image".into()),
                service_name: None,
                region: Some("R1".into()),
                interface: "public".into(),
            }
        );
        let e = cfg("[DEFAULT]\nuse_keystone_limits = maybe\n")
            .unwrap_err()
            .0;
        assert!(e.contains("use_keystone_limits"), "{e}");
    }

    #[test]
    fn usage_is_counted_in_whole_mib() {
        let u = Usage {
            size_bytes: 3 * MIB - 1,
            image_count: 4,
            uploading_count: 1,
            staging_bytes: MIB,
        };
        assert_eq!(Resource::ImageSizeTotal.usage(&u), 2);
        assert_eq!(Resource::ImageStageTotal.usage(&u), 1);
        assert_eq!(Resource::ImageCountTotal.usage(&u), 4);
        assert_eq!(Resource::ImageCountUploading.usage(&u), 1);
    }
}
