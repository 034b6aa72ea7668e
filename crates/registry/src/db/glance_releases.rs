//! Glance's own alembic history from Queens to 2024.1, and the schema changes it made, so
//! `db_sync` can adopt a database that any of those releases left behind. It owns the list of
//! revisions it accepts and the steps that bring such a database to the 2024.1 schema our first
//! migration describes; it must not touch a row's meaning (only Train's `backend` → `store`
//! rename of location metadata, which Glance's own data migration makes too).

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::{Backend, DbConnection};
use crate::error::RegistryError;

/// Glance's revisions this build adopts, oldest first: each release's expand, then its
/// contract (Glance's two alembic branches; a database mid rolling upgrade holds one of each).
pub const KNOWN_REVISIONS: &[&str] = &[
    "queens_expand01",
    "queens_contract01",
    "rocky_expand01",
    "rocky_expand02",
    "rocky_contract01",
    "rocky_contract02",
    "train_expand01",
    "train_contract01",
    "ussuri_expand01",
    "ussuri_contract01",
    "wallaby_expand01",
    "wallaby_contract01",
    "xena_expand01",
    "xena_contract01",
    "yoga_expand01",
    "yoga_contract01",
    "zed_expand01",
    "zed_contract01",
    "2023_1_expand01",
    "2023_1_contract01",
    "2024_1_expand01",
    "2024_1_contract01",
];

/// The revision whose schema our first migration creates; an adopted database says this
/// afterwards, so Glance's `glance-manage db_version` reads where it stands.
pub const TARGET_REVISION: &str = "2024_1_contract01";

/// Revisions from before Queens (Glance's chain from Liberty), refused with their own advice.
const OLDER: &[&str] = &[
    "liberty",
    "mitaka01",
    "mitaka02",
    "ocata_expand01",
    "ocata_contract01",
    "pike_expand01",
    "pike_contract01",
];

/// Refuses any revision this build does not know, naming it. Nothing is changed.
pub fn check_known(revisions: &[String]) -> Result<(), RegistryError> {
    for rev in revisions {
        if KNOWN_REVISIONS.contains(&rev.as_str()) {
            continue;
        }
        let why = if OLDER.contains(&rev.as_str()) {
            "is older than Queens, the oldest release this project adopts. Upgrade it to Queens \
             (queens_contract01) or later with Glance's own `glance-manage db sync` first"
                .to_string()
        } else {
            format!(
                "is not one this build knows (it adopts {} to {}); it may come from a newer \
                 Glance than this build, which would not know the columns it added",
                KNOWN_REVISIONS[0], TARGET_REVISION
            )
        };
        return Err(RegistryError::Migration(format!(
            "this Glance database is at alembic revision {rev}, which {why}. Nothing was changed"
        )));
    }
    Ok(())
}

/// One schema change Glance made after Queens: present already (the probe succeeds) or applied.
struct Step {
    /// Glance's revision that made the change.
    revision: &'static str,
    /// A query that fails while the change is missing.
    probe: &'static str,
    /// The DDL, per backend: (sqlite, mysql, postgres).
    ddl: (&'static str, &'static str, &'static str),
}

const STEPS: &[Step] = &[
    Step {
        revision: "rocky_expand01",
        probe: "SELECT os_hidden FROM images WHERE 1 = 0",
        ddl: (
            "ALTER TABLE images ADD COLUMN os_hidden BOOLEAN NOT NULL DEFAULT 0; \
             CREATE INDEX os_hidden_image_idx ON images (os_hidden);",
            "ALTER TABLE images ADD COLUMN os_hidden TINYINT(1) NOT NULL DEFAULT 0, \
             ADD INDEX os_hidden_image_idx (os_hidden);",
            "ALTER TABLE images ADD COLUMN os_hidden BOOLEAN NOT NULL DEFAULT false; \
             CREATE INDEX os_hidden_image_idx ON images (os_hidden);",
        ),
    },
    Step {
        revision: "rocky_expand02",
        probe: "SELECT os_hash_algo, os_hash_value FROM images WHERE 1 = 0",
        ddl: (
            "ALTER TABLE images ADD COLUMN os_hash_algo VARCHAR(64); \
             ALTER TABLE images ADD COLUMN os_hash_value VARCHAR(128); \
             CREATE INDEX os_hash_value_image_idx ON images (os_hash_value);",
            "ALTER TABLE images ADD COLUMN os_hash_algo VARCHAR(64), \
             ADD COLUMN os_hash_value VARCHAR(128), \
             ADD INDEX os_hash_value_image_idx (os_hash_value);",
            "ALTER TABLE images ADD COLUMN os_hash_algo VARCHAR(64), \
             ADD COLUMN os_hash_value VARCHAR(128); \
             CREATE INDEX os_hash_value_image_idx ON images (os_hash_value);",
        ),
    },
    Step {
        revision: "wallaby_expand01",
        probe: "SELECT image_id, request_id, user_id FROM tasks WHERE 1 = 0",
        ddl: (
            "ALTER TABLE tasks ADD COLUMN image_id VARCHAR(36); \
             ALTER TABLE tasks ADD COLUMN request_id VARCHAR(64); \
             ALTER TABLE tasks ADD COLUMN user_id VARCHAR(64); \
             CREATE INDEX ix_tasks_image_id ON tasks (image_id);",
            "ALTER TABLE tasks ADD COLUMN image_id VARCHAR(36), \
             ADD COLUMN request_id VARCHAR(64), ADD COLUMN user_id VARCHAR(64), \
             ADD INDEX ix_tasks_image_id (image_id);",
            "ALTER TABLE tasks ADD COLUMN image_id VARCHAR(36), \
             ADD COLUMN request_id VARCHAR(64), ADD COLUMN user_id VARCHAR(64); \
             CREATE INDEX ix_tasks_image_id ON tasks (image_id);",
        ),
    },
    Step {
        revision: "2024_1_expand01",
        probe: "SELECT node_reference_id FROM node_reference WHERE 1 = 0",
        ddl: (
            "CREATE TABLE node_reference (node_reference_id INTEGER NOT NULL, \
               node_reference_url VARCHAR(255) NOT NULL, PRIMARY KEY (node_reference_id), \
               CONSTRAINT uq_node_reference_node_reference_url UNIQUE (node_reference_url)); \
             CREATE TABLE cached_images (id INTEGER NOT NULL, image_id VARCHAR(36) NOT NULL, \
               last_accessed DATETIME NOT NULL, last_modified DATETIME NOT NULL, \
               size INTEGER NOT NULL, hits INTEGER NOT NULL, checksum VARCHAR(32), \
               node_reference_id INTEGER NOT NULL, PRIMARY KEY (id), \
               CONSTRAINT ix_cached_images_image_id_node_reference_id UNIQUE (image_id, node_reference_id), \
               FOREIGN KEY (node_reference_id) REFERENCES node_reference (node_reference_id));",
            "CREATE TABLE node_reference (node_reference_id BIGINT NOT NULL AUTO_INCREMENT, \
               node_reference_url VARCHAR(255) NOT NULL, PRIMARY KEY (node_reference_id), \
               CONSTRAINT uq_node_reference_node_reference_url UNIQUE (node_reference_url)) \
               ENGINE=InnoDB DEFAULT CHARSET=utf8mb4; \
             CREATE TABLE cached_images (id BIGINT NOT NULL AUTO_INCREMENT, \
               image_id VARCHAR(36) NOT NULL, last_accessed DATETIME NOT NULL, \
               last_modified DATETIME NOT NULL, size BIGINT NOT NULL, hits INTEGER NOT NULL, \
               checksum VARCHAR(32), node_reference_id BIGINT NOT NULL, PRIMARY KEY (id), \
               CONSTRAINT ix_cached_images_image_id_node_reference_id UNIQUE (image_id, node_reference_id), \
               FOREIGN KEY (node_reference_id) REFERENCES node_reference (node_reference_id)) \
               ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;",
            "CREATE TABLE node_reference (node_reference_id BIGSERIAL NOT NULL, \
               node_reference_url VARCHAR(255) NOT NULL, PRIMARY KEY (node_reference_id), \
               CONSTRAINT uq_node_reference_node_reference_url UNIQUE (node_reference_url)); \
             CREATE TABLE cached_images (id BIGSERIAL NOT NULL, image_id VARCHAR(36) NOT NULL, \
               last_accessed TIMESTAMP WITHOUT TIME ZONE NOT NULL, \
               last_modified TIMESTAMP WITHOUT TIME ZONE NOT NULL, size BIGINT NOT NULL, \
               hits INTEGER NOT NULL, checksum VARCHAR(32), node_reference_id BIGINT NOT NULL, \
               PRIMARY KEY (id), \
               CONSTRAINT ix_cached_images_image_id_node_reference_id UNIQUE (image_id, node_reference_id), \
               FOREIGN KEY (node_reference_id) REFERENCES node_reference (node_reference_id));",
        ),
    },
];

/// Whether `probe` runs. On PostgreSQL a failed statement aborts the transaction, so the
/// probe runs inside a savepoint there (a nested `transaction`) and is rolled back to; MySQL
/// is not in a transaction here (its DDL commits implicitly, which would end a savepoint).
fn probe_ok(conn: &mut DbConnection, probe: &str) -> bool {
    if conn.backend() == Backend::Postgres {
        conn.transaction(|c| {
            diesel::sql_query(probe).execute(c)?;
            Ok::<_, diesel::result::Error>(())
        })
        .is_ok()
    } else {
        diesel::sql_query(probe).execute(conn).is_ok()
    }
}

/// Brings a Glance database at any known revision to the 2024.1 schema: each change Glance
/// made since is applied unless already there, Train's location metadata rename is made, and
/// `alembic_version` is set to [`TARGET_REVISION`]. Returns the Glance revisions whose changes
/// were applied here. Call inside a transaction on SQLite and PostgreSQL, outside one on MySQL
/// (which commits each DDL statement on its own: a failure part-way there leaves the steps done
/// so far, and the next run skips them).
pub fn upgrade_to_2024_1(
    conn: &mut DbConnection,
    revisions: &[String],
) -> Result<Vec<&'static str>, RegistryError> {
    check_known(revisions)?;
    let mut applied = Vec::new();
    for step in STEPS {
        if probe_ok(conn, step.probe) {
            continue;
        }
        let ddl = match conn.backend() {
            Backend::Sqlite => step.ddl.0,
            Backend::Mysql => step.ddl.1,
            Backend::Postgres => step.ddl.2,
        };
        conn.batch_execute(ddl).map_err(|e| {
            RegistryError::Migration(format!(
                "applying Glance's {} schema change to this database failed: {e}",
                step.revision
            ))
        })?;
        applied.push(step.revision);
    }
    // Glance's train_migrate01: location metadata named the store under "backend" (Rocky's
    // experimental multi-store); from Train on it is "store". The same text replacement Glance
    // makes, written with LIKE so one statement serves every backend.
    conn.batch_execute(
        "UPDATE image_locations SET meta_data = REPLACE(meta_data, '\"backend\":', '\"store\":') \
         WHERE meta_data LIKE '%\"backend\":%'",
    )?;
    if revisions != [TARGET_REVISION] {
        conn.batch_execute(&format!(
            "DELETE FROM alembic_version; \
             INSERT INTO alembic_version (version_num) VALUES ('{TARGET_REVISION}');"
        ))?;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_revision_passes_and_others_are_named() {
        let all: Vec<String> = KNOWN_REVISIONS.iter().map(|s| s.to_string()).collect();
        assert!(check_known(&all).is_ok());
        let err = check_known(&["pike_contract01".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pike_contract01") && err.contains("older than Queens"),
            "{err}"
        );
        let err = check_known(&["2026_1_contract01".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2026_1_contract01") && err.contains("newer"),
            "{err}"
        );
    }

    #[test]
    fn the_steps_follow_glance_order() {
        let pos = |r: &str| KNOWN_REVISIONS.iter().position(|k| *k == r);
        let mut last = 0;
        for s in STEPS {
            let p = pos(s.revision).expect("step revision is a known revision");
            assert!(p >= last, "{} out of order", s.revision);
            last = p;
        }
        assert_eq!(KNOWN_REVISIONS.last(), Some(&TARGET_REVISION));
    }
}
