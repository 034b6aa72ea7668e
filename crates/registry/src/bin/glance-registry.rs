//! `glance-registry`: serves image metadata to glance-api on port 9191.

fn main() -> anyhow::Result<()> {
    glance_registry::daemon::main()
}
