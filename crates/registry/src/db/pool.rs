//! The pool and connection setup: opening a connection of the backend the URL names, its
//! session settings and statement timeout, the pooled connection and its liveness checks,
//! and [`Database`], the registry's handle that runs reads on the blocking pool and hands
//! writes to the committer on SQLite. No query of the catalogue lives here.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::committer::{WriteJob, commit_loop};
#[cfg(feature = "sqlite")]
use super::sqlite_timeout;
use super::{Backend, DbConnection, DbUrl, login, socket, transaction};
use crate::error::RegistryError;

impl DbConnection {
    /// Opens a connection of the variant the URL's scheme selects and applies session setup.
    pub fn open(url: &DbUrl) -> Result<Self, RegistryError> {
        let connect_err = |source| RegistryError::Connect {
            url: url.to_string(),
            source,
        };
        let mut conn = match url.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => {
                // Before the first SQLite connection opens (see `set_statement_timeout`).
                sqlite_timeout::install();
                Self::Sqlite(
                    diesel::SqliteConnection::establish(&url.diesel_url).map_err(connect_err)?,
                )
            }
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

    /// [`DbConnection::open`], then [`DbConnection::set_statement_timeout`]: a connection
    /// that serves requests.
    pub fn open_limited(
        url: &DbUrl,
        statement_timeout: Option<Duration>,
    ) -> Result<Self, RegistryError> {
        let mut conn = Self::open(url)?;
        conn.set_statement_timeout(statement_timeout)?;
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
            // The database file is read through a memory map (up to SQLite's own ceiling of
            // 2 GiB) rather than one pread(2) and copy per page outside the connection's
            // 2 MiB page cache: at 200,000 images (a 900 MB file) those reads were 18% of
            // the registry's time per uncached show (perf), and they grow with the file.
            // SQLite's caveat: an I/O error on the file becomes SIGBUS instead of an error.
            Backend::Sqlite => {
                "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 15000; PRAGMA mmap_size = 2147418112;"
            }
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

    /// Stops any statement on this connection that runs longer than `limit` (`None`: no
    /// limit), which then fails with an error mapped to 503 (see
    /// [`crate::error::DbFailure::Timeout`]): MariaDB's `max_statement_time` (MySQL's
    /// `max_execution_time`, which covers SELECTs only), PostgreSQL's `statement_timeout`, and
    /// on SQLite a progress handler (see [`sqlite_timeout`]).
    pub fn set_statement_timeout(&mut self, limit: Option<Duration>) -> Result<(), RegistryError> {
        // Milliseconds for the servers; 0 turns their limit off.
        #[cfg(any(feature = "mysql", feature = "postgres"))]
        let ms = limit.map_or(0, |l| l.as_millis().max(1));
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(c) => sqlite_timeout::set(c, limit)?,
            #[cfg(feature = "mysql")]
            Self::Mysql(c) => {
                let mariadb = format!("SET SESSION max_statement_time = {}", ms as f64 / 1000.0);
                if c.batch_execute(&mariadb).is_err() {
                    c.batch_execute(&format!("SET SESSION max_execution_time = {ms}"))?;
                }
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(c) => c.batch_execute(&format!("SET statement_timeout = {ms}"))?,
        }
        Ok(())
    }

    /// This connection's TCP socket (see [`socket`]): the server says which port the session
    /// comes from and which it listens on. `None` over a Unix socket, through a proxy, or
    /// when the server cannot say.
    fn find_socket(&mut self) -> Option<socket::Socket> {
        #[derive(QueryableByName)]
        struct Ports {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            client_port: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            server_port: Option<String>,
        }
        let sql = match self.backend() {
            Backend::Sqlite => return None,
            // `host` is "address:port" for a TCP client, "localhost" over the Unix socket.
            Backend::Mysql => {
                "SELECT SUBSTRING_INDEX(host, ':', -1) AS client_port, \
                 CAST(@@port AS CHAR) AS server_port \
                 FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
            }
            Backend::Postgres => {
                "SELECT CAST(inet_client_port() AS TEXT) AS client_port, \
                 CAST(inet_server_port() AS TEXT) AS server_port"
            }
        };
        let ports: Ports = diesel::sql_query(sql).get_result(self).ok()?;
        let client = ports.client_port?.parse().ok()?;
        let server = ports.server_port?.parse().ok()?;
        socket::Socket::find(client, server)
    }
}

/// How long a pooled connection may sit unused and still be handed out on its socket's word
/// alone (see [`socket`]); one idle longer is pinged first, since a network path can drop a
/// connection without a word (a firewall forgetting an idle flow).
const TRUST_QUIET_SOCKET_FOR: Duration = Duration::from_secs(10);

/// A pooled connection, with what the pool knows of it. Dereferences to the connection.
pub struct PooledConn {
    conn: DbConnection,
    /// Its TCP socket, when found (server databases only).
    socket: Option<socket::Socket>,
    /// When it was opened or last given back to the pool.
    given_back: std::time::Instant,
}

impl PooledConn {
    fn open(url: &DbUrl, statement_timeout: Option<Duration>) -> Result<Self, RegistryError> {
        let mut conn = DbConnection::open_limited(url, statement_timeout)?;
        let socket = conn.find_socket();
        if socket.is_none() && url.backend != Backend::Sqlite {
            log::debug!(
                "no socket found for a new database connection: it is pinged at each check-out"
            );
        }
        Ok(Self {
            conn,
            socket,
            given_back: std::time::Instant::now(),
        })
    }

    /// Whether the pool checks this connection through its socket rather than with a ping.
    pub fn watches_its_socket(&self) -> bool {
        self.socket.is_some()
    }
}

impl std::ops::Deref for PooledConn {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

/// Opens pooled connections by URL scheme (never by trying each backend in turn), and
/// records each login's outcome in [`login::Logins`].
#[derive(Debug)]
pub struct ConnectionManager {
    pub(super) url: DbUrl,
    pub(super) logins: std::sync::Arc<login::Logins>,
    /// Given to each connection opened (see [`DbConnection::set_statement_timeout`]).
    pub(super) statement_timeout: Option<Duration>,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = PooledConn;
    type Error = RegistryError;

    fn connect(&self) -> Result<PooledConn, RegistryError> {
        let conn = PooledConn::open(&self.url, self.statement_timeout);
        match &conn {
            Ok(_) => self.logins.succeeded(),
            Err(e) => self.logins.failed(e),
        }
        conn
    }

    /// A connection given back moments ago whose socket is quiet is alive: no round trip.
    /// Any other is pinged (`SELECT 1`, as oslo.db's pre-ping), and a dead one is replaced.
    fn is_valid(&self, conn: &mut PooledConn) -> Result<(), RegistryError> {
        if conn.given_back.elapsed() < TRUST_QUIET_SOCKET_FOR
            && conn.socket.as_ref().is_some_and(socket::Socket::is_quiet)
        {
            return Ok(());
        }
        conn.conn
            .batch_execute("SELECT 1")
            .map_err(RegistryError::from)
    }

    /// A connection given back with a transaction still open (a closure panicked inside it)
    /// is closed, never handed to the next caller mid-transaction.
    fn has_broken(&self, conn: &mut PooledConn) -> bool {
        use diesel::connection::TransactionManager;
        conn.given_back = std::time::Instant::now();
        <DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(
            &mut conn.conn,
        )
    }
}

/// Longest gap between two of the pool's background login retries while the database
/// refuses logins (r2d2 backs off up to half its connection timeout).
const POOL_RETRY_CAP: Duration = Duration::from_millis(500);

/// Pool settings (`[database] max_pool_size`, `pool_timeout`).
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Connections kept at most.
    pub max_size: u32,
    /// How long a request waits for a free connection before a 503.
    pub timeout: Duration,
    /// Longest a statement may run before the database stops it (a 503):
    /// `[database] statement_timeout`. `None` (glance-manage: migrations and purges may
    /// rightly take long) sets no limit.
    pub statement_timeout: Option<Duration>,
}

/// The default `[database] statement_timeout`: long past any statement a request should
/// need (a page of a list takes milliseconds), short enough that a runaway one cannot hold
/// a pooled connection for long.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 10,
            timeout: Duration::from_secs(30),
            statement_timeout: Some(DEFAULT_STATEMENT_TIMEOUT),
        }
    }
}

/// The registry's handle on the database: a pool and the backend it talks to.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<ConnectionManager>,
    url: DbUrl,
    /// SQLite only: the queue of the committer thread (see [`commit_loop`]).
    writer: Option<std::sync::mpsc::Sender<WriteJob>>,
    /// One permit per pooled connection: a request waits here, without a thread, before its
    /// closure goes to the blocking pool. Waiting in `pool.get()` instead parked one blocking
    /// thread per waiting request (75 threads and 250 MiB of RSS at 64 concurrent lists).
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// How long a request waits for a slot (`pool_timeout`).
    wait: Duration,
    /// The outcome of the latest login (see [`login`]).
    logins: std::sync::Arc<login::Logins>,
    /// `[database] statement_timeout`, for connections opened outside the pool too.
    statement_timeout: Option<Duration>,
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
        let logins = std::sync::Arc::new(login::Logins::default());
        let pool = r2d2::Pool::builder()
            .max_size(max_size.max(1))
            // A SQLite file cannot go away under an open connection; a server connection can.
            .test_on_check_out(url.backend != Backend::Sqlite)
            .min_idle(Some(1))
            // Waits are bounded by `login::check_out` (and `opts.timeout`), not by r2d2. Its
            // connection timeout still caps the gap between its background login retries at
            // half of it: short, so a refilled pool follows a database that accepts logins
            // again within half a second.
            .connection_timeout(POOL_RETRY_CAP * 2)
            // Each failed login is logged once per outage by `login::Logins`, not per retry.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            // The connection opened above proved the database reachable; waiting here for
            // `min_idle` would bound a slow login by the short timeout above.
            .build_unchecked(ConnectionManager {
                url: url.clone(),
                logins: logins.clone(),
                statement_timeout: opts.statement_timeout,
            });
        Ok(Self {
            pool,
            url: url.clone(),
            writer: if url.backend == Backend::Sqlite {
                Some(Self::start_committer(url, opts.statement_timeout)?)
            } else {
                None
            },
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(max_size.max(1) as usize)),
            wait: opts.timeout,
            logins,
            statement_timeout: opts.statement_timeout,
        })
    }

    fn start_committer(
        url: &DbUrl,
        statement_timeout: Option<Duration>,
    ) -> Result<std::sync::mpsc::Sender<WriteJob>, RegistryError> {
        let conn = DbConnection::open_limited(url, statement_timeout)?;
        let (tx, rx) = std::sync::mpsc::channel::<WriteJob>();
        let url = url.clone();
        // The thread ends when the last clone of this database (and its sender) is dropped.
        std::thread::Builder::new()
            .name("db-committer".to_string())
            .spawn(move || commit_loop(&url, statement_timeout, Some(conn), &rx))
            .map_err(|e| {
                RegistryError::Startup(format!("cannot start the database writer: {e}"))
            })?;
        Ok(tx)
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
        Ok(self.pool.get_timeout(self.wait)?)
    }

    /// Runs a short read (never a write): on SQLite, on the calling thread when a pooled
    /// connection is free at once; otherwise (other backends, or every connection busy) as [`Database::run`].
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

    /// Runs a closure with a pooled connection on actix's blocking pool. For writes use
    /// [`Database::write`].
    pub async fn run<F, T>(&self, f: F) -> Result<T, RegistryError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, RegistryError> + Send + 'static,
        T: Send + 'static,
    {
        let slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| RegistryError::Busy(self.wait.as_secs()))?
            .map_err(|_| RegistryError::Cancelled)?;
        let (pool, logins, url, statement_timeout, wait) = (
            self.pool.clone(),
            self.logins.clone(),
            self.url.clone(),
            self.statement_timeout,
            self.wait,
        );
        actix_web::web::block(move || {
            let _slot = slot;
            let mut conn = login::check_out(&pool, &logins, &url, statement_timeout, wait)?;
            f(&mut conn)
        })
        .await
        .map_err(|_| RegistryError::Cancelled)?
    }

    /// Runs a write, a closure that makes its changes in one [`transaction`]. On SQLite it goes
    /// to the committer (see [`commit_loop`]), in a savepoint of its own, and is answered once
    /// its batch has committed; on a server database it runs as [`Database::run`] (their
    /// servers commit concurrent transactions together themselves).
    pub async fn write<F, T>(&self, f: F) -> Result<T, RegistryError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, RegistryError> + Send + 'static,
        T: Send + 'static,
    {
        let Some(writer) = &self.writer else {
            return self.run(f).await;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let result = transaction(conn, f);
            Box::new(move |committed: Result<(), &str>| {
                let answer = match committed {
                    Ok(()) => result,
                    // A write that failed was undone on its own; its own error says more.
                    Err(why) => {
                        result.and_then(|_| Err(RegistryError::NotCommitted(why.to_string())))
                    }
                };
                // The caller may have gone (client hung up); the write stands either way.
                let _ = tx.send(answer);
            })
        });
        writer.send(job).map_err(|_| {
            RegistryError::NotCommitted("the database writer has stopped".to_string())
        })?;
        rx.await.map_err(|_| {
            RegistryError::NotCommitted(
                "the database writer could not run this change; retry".to_string(),
            )
        })?
    }
}
