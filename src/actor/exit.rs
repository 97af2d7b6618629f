//! Why an actor terminated.

use std::fmt;
use std::sync::Arc;

use crate::actor::ActorId;

/// The reason an actor terminated, delivered to its links and monitors.
///
/// Cloning is cheap: nested reasons and messages are reference counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// The actor finished its work (`Ctx::stop`).
    Normal,
    /// Something killed it (`Ctx::kill`, `ReactorHandle::kill`).
    Killed,
    /// It terminated with an explicit value of its own choosing.
    Value(Arc<str>),
    /// A handler panicked; the panic message.
    Failed(Arc<str>),
    /// A linked actor terminated and this one did not handle the notice.
    /// `origin` is the first actor of the chain and `reason` its own reason,
    /// so a chain A–B–C reads "linked peer A terminated: killed" at C.
    Linked {
        /// The actor whose exit started the chain.
        origin: ActorId,
        /// The origin's own exit reason.
        reason: Arc<ExitReason>,
    },
    /// The reactor shut down with the actor still alive.
    Shutdown,
    /// The peer was already dead when it was linked or monitored, so its
    /// real reason is no longer known (Erlang's `noproc`).
    NoSuchActor,
}

impl ExitReason {
    /// An explicit exit value.
    pub fn value(v: impl Into<Arc<str>>) -> ExitReason {
        ExitReason::Value(v.into())
    }

    /// The reason an actor dies of when `peer`, linked to it, exits with
    /// `reason`: the chain keeps pointing at its origin.
    pub fn linked(peer: ActorId, reason: &ExitReason) -> ExitReason {
        match reason {
            ExitReason::Linked { origin, reason } => ExitReason::Linked {
                origin: *origin,
                reason: reason.clone(),
            },
            other => ExitReason::Linked {
                origin: peer,
                reason: Arc::new(other.clone()),
            },
        }
    }

    /// True for [`ExitReason::Normal`].
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal)
    }

    /// The reason at the start of a link chain (self, if not linked).
    pub fn root(&self) -> &ExitReason {
        match self {
            ExitReason::Linked { reason, .. } => reason.root(),
            other => other,
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Value(v) => write!(f, "exit: {v}"),
            ExitReason::Failed(m) => write!(f, "failed: {m}"),
            ExitReason::Linked { origin, reason } => {
                write!(f, "linked peer {origin} terminated: {reason}")
            }
            ExitReason::Shutdown => f.write_str("reactor shutdown"),
            ExitReason::NoSuchActor => f.write_str("no such actor"),
        }
    }
}
