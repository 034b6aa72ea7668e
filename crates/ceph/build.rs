//! Links librbd and librados (Debian: librbd-dev, librados-dev).
fn main() {
    println!("cargo:rustc-link-lib=rbd");
    println!("cargo:rustc-link-lib=rados");
}
