//! Image bytes: the file, NFS-shared file and read-only http stores (issue #3).
//!
//! This crate will own streaming writes with size caps and one-pass checksums, and ranged
//! reads. It never touches SQL and never speaks HTTP to clients. Nothing is implemented yet;
//! the crate exists so the workspace has its final shape.
