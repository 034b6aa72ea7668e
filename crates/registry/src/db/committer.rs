//! SQLite only: the committer, one thread and one connection that run every write of this
//! process in batches (see [`commit_loop`]). It owns no pool and no query; `Database::write`
//! hands it the jobs.

use std::time::Duration;

use diesel::prelude::*;

use super::{DbConnection, DbUrl};

/// Most writes one SQLite commit carries.
const MAX_BATCH: usize = 64;

/// SQLite only: one write for the committer. It runs on the committer's connection inside
/// the open batch transaction and returns how to answer its caller once the batch's commit
/// has succeeded (`Ok`) or failed (`Err` with the reason).
pub(super) type WriteJob = Box<dyn FnOnce(&mut DbConnection) -> Deliver + Send>;

/// Answers one write's caller with the outcome of its batch's commit.
type Deliver = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// The SQLite committer: one thread and one connection that run every write of this process
/// in batches, one `BEGIN IMMEDIATE … COMMIT` (and so one fsync of the WAL) per batch. Each
/// write is its own savepoint, so a write that fails is undone alone; the others in its batch
/// still commit. Callers are answered only after the commit, so nobody sees a success that
/// a failed commit then took back. SQLite admits one writer per file, so writes queued here
/// lose no parallelism: at 16 concurrent writers, one commit per write had made the disk
/// the limit (two fsyncs per create+delete pair, CPU a quarter idle).
pub(super) fn commit_loop(
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
