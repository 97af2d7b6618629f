//! Actor identities.
//!
//! Invariant: an [`ActorId`] names one actor for ever. Slab slots are reused
//! after an actor dies, so the id carries the slot's generation, and every
//! lookup compares it: an id of a dead actor never reaches the slot's next
//! tenant. The id also says which reactor of its group the actor lives on
//! (the top byte of the slot number), so an address is valid from any
//! reactor of the group.

use std::fmt;

/// Bits of the slot number that name the slab slot; the byte above them
/// names the reactor.
pub(crate) const KEY_BITS: u32 = 24;
/// The most slots one reactor can hold.
pub(crate) const MAX_KEYS: usize = 1 << KEY_BITS;
/// The most reactors in one group.
pub const MAX_REACTORS: usize = 1 << (32 - KEY_BITS);

/// The identity of one actor: its reactor, its slab slot and that slot's
/// generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId {
    /// The reactor's number in its group (top byte) and the slab key.
    index: u32,
    generation: u32,
}

impl ActorId {
    pub(crate) fn new(index: u32, generation: u32) -> ActorId {
        ActorId { index, generation }
    }

    /// The slot number with the reactor's byte: what a reactor subtracts
    /// its own base from to find the slot (a foreign id then falls outside
    /// its slab).
    #[inline(always)]
    pub(crate) fn raw(self) -> u32 {
        self.index
    }

    /// The slab slot this actor occupies on its reactor (shared with later
    /// tenants).
    #[inline(always)]
    pub fn index(self) -> u32 {
        self.index & (MAX_KEYS as u32 - 1)
    }

    /// The number of the reactor the actor lives on, in its group (0 for a
    /// reactor on its own).
    #[inline(always)]
    pub fn reactor(self) -> usize {
        (self.index >> KEY_BITS) as usize
    }

    /// The slot's generation when this actor was spawned.
    pub fn generation(self) -> u32 {
        self.generation
    }

    /// Packs the id into a `u64` (slot number in the low half), for traces
    /// and mio tokens.
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
        match self.reactor() {
            0 => write!(f, "<{}.{}>", self.index(), self.generation),
            r => write!(f, "<{r}:{}.{}>", self.index(), self.generation),
        }
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
