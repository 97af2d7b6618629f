//! Typed addresses of actors.
//!
//! An [`Addr<A>`] is an [`ActorId`] that knows its actor's type, so sends
//! through it are type-checked. A [`Recipient<T>`] is an address that
//! accepts any `T` its actor's message type converts from, whatever that
//! actor's type: socket actors use one to send events to a controller of
//! any type. Both are plain data (`Copy`, `Send`): the actor itself never
//! leaves the reactor thread.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use crate::actor::{Actor, ActorId, Core};

/// A typed address of an actor (the tutorial's "proxy").
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
    /// An address that accepts any `T` the actor's message type converts
    /// from.
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
    core.send_to::<A>(to, A::Msg::from(value))
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

/// Why [`Ctx::try_send`](crate::Ctx::try_send) did not send.
#[derive(PartialEq, Eq)]
pub enum SendError<M> {
    /// The receiver lives on another reactor and the lane to it is full:
    /// here is the message back. Try again later, or ask to be told when
    /// there is room ([`Ctx::when_room`](crate::Ctx::when_room)).
    Full(M),
    /// The receiver is dead (on this reactor): the message was dropped and
    /// counted, as `send` does.
    Dead,
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Dead => f.write_str("Dead"),
        }
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("the lane to the receiver's reactor is full"),
            SendError::Dead => f.write_str("the receiver is dead"),
        }
    }
}

/// An address that delivers values of type `T` to an actor of any type
/// whose message type implements `From<T>`.
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

/// Where a message of type `M` can be sent: an [`Addr`] of an actor whose
/// message type is `M`, or a [`Recipient<M>`]. `Ctx::send` and `Core::send`
/// take either.
pub trait Destination<M>: Copy + sealed::Sealed {
    /// The receiving actor's identity.
    fn actor_id(&self) -> ActorId;

    #[doc(hidden)]
    fn deliver(&self, core: &mut Core, msg: M) -> bool;
}

impl<A: Actor> Destination<A::Msg> for Addr<A> {
    fn actor_id(&self) -> ActorId {
        self.id
    }

    #[inline]
    fn deliver(&self, core: &mut Core, msg: A::Msg) -> bool {
        core.send_to::<A>(self.id, msg)
    }
}

impl<T> Destination<T> for Recipient<T> {
    fn actor_id(&self) -> ActorId {
        self.id
    }

    #[inline]
    fn deliver(&self, core: &mut Core, msg: T) -> bool {
        (self.deliver)(core, self.id, msg)
    }
}

mod sealed {
    pub trait Sealed {}
    impl<A> Sealed for super::Addr<A> {}
    impl<T> Sealed for super::Recipient<T> {}
}
