//! Change counters for the record cache (`crate::cache`): image ids fall into [`STRIPES`]
//! stripes, and every write that changes an image (its row, properties, tags, locations,
//! members or lease) adds one to its stripe's counter in `glance_record_generations`, inside
//! the write's own transaction: `super::locked` is the one place that moves it. A registry that read a stripe's counter before loading an image
//! and reads the same value later knows that nothing committed has changed the image since.
//!
//! Stripes rather than one counter: the row stays locked from the increment to the commit,
//! so one counter would make every write wait for the commit of the one before it.

use diesel::prelude::*;
use glance_model::ImageId;

use super::schema::glance_record_generations as g;
use super::{DbConnection, on_backend};
use crate::error::RegistryError;

/// Stripes of image ids, each with its own counter (the rows the migration creates).
pub const STRIPES: usize = 64;

/// The stripe of an image: FNV-1a of the id's 16 bytes, so every registry (whatever its
/// build) puts an image in the same stripe, and ids a client chose in sequence still spread.
pub fn stripe(id: &ImageId) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.0.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h as usize) % STRIPES
}

/// The counters as read at one moment; `None` for a stripe whose row is missing (an image
/// there is never served from the cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generations([Option<i64>; STRIPES]);

impl Generations {
    /// The counter of the image's stripe.
    pub fn of(&self, id: &ImageId) -> Option<i64> {
        self.0[stripe(id)]
    }

    /// Counters from (stripe, value) pairs; stripes out of range are ignored.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (i32, i64)>) -> Self {
        let mut out = [None; STRIPES];
        for (s, v) in pairs {
            if let Some(slot) = usize::try_from(s).ok().and_then(|s| out.get_mut(s)) {
                *slot = Some(v);
            }
        }
        Self(out)
    }
}

/// Reads every stripe's counter (one statement over a 64-row table).
pub fn read(conn: &mut DbConnection) -> Result<Generations, RegistryError> {
    let pairs: Vec<(i32, i64)> = on_backend!(conn, |c, _B| {
        g::table.select((g::stripe, g::generation)).load(c)?
    });
    Ok(Generations::from_pairs(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_are_fixed_and_spread() {
        // Fixed: registries of any build must agree on an image's stripe.
        let id: ImageId = "0ba6b6f4-2b9e-4d5c-8f1b-6a1c8e3a9d10"
            .parse()
            .expect("uuid");
        assert_eq!(stripe(&id), stripe(&id));
        let nil = ImageId(uuid::Uuid::nil());
        // FNV-1a of sixteen zero bytes, by hand: 0x..., then mod 64.
        let mut h: u32 = 0x811c_9dc5;
        for _ in 0..16 {
            h = h.wrapping_mul(0x0100_0193);
        }
        assert_eq!(stripe(&nil), (h % 64) as usize);
        // Ids chosen in sequence (the last byte counting up) land in many stripes.
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..64u8 {
            let mut bytes = [0u8; 16];
            bytes[15] = n;
            seen.insert(stripe(&ImageId(uuid::Uuid::from_bytes(bytes))));
        }
        assert!(
            seen.len() >= 32,
            "64 sequential ids fell in {} stripes",
            seen.len()
        );
    }

    #[test]
    fn missing_stripes_read_as_none() {
        let g = Generations::from_pairs([(0, 7), (63, 9), (64, 1), (-1, 1)]);
        assert_eq!(g.0[0], Some(7));
        assert_eq!(g.0[63], Some(9));
        assert_eq!(g.0[1], None);
    }
}
