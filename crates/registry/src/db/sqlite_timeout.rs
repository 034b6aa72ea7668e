//! SQLite's statement timeout: a progress handler that interrupts a statement running longer
//! than `[database] statement_timeout`. MariaDB and PostgreSQL enforce theirs on the server
//! (`max_statement_time`, `statement_timeout`); SQLite has no such setting, only callbacks.
//!
//! Diesel does not hand out the `sqlite3 *` handle these callbacks are installed on, so an
//! auto-extension (run by SQLite for every connection this process opens) registers one SQL
//! function per connection, `glance_statement_timeout(ms)`, holding that connection's state.
//! Calling it (see [`set`]) installs, or with 0 removes, two callbacks on its own connection:
//! a statement trace that notes when each statement starts, and a progress handler, run every
//! [`PROGRESS_STEPS`] virtual-machine steps, that stops the statement once it has run past the
//! limit (SQLite then fails it with "interrupted", mapped to 503). A connection never given a
//! limit carries neither callback and costs nothing.
//!
//! This is the only module of the crate with `unsafe` code: the FFI calls and the callbacks.

#![expect(
    unsafe_code,
    reason = "SQLite's progress handler and statement trace are only reachable through its C API"
)]

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use libsqlite3_sys as ffi;

/// Virtual-machine steps between two looks at the clock: a look costs tens of nanoseconds,
/// a thousand steps some microseconds, so the handler adds well under 1% to a statement.
const PROGRESS_STEPS: c_int = 1000;

/// The SQL function through which a connection gets its limit.
const FUNCTION: &std::ffi::CStr = c"glance_statement_timeout";
/// [`FUNCTION`] as SQL text.
const FUNCTION_NAME: &str = "glance_statement_timeout";

/// One connection's limit and the start of its current statement. SQLite calls back on the
/// thread using the connection, and a connection is used by one thread at a time (Diesel's
/// `SqliteConnection` is `Send`, not `Sync`), so plain cells suffice.
#[derive(Default)]
struct Watch {
    limit: Cell<Option<Duration>>,
    started: Cell<Option<Instant>>,
}

/// Registers the auto-extension, once per process, before the first connection opens.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `on_open` has the signature SQLite expects of an auto-extension entry point
        // and stays valid for the life of the process.
        let rc = unsafe { ffi::sqlite3_auto_extension(Some(on_open)) };
        if rc != ffi::SQLITE_OK {
            log::error!("SQLite statement timeouts are unavailable: auto-extension error {rc}");
        }
    });
}

/// Gives `conn` its statement time limit (`None`: no limit). [`install`] must have run
/// before the connection was opened; otherwise the function is missing and this fails.
pub fn set(
    conn: &mut diesel::SqliteConnection,
    limit: Option<Duration>,
) -> diesel::QueryResult<()> {
    let ms = limit.map_or(0, |l| l.as_millis().clamp(1, i64::MAX as u128));
    conn.batch_execute(&format!("SELECT {FUNCTION_NAME}({ms})"))
}

/// Auto-extension entry point: gives the new connection its `glance_statement_timeout`
/// function and that function its own [`Watch`], freed by SQLite when the connection closes.
unsafe extern "C" fn on_open(
    db: *mut ffi::sqlite3,
    _err: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    let watch = Box::into_raw(Box::<Watch>::default());
    // SAFETY: `db` is the connection being opened; `watch` is a live heap pointer that SQLite
    // passes back to `set_limit` and hands to `drop_watch` exactly once (also when this call
    // fails), and nothing else frees it.
    unsafe {
        ffi::sqlite3_create_function_v2(
            db,
            FUNCTION.as_ptr(),
            1,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DIRECTONLY,
            watch.cast(),
            Some(set_limit),
            None,
            None,
            Some(drop_watch),
        );
    }
    // A connection without the function still works, only without a limit (`set` fails).
    ffi::SQLITE_OK
}

/// `glance_statement_timeout(ms)`: installs the callbacks on this connection (0 removes them).
unsafe extern "C" fn set_limit(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    if argc != 1 || argv.is_null() {
        return;
    }
    // SAFETY: SQLite calls this with its context and `argc` (1) valid argument values; the
    // user data is the `Watch` registered with this function, alive until the connection
    // closes (when `drop_watch` frees it and no callback can run any more).
    unsafe {
        let ms = ffi::sqlite3_value_int64(*argv);
        let watch = ffi::sqlite3_user_data(ctx);
        let db = ffi::sqlite3_context_db_handle(ctx);
        let state = &*(watch as *const Watch);
        if ms > 0 {
            state
                .limit
                .set(Some(Duration::from_millis(ms.unsigned_abs())));
            ffi::sqlite3_trace_v2(
                db,
                ffi::SQLITE_TRACE_STMT as c_uint,
                Some(on_statement),
                watch,
            );
            ffi::sqlite3_progress_handler(db, PROGRESS_STEPS, Some(on_progress), watch);
        } else {
            state.limit.set(None);
            ffi::sqlite3_trace_v2(db, 0, None, std::ptr::null_mut());
            ffi::sqlite3_progress_handler(db, 0, None, std::ptr::null_mut());
        }
        ffi::sqlite3_result_int64(ctx, ms);
    }
}

/// Statement trace: a statement (or a trigger program inside one) starts running.
unsafe extern "C" fn on_statement(
    _mask: c_uint,
    watch: *mut c_void,
    _stmt: *mut c_void,
    _sql: *mut c_void,
) -> c_int {
    // SAFETY: `watch` is the connection's live `Watch` (see `set_limit`).
    let state = unsafe { &*(watch as *const Watch) };
    state.started.set(Some(Instant::now()));
    0
}

/// Progress handler: non-zero stops the running statement with SQLITE_INTERRUPT.
unsafe extern "C" fn on_progress(watch: *mut c_void) -> c_int {
    // SAFETY: `watch` is the connection's live `Watch` (see `set_limit`).
    let state = unsafe { &*(watch as *const Watch) };
    match (state.started.get(), state.limit.get()) {
        (Some(started), Some(limit)) if started.elapsed() > limit => 1,
        _ => 0,
    }
}

/// Frees a connection's `Watch` when SQLite drops its function (at close).
unsafe extern "C" fn drop_watch(watch: *mut c_void) {
    if !watch.is_null() {
        // SAFETY: `watch` came from `Box::into_raw` in `on_open`; SQLite calls this once.
        drop(unsafe { Box::from_raw(watch as *mut Watch) });
    }
}
