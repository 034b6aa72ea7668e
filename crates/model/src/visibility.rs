//! Image visibility: who besides the owner may see an image.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// Glance's four visibilities. The default for a new image is `shared`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Everyone sees it and it is listed for everyone.
    Public,
    /// Only the owner (and admins).
    Private,
    /// The owner and accepted/pending members.
    #[default]
    Shared,
    /// Everyone may use it; listed only when asked for.
    Community,
}

impl Visibility {
    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Shared => "shared",
            Self::Community => "community",
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Visibility {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "public" => Ok(Self::Public),
            "private" => Ok(Self::Private),
            "shared" => Ok(Self::Shared),
            "community" => Ok(Self::Community),
            other => Err(ModelError::bad_request(format!(
                "Invalid visibility value: {other}. Expected one of public, private, shared, community"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_shared() {
        assert_eq!(Visibility::default(), Visibility::Shared);
    }

    #[test]
    fn parses_the_four_and_rejects_others() {
        for v in ["public", "private", "shared", "community"] {
            assert_eq!(v.parse::<Visibility>().unwrap().as_str(), v);
        }
        assert!("all".parse::<Visibility>().is_err());
        assert!("Public".parse::<Visibility>().is_err());
    }
}
