//! Schema management for `glance-manage db_sync` and the start-up check: the embedded
//! migrations of each backend, and adoption of a database that Glance itself created.

use diesel::QueryableByName;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{Backend, DbConnection, glance_releases};
use crate::error::RegistryError;

#[cfg(feature = "sqlite")]
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
#[cfg(feature = "mysql")]
const MYSQL: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");
#[cfg(feature = "postgres")]
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// The version of our first migration, which creates Glance's own tables. A database Glance
/// made already has them, so adopting it records this version as applied.
pub const GLANCE_SCHEMA_VERSION: &str = "20261123000001";

/// Runs `$body` with the inner connection bound to `$c` and its migrations to `$m`.
macro_rules! with_migrations {
    ($conn:expr, |$c:ident, $m:ident| $body:expr) => {
        match $conn {
            #[cfg(feature = "sqlite")]
            DbConnection::Sqlite($c) => {
                let $m = SQLITE;
                $body
            }
            #[cfg(feature = "mysql")]
            DbConnection::Mysql($c) => {
                let $m = MYSQL;
                $body
            }
            #[cfg(feature = "postgres")]
            DbConnection::Postgres($c) => {
                let $m = POSTGRES;
                $body
            }
        }
    };
}

fn mig_err(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Migration(e.to_string())
}

/// What the schema looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    /// Our migrations already applied, oldest first.
    pub applied: Vec<String>,
    /// Our migrations still to apply, oldest first.
    pub pending: Vec<String>,
    /// Glance's alembic revision(s), if Glance ever managed this database.
    pub alembic: Vec<String>,
}

/// What `db_sync` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Migrations applied by this run.
    pub applied: Vec<String>,
    /// Set when a Glance-made database (these alembic revisions) was adopted in this run.
    pub adopted_alembic: Option<Vec<String>>,
    /// Glance's revisions whose schema changes the adoption applied (empty for a 2024.1 database).
    pub glance_changes: Vec<&'static str>,
    /// The schema after the run.
    pub state: SchemaState,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Revision {
    #[diesel(sql_type = Text)]
    version_num: String,
}

fn table_exists(conn: &mut DbConnection, table: &str) -> Result<bool, RegistryError> {
    let sql = match conn.backend() {
        Backend::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?"
        }
        Backend::Mysql => {
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let c: Count = diesel::sql_query(sql)
        .bind::<Text, _>(table)
        .get_result(conn)?;
    Ok(c.n > 0)
}

fn alembic_revisions(conn: &mut DbConnection) -> Result<Vec<String>, RegistryError> {
    if !table_exists(conn, "alembic_version")? {
        return Ok(Vec::new());
    }
    let rows: Vec<Revision> =
        diesel::sql_query("SELECT version_num FROM alembic_version ORDER BY version_num")
            .load(conn)?;
    Ok(rows.into_iter().map(|r| r.version_num).collect())
}

/// Reads the schema state without changing anything.
pub fn state(conn: &mut DbConnection) -> Result<SchemaState, RegistryError> {
    let alembic = alembic_revisions(conn)?;
    let has_ours = table_exists(conn, "__diesel_schema_migrations")?;
    let (applied, pending) = with_migrations!(conn, |c, m| {
        let applied: Vec<String> = if has_ours {
            c.applied_migrations()
                .map_err(mig_err)?
                .into_iter()
                .map(|v| v.to_string())
                .collect()
        } else {
            Vec::new()
        };
        let pending: Vec<String> = c
            .pending_migrations(m)
            .map_err(mig_err)?
            .iter()
            .map(|mig| mig.name().version().to_string())
            .collect();
        let mut applied = applied;
        applied.sort();
        (applied, pending)
    });
    Ok(SchemaState {
        applied,
        pending,
        alembic,
    })
}

/// Brings the schema up to date: adopts a Glance-made database if that is what it is,
/// then applies pending migrations. Running it again changes nothing.
pub fn sync(conn: &mut DbConnection) -> Result<SyncReport, RegistryError> {
    let before = state(conn)?;
    let mut adopted = None;
    let mut glance_changes = Vec::new();
    if before.applied.is_empty() && !before.alembic.is_empty() {
        glance_changes = adopt(conn, &before.alembic)?;
        adopted = Some(before.alembic.clone());
    } else if before.applied.is_empty() && table_exists(conn, "images")? {
        return Err(RegistryError::Migration(
            "the database has an 'images' table but neither Glance's alembic_version nor our migration table; \
             refusing to guess what it is. Point [database] connection at an empty database or at one Glance created"
                .to_string(),
        ));
    }
    let applied: Vec<String> = with_migrations!(conn, |c, m| {
        c.run_pending_migrations(m)
            .map_err(mig_err)?
            .into_iter()
            .map(|v| v.to_string())
            .collect()
    });
    if conn.backend() == Backend::Sqlite {
        // WAL lets readers proceed while one writer commits; it is a property of the file.
        conn.batch_execute("PRAGMA journal_mode = WAL;")?;
    }
    Ok(SyncReport {
        applied,
        adopted_alembic: adopted,
        glance_changes,
        state: state(conn)?,
    })
}

/// Takes over a database Glance created: refuses an alembic revision it does not know (before
/// changing anything), applies the schema changes Glance made between that revision and 2024.1
/// ([`glance_releases`]), converts PostgreSQL's native visibility enum to text, and records our
/// first migration as applied. Every row is kept.
fn adopt(conn: &mut DbConnection, alembic: &[String]) -> Result<Vec<&'static str>, RegistryError> {
    glance_releases::check_known(alembic)?;
    let mut changes = Vec::new();
    if conn.backend() == Backend::Mysql {
        // MySQL commits each DDL statement implicitly, so a transaction would not hold them.
        changes = glance_releases::upgrade_to_2024_1(conn, alembic)?;
    }
    // Diesel's own bookkeeping table, as `run_pending_migrations` would create it.
    let version_table = "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations \
        (version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)";
    conn.transaction(|conn| {
        if conn.backend() != Backend::Mysql {
            changes = glance_releases::upgrade_to_2024_1(conn, alembic)?;
        }
        if conn.backend() == Backend::Postgres {
            // Glance declares visibility as a native enum on PostgreSQL; text parameters
            // cannot be compared with it, so it becomes the VARCHAR + CHECK we create.
            conn.batch_execute(
                "ALTER TABLE images ALTER COLUMN visibility DROP DEFAULT; \
                 ALTER TABLE images ALTER COLUMN visibility TYPE VARCHAR(9) USING visibility::text; \
                 ALTER TABLE images ALTER COLUMN visibility SET DEFAULT 'shared';",
            )?;
        }
        conn.batch_execute(version_table)?;
        diesel::sql_query(format!(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('{GLANCE_SCHEMA_VERSION}')"
        ))
            .execute(conn)?;
        Ok::<_, RegistryError>(())
    })?;
    Ok(changes)
}

/// Reverts the newest migration (used by tests that check every `down.sql`).
pub fn revert_last(conn: &mut DbConnection) -> Result<String, RegistryError> {
    with_migrations!(conn, |c, m| c
        .revert_last_migration(m)
        .map(|v| v.to_string())
        .map_err(mig_err))
}

/// Fails with `SchemaOutdated` while migrations are pending, so a daemon never serves an old schema.
pub fn ensure_current(conn: &mut DbConnection) -> Result<(), RegistryError> {
    let st = state(conn)?;
    if st.pending.is_empty() {
        Ok(())
    } else {
        Err(RegistryError::SchemaOutdated(format!(
            "{} migration(s) pending: {}",
            st.pending.len(),
            st.pending.join(", ")
        )))
    }
}
