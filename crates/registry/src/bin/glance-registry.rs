//! `glance-registry`: serves image metadata to glance-api on port 9191.

/// mimalloc: many small, short-lived allocations per request across threads (headers, JSON,
/// rows) made glibc's allocator a tenth of each daemon's CPU time under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    glance_registry::daemon::main()
}
