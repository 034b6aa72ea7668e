//! glance-registry as a separate process for tests that signal or kill a daemon (the same
//! daemon code as the `glance-registry` binary, built into this package so tests find it).

fn main() -> anyhow::Result<()> {
    glance_registry::daemon::main()
}
