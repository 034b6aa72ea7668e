//! The registry's error type: what failed, with its cause, and the kind each failure maps to.

use glance_model::{ErrorKind, ModelError};

/// Everything that can go wrong in glance-registry and glance-manage.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A rule of the model or of the registry protocol was broken.
    #[error(transparent)]
    Rule(#[from] ModelError),
    /// The configured database URL cannot be used.
    #[error("database URL {url} cannot be used: {reason}")]
    BadDatabaseUrl {
        /// The URL with its password hidden.
        url: String,
        /// Why.
        reason: String,
    },
    /// The URL names a backend this build does not include.
    #[error(
        "this build of glance-registry has no {backend} support; rebuild with the '{backend}' feature"
    )]
    BackendNotCompiled {
        /// The backend's name.
        backend: &'static str,
    },
    /// The database server refused or could not be reached.
    #[error("cannot connect to the database at {url}")]
    Connect {
        /// The URL with its password hidden.
        url: String,
        /// The driver's reason.
        #[source]
        source: diesel::ConnectionError,
    },
    /// No pooled connection became free in time, or none could be opened.
    #[error("no database connection available")]
    Pool(#[from] r2d2::Error),
    /// The database refused the latest login (a changed password, a locked account, a server
    /// that is down), and no pooled connection was free: answered at once, not after a wait.
    #[error("the database at {url} refuses connections: {cause}")]
    Refused {
        /// The URL with its password hidden.
        url: String,
        /// The database's reason, as its driver gave it.
        cause: String,
    },
    /// Every database slot stayed taken for `pool_timeout`.
    #[error("no database connection became free within {0} s")]
    Busy(u64),
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] diesel::result::Error),
    /// Applying or reading migrations failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The schema is older than this build expects.
    #[error("the database schema is not up to date ({0}); run `glance-manage db_sync`")]
    SchemaOutdated(String),
    /// A write was not made: its batch's commit failed, or the writer could not run it.
    #[error("the change was not saved: {0}")]
    NotCommitted(String),
    /// The blocking worker running a query went away.
    #[error("database worker was cancelled")]
    Cancelled,
    /// Reading configuration or binding a socket failed.
    #[error("{0}")]
    Startup(String),
    /// A configuration file is unreadable or holds a bad value.
    #[error(transparent)]
    Config(#[from] glance_config::ConfigError),
}

impl RegistryError {
    /// A rule error of the given kind.
    pub fn rule(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Rule(ModelError::new(kind, message))
    }

    /// A 404-kind error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::rule(ErrorKind::NotFound, message)
    }

    /// A 409-kind error.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::rule(ErrorKind::Conflict, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Rule(e) => e.kind(),
            Self::Connect { .. }
            | Self::Refused { .. }
            | Self::Pool(_)
            | Self::Busy(_)
            | Self::NotCommitted(_) => ErrorKind::Unavailable,
            Self::SchemaOutdated(_) => ErrorKind::Unavailable,
            Self::Query(diesel::result::Error::NotFound) => ErrorKind::NotFound,
            Self::Query(diesel::result::Error::DatabaseError(kind, info)) => match kind {
                diesel::result::DatabaseErrorKind::UniqueViolation => ErrorKind::Conflict,
                diesel::result::DatabaseErrorKind::SerializationFailure => ErrorKind::Conflict,
                diesel::result::DatabaseErrorKind::ClosedConnection => ErrorKind::Unavailable,
                _ if connection_lost(info.message()) => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            Self::BadDatabaseUrl { .. }
            | Self::BackendNotCompiled { .. }
            | Self::Query(_)
            | Self::Migration(_)
            | Self::Cancelled
            | Self::Startup(_)
            | Self::Config(_) => ErrorKind::Internal,
        }
    }

    /// The message shown to clients: rule errors verbatim, others a safe summary.
    pub fn public_message(&self) -> String {
        match self.kind() {
            ErrorKind::Internal => "The registry hit an internal error; see its log".to_string(),
            ErrorKind::Unavailable => format!("The image database is unavailable: {self}"),
            ErrorKind::Conflict if matches!(self, Self::Query(_)) => {
                "The change conflicts with another one made at the same time; retry".to_string()
            }
            _ => self.to_string(),
        }
    }
}

/// Whether a database error says the connection to the server was lost mid-request. Diesel
/// reports MariaDB/MySQL's client errors 2006 and 2013 as `Unknown`; their messages are the
/// client library's fixed text.
fn connection_lost(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["server has gone away", "lost connection to"]
        .iter()
        .any(|m| message.contains(m))
}

/// The cause chain of an error, joined for one log line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error};
    use glance_model::ErrorKind;

    use super::RegistryError;

    fn unknown(message: &str) -> RegistryError {
        RegistryError::Query(Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(message.to_string()),
        ))
    }

    /// A connection lost in the middle of a request is the database being unavailable (503,
    /// retry), not an internal error; other unknown database errors stay internal.
    #[test]
    fn a_lost_server_connection_is_unavailable() {
        for lost in [
            "MySQL server has gone away",
            "Server has gone away",
            "Lost connection to server during query",
            "Lost connection to MySQL server at 'reading initial communication packet'",
        ] {
            assert_eq!(unknown(lost).kind(), ErrorKind::Unavailable, "{lost}");
        }
        assert_eq!(
            unknown("Table 'glance.images' doesn't exist").kind(),
            ErrorKind::Internal
        );
    }
}
