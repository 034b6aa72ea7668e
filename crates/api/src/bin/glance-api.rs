//! `glance-api`: the public Images API v2 on port 9292.

fn main() -> anyhow::Result<()> {
    glance_api::daemon::main()
}
