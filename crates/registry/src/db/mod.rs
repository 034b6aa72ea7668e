//! All SQL lives under this module: the connection enum over the three backends, the pool,
//! migrations, and one module per table group. Nothing outside `db` names a Diesel type.

pub mod generations;
pub mod images;
pub mod leases;
pub mod login;
pub mod members;
pub mod migrate;
pub mod page;
pub mod purge;
pub mod rows;
pub mod schema;
mod socket;
#[cfg(feature = "sqlite")]
mod sqlite_timeout;
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

/// `column IN (?, ?, …)` over [`padded`] ids, boxed for `table` on backend `$backend`.
/// Diesel's own `eq_any` with a list marks its query as never to be kept prepared (its SQL
/// changes with the list's length), so the query is parsed and planned again on every call;
/// [`InList`] has a fixed SQL text per padded length, so these are kept. An `IN` list (not
/// `= ? OR = ?`) lets SQLite answer from a covering index alone. At most [`ANY_OF_CHUNK`] ids.
macro_rules! any_of {
    ($backend:ty, $table:ident, $column:expr, $ids:expr) => {{
        let ids = $crate::db::padded($ids);
        debug_assert!(!ids.is_empty() && ids.len() <= $crate::db::ANY_OF_CHUNK);
        let cond: Box<
            dyn diesel::BoxableExpression<
                    $table::table,
                    $backend,
                    SqlType = diesel::sql_types::Bool,
                >,
        > = Box::new($crate::db::InList::new(
            $column,
            ids.into_iter().map(str::to_string).collect(),
        ));
        cond
    }};
}
pub(crate) use any_of;

/// `column IN (?, …)` with one bind per value; see [`any_of!`]. An empty list is `1 = 0`.
#[derive(Debug, Clone)]
pub struct InList<C> {
    column: C,
    values: Vec<String>,
}

impl<C> InList<C> {
    /// The condition `column IN (values)`.
    pub fn new(column: C, values: Vec<String>) -> Self {
        Self { column, values }
    }
}

impl<C> diesel::expression::Expression for InList<C>
where
    C: diesel::expression::Expression<SqlType = diesel::sql_types::Text>,
{
    type SqlType = diesel::sql_types::Bool;
}

impl<C, QS> diesel::expression::AppearsOnTable<QS> for InList<C>
where
    C: diesel::expression::AppearsOnTable<QS>,
    Self: diesel::expression::Expression,
{
}

impl<C, QS> diesel::expression::SelectableExpression<QS> for InList<C>
where
    C: diesel::expression::SelectableExpression<QS>,
    Self: diesel::expression::AppearsOnTable<QS>,
{
}

impl<C, GB> diesel::expression::ValidGrouping<GB> for InList<C>
where
    C: diesel::expression::ValidGrouping<GB>,
{
    type IsAggregate = C::IsAggregate;
}

impl<C> diesel::query_builder::QueryId for InList<C> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C, DB> diesel::query_builder::QueryFragment<DB> for InList<C>
where
    DB: diesel::backend::Backend + diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    C: diesel::query_builder::QueryFragment<DB>,
    String: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        if self.values.is_empty() {
            out.push_sql("1 = 0");
            return Ok(());
        }
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" IN (");
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<diesel::sql_types::Text, _>(v)?;
        }
        out.push_sql(")");
        Ok(())
    }
}

/// A constant in a statement's SQL text, of SQL type `ST`: the integer `N`, or NULL when
/// `ST` is nullable text ([`NullText`]). Diesel's `sql()` literal marks its statement as never
/// to be kept prepared (its text could change); these have a fixed text, so it is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct IntConst<const N: i32>;

/// A NULL of type `Nullable<Text>` in a statement's SQL text; see [`IntConst`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NullText;

macro_rules! sql_const {
    ($ty:ty, [$($generics:tt)*], $sql_type:ty, |$this:ident| $text:expr) => {
        impl<$($generics)*> diesel::expression::Expression for $ty {
            type SqlType = $sql_type;
        }
        impl<$($generics)* QS> diesel::expression::AppearsOnTable<QS> for $ty {}
        impl<$($generics)* QS> diesel::expression::SelectableExpression<QS> for $ty {}
        impl<$($generics)* GB> diesel::expression::ValidGrouping<GB> for $ty {
            type IsAggregate = diesel::expression::is_aggregate::Never;
        }
        impl<$($generics)*> diesel::query_builder::QueryId for $ty {
            type QueryId = Self;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
        impl<$($generics)* DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB>
            for $ty
        {
            fn walk_ast<'b>(
                &'b self,
                mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
            ) -> diesel::QueryResult<()> {
                let $this = self;
                out.push_sql(&$text);
                Ok(())
            }
        }
    };
}

sql_const!(IntConst<N>, [const N: i32,], diesel::sql_types::Integer, |_this| N.to_string());
sql_const!(
    NullText,
    [],
    diesel::sql_types::Nullable<diesel::sql_types::Text>,
    |_this| "NULL"
);

/// `a UNION ALL b`, written flat, and so `UnionAll(a, UnionAll(b, c))` is
/// `a UNION ALL b UNION ALL c`. Diesel's own `union_all` puts each side in parentheses,
/// `((a) UNION ALL (b)) UNION ALL (c)`, which MariaDB answers by materialising the inner
/// union in a temporary table, on disk when a column is TEXT: a show's children took six
/// times as long as the three statements alone.
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId)]
pub struct UnionAll<A, B>(pub A, pub B);

impl<A, B> diesel::query_builder::Query for UnionAll<A, B>
where
    A: diesel::query_builder::Query,
    B: diesel::query_builder::Query<SqlType = A::SqlType>,
{
    type SqlType = A::SqlType;
}

impl<A, B, DB> diesel::query_builder::QueryFragment<DB> for UnionAll<A, B>
where
    DB: diesel::backend::Backend,
    A: diesel::query_builder::QueryFragment<DB>,
    B: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(" UNION ALL ");
        self.1.walk_ast(out.reborrow())
    }
}

impl<A, B, Conn> diesel::RunQueryDsl<Conn> for UnionAll<A, B> {}

/// One value in a [`FixedUpdate`]: a bound text, flag or time, or another column.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    /// A bound text.
    Text(&'a str),
    /// A bound flag.
    Bool(bool),
    /// A bound timestamp.
    Time(chrono::NaiveDateTime),
    /// The named column of the same row.
    Column(&'static str),
    /// A bound integer.
    Int(i32),
    /// The named column of the same row plus one.
    Incremented(&'static str),
    /// A bound 64-bit integer.
    BigInt(i64),
}

/// `UPDATE table SET c = v, … WHERE c = v AND …`, kept prepared. Diesel prepares every
/// UPDATE afresh on each call and closes it after (on MariaDB a `Prepare` round trip and a
/// `Close` per statement; a soft delete was six of them), because one of its Rust types can
/// give different SQL (a changeset that skips `None` fields), and it cannot be told
/// otherwise. This statement's text depends only on its table and column names, so it is
/// kept under that text (no static query id).
#[derive(Debug, Clone)]
pub struct FixedUpdate<'a> {
    /// The table.
    pub table: &'static str,
    /// `SET` assignments.
    pub set: &'a [(&'static str, Val<'a>)],
    /// `WHERE` equalities, joined by `AND`.
    pub filter: &'a [(&'static str, Val<'a>)],
}

impl diesel::query_builder::QueryId for FixedUpdate<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<'a> FixedUpdate<'a> {
    /// The `SET` assignments, then the `WHERE` equalities, each after its separator.
    fn pairs(&self) -> impl Iterator<Item = (&'static str, &(&'static str, Val<'a>))> + '_ {
        let set = self.set.iter().enumerate();
        let filter = self.filter.iter().enumerate();
        set.map(|(i, p)| (if i == 0 { " SET " } else { ", " }, p))
            .chain(filter.map(|(i, p)| (if i == 0 { " WHERE " } else { " AND " }, p)))
    }
}

/// A column, written `table`.`column` when `table` is given (a statement over two tables).
fn push_column<DB: diesel::backend::Backend>(
    out: &mut diesel::query_builder::AstPass<'_, '_, DB>,
    table: Option<&str>,
    column: &str,
) -> diesel::QueryResult<()> {
    if let Some(t) = table {
        out.push_identifier(t)?;
        out.push_sql(".");
    }
    out.push_identifier(column)
}

/// `column = value` after its separator, for each pair; a column a value names is of the
/// same table.
fn push_pairs<'b, 'a: 'b, DB>(
    out: &mut diesel::query_builder::AstPass<'_, 'b, DB>,
    table: Option<&'static str>,
    pairs: impl Iterator<Item = (&'static str, &'b (&'static str, Val<'a>))>,
) -> diesel::QueryResult<()>
where
    DB: diesel::backend::Backend,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Bool>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Timestamp>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Integer>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::BigInt>,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    i32: diesel::serialize::ToSql<diesel::sql_types::Integer, DB>,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
    bool: diesel::serialize::ToSql<diesel::sql_types::Bool, DB>,
    chrono::NaiveDateTime: diesel::serialize::ToSql<diesel::sql_types::Timestamp, DB>,
{
    for (separator, (column, value)) in pairs {
        out.push_sql(separator);
        push_column(out, table, column)?;
        out.push_sql(" = ");
        match value {
            Val::Text(v) => out.push_bind_param::<diesel::sql_types::Text, str>(v)?,
            Val::Bool(v) => out.push_bind_param::<diesel::sql_types::Bool, bool>(v)?,
            Val::Time(v) => out.push_bind_param::<diesel::sql_types::Timestamp, _>(v)?,
            Val::Column(c) => push_column(out, table, c)?,
            Val::Int(v) => out.push_bind_param::<diesel::sql_types::Integer, i32>(v)?,
            Val::Incremented(c) => {
                push_column(out, table, c)?;
                out.push_sql(" + 1");
            }
            Val::BigInt(v) => out.push_bind_param::<diesel::sql_types::BigInt, i64>(v)?,
        }
    }
    Ok(())
}

impl<DB> diesel::query_builder::QueryFragment<DB> for FixedUpdate<'_>
where
    DB: diesel::backend::Backend,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Bool>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Timestamp>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Integer>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::BigInt>,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    i32: diesel::serialize::ToSql<diesel::sql_types::Integer, DB>,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
    bool: diesel::serialize::ToSql<diesel::sql_types::Bool, DB>,
    chrono::NaiveDateTime: diesel::serialize::ToSql<diesel::sql_types::Timestamp, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        out.push_sql("UPDATE ");
        out.push_identifier(self.table)?;
        push_pairs(&mut out, None, self.pairs())
    }
}

/// Two [`FixedUpdate`]s as one MariaDB/MySQL multi-table `UPDATE a, b SET a.… , b.…
/// WHERE a.… AND b.…`: both rows change, atomically, or (when either filter matches no
/// row) neither does. Kept prepared under its text, as a `FixedUpdate` is.
#[cfg(feature = "mysql")]
#[derive(Debug, Clone)]
pub struct JoinedUpdate<'a>(pub FixedUpdate<'a>, pub FixedUpdate<'a>);

#[cfg(feature = "mysql")]
impl diesel::query_builder::QueryId for JoinedUpdate<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

#[cfg(feature = "mysql")]
impl<Conn> diesel::RunQueryDsl<Conn> for JoinedUpdate<'_> {}

#[cfg(feature = "mysql")]
impl diesel::query_builder::QueryFragment<diesel::mysql::Mysql> for JoinedUpdate<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::mysql::Mysql>,
    ) -> diesel::QueryResult<()> {
        let (a, b) = (&self.0, &self.1);
        out.push_sql("UPDATE ");
        out.push_identifier(a.table)?;
        out.push_sql(", ");
        out.push_identifier(b.table)?;
        let sets = a.set.iter().map(|p| (a.table, p));
        let sets = sets.chain(b.set.iter().map(|p| (b.table, p)));
        let filters = a.filter.iter().map(|p| (a.table, p));
        let filters = filters.chain(b.filter.iter().map(|p| (b.table, p)));
        for (i, (table, pair)) in sets.enumerate() {
            let separator = if i == 0 { " SET " } else { ", " };
            push_pairs(&mut out, Some(table), std::iter::once((separator, pair)))?;
        }
        for (i, (table, pair)) in filters.enumerate() {
            let separator = if i == 0 { " WHERE " } else { " AND " };
            push_pairs(&mut out, Some(table), std::iter::once((separator, pair)))?;
        }
        Ok(())
    }
}

impl<Conn> diesel::RunQueryDsl<Conn> for FixedUpdate<'_> {}

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

/// Runs `f` in a database transaction (a savepoint when one is already open, as inside a
/// [`Database::write`] batch).
pub fn transaction<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    conn.transaction(f)
}

/// Runs `f`, a change to the image `id` (its row, properties, tags, locations, members or
/// status), in a [`transaction`] that also bumps the image's change counter as its last
/// statement (see [`generations`]): every change a record cache could hold stale must go
/// through here. A new image needs none (nothing can have cached it).
pub fn changing<T>(
    conn: &mut DbConnection,
    id: &glance_model::ImageId,
    f: impl FnOnce(&mut DbConnection) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    conn.transaction(|conn| {
        let out = f(conn)?;
        generations::bump(conn, id)?;
        Ok(out)
    })
}

/// [`changing`] for a change made from what a record cache holds of the image: it is kept
/// only if the image's stripe counter still reads `generation` when it is moved on (the
/// last statement, under the image's row lock that `f` took). Otherwise, or when `f`
/// returns `None`, the transaction is rolled back and the answer is `None`.
pub fn changing_if<T>(
    conn: &mut DbConnection,
    id: &glance_model::ImageId,
    generation: i64,
    f: impl FnOnce(&mut DbConnection) -> Result<Option<T>, RegistryError>,
) -> Result<Option<T>, RegistryError> {
    // Diesel's own "roll back, no error" marker; nothing else here returns it.
    let undo = || RegistryError::Query(diesel::result::Error::RollbackTransaction);
    let out = conn.transaction(|conn| {
        let out = f(conn)?.ok_or_else(undo)?;
        if !generations::bump_if(conn, id, generation)? {
            return Err(undo());
        }
        Ok(out)
    });
    match out {
        Err(RegistryError::Query(diesel::result::Error::RollbackTransaction)) => Ok(None),
        other => other.map(Some),
    }
}

/// Most writes one SQLite commit carries.
const MAX_BATCH: usize = 64;

/// SQLite only: one write for the committer. It runs on the committer's connection inside
/// the open batch transaction and returns how to answer its caller once the batch's commit
/// has succeeded (`Ok`) or failed (`Err` with the reason).
type WriteJob = Box<dyn FnOnce(&mut DbConnection) -> Deliver + Send>;

/// Answers one write's caller with the outcome of its batch's commit.
type Deliver = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// The SQLite committer: one thread and one connection that run every write of this process
/// in batches, one `BEGIN IMMEDIATE … COMMIT` (and so one fsync of the WAL) per batch. Each
/// write is its own savepoint, so a write that fails is undone alone; the others in its batch
/// still commit. Callers are answered only after the commit, so nobody sees a success that
/// a failed commit then took back. SQLite admits one writer per file, so writes queued here
/// lose no parallelism: at 16 concurrent writers, one commit per write had made the disk
/// the limit (two fsyncs per create+delete pair, CPU a quarter idle).
fn commit_loop(
    url: &DbUrl,
    statement_timeout: Option<Duration>,
    mut conn: Option<DbConnection>,
    jobs: &std::sync::mpsc::Receiver<WriteJob>,
) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        batch.extend(jobs.try_iter().take(MAX_BATCH - 1));
        if conn.is_none() {
            match DbConnection::open_limited(url, statement_timeout) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    // Dropping the jobs unrun answers each caller that the write was not made.
                    log::error!(
                        "the database writer cannot open {url}: {}",
                        crate::error::chain(&e)
                    );
                    batch.clear();
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        if !run_batch(c, &mut batch) {
            // A panicking write left Diesel's transaction state unknown: closing the
            // connection rolls back whatever it had open; the next batch opens a new one.
            conn = None;
        }
    }
}

/// Runs one batch in one transaction and answers its callers; false when the connection must
/// be replaced.
fn run_batch(conn: &mut DbConnection, batch: &mut Vec<WriteJob>) -> bool {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let begun = match &mut *conn {
        #[cfg(feature = "sqlite")]
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        #[cfg(any(feature = "mysql", feature = "postgres"))]
        other => <DbConnection as Connection>::TransactionManager::begin_transaction(other),
    };
    if let Err(e) = begun {
        let why = format!("the write transaction could not start: {e}");
        log::error!("{why}");
        // Dropped unrun: each caller is answered that its write was not made.
        batch.clear();
        return !<DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(
            conn,
        );
    }
    let mut delivers = Vec::with_capacity(batch.len());
    let mut broken = false;
    for job in batch.drain(..) {
        if broken {
            // Not run: answered as not made (see `Database::write`).
            continue;
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn))) {
            Ok(deliver) => delivers.push(deliver),
            // The write panicked inside its savepoint (its caller is answered that it was
            // not made when its job is dropped): undo it alone, keep the batch.
            Err(_) => broken = !back_to_batch(conn),
        }
    }
    let outcome = if broken {
        Err("the database writer hit an unexpected failure; retry".to_string())
    } else {
        <DbConnection as Connection>::TransactionManager::commit_transaction(conn)
            .map_err(|e| format!("the commit failed: {e}"))
    };
    if let Err(why) = &outcome {
        log::error!(
            "database write batch of {} not committed: {why}",
            delivers.len()
        );
    }
    for deliver in delivers {
        deliver(outcome.as_ref().map(|_| ()).map_err(String::as_str));
    }
    !broken
        && !<DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn)
}

/// Rolls back the savepoints a panicking write left open, down to the batch's transaction;
/// false when that fails and the connection must be replaced.
fn back_to_batch(conn: &mut DbConnection) -> bool {
    use diesel::connection::TransactionManager;
    type Tm = <DbConnection as Connection>::TransactionManager;
    loop {
        match Tm::transaction_manager_status_mut(conn).transaction_depth() {
            Ok(Some(depth)) if depth.get() > 1 => {
                if Tm::rollback_transaction(conn).is_err() {
                    return false;
                }
            }
            Ok(Some(_)) => return true,
            Ok(None) | Err(_) => return false,
        }
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
    url: DbUrl,
    logins: std::sync::Arc<login::Logins>,
    /// Given to each connection opened (see [`DbConnection::set_statement_timeout`]).
    statement_timeout: Option<Duration>,
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

    /// The children statement must reach the server as one flat `UNION ALL` whose markers
    /// are SQL text: parenthesised sides made MariaDB build a temporary table on disk for
    /// every show, and a bound or `sql()` marker kept the statement from staying prepared.
    #[cfg(feature = "mysql")]
    #[test]
    fn nested_union_all_is_flat_and_kept_prepared() {
        use diesel::query_builder::QueryFragment;

        use super::schema::images;
        use super::{IntConst, NullText, UnionAll};
        let side = |marker| {
            images::table
                .select((marker, images::id, NullText))
                .filter(images::deleted.eq(false))
        };
        let q = UnionAll(
            side(IntConst::<0>),
            UnionAll(
                images::table
                    .select((IntConst::<1>, images::id, NullText))
                    .filter(images::deleted.eq(false)),
                side(IntConst::<0>),
            ),
        );
        let sql = diesel::debug_query::<diesel::mysql::Mysql, _>(&q).to_string();
        assert!(
            sql.starts_with("SELECT 0, `images`.`id`, NULL FROM `images` WHERE")
                && sql.contains(" UNION ALL SELECT 1, `images`.`id`, NULL FROM")
                && !sql.contains("(SELECT"),
            "{sql}"
        );
        assert!(
            q.is_safe_to_cache_prepared(&diesel::mysql::Mysql)
                .expect("walk"),
            "{sql}"
        );
    }

    /// A soft delete's UPDATEs stay prepared (Diesel's own never do) and say what they say.
    #[cfg(feature = "mysql")]
    #[test]
    fn fixed_update_is_plain_and_kept_prepared() {
        use diesel::query_builder::QueryFragment;

        use super::{FixedUpdate, Val};
        let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 27)
            .and_then(|d| d.and_hms_opt(16, 0, 0))
            .expect("time");
        let q = FixedUpdate {
            table: "image_tags",
            set: &[
                ("deleted", Val::Bool(true)),
                ("deleted_at", Val::Time(now)),
                ("status", Val::Column("status")),
            ],
            filter: &[
                ("image_id", Val::Text("abc")),
                ("deleted", Val::Bool(false)),
            ],
        };
        let sql = diesel::debug_query::<diesel::mysql::Mysql, _>(&q).to_string();
        assert_eq!(
            sql,
            "UPDATE `image_tags` SET `deleted` = ?, `deleted_at` = ?, `status` = `status` \
             WHERE `image_id` = ? AND `deleted` = ? \
             -- binds: [true, 2026-11-27T16:00:00, \"abc\", false]"
        );
        assert!(
            q.is_safe_to_cache_prepared(&diesel::mysql::Mysql)
                .expect("walk")
        );
    }
}
