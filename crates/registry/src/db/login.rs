//! Failing fast while the database refuses logins (a changed password, a locked account, a
//! server that is down). r2d2 alone retries a failed login in the background and makes each
//! check-out that finds no idle connection wait out its whole connection timeout (it was 30 s
//! at `pool_timeout`'s default), so requests hung and `/healthcheck` could not answer a load
//! balancer. Here every login's outcome is remembered ([`Logins`]): while the last one failed,
//! a check-out that finds no idle connection makes one login attempt of its own and, if that
//! fails too, answers at once with the database's reason. One attempt per check-out (not "fail
//! while the flag is set") is what makes recovery immediate: the first request after the
//! password is put back logs in and succeeds, without waiting for the pool's next retry.
//! This module owns only that decision; it runs no query.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{ConnectionManager, DbConnection, DbUrl};
use crate::error::{RegistryError, chain};

/// The outcome of the latest login to the database, by the pool or by a check-out.
#[derive(Debug, Default)]
pub struct Logins {
    /// Why the latest login failed; `None` after one succeeded.
    refused: Mutex<Option<String>>,
}

impl Logins {
    /// Records a failed login and its cause (logged once when the database starts refusing).
    pub fn failed(&self, err: &RegistryError) {
        let cause = chain(err);
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.is_none() {
            log::error!(
                "the database refuses logins; requests answer 503 until it accepts: {cause}"
            );
        }
        *refused = Some(cause);
    }

    /// Records a successful login (logged once when the database accepts logins again).
    pub fn succeeded(&self) {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.take().is_some() {
            log::warn!("the database accepts logins again");
        }
    }

    /// Whether the latest login failed.
    pub fn refusing(&self) -> bool {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

/// A connection for one closure: from the pool, or (while the pool has none because logins
/// failed) opened for this request alone and closed after it.
pub enum CheckedOut {
    /// A pooled connection, given back when dropped.
    Pooled(r2d2::PooledConnection<ConnectionManager>),
    /// A connection of its own, closed when dropped.
    Own(DbConnection),
}

impl std::ops::Deref for CheckedOut {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        match self {
            Self::Pooled(c) => c,
            Self::Own(c) => c,
        }
    }
}

impl std::ops::DerefMut for CheckedOut {
    fn deref_mut(&mut self) -> &mut DbConnection {
        match self {
            Self::Pooled(c) => c,
            Self::Own(c) => c,
        }
    }
}

/// How long one wait for the pool lasts before the login flag is looked at again, so a wait
/// that began before the database started refusing ends within this.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// A connection for one closure, on the calling (blocking) thread. An idle pooled connection
/// comes back at once, as from `pool.get()`. With none idle: while the latest login failed,
/// one login attempt of this check-out's own (503 naming the cause when it fails too);
/// otherwise a wait for the pool, at most `wait`, that ends early if a login fails meanwhile.
pub fn check_out(
    pool: &r2d2::Pool<ConnectionManager>,
    logins: &Logins,
    url: &DbUrl,
    statement_timeout: Option<Duration>,
    wait: Duration,
) -> Result<CheckedOut, RegistryError> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(conn) = pool.try_get() {
            return Ok(CheckedOut::Pooled(conn));
        }
        if logins.refusing() {
            return match DbConnection::open_limited(url, statement_timeout) {
                Ok(conn) => {
                    logins.succeeded();
                    Ok(CheckedOut::Own(conn))
                }
                Err(e) => {
                    logins.failed(&e);
                    Err(RegistryError::Refused {
                        url: url.to_string(),
                        cause: cause_of(&e),
                    })
                }
            };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RegistryError::Busy(wait.as_secs()));
        }
        if let Ok(conn) = pool.get_timeout(left.min(WAIT_SLICE)) {
            return Ok(CheckedOut::Pooled(conn));
        }
    }
}

/// The database's own words for a failed login (the driver's message), without our wrapping.
fn cause_of(err: &RegistryError) -> String {
    match err {
        RegistryError::Connect { source, .. } => source.to_string(),
        other => chain(other),
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    /// The flag follows the latest login: set by a failure, cleared by a success.
    #[test]
    fn the_latest_login_decides() {
        let logins = Logins::default();
        assert!(!logins.refusing());
        logins.failed(&RegistryError::Startup("access denied".to_string()));
        assert!(logins.refusing());
        logins.succeeded();
        assert!(!logins.refusing());
    }

    /// While logins fail and the pool has no connection, a check-out answers at once with
    /// the cause, and the first one after the database accepts logins again succeeds.
    #[test]
    fn a_refused_login_fails_the_check_out_at_once_and_recovery_is_immediate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("no-such-dir").join("glance.sqlite");
        let url = DbUrl::parse(&format!("sqlite:///{}", missing.display())).expect("url");
        let logins = std::sync::Arc::new(Logins::default());
        let pool = r2d2::Pool::builder()
            .max_size(1)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(1))
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(ConnectionManager {
                url: url.clone(),
                logins: logins.clone(),
                statement_timeout: None,
            });
        let started = Instant::now();
        let err = check_out(&pool, &logins, &url, None, Duration::from_secs(30))
            .err()
            .expect("a database that cannot be opened");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        assert!(matches!(err, RegistryError::Refused { .. }), "{err:?}");
        assert!(err.to_string().contains("refuses"), "{err}");
        std::fs::create_dir(missing.parent().expect("parent")).expect("mkdir");
        let conn =
            check_out(&pool, &logins, &url, None, Duration::from_secs(30)).expect("recovered");
        assert!(matches!(conn, CheckedOut::Own(_) | CheckedOut::Pooled(_)));
        assert!(!logins.refusing());
    }
}
