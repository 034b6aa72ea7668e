//! glance-api as a separate process for tests that kill a node (the same daemon code as the
//! `glance-api` binary, built into this package so tests can find it).

fn main() -> anyhow::Result<()> {
    glance_api::daemon::main()
}
