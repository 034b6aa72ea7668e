//! All SQL lives under this module: the connection enum over the three backends, the pool
//! (`pool`), the SQLite group-commit thread (`committer`), the hand-made query nodes
//! (`nodes`), migrations, and one module per table group. Nothing outside `db` names a
//! Diesel type.

mod committer;
pub mod generations;
pub mod glance_releases;
pub mod images;
pub mod imports;
pub mod leases;
pub mod locations;
pub mod locked;
pub mod login;
pub mod members;
pub mod metadefs;
pub mod migrate;
mod nodes;
pub mod page;
mod pool;
pub mod purge;
pub mod rows;
pub mod schema;
mod socket;
#[cfg(feature = "sqlite")]
mod sqlite_timeout;
pub mod tags;
pub mod tasks;
pub mod url;

use diesel::prelude::*;

use crate::error::RegistryError;
#[cfg(feature = "mysql")]
pub use nodes::JoinedUpdate;
pub(crate) use nodes::any_of;
pub use nodes::{ANY_OF_CHUNK, FixedUpdate, InList, IntConst, NullText, UnionAll, Val, padded};
pub use pool::{ConnectionManager, DEFAULT_STATEMENT_TIMEOUT, Database, PoolOptions, PooledConn};
pub use url::{Backend, DbUrl};

#[cfg(not(any(feature = "sqlite", feature = "mysql", feature = "postgres")))]
compile_error!("glance-registry needs at least one of the features sqlite, mysql, postgres");

#[cfg(not(any(
    all(feature = "sqlite", feature = "mysql", feature = "postgres"),
    all(feature = "sqlite", not(feature = "mysql"), not(feature = "postgres")),
)))]
compile_error!("supported feature sets: sqlite,mysql,postgres (default) or sqlite alone");

/// One connection to whichever backend the URL chose. Diesel's derive does not carry
/// `cfg` attributes onto its generated code, so each supported feature set declares the
/// whole enum.
#[cfg(all(feature = "sqlite", feature = "mysql", feature = "postgres"))]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// SQLite.
    Sqlite(diesel::SqliteConnection),
    /// MySQL / MariaDB.
    Mysql(diesel::MysqlConnection),
    /// PostgreSQL.
    Postgres(diesel::PgConnection),
}

/// One connection to whichever backend the URL chose (SQLite-only build).
#[cfg(all(feature = "sqlite", not(feature = "mysql"), not(feature = "postgres")))]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// SQLite.
    Sqlite(diesel::SqliteConnection),
}

/// The Diesel backend type of [`DbConnection`], for boxed queries.
pub type Db = MultiBackend;

/// Runs `$body` on the concrete connection inside a [`DbConnection`], with `$backend` naming
/// its Diesel backend type. Queries through the `DbConnection` enum itself pay for it on
/// every call: Diesel's multi-connection layer renders the whole SQL text again to collect
/// the binds and checks it for caching, and copies each row; on the hot read paths (a show,
/// a page's children) that was a fifth of glance-registry's time.
macro_rules! on_backend {
    ($conn:expr, |$c:ident, $backend:ident| $body:block) => {
        match $conn {
            #[cfg(feature = "sqlite")]
            $crate::db::DbConnection::Sqlite($c) => {
                type $backend = diesel::sqlite::Sqlite;
                $body
            }
            #[cfg(feature = "mysql")]
            $crate::db::DbConnection::Mysql($c) => {
                type $backend = diesel::mysql::Mysql;
                $body
            }
            #[cfg(feature = "postgres")]
            $crate::db::DbConnection::Postgres($c) => {
                type $backend = diesel::pg::Pg;
                $body
            }
        }
    };
}
pub(crate) use on_backend;

/// Runs `f` in a database transaction (a savepoint when one is already open, as inside a
/// [`Database::write`] batch).
pub fn transaction<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    conn.transaction(f)
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::Integer;

    fn used(conn: &mut SqliteConnection, option: &str) -> i32 {
        diesel::select(diesel::dsl::sql::<Integer>(&format!(
            "sqlite_compileoption_used('{option}')"
        )))
        .get_result(conn)
        .expect("sqlite_compileoption_used")
    }

    /// `.cargo/config.toml` builds the bundled SQLite without per-connection mutexes, without
    /// allocation statistics and with a page cache per connection; a build that lost those
    /// flags would still work, only slower, so this checks that they reached the library.
    #[test]
    fn bundled_sqlite_has_the_workspace_build_flags() {
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
        assert_eq!(used(&mut conn, "THREADSAFE=2"), 1, "SQLITE_THREADSAFE=2");
        assert_eq!(used(&mut conn, "THREADSAFE=1"), 0, "SQLITE_THREADSAFE=1");
        assert_eq!(
            used(&mut conn, "DEFAULT_MEMSTATUS=0"),
            1,
            "SQLITE_DEFAULT_MEMSTATUS=0"
        );
    }
}
