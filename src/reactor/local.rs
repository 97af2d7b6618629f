//! Reactor-local state: one value of each type per reactor, for the layers
//! above the scheduler.
//!
//! This is the extension point socket actors use for their buffer pool and
//! counters, and any other crate can use it the same way: implement
//! [`Local`] for a `Default` type and reach it with `Core::local` (or
//! `Ctx::local` from a handler). The value lives as long as the reactor,
//! on the reactor's thread only, so it needs no locking.

use std::any::{Any, TypeId};
use std::fmt;

use crate::reactor::{ActorId, Counters};

/// State kept once per reactor. Both hooks are optional.
pub trait Local: Default + 'static {
    /// Frees memory held for reuse. Called about once a second while the
    /// reactor is busy, and never while it sleeps.
    fn trim(&mut self) {}

    /// Right after [`Local::trim`]: actors to wake (their I/O hook sees
    /// [`Ready::is_wake`]), for an extension whose trim freed what they
    /// wait for.
    ///
    /// [`Ready::is_wake`]: crate::reactor::Ready::is_wake
    fn to_wake(&mut self, _out: &mut Vec<ActorId>) {}

    /// Counters to include in the reactor's metrics snapshot, as one named
    /// group (see [`Counters`]).
    fn counters(&self) -> Option<Counters> {
        None
    }
}

struct Entry {
    type_id: TypeId,
    value: Box<dyn Any>,
    trim: fn(&mut dyn Any, &mut Vec<ActorId>),
    counters: fn(&dyn Any) -> Option<Counters>,
}

/// The values, found by type (a linear search: there are only a few).
#[derive(Default)]
pub(crate) struct Locals {
    entries: Vec<Entry>,
}

impl fmt::Debug for Locals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locals({})", self.entries.len())
    }
}

fn trim_as<T: Local>(v: &mut dyn Any, wake: &mut Vec<ActorId>) {
    if let Some(v) = v.downcast_mut::<T>() {
        v.trim();
        v.to_wake(wake);
    }
}

fn counters_as<T: Local>(v: &dyn Any) -> Option<Counters> {
    v.downcast_ref::<T>().and_then(Local::counters)
}

impl Locals {
    /// The reactor's `T`, created with `Default` on first use.
    #[inline(always)]
    pub(crate) fn get<T: Local>(&mut self) -> &mut T {
        let type_id = TypeId::of::<T>();
        let index = match self.entries.first() {
            // The first extension (socket actors', in a server) is found
            // with one comparison; the rest by a search.
            Some(e) if e.type_id == type_id => 0,
            _ => self.find_or_insert::<T>(),
        };
        let value: *mut dyn Any = &mut *self.entries[index].value;
        // SAFETY: the entry was created from a `T` (its `type_id` is
        // `TypeId::of::<T>()`) and its box is never replaced, so it points
        // to a `T`. The borrow is tied to `&mut self`. Casting directly
        // skips `Any::type_id`, a virtual call on a path taken per read.
        unsafe { &mut *value.cast::<T>() }
    }

    #[inline(never)]
    fn find_or_insert<T: Local>(&mut self) -> usize {
        let type_id = TypeId::of::<T>();
        match self.entries.iter().position(|e| e.type_id == type_id) {
            Some(i) => i,
            None => {
                self.entries.push(Entry {
                    type_id,
                    value: Box::new(T::default()),
                    trim: trim_as::<T>,
                    counters: counters_as::<T>,
                });
                self.entries.len() - 1
            }
        }
    }

    /// Trims every value; returns the actors they ask to wake.
    pub(crate) fn trim(&mut self) -> Vec<ActorId> {
        let mut wake = Vec::new();
        for e in &mut self.entries {
            (e.trim)(&mut *e.value, &mut wake);
        }
        wake
    }

    pub(crate) fn counters(&self) -> Vec<Counters> {
        self.entries
            .iter()
            .filter_map(|e| (e.counters)(&*e.value))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Pool(Vec<u8>);
    impl Local for Pool {
        fn trim(&mut self) {
            self.0 = Vec::new();
        }
        fn counters(&self) -> Option<Counters> {
            Some(Counters {
                group: "pool",
                values: vec![("bytes", self.0.len() as u64)],
                gauges: Vec::new(),
            })
        }
    }

    #[derive(Default)]
    struct Other(u32);
    impl Local for Other {}

    #[test]
    fn one_value_per_type_created_on_first_use_and_kept() {
        let mut l = Locals::default();
        l.get::<Pool>().0.extend_from_slice(b"abc");
        l.get::<Other>().0 = 7;
        assert_eq!(l.get::<Pool>().0, b"abc");
        assert_eq!(l.get::<Other>().0, 7);
        assert_eq!(l.entries.len(), 2);
        let c = l.counters();
        assert_eq!(c.len(), 1, "Other has no counters");
        assert_eq!(c[0].values, [("bytes", 3)]);
        l.trim();
        assert!(l.get::<Pool>().0.is_empty());
        assert_eq!(l.get::<Other>().0, 7);
    }
}
