//! Error kinds shared by every crate, the model's own validation error, and the cause chain
//! of any error for a log line.
//!
//! Kinds are protocol-neutral: each daemon maps a kind to an HTTP status in one place.

/// What kind of failure an error is, independent of the transport that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or violates a rule (400).
    BadRequest,
    /// The caller is not authenticated (401).
    Unauthorized,
    /// The caller may not do this (403).
    Forbidden,
    /// The object does not exist or is not visible to the caller (404).
    NotFound,
    /// The object is in a state that does not allow this (409).
    Conflict,
    /// The object went away while the request ran (410).
    Gone,
    /// The body or a quota is too large (413).
    TooLarge,
    /// The request's media type is not accepted (415).
    UnsupportedMediaType,
    /// The requested byte range cannot be served (416).
    RangeNotSatisfiable,
    /// A dependency (database, registry, store) cannot be reached now (503).
    Unavailable,
    /// A bug or an unexpected failure (500).
    Internal,
}

/// The cause chain of an error (`outer: cause: root cause`), joined for one log line or
/// message: the one copy every crate uses.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// Gives a crate's error enum, which takes a [`ModelError`] through `From` (its `Rule`
/// variant), the constructors of rule errors by kind: `rule(kind, message)`, `bad_request`,
/// `forbidden`, `not_found`, `conflict`. One definition for glance-api's and glance-registry's
/// error types instead of a hand-kept copy in each.
#[macro_export]
macro_rules! rule_constructors {
    ($error:ty) => {
        impl $error {
            /// A rule error of the given kind.
            pub fn rule(kind: $crate::ErrorKind, message: impl Into<String>) -> Self {
                Self::from($crate::ModelError::new(kind, message))
            }

            /// A 400-kind error.
            pub fn bad_request(message: impl Into<String>) -> Self {
                Self::rule($crate::ErrorKind::BadRequest, message)
            }

            /// A 403-kind error.
            pub fn forbidden(message: impl Into<String>) -> Self {
                Self::rule($crate::ErrorKind::Forbidden, message)
            }

            /// A 404-kind error.
            pub fn not_found(message: impl Into<String>) -> Self {
                Self::rule($crate::ErrorKind::NotFound, message)
            }

            /// A 409-kind error.
            pub fn conflict(message: impl Into<String>) -> Self {
                Self::rule($crate::ErrorKind::Conflict, message)
            }
        }
    };
}

/// A rule of the model was broken; the message says which and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ModelError {
    kind: ErrorKind,
    message: String,
}

impl ModelError {
    /// A 400-kind error with the given message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, PartialEq)]
    struct Wrapped(super::ModelError);

    impl From<super::ModelError> for Wrapped {
        fn from(e: super::ModelError) -> Self {
            Self(e)
        }
    }

    crate::rule_constructors!(Wrapped);

    #[test]
    fn rule_constructors_make_rule_errors_of_each_kind() {
        use super::ErrorKind as K;
        for (made, kind) in [
            (Wrapped::bad_request("m"), K::BadRequest),
            (Wrapped::forbidden("m"), K::Forbidden),
            (Wrapped::not_found("m"), K::NotFound),
            (Wrapped::conflict("m"), K::Conflict),
            (Wrapped::rule(K::Gone, "m"), K::Gone),
        ] {
            assert_eq!(made, Wrapped(super::ModelError::new(kind, "m")));
        }
    }

    #[test]
    fn the_chain_names_every_cause_in_order() {
        let err = Outer(std::io::Error::other("root cause"));
        assert_eq!(chain(&err), "outer: root cause");
        assert_eq!(chain(&std::io::Error::other("alone")), "alone");
    }
}
