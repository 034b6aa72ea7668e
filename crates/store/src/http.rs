//! The read-only http store: image data at `http(s)://` locations, size from HEAD, bytes
//! streamed from GET. Redirects are followed by hand (301/302 only, at most 5), as glance_store
//! does. Unless the operator allows it, locations on loopback, link-local, private or other
//! non-public addresses are refused — both when the URL names an address and when a name
//! resolves to one (checked by the resolver itself, so DNS rebinding cannot slip past).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, StatusCode, header};

use crate::config::HttpConfig;
use crate::{ByteRange, Fetched, StoreError};

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// An http store instance.
#[derive(Debug, Clone)]
pub struct HttpStore {
    id: String,
    client: reqwest::Client,
    allow_private: bool,
}

/// Whether an address is on the public internet (not loopback, private, link-local, ...).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // carrier-grade NAT
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80) // link-local
        }
    }
}

/// A resolver that drops non-public addresses unless they are allowed.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves to no address this store may contact").into();
                return Err(err);
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

impl HttpStore {
    /// Builds the store's HTTP client from its settings.
    pub fn new(id: &str, cfg: &HttpConfig) -> Result<Self, StoreError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(cfg.timeout_secs))
            .read_timeout(Duration::from_secs(cfg.timeout_secs))
            .danger_accept_invalid_certs(cfg.insecure)
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: cfg.allow_private,
            }))
            .user_agent(concat!("glance-rs/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| StoreError::io(ca, e))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                StoreError::BadLocation(format!(
                    "store {id}: https_ca_certificates_file {} is not a PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .build()
            .map_err(|e| StoreError::Worker(format!("store {id}: http client: {e}")))?;
        Ok(Self {
            id: id.to_string(),
            client,
            allow_private: cfg.allow_private,
        })
    }

    /// The store's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Checks a URL before contacting it: http(s) only, a host, a valid port, and an address
    /// this store may contact.
    pub fn check_url(&self, raw: &str) -> Result<url::Url, StoreError> {
        let url = url::Url::parse(raw)
            .map_err(|e| StoreError::BadLocation(format!("location {raw:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(StoreError::BadLocation(format!(
                "location scheme {:?} is not served by the http store",
                url.scheme()
            )));
        }
        let host = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                Some(IpAddr::from([127, 0, 0, 1]))
            }
            Some(url::Host::Domain(_)) => None,
            None => {
                return Err(StoreError::BadLocation(format!(
                    "location {} has no host",
                    redact(&url)
                )));
            }
        };
        if let Some(ip) = host
            && !self.allow_private
            && !is_public(ip)
        {
            return Err(StoreError::BadLocation(format!(
                "location {} points at a non-public address ({ip}); the operator must set \
                 http_store_allow_private_addresses = true to allow it",
                redact(&url)
            )));
        }
        Ok(url)
    }

    /// Sends `method` to `raw`, following 301/302 redirects by hand.
    async fn send(
        &self,
        method: Method,
        raw: &str,
        range: Option<String>,
    ) -> Result<reqwest::Response, StoreError> {
        let mut url = self.check_url(raw)?;
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.client.request(method.clone(), url.clone());
            if let Some(value) = &range {
                req = req.header(header::RANGE, value.as_str());
            }
            let resp = req.send().await.map_err(|e| {
                StoreError::RemoteUnavailable(format!(
                    "cannot reach image location {}: {}",
                    redact(&url),
                    crate::chain(&e)
                ))
            })?;
            let status = resp.status();
            if status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND {
                let next = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        StoreError::BadLocation(format!(
                            "{} redirected without a Location header",
                            redact(&url)
                        ))
                    })?;
                let next = url.join(next).map_err(|e| {
                    StoreError::BadLocation(format!("bad redirect from {}: {e}", redact(&url)))
                })?;
                url = self.check_url(next.as_str())?;
                continue;
            }
            if status.is_redirection() {
                return Err(StoreError::BadLocation(format!(
                    "{} answered {status}; only 301 and 302 redirects are followed",
                    redact(&url)
                )));
            }
            if status == StatusCode::NOT_FOUND {
                return Err(StoreError::NotFound(redact(&url)));
            }
            if status == StatusCode::RANGE_NOT_SATISFIABLE {
                return Ok(resp);
            }
            if !status.is_success() {
                return Err(StoreError::BadLocation(format!(
                    "{} answered {status}",
                    redact(&url)
                )));
            }
            return Ok(resp);
        }
        Err(StoreError::BadLocation(format!(
            "{raw} redirected more than {MAX_REDIRECTS} times"
        )))
    }

    /// The data's size from a HEAD request's Content-Length.
    pub async fn size(&self, raw: &str) -> Result<u64, StoreError> {
        let resp = self.send(Method::HEAD, raw, None).await?;
        resp.headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                StoreError::BadLocation(format!(
                    "{} does not report the image's size (no Content-Length)",
                    strip_credentials(raw)
                ))
            })
    }

    /// Streams the data (or the part `range` names) from a GET request.
    pub async fn get(&self, raw: &str, range: Option<ByteRange>) -> Result<Fetched, StoreError> {
        let header_value = range.and_then(|r| match (r.offset, r.length) {
            (0, None) => None,
            (a, None) => Some(format!("bytes={a}-")),
            (a, Some(l)) => Some(format!("bytes={a}-{}", a + l.max(1) - 1)),
        });
        let resp = self.send(Method::GET, raw, header_value).await?;
        let status = resp.status();
        let length_header = resp.content_length();
        let total = if status == StatusCode::PARTIAL_CONTENT {
            resp.headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit('/').next())
                .and_then(|v| v.parse::<u64>().ok())
        } else if status == StatusCode::RANGE_NOT_SATISFIABLE {
            let size = resp
                .headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit('/').next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            return Err(StoreError::RangeNotSatisfiable {
                offset: range.map_or(0, |r| r.offset),
                size,
            });
        } else {
            length_header
        };
        let shown = strip_credentials(raw);
        let body = resp.bytes_stream().map(move |r| {
            r.map_err(|e| {
                StoreError::RemoteUnavailable(format!(
                    "reading {shown} failed: {}",
                    crate::chain(&e)
                ))
            })
        });
        match (status == StatusCode::PARTIAL_CONTENT, range) {
            // The server honoured the range, or none was asked for.
            (true, Some(r)) => {
                let len = total.map(|t| {
                    r.length
                        .map_or(t - r.offset.min(t), |l| l.min(t.saturating_sub(r.offset)))
                });
                Ok(Fetched {
                    total_size: total,
                    offset: r.offset,
                    length: len,
                    stream: Box::pin(body),
                    file: None,
                })
            }
            (_, None) => Ok(Fetched {
                total_size: total,
                offset: 0,
                length: total,
                stream: Box::pin(body),
                file: None,
            }),
            // The server sent everything: skip and cut here.
            (_, Some(r)) => {
                let (offset, length) = match total {
                    Some(t) => crate::resolve_range(Some(r), t)?,
                    None => (r.offset, r.length.unwrap_or(u64::MAX)),
                };
                Ok(Fetched {
                    total_size: total,
                    offset,
                    length: total.map(|_| length),
                    stream: crate::slice_stream(Box::pin(body), offset, length),
                    file: None,
                })
            }
        }
    }
}

/// A URL for messages, without user and password.
fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// `raw` without credentials, for messages.
pub fn strip_credentials(raw: &str) -> String {
    url::Url::parse(raw).map_or_else(|_| "<invalid URL>".to_string(), |u| redact(&u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "151.101.1.1", "2001:4860:4860::8888"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_before_any_request() {
        let store = HttpStore::new("web", &HttpConfig::default()).unwrap();
        for bad in [
            "http://127.0.0.1/x",
            "http://localhost:8080/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/x",
            "file:///etc/passwd",
            "ftp://example.com/x",
            "not a url",
        ] {
            let err = store.check_url(bad).unwrap_err();
            assert_eq!(err.kind(), glance_model::ErrorKind::BadRequest, "{bad}");
        }
        assert!(
            store
                .check_url("https://user:pw@example.com/cirros.img")
                .is_ok()
        );
        let err = store
            .check_url("http://user:secret@10.0.0.1/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(err.contains("http_store_allow_private_addresses"), "{err}");
    }
}
