//! Rebuilds the registry when a migration folder is added or removed: `embed_migrations!`
//! reads the directories at compile time, and cargo would otherwise not notice a new one.

fn main() {
    for backend in ["sqlite", "mysql", "postgres"] {
        println!("cargo:rerun-if-changed=../../migrations/{backend}");
    }
}
