//! glance-api: the public Images API v2 on port 9292 (issue #4).
//!
//! It will own authentication, policy, the registry client and upload/download orchestration.
//! It never links Diesel: every metadata call goes to glance-registry over HTTP. Nothing is
//! implemented yet; the crate exists so the workspace has its final shape.
