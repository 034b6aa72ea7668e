//! Image visibility: who besides the owner may see an image. [`may_see`] is the one home of
//! that rule; the registry's SQL form of it (a list's condition) is tested against it on
//! every backend, its record cache and glance-api's policy target ask it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::error::ModelError;
use crate::member::MemberStatus;

/// Whether the caller may see an image owned by `owner` with this `visibility` (Glance's
/// rule): admins see every image; a project sees its own images, public and community
/// images, and the shared images it is a member of, whatever the membership's status
/// (pending, accepted and rejected alike: the status only decides what a list shows by
/// default). `membership` is the caller's project's live membership of the image, if any;
/// it counts only where [`needs_membership`] says so, so a caller that does not know it
/// (a cache that holds no members) passes `None` and learns whether the answer is
/// already yes.
pub fn may_see(
    ctx: &Context,
    owner: Option<&str>,
    visibility: Visibility,
    membership: Option<MemberStatus>,
) -> bool {
    ctx.is_admin
        || ctx.owns(owner)
        || matches!(visibility, Visibility::Public | Visibility::Community)
        || (needs_membership(ctx, owner, visibility) && membership.is_some())
}

/// Whether the caller's project's membership of the image counts in [`may_see`]: a shared
/// image of another project, for a caller with a project. Glance's policy target names the
/// caller's project as `member_id` in just this case.
pub fn needs_membership(ctx: &Context, owner: Option<&str>, visibility: Visibility) -> bool {
    visibility == Visibility::Shared && ctx.project_id.is_some() && !ctx.owns(owner)
}

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
    /// Every visibility, for walking them all (tests of the rule and of its SQL form).
    pub const ALL: [Visibility; 4] = [Self::Public, Self::Private, Self::Shared, Self::Community];

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

    const ALL: [Visibility; 4] = Visibility::ALL;
    const MEMBERSHIPS: [Option<MemberStatus>; 4] = MemberStatus::OR_NONE;

    #[test]
    fn admins_and_owners_see_everything() {
        let admin = Context::project("other", &["admin"]);
        let owner = Context::project("p", &["member"]);
        for v in ALL {
            for m in MEMBERSHIPS {
                assert!(may_see(&admin, Some("p"), v, m), "admin, {v}, {m:?}");
                assert!(may_see(&owner, Some("p"), v, m), "owner, {v}, {m:?}");
            }
        }
    }

    #[test]
    fn others_see_public_community_and_shared_they_are_members_of() {
        let other = Context::project("q", &["member"]);
        let none = Context::default();
        for m in MEMBERSHIPS {
            for v in [Visibility::Public, Visibility::Community] {
                assert!(may_see(&other, Some("p"), v, m));
                assert!(may_see(&none, Some("p"), v, m));
            }
            assert!(!may_see(&other, Some("p"), Visibility::Private, m));
            // Any membership, whatever its status, lets a project see a shared image.
            assert_eq!(
                may_see(&other, Some("p"), Visibility::Shared, m),
                m.is_some()
            );
            // Without a project there is no membership to count.
            assert!(!may_see(&none, Some("p"), Visibility::Shared, m));
            assert!(!may_see(&none, None, Visibility::Private, m));
        }
    }

    #[test]
    fn membership_counts_only_for_a_shared_image_of_another_project() {
        let other = Context::project("q", &["member"]);
        assert!(needs_membership(&other, Some("p"), Visibility::Shared));
        assert!(!needs_membership(&other, Some("q"), Visibility::Shared));
        assert!(!needs_membership(&other, Some("p"), Visibility::Private));
        assert!(!needs_membership(
            &Context::default(),
            Some("p"),
            Visibility::Shared
        ));
    }
}
