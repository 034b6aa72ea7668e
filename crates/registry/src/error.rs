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
    /// Stored data cannot be read back: a row holds a value no writer of this registry makes
    /// (an unknown status, a malformed id, properties or tags that are not the JSON written).
    /// The row is not changed; the client gets a 500 and the log names the row and value.
    #[error("stored image data cannot be read: {0}")]
    Corrupt(String),
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

glance_model::rule_constructors!(RegistryError);

impl RegistryError {
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
            Self::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                DbFailure::classify(*kind, info.message()).kind()
            }
            Self::BadDatabaseUrl { .. }
            | Self::BackendNotCompiled { .. }
            | Self::Query(_)
            | Self::Migration(_)
            | Self::Corrupt(_)
            | Self::Cancelled
            | Self::Startup(_)
            | Self::Config(_) => ErrorKind::Internal,
        }
    }

    /// The message shown to clients: rule errors verbatim, others a safe summary.
    pub fn public_message(&self) -> String {
        if let Self::Query(diesel::result::Error::DatabaseError(kind, info)) = self
            && let Some(message) = DbFailure::classify(*kind, info.message()).public_message()
        {
            return message.to_string();
        }
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

/// What a database error means for the client, decided here once for every backend.
/// Diesel names only a few classes (`UniqueViolation`, …) and reports the rest as `Unknown`
/// with the server's or library's fixed message text, so those are recognised by that text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// A constraint refused the change (unique, foreign key, serialization): 409.
    Conflict,
    /// A value did not fit its column or type (MySQL 1406/1264, PostgreSQL 22001/22003),
    /// or broke a NOT NULL or CHECK constraint: 400. The model checks lengths before any
    /// statement runs, so this is a backstop.
    BadValue,
    /// The statement was too large or too deep for the database (SQLite's expression-depth
    /// and variable limits, PostgreSQL's stack depth, MySQL's placeholder limit): 400.
    TooComplex,
    /// The statement ran past `[database] statement_timeout` and was stopped: 503.
    Timeout,
    /// The connection to the server was lost mid-request (MariaDB/MySQL client errors 2006
    /// and 2013, PostgreSQL's session terminated, a closed connection): 503.
    ConnectionLost,
    /// Anything else: 500, logged with its cause.
    Other,
}

impl DbFailure {
    /// Classifies one database error by Diesel's kind and the database's message.
    pub fn classify(kind: diesel::result::DatabaseErrorKind, message: &str) -> Self {
        use diesel::result::DatabaseErrorKind as K;
        match kind {
            K::UniqueViolation | K::ForeignKeyViolation | K::SerializationFailure => {
                return Self::Conflict;
            }
            K::NotNullViolation | K::CheckViolation => return Self::BadValue,
            K::ClosedConnection => return Self::ConnectionLost,
            _ => {}
        }
        let message = message.to_ascii_lowercase();
        let says = |texts: &[&str]| texts.iter().any(|t| message.contains(t));
        if says(&[
            // MariaDB/MySQL client errors 2006 and 2013.
            "server has gone away",
            "lost connection to",
            // PostgreSQL: the session was ended under the query (57P01, `pg_terminate_backend`,
            // a server shutdown) or the socket closed.
            "terminating connection due to",
            "server closed the connection unexpectedly",
            "no connection to the server",
        ]) {
            Self::ConnectionLost
        } else if says(&[
            // SQLite's answer when the progress handler stops a statement.
            "interrupted",
            // MariaDB (1969) and MySQL (3024).
            "max_statement_time exceeded",
            "maximum statement execution time exceeded",
            // PostgreSQL (57014).
            "canceling statement due to statement timeout",
        ]) {
            Self::Timeout
        } else if says(&[
            "expression tree is too large",
            "too many sql variables",
            "too many terms in compound select",
            "parser stack overflow",
            "string or blob too big",
            "stack depth limit exceeded",
            "number of parameters must be between",
            "too many placeholders",
            "thread stack overrun",
        ]) {
            Self::TooComplex
        } else if says(&[
            "data too long",
            "value too long for type",
            "out of range value",
            "out of range for type",
            "incorrect string value",
            // PostgreSQL 22021: a NUL or an invalid UTF-8 sequence in a text value.
            "invalid byte sequence for encoding",
        ]) {
            Self::BadValue
        } else {
            Self::Other
        }
    }

    /// The kind of error this is.
    pub fn kind(self) -> ErrorKind {
        match self {
            Self::Conflict => ErrorKind::Conflict,
            Self::BadValue | Self::TooComplex => ErrorKind::BadRequest,
            Self::Timeout | Self::ConnectionLost => ErrorKind::Unavailable,
            Self::Other => ErrorKind::Internal,
        }
    }

    /// What the client is told, for the classes whose general message would not help it act.
    fn public_message(self) -> Option<&'static str> {
        match self {
            Self::BadValue => Some(
                "A value in the request does not fit the image database: it is too long, out \
                 of range, or holds a character the database refuses (such as NUL); correct it \
                 and retry",
            ),
            Self::TooComplex => Some(
                "The request is too complex for the image database: use fewer filters or \
                 shorter lists",
            ),
            Self::Timeout => Some(
                "The image database stopped a statement that ran past its time limit \
                 ([database] statement_timeout); retry, or narrow the request",
            ),
            Self::Conflict | Self::ConnectionLost | Self::Other => None,
        }
    }
}

/// The cause chain of an error, joined for one log line (the shared plumbing's).
pub use glance_http::chain;

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

    /// Stored data that cannot be read back is its own failure, not a migration's: a 500
    /// whose public message keeps the row's contents in the log.
    #[test]
    fn unreadable_stored_data_is_corrupt_not_a_migration() {
        let e = crate::db::rows::parse_id("not-a-uuid").unwrap_err();
        assert!(matches!(e, RegistryError::Corrupt(_)), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(
            e.public_message(),
            "The registry hit an internal error; see its log"
        );
        assert_eq!(
            e.to_string(),
            "stored image data cannot be read: row with malformed image id 'not-a-uuid'"
        );
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

    /// Each class of database error is mapped once: permanent ones to 4xx (a retry would fail
    /// the same way), passing ones to 503, with a message the client can act on.
    #[test]
    fn database_errors_map_by_class() {
        for (message, kind, says) in [
            // MariaDB 1406 / PostgreSQL 22001 / MySQL 1264.
            (
                "Data too long for column 'value' at row 1",
                ErrorKind::BadRequest,
                "too long",
            ),
            (
                "value too long for type character varying(255)",
                ErrorKind::BadRequest,
                "too long",
            ),
            (
                "Out of range value for column 'min_ram' at row 1",
                ErrorKind::BadRequest,
                "out of range",
            ),
            (
                "Expression tree is too large (maximum depth 1000)",
                ErrorKind::BadRequest,
                "too complex",
            ),
            (
                "too many SQL variables",
                ErrorKind::BadRequest,
                "too complex",
            ),
            (
                "stack depth limit exceeded",
                ErrorKind::BadRequest,
                "too complex",
            ),
            (
                "invalid byte sequence for encoding \"UTF8\": 0x00",
                ErrorKind::BadRequest,
                "such as NUL",
            ),
            ("interrupted", ErrorKind::Unavailable, "statement_timeout"),
            (
                "Query execution was interrupted (max_statement_time exceeded)",
                ErrorKind::Unavailable,
                "statement_timeout",
            ),
            (
                "canceling statement due to statement timeout",
                ErrorKind::Unavailable,
                "statement_timeout",
            ),
        ] {
            let e = unknown(message);
            assert_eq!(e.kind(), kind, "{message}");
            assert!(
                e.public_message().contains(says),
                "{message}: {}",
                e.public_message()
            );
        }
        for lost in [
            "terminating connection due to administrator command",
            "server closed the connection unexpectedly",
        ] {
            assert_eq!(unknown(lost).kind(), ErrorKind::Unavailable, "{lost}");
        }
        let fk = RegistryError::Query(Error::DatabaseError(
            DatabaseErrorKind::ForeignKeyViolation,
            Box::new("FOREIGN KEY constraint failed".to_string()),
        ));
        assert_eq!(fk.kind(), ErrorKind::Conflict);
        let not_null = RegistryError::Query(Error::DatabaseError(
            DatabaseErrorKind::NotNullViolation,
            Box::new("NOT NULL constraint failed: images.status".to_string()),
        ));
        assert_eq!(not_null.kind(), ErrorKind::BadRequest);
    }
}
