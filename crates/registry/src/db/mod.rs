//! All SQL lives under this module: the connection enum over the three backends, the pool,
//! migrations, and one module per table group. Nothing outside `db` names a Diesel type.

pub mod images;
pub mod leases;
pub mod members;
pub mod migrate;
pub mod page;
pub mod purge;
pub mod rows;
pub mod schema;
pub mod tags;
pub mod url;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::error::RegistryError;
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

/// Most ids one [`any_of!`] condition names; a longer list is queried in chunks of this size.
pub const ANY_OF_CHUNK: usize = 64;

/// The ids of one [`any_of!`] condition, padded with copies of the last id to the next power
/// of two, so that a handful of SQL texts serve every list length.
pub fn padded(ids: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = ids.iter().map(String::as_str).collect();
    if let Some(last) = out.last().copied() {
        out.resize(out.len().next_power_of_two(), last);
    }
    out
}

/// `column = ? OR column = ? …` over [`padded`] ids, boxed for `table` on backend `$backend`.
/// Diesel's `eq_any` with a list is never kept as a prepared statement (its SQL changes with
/// the list's length), so a query using it is parsed and planned again on every call; these
/// conditions are kept. At most [`ANY_OF_CHUNK`] ids, well inside SQLite's depth limit.
macro_rules! any_of {
    ($backend:ty, $table:ident, $column:expr, $ids:expr) => {{
        let ids = $crate::db::padded($ids);
        debug_assert!(!ids.is_empty() && ids.len() <= $crate::db::ANY_OF_CHUNK);
        ids.into_iter()
            .map(
                |id| -> Box<
                    dyn diesel::BoxableExpression<
                            $table::table,
                            $backend,
                            SqlType = diesel::sql_types::Bool,
                        >,
                > { Box::new($column.eq(id.to_string())) },
            )
            .reduce(|a, b| Box::new(a.or(b)))
            .expect("any_of! needs at least one id")
    }};
}
pub(crate) use any_of;

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

impl DbConnection {
    /// Opens a connection of the variant the URL's scheme selects and applies session setup.
    pub fn open(url: &DbUrl) -> Result<Self, RegistryError> {
        let connect_err = |source| RegistryError::Connect {
            url: url.to_string(),
            source,
        };
        let mut conn = match url.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => Self::Sqlite(
                diesel::SqliteConnection::establish(&url.diesel_url).map_err(connect_err)?,
            ),
            #[cfg(feature = "mysql")]
            Backend::Mysql => Self::Mysql(
                diesel::MysqlConnection::establish(&url.diesel_url).map_err(connect_err)?,
            ),
            #[cfg(feature = "postgres")]
            Backend::Postgres => Self::Postgres(
                diesel::PgConnection::establish(&url.diesel_url).map_err(connect_err)?,
            ),
            #[cfg_attr(
                all(feature = "sqlite", feature = "mysql", feature = "postgres"),
                expect(unreachable_patterns, reason = "every backend is compiled in")
            )]
            other => {
                return Err(RegistryError::BackendNotCompiled {
                    backend: other.name(),
                });
            }
        };
        conn.session_setup()?;
        Ok(conn)
    }

    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => Backend::Sqlite,
            #[cfg(feature = "mysql")]
            Self::Mysql(_) => Backend::Mysql,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    fn session_setup(&mut self) -> Result<(), RegistryError> {
        let sql = match self.backend() {
            // Foreign keys are off by default in SQLite; wait for writers instead of failing.
            Backend::Sqlite => "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 15000;",
            // Strict mode turns silent truncation into errors; all our timestamps are UTC.
            Backend::Mysql => {
                "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00', \
                 optimizer_switch = 'index_merge_intersection=off'; \
                 SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED;"
            }
            Backend::Postgres => "SET TIME ZONE 'UTC';",
        };
        self.batch_execute(sql)?;
        Ok(())
    }
}

/// A turn-taking lock for write transactions.
type Lane = std::sync::Arc<std::sync::Mutex<()>>;

thread_local! {
    /// The write lane of the database whose [`Database::run`] closure this thread is running.
    static LANE: std::cell::RefCell<Option<Lane>> = const { std::cell::RefCell::new(None) };
}

/// Sets [`LANE`] for one `Database::run` closure, and clears it however the closure ends.
struct LaneGuard;

impl LaneGuard {
    fn enter(lane: Option<Lane>) -> Self {
        LANE.with(|l| *l.borrow_mut() = lane);
        Self
    }
}

impl Drop for LaneGuard {
    fn drop(&mut self) {
        LANE.with(|l| *l.borrow_mut() = None);
    }
}

/// Runs `f` in a database transaction. On SQLite, the transaction first waits for its turn
/// in the process's write lane: SQLite admits one writer per file, and a writer that finds
/// it taken sleeps in steps of 1 to 100 ms before trying again, which made the slowest
/// creates wait 80 ms under 16 concurrent writers. Queued on the lane, the next writer
/// starts the moment the last one commits; the wait covers only the transaction, not the
/// reads around it. Other processes on the same file are still handled by busy_timeout.
pub fn transaction<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    // Taken out while held, so a nested transaction (a savepoint) does not wait on itself.
    let lane = LANE.with(|l| l.borrow_mut().take());
    let result = {
        // A writer that panicked left no transaction open (Diesel rolls back on unwind), so
        // a poisoned lane is still a valid turn.
        let _turn = lane
            .as_ref()
            .map(|l| l.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        conn.transaction(f)
    };
    LANE.with(|l| *l.borrow_mut() = lane);
    result
}

/// Opens pooled connections by URL scheme (never by trying each backend in turn).
#[derive(Debug)]
pub struct ConnectionManager {
    url: DbUrl,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = RegistryError;

    fn connect(&self) -> Result<DbConnection, RegistryError> {
        DbConnection::open(&self.url)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), RegistryError> {
        conn.batch_execute("SELECT 1").map_err(RegistryError::from)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

/// Pool settings (`[database] max_pool_size`, `pool_timeout`).
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Connections kept at most.
    pub max_size: u32,
    /// How long a request waits for a free connection before a 503.
    pub timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 10,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The registry's handle on the database: a pool and the backend it talks to.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<ConnectionManager>,
    url: DbUrl,
    /// SQLite only: this process's write transactions take turns here (see [`transaction`]).
    write_lane: Option<Lane>,
    /// One permit per pooled connection: a request waits here, without a thread, before its
    /// closure goes to the blocking pool. Waiting in `pool.get()` instead parked one blocking
    /// thread per waiting request (75 threads and 250 MiB of RSS at 64 concurrent lists).
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// How long a request waits for a slot (`pool_timeout`).
    wait: Duration,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("url", &self.url).finish()
    }
}

impl Database {
    /// Builds the pool and checks one connection can be opened, so a bad password or an
    /// unreachable server is reported at start-up.
    pub fn connect(url: &DbUrl, opts: PoolOptions) -> Result<Self, RegistryError> {
        // Open one connection directly first: r2d2 would only report a timeout.
        drop(DbConnection::open(url)?);
        let max_size = match url.backend {
            // One SQLite file: many writers only queue on its lock.
            Backend::Sqlite => opts.max_size.min(4),
            _ => opts.max_size,
        };
        let pool = r2d2::Pool::builder()
            .max_size(max_size.max(1))
            // A SQLite file cannot go away under an open connection; a server connection can.
            .test_on_check_out(url.backend != Backend::Sqlite)
            .min_idle(Some(1))
            .connection_timeout(opts.timeout)
            .build(ConnectionManager { url: url.clone() })?;
        Ok(Self {
            pool,
            url: url.clone(),
            write_lane: (url.backend == Backend::Sqlite)
                .then(|| std::sync::Arc::new(std::sync::Mutex::new(()))),
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(max_size.max(1) as usize)),
            wait: opts.timeout,
        })
    }

    /// How many queries may run at once (the pool's size): no worker needs more blocking
    /// threads than this.
    pub fn slots(&self) -> usize {
        self.pool.max_size() as usize
    }

    /// The URL this database was opened with (password hidden when displayed).
    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// A connection for synchronous callers (glance-manage, tests).
    pub fn get(&self) -> Result<r2d2::PooledConnection<ConnectionManager>, RegistryError> {
        Ok(self.pool.get()?)
    }

    /// Runs a short read (never a write: it does not take the write lane): on SQLite, on the calling thread when a pooled connection is free
    /// at once; otherwise (other backends, or every connection busy) as [`Database::run`].
    /// Only for bounded lookups (a handful of index probes, tens of microseconds): handing
    /// such a read to the blocking pool and back cost more than the read itself. A SQLite
    /// reader in WAL mode does not wait for writers, and a server database is never called
    /// from here, so the calling worker is never parked on a lock or a network round trip.
    pub async fn read_now<F, T>(&self, f: F) -> Result<T, RegistryError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, RegistryError> + Send + 'static,
        T: Send + 'static,
    {
        if self.url.backend == Backend::Sqlite
            && let Some(mut conn) = self.pool.try_get()
        {
            return f(&mut conn);
        }
        self.run(f).await
    }

    /// Runs a closure with a pooled connection on actix's blocking pool. Its
    /// [`transaction`]s take this database's write lane, if it has one.
    pub async fn run<F, T>(&self, f: F) -> Result<T, RegistryError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, RegistryError> + Send + 'static,
        T: Send + 'static,
    {
        let slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| RegistryError::Busy(self.wait.as_secs()))?
            .map_err(|_| RegistryError::Cancelled)?;
        let pool = self.pool.clone();
        let lane = self.write_lane.clone();
        actix_web::web::block(move || {
            let _slot = slot;
            let mut conn = pool.get()?;
            let _lane = LaneGuard::enter(lane);
            f(&mut conn)
        })
        .await
        .map_err(|_| RegistryError::Cancelled)?
    }
}
