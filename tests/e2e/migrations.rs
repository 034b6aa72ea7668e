//! Every migration's `down.sql` restores the schema before it, on every backend, and
//! `db_sync` is idempotent.

use anyhow::Result;
use diesel::connection::SimpleConnection;
use glance_registry::db::migrate;

use crate::harness::{TestDb, backends};

#[test]
fn up_down_up_on_every_backend() -> Result<()> {
    for b in backends() {
        let db = TestDb::new(b)?;
        let mut conn = db.conn()?;
        let first = migrate::sync(&mut conn)?;
        assert_eq!(first.applied.len(), 6, "{b}");
        assert!(first.state.pending.is_empty());
        let again = migrate::sync(&mut conn)?;
        assert!(
            again.applied.is_empty(),
            "{b}: second sync applied {:?}",
            again.applied
        );
        conn.batch_execute("SELECT image_id FROM glance_upload_leases WHERE 1 = 0")?;

        // The record cache's counters: one row per stripe, and gone again on the way down.
        let counters = glance_registry::db::generations::read(&mut conn)?;
        assert_eq!(
            counters,
            glance_registry::db::generations::Generations::from_pairs((0..64).map(|s| (s, 0))),
            "{b}"
        );
        assert_eq!(migrate::revert_last(&mut conn)?, "20261128000006");
        assert!(
            conn.batch_execute("SELECT stripe FROM glance_record_generations")
                .is_err(),
            "{b}"
        );

        // SQLite's covering child indexes replace the (image_id, deleted) ones, and back.
        let uses = |conn: &mut glance_registry::db::DbConnection, table: &str, index: &str| {
            conn.batch_execute(&format!(
                "SELECT 1 FROM {table} INDEXED BY {index} WHERE image_id = '' AND deleted = 0"
            ))
            .is_ok()
        };
        if b == "sqlite" {
            assert!(uses(
                &mut conn,
                "image_properties",
                "ix_image_properties_image_id_deleted_name_value"
            ));
            assert!(uses(
                &mut conn,
                "image_tags",
                "ix_image_tags_image_id_deleted_value"
            ));
            assert!(!uses(
                &mut conn,
                "image_properties",
                "ix_image_properties_image_id_deleted"
            ));
            assert!(!uses(
                &mut conn,
                "image_tags",
                "ix_image_tags_image_id_deleted"
            ));
        }
        assert_eq!(migrate::revert_last(&mut conn)?, "20261127000005");
        if b == "sqlite" {
            assert!(!uses(
                &mut conn,
                "image_properties",
                "ix_image_properties_image_id_deleted_name_value"
            ));
            assert!(!uses(
                &mut conn,
                "image_tags",
                "ix_image_tags_image_id_deleted_value"
            ));
            assert!(uses(
                &mut conn,
                "image_properties",
                "ix_image_properties_image_id_deleted"
            ));
            assert!(uses(
                &mut conn,
                "image_tags",
                "ix_image_tags_image_id_deleted"
            ));
        }
        assert_eq!(migrate::revert_last(&mut conn)?, "20261123000004");
        assert_eq!(migrate::revert_last(&mut conn)?, "20261123000003");
        conn.batch_execute("SELECT image_id FROM glance_upload_leases WHERE 1 = 0")?;
        assert_eq!(migrate::revert_last(&mut conn)?, "20261123000002");
        assert!(
            conn.batch_execute("SELECT image_id FROM glance_upload_leases WHERE 1 = 0")
                .is_err(),
            "{b}: leases table survived its down.sql"
        );
        conn.batch_execute("SELECT id, os_hidden FROM images WHERE 1 = 0")?;
        assert_eq!(migrate::revert_last(&mut conn)?, "20261123000001");
        for table in [
            "images",
            "image_properties",
            "image_tags",
            "image_members",
            "image_locations",
            "tasks",
            "task_info",
            "metadef_namespaces",
            "cached_images",
        ] {
            assert!(
                conn.batch_execute(&format!("SELECT 1 FROM {table} WHERE 1 = 0"))
                    .is_err(),
                "{b}: {table} survived down.sql"
            );
        }
        assert_eq!(migrate::state(&mut conn)?.pending.len(), 6);
        assert_eq!(
            migrate::sync(&mut conn)?.applied.len(),
            6,
            "{b}: re-applying after down"
        );
        migrate::ensure_current(&mut conn)?;
    }
    Ok(())
}
