//! What glance-api does around its connections and its start: the warning about a registry
//! that answers without credentials behind an authenticating glance-api, and connections
//! that never send a byte (both daemons) being closed instead of held.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use glance_api::startup::registry_auth_warning;
use glance_registry::RegistryConfig;
use tokio::io::AsyncReadExt as _;

use crate::cloud::{TestCloud, api_state};
use crate::harness::{TestDb, TestRegistry};

#[actix_web::test]
async fn trusted_auth_in_front_of_an_unauthenticated_registry_is_warned_about() -> Result<()> {
    let open = TestRegistry::start("sqlite").await?;
    let dir = tempfile::tempdir()?;
    let trusted = "[paste_deploy]\nflavor = trusted-auth\n";
    let state = api_state(&open.base, dir.path(), trusted)?;
    let warning = registry_auth_warning(&state)
        .await
        .context("no warning for trusted-auth in front of a registry without auth")?;
    assert!(
        warning.contains("flavor = trusted-auth") && warning.contains(&open.base),
        "{warning}"
    );
    assert!(warning.contains("registry_shared_secret"), "{warning}");

    // glance-api without authentication itself: nothing to warn about.
    let state = api_state(&open.base, dir.path(), "")?;
    assert_eq!(registry_auth_warning(&state).await, None);

    // A registry that asks for the shared secret: no warning.
    let secured = TestRegistry::serve_with(
        TestDb::new("sqlite")?,
        RegistryConfig {
            workers: 2,
            flavor: glance_auth::Flavor::TrustedAuth,
            shared_secret: Some("between-daemons".to_string()),
            ..RegistryConfig::default()
        },
    )
    .await?;
    let conf = format!("[DEFAULT]\nregistry_shared_secret = between-daemons\n{trusted}");
    let state = api_state(&secured.base, dir.path(), &conf)?;
    assert_eq!(registry_auth_warning(&state).await, None);
    Ok(())
}

/// Opens a connection to `base`, sends nothing, and returns how long the server took to close
/// it (at most `limit`) and what it sent before closing.
async fn silent_connection_lifetime(base: &str, limit: Duration) -> Result<(Duration, String)> {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let read = tokio::time::timeout_at((started + limit).into(), s.read(&mut buf))
            .await
            .with_context(|| format!("{base} kept a silent connection for {limit:?}"))?;
        match read {
            Ok(0) | Err(_) => return Ok((started.elapsed(), String::from_utf8(got)?)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[actix_web::test]
async fn a_connection_that_never_sends_a_byte_is_closed_after_client_socket_timeout() -> Result<()>
{
    for keepalive in ["True", "False"] {
        let conf = format!("[DEFAULT]\nclient_socket_timeout = 2\nhttp_keepalive = {keepalive}\n");
        let c = TestCloud::with_config("sqlite", &conf).await?;
        let (lived, sent) = silent_connection_lifetime(&c.base, Duration::from_secs(10)).await?;
        assert!(
            lived >= Duration::from_millis(1800) && lived < Duration::from_secs(5),
            "glance-api (http_keepalive = {keepalive}) closed a silent connection after {lived:?}"
        );
        assert_eq!(sent, "", "nothing is sent to a client that asked nothing");
    }
    Ok(())
}

/// glance-registry (actix-web's server) gives a connection 5 s to send its request head, the
/// first byte included, then answers 408 and closes it.
#[actix_web::test]
async fn the_registry_closes_a_connection_that_never_sends_a_byte() -> Result<()> {
    let registry = TestRegistry::start("sqlite").await?;
    let (lived, sent) = silent_connection_lifetime(&registry.base, Duration::from_secs(15)).await?;
    assert!(
        lived >= Duration::from_secs(4) && lived < Duration::from_secs(10),
        "closed after {lived:?}"
    );
    assert!(
        sent.is_empty() || sent.starts_with("HTTP/1.1 408 "),
        "{sent:?}"
    );
    Ok(())
}
