//! Actor identities.
//!
//! Invariant: an [`ActorId`] names one actor for ever. Slab slots are reused
//! after an actor dies, so the id carries the slot's generation, and every
//! lookup compares it: an id of a dead actor never reaches the slot's next
//! tenant.

use std::fmt;

/// The identity of one actor: its slab slot and that slot's generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId {
    index: u32,
    generation: u32,
}

impl ActorId {
    pub(crate) fn new(index: u32, generation: u32) -> ActorId {
        ActorId { index, generation }
    }

    /// The slab slot this actor occupies (shared with later tenants).
    pub fn index(self) -> u32 {
        self.index
    }

    /// The slot's generation when this actor was spawned.
    pub fn generation(self) -> u32 {
        self.generation
    }

    /// Packs the id into a `u64` (index in the low half), for traces and
    /// mio tokens.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The inverse of [`ActorId::to_u64`].
    pub fn from_u64(v: u64) -> ActorId {
        ActorId::new(v as u32, (v >> 32) as u32)
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}.{}>", self.index, self.generation)
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
