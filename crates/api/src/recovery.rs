//! No image stuck in `saving`: every glance-api node periodically asks the registry for
//! uploads whose lease expired (their node died or hung), returns those images to `queued`,
//! and removes stale partial files from the stores.

use std::time::Duration;

use crate::app::AppState;

/// One sweep: recovers every expired upload; returns how many images went back to `queued`.
pub async fn sweep(state: &AppState) -> usize {
    let ctx =
        match crate::auth::service_context(state, format!("req-{}", uuid::Uuid::new_v4())).await {
            Ok(c) => c,
            Err(e) => {
                log::warn!("recovery sweep skipped: {e}");
                return 0;
            }
        };
    let mut recovered = 0;
    match state.registry.expired_leases(&ctx).await {
        Ok(leases) => {
            for lease in leases {
                match state.registry.recover_upload(&ctx, &lease.image_id).await {
                    Ok(_) => {
                        recovered += 1;
                        let removed = state.stores.remove_partials_of(&lease.image_id.to_string());
                        log::warn!(
                            "image {} was left in saving by node {} (lease expired at {}); returned it to queued, removed {removed} partial file(s)",
                            lease.image_id,
                            lease.node,
                            lease.expires_at
                        );
                    }
                    Err(e) => log::debug!("image {}: not recovered: {e}", lease.image_id),
                }
            }
        }
        Err(e) => log::warn!("cannot list expired upload leases: {e}"),
    }
    state.stores.clean_stale_partials();
    // Staged data whose image no longer needs it (a recovered stage or import, a deleted
    // image): issue 30.
    let orphans = state.importer.clean_orphans(state, &ctx).await;
    if orphans > 0 {
        log::warn!("removed {orphans} staged file(s) no image needs any more");
    }
    recovered
}

/// Runs [`sweep`] every `every` until the process ends.
pub fn spawn(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            sweep(&state).await;
            tokio::time::sleep(every).await;
        }
    })
}
