//! Actor identities and typed handles.
//!
//! Invariant: an [`ActorId`] names one actor for ever. Slab slots are reused
//! after an actor dies, so the id carries the slot's generation, and every
//! lookup compares it: a handle to a dead actor never reaches the slot's next
//! tenant.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use crate::actor::Actor;
use crate::reactor::Core;

/// The identity of one actor: its slab slot and that slot's generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
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

/// A typed handle to an actor (the tutorial's "proxy").
///
/// It is plain data (`Copy`, `Send`), whatever the actor's type: the actor
/// itself never leaves the reactor thread.
pub struct Addr<A> {
    id: ActorId,
    _actor: PhantomData<fn() -> A>,
}

impl<A> Addr<A> {
    pub(crate) fn new(id: ActorId) -> Addr<A> {
        Addr {
            id,
            _actor: PhantomData,
        }
    }

    /// The actor's identity, used for links, monitors and kill.
    pub fn id(&self) -> ActorId {
        self.id
    }
}

impl<A: Actor> Addr<A> {
    /// A handle that accepts any `T` the actor's message type converts from.
    /// Socket actors use it to send events to a controller of any type.
    pub fn recipient<T>(self) -> Recipient<T>
    where
        A::Msg: From<T>,
        T: 'static,
    {
        Recipient {
            id: self.id,
            deliver: deliver_into::<A, T>,
        }
    }
}

fn deliver_into<A: Actor, T>(core: &mut Core, to: ActorId, value: T) -> bool
where
    A::Msg: From<T>,
{
    core.send::<A>(to, A::Msg::from(value))
}

impl<A> Clone for Addr<A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A> Copy for Addr<A> {}
impl<A> PartialEq for Addr<A> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl<A> Eq for Addr<A> {}
impl<A> Hash for Addr<A> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}
impl<A> fmt::Debug for Addr<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Addr{}", self.id)
    }
}
impl<A> fmt::Display for Addr<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.id, f)
    }
}

/// A handle that delivers values of type `T` to an actor of any type whose
/// message type implements `From<T>`.
///
/// It holds a plain function pointer, so delivering through it allocates
/// nothing.
pub struct Recipient<T> {
    id: ActorId,
    deliver: fn(&mut Core, ActorId, T) -> bool,
}

impl<T> Recipient<T> {
    /// The receiving actor's identity.
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// Delivers `value`; false if the actor is dead (the value is dropped).
    pub(crate) fn deliver(&self, core: &mut Core, value: T) -> bool {
        (self.deliver)(core, self.id, value)
    }
}

impl<T> Clone for Recipient<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Recipient<T> {}
impl<T> fmt::Debug for Recipient<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient{}", self.id)
    }
}
