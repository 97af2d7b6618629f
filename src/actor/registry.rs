//! Names for actors, one registry per reactor (Erlang's `register` and
//! `whereis`).
//!
//! A name stands for whichever actor holds it now. A supervised child
//! registered under its spec's name (`ChildSpec::registered`) is found by
//! the same name after every restart, with no polling and no shared cell:
//! the supervisor registers each new incarnation before anything else can
//! run. A name is released when its actor exits.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::actor::{Actor, ActorId, Addr, Core};

/// Why a name could not be registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// Another live actor holds the name.
    Taken(ActorId),
    /// The actor already has a name (an actor holds at most one).
    AlreadyNamed(Arc<str>),
    /// The actor is not alive.
    DeadActor(ActorId),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Taken(id) => write!(f, "the name is taken by {id}"),
            NameError::AlreadyNamed(n) => write!(f, "the actor is already registered as {n:?}"),
            NameError::DeadActor(id) => write!(f, "actor {id} is not alive"),
        }
    }
}

impl std::error::Error for NameError {}

/// The names registered on one reactor.
#[derive(Debug, Default)]
pub(crate) struct Names {
    by_name: HashMap<Arc<str>, ActorId>,
    by_id: HashMap<ActorId, Arc<str>>,
}

impl Names {
    /// Releases `id`'s name, if it has one (it exited).
    pub(crate) fn forget(&mut self, id: ActorId) {
        if self.by_id.is_empty() {
            return;
        }
        if let Some(name) = self.by_id.remove(&id) {
            self.by_name.remove(&name);
        }
    }
}

impl Core {
    /// Registers the live actor `id` under `name`, until it exits or the
    /// name is unregistered.
    pub fn register_name(
        &mut self,
        name: impl Into<Arc<str>>,
        id: ActorId,
    ) -> Result<(), NameError> {
        let name = name.into();
        if !self.is_alive(id) {
            return Err(NameError::DeadActor(id));
        }
        let names = &mut self.layer.names;
        if let Some(&holder) = names.by_name.get(&name) {
            return Err(NameError::Taken(holder));
        }
        if let Some(old) = names.by_id.get(&id) {
            return Err(NameError::AlreadyNamed(old.clone()));
        }
        names.by_name.insert(name.clone(), id);
        names.by_id.insert(id, name);
        Ok(())
    }

    /// Releases `name`; false if nobody held it.
    pub fn unregister_name(&mut self, name: &str) -> bool {
        let names = &mut self.layer.names;
        match names.by_name.remove(name) {
            Some(id) => {
                names.by_id.remove(&id);
                true
            }
            None => false,
        }
    }

    /// The actor registered under `name`, if there is one and it is an `A`.
    pub fn whereis<A: Actor>(&self, name: &str) -> Option<Addr<A>> {
        let id = *self.layer.names.by_name.get(name)?;
        self.is_a::<A>(id).then(|| Addr::new(id))
    }

    /// The name `id` is registered under, if any.
    pub fn name_of(&self, id: ActorId) -> Option<Arc<str>> {
        self.layer.names.by_id.get(&id).cloned()
    }
}
