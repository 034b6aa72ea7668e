//! Checks glance-api makes once at start-up, in the background and off every request's path.
//! What they find is logged; none of it stops the daemon.

use std::time::Duration;

use crate::app::AppState;
use crate::config::AuthMode;

/// How often, and how far apart, the registry is asked before the check gives up (the
/// registry may start after glance-api).
const PROBE_TRIES: u32 = 30;
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// The warning for a glance-api that authenticates its callers (`trusted-auth` or `keystone`)
/// while the registry it uses answers a caller that brings no credentials at all: then
/// anything that can reach the registry can read and change every image record by sending
/// identity headers, and glance-api's authentication protects nothing. `None` when glance-api
/// has no authentication itself, when the registry asks for credentials, or when it never
/// answered (the health check reports that).
pub async fn registry_auth_warning(state: &AppState) -> Option<String> {
    let flavor = match state.config.auth {
        AuthMode::None => return None,
        AuthMode::Keystone => "keystone",
        AuthMode::TrustedHeaders => "trusted-auth",
    };
    for attempt in 0..PROBE_TRIES {
        match state.registry.answers_without_credentials().await {
            Ok(false) => return None,
            Ok(true) => {
                return Some(format!(
                    "glance-api authenticates its callers ([paste_deploy] flavor = {flavor}) but \
                     glance-registry at {} answers requests that carry no credentials: anything \
                     that can reach it can read and change every image record. Set \
                     [paste_deploy] flavor = trusted-auth and the same registry_shared_secret in \
                     glance-registry.conf and glance-api.conf (or flavor = keystone in both); \
                     see docs/auth.md",
                    state.registry.base()
                ));
            }
            Err(e) if attempt + 1 == PROBE_TRIES => {
                log::debug!("registry authentication check gave up: {e}");
            }
            Err(_) => tokio::time::sleep(PROBE_EVERY).await,
        }
    }
    None
}

/// Runs the start-up checks in the background; each logs what it finds once.
pub fn spawn(state: AppState) {
    actix_web::rt::spawn(async move {
        if let Some(warning) = registry_auth_warning(&state).await {
            log::warn!("{warning}");
        }
    });
}
