//! Cross-origin resource sharing, as Glance's pipeline does it (oslo.middleware's `cors`
//! filter, outermost): the `[cors]` options, and the middleware that answers preflight
//! `OPTIONS` requests and marks the answers to allowed origins. It decides nothing about who
//! may do what: a browser's request still goes through authentication and policy.
//!
//! Without an `allowed_origin` the middleware is not in the way at all: no header is added
//! and `OPTIONS` keeps its 405.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, error, web};
use glance_config::{ConfigError, IniSet, parse_bool, parse_list, parse_u32_in};

use crate::app::AppState;

/// Request headers a browser may always send (the CORS "simple" headers), besides
/// `allow_headers`.
const SIMPLE_HEADERS: &[&str] = &[
    "Accept",
    "Accept-Language",
    "Content-Type",
    "Cache-Control",
    "Content-Language",
    "Expires",
    "Last-Modified",
    "Pragma",
];

/// Glance's defaults for `[cors] allow_headers` (it overrides oslo.middleware's).
const DEFAULT_ALLOW_HEADERS: &[&str] = &[
    "Content-MD5",
    "X-Image-Meta-Checksum",
    "X-Storage-Token",
    "Accept-Encoding",
    "X-Auth-Token",
    "X-Identity-Status",
    "X-Roles",
    "X-Service-Catalog",
    "X-User-Id",
    "X-Tenant-Id",
    "X-OpenStack-Request-ID",
];

/// Glance's defaults for `[cors] expose_headers`.
const DEFAULT_EXPOSE_HEADERS: &[&str] = &[
    "X-Image-Meta-Checksum",
    "X-Auth-Token",
    "X-Subject-Token",
    "X-Service-Token",
    "X-OpenStack-Request-ID",
];

/// Glance's defaults for `[cors] allow_methods`.
const DEFAULT_ALLOW_METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "PATCH"];

/// The `[cors]` options glance-api reads.
pub const CORS_OPTIONS: &[(&str, &str)] = &[
    ("cors", "allowed_origin"),
    ("cors", "allow_credentials"),
    ("cors", "expose_headers"),
    ("cors", "allow_headers"),
    ("cors", "allow_methods"),
    ("cors", "max_age"),
];

/// `[cors]`: which browser origins may call the API, and what they are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    /// `allowed_origin`: origins as browsers send them (`https://host:port`); `*` allows any.
    pub allowed_origins: Vec<String>,
    /// `allow_credentials` (default true): answers say the browser may send cookies and
    /// `Authorization`.
    pub allow_credentials: bool,
    /// `expose_headers`: response headers a page's script may read.
    pub expose_headers: Vec<String>,
    /// `allow_headers`: request headers a preflight may ask for (the simple ones always pass).
    pub allow_headers: Vec<String>,
    /// `allow_methods`: methods a preflight may ask for (compared as written, case matters).
    pub allow_methods: Vec<String>,
    /// `max_age` (seconds): how long a browser may keep a preflight's answer; unset, not sent.
    pub max_age: Option<u32>,
}

impl CorsConfig {
    /// The `[cors]` section; `None` when it allows no origin (then nothing changes).
    pub fn from_ini(ini: &IniSet) -> Result<Option<Self>, ConfigError> {
        let list = |opt: &str, default: &[&str]| -> Vec<String> {
            ini.get("cors", opt).map_or_else(
                || default.iter().map(|s| (*s).to_string()).collect(),
                parse_list,
            )
        };
        let config = Self {
            allowed_origins: list("allowed_origin", &[]),
            allow_credentials: ini
                .parse("cors", "allow_credentials", parse_bool)?
                .unwrap_or(true),
            expose_headers: list("expose_headers", DEFAULT_EXPOSE_HEADERS),
            allow_headers: list("allow_headers", DEFAULT_ALLOW_HEADERS),
            allow_methods: list("allow_methods", DEFAULT_ALLOW_METHODS),
            max_age: ini.parse("cors", "max_age", parse_u32_in(0, u32::MAX))?,
        };
        Ok((!config.allowed_origins.is_empty()).then_some(config))
    }

    /// The origin to answer with: the caller's when listed, `*` when only the wildcard is.
    fn origin_for<'a>(&'a self, origin: &'a str) -> Option<&'a str> {
        if self.allowed_origins.iter().any(|o| o == origin) {
            Some(origin)
        } else if self.allowed_origins.iter().any(|o| o == "*") {
            Some("*")
        } else {
            None
        }
    }

    /// The preflight headers for a request carrying `headers`, or `None` when the origin,
    /// the method asked for or one of the headers asked for is not allowed.
    fn preflight(&self, headers: &HeaderMap) -> Option<Vec<(HeaderName, String)>> {
        let origin = self.origin_for(headers.get(header::ORIGIN)?.to_str().ok()?)?;
        let method = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)?
            .to_str()
            .ok()?;
        if !self.allow_methods.iter().any(|m| m == method) {
            log::debug!("CORS preflight for method {method:?} refused: not in allow_methods");
            return None;
        }
        let asked: Vec<&str> = match headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            Some(v) => v
                .to_str()
                .ok()?
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .collect(),
            None => Vec::new(),
        };
        let permitted = |h: &str| {
            self.allow_headers
                .iter()
                .map(String::as_str)
                .chain(SIMPLE_HEADERS.iter().copied())
                .any(|p| p.eq_ignore_ascii_case(h))
        };
        if let Some(h) = asked.iter().find(|h| !permitted(h)) {
            log::debug!("CORS preflight asking for header {h:?} refused: not in allow_headers");
            return None;
        }
        let mut out = vec![
            (header::VARY, "Origin".to_string()),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.to_string()),
        ];
        if self.allow_credentials {
            out.push((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true".to_string()));
        }
        if let Some(age) = self.max_age.filter(|a| *a > 0) {
            out.push((header::ACCESS_CONTROL_MAX_AGE, age.to_string()));
        }
        out.push((header::ACCESS_CONTROL_ALLOW_METHODS, method.to_string()));
        if !asked.is_empty() {
            out.push((header::ACCESS_CONTROL_ALLOW_HEADERS, asked.join(",")));
        }
        Some(out)
    }

    /// Marks the answer to an ordinary request from an allowed origin.
    fn mark(&self, origin: &str, res: &mut HeaderMap) {
        let Some(origin) = self.origin_for(origin) else {
            return;
        };
        let vary = match res.get(header::VARY).and_then(|v| v.to_str().ok()) {
            Some(v) => format!("{v},Origin"),
            None => "Origin".to_string(),
        };
        let mut set = |name: HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                res.insert(name, v);
            }
        };
        set(header::VARY, &vary);
        set(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if self.allow_credentials {
            set(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
        if !self.expose_headers.is_empty() {
            set(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                &self.expose_headers.join(","),
            );
        }
    }
}

/// The middleware (outermost but for the access log), on every path but `/healthcheck`.
/// With `[cors]`: every `OPTIONS` is
/// answered 200 with no body when the routes would refuse it (a preflight never reaches a
/// handler), carrying the preflight headers when origin, method and headers are allowed;
/// any other request from an allowed origin gets `Access-Control-Allow-Origin`.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, error::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let Some(cors) = state.config.cors.as_ref() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    // Glance maps /healthcheck beside its pipeline, so the load balancer's check is untouched.
    let path = req.path();
    if path == "/healthcheck" || path.starts_with("/healthcheck/") {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let is_options = req.method() == Method::OPTIONS;
    let preflight = is_options.then(|| cors.preflight(req.headers())).flatten();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut res = next.call(req).await?;
    if res
        .headers()
        .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        return Ok(res.map_into_left_body());
    }
    if is_options {
        let mut res = if res.status().is_success() {
            res.map_into_left_body()
        } else {
            // A preflight is answered here, not by the routes (which allow no OPTIONS).
            let (http_req, _) = res.into_parts();
            let ok = HttpResponse::build(StatusCode::OK).finish();
            ServiceResponse::new(http_req, ok).map_into_right_body()
        };
        for (name, value) in preflight.unwrap_or_default() {
            if let Ok(v) = HeaderValue::from_str(&value) {
                res.headers_mut().insert(name, v);
            }
        }
        return Ok(res);
    }
    if let Some(origin) = origin {
        cors.mark(&origin, res.headers_mut());
    }
    Ok(res.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cors(text: &str) -> Result<Option<CorsConfig>, ConfigError> {
        let mut ini = IniSet::default();
        ini.merge(Path::new("glance-api.conf"), text)?;
        CorsConfig::from_ini(&ini)
    }

    #[test]
    fn glances_defaults_and_no_origin_means_off() {
        assert_eq!(cors("").unwrap(), None);
        assert_eq!(cors("[cors]\nmax_age = 10\n").unwrap(), None);
        let c = cors("[cors]\nallowed_origin = https://a.example, https://b.example\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert!(c.allow_credentials);
        assert_eq!(c.allow_methods, ["GET", "PUT", "POST", "DELETE", "PATCH"]);
        assert!(c.allow_headers.iter().any(|h| h == "X-Auth-Token"));
        assert!(
            c.expose_headers
                .iter()
                .any(|h| h == "X-OpenStack-Request-ID")
        );
        assert_eq!(c.max_age, None);
    }

    #[test]
    fn options_are_read_and_bad_values_name_the_option() {
        let c = cors(
            "[cors]\nallowed_origin = *\nallow_credentials = false\nexpose_headers =\n\
             allow_headers = X-A\nallow_methods = GET\nmax_age = 600\n",
        )
        .unwrap()
        .unwrap();
        assert!(!c.allow_credentials);
        assert!(c.expose_headers.is_empty());
        assert_eq!(c.allow_headers, ["X-A"]);
        assert_eq!(c.allow_methods, ["GET"]);
        assert_eq!(c.max_age, Some(600));
        let err = cors("[cors]\nallowed_origin = *\nmax_age = soon\n")
            .unwrap_err()
            .0;
        assert!(err.contains("[cors] max_age"), "{err}");
        let err = cors("[cors]\nallowed_origin = *\nallow_credentials = perhaps\n")
            .unwrap_err()
            .0;
        assert!(err.contains("[cors] allow_credentials"), "{err}");
    }

    #[test]
    fn preflight_checks_origin_method_and_headers() {
        let c = cors("[cors]\nallowed_origin = https://a.example\nmax_age = 60\n")
            .unwrap()
            .unwrap();
        let mut h = HeaderMap::new();
        let put = |h: &mut HeaderMap, n: HeaderName, v: &'static str| {
            h.insert(n, HeaderValue::from_static(v));
        };
        put(&mut h, header::ORIGIN, "https://a.example");
        put(&mut h, header::ACCESS_CONTROL_REQUEST_METHOD, "PATCH");
        put(
            &mut h,
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "x-auth-token, content-type",
        );
        let got = c.preflight(&h).unwrap();
        let get = |n: HeaderName| got.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(
            get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("https://a.example")
        );
        assert_eq!(get(header::ACCESS_CONTROL_ALLOW_METHODS), Some("PATCH"));
        assert_eq!(
            get(header::ACCESS_CONTROL_ALLOW_HEADERS),
            Some("x-auth-token,content-type")
        );
        assert_eq!(get(header::ACCESS_CONTROL_MAX_AGE), Some("60"));
        assert_eq!(get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS), Some("true"));
        put(&mut h, header::ACCESS_CONTROL_REQUEST_HEADERS, "x-secret");
        assert!(c.preflight(&h).is_none());
        h.remove(header::ACCESS_CONTROL_REQUEST_HEADERS);
        put(&mut h, header::ACCESS_CONTROL_REQUEST_METHOD, "patch");
        assert!(c.preflight(&h).is_none(), "methods are compared as written");
        put(&mut h, header::ACCESS_CONTROL_REQUEST_METHOD, "GET");
        put(&mut h, header::ORIGIN, "https://evil.example");
        assert!(c.preflight(&h).is_none());
    }
}
