//! What the reactor needs from the layer above it.
//!
//! The reactor schedules type-erased cells: it owns them in its slab, queues
//! their ids, and calls them through a table of plain functions ([`VTable`])
//! built by the layer that created them. It knows nothing of messages,
//! links, requests or sockets; the actor layer ([`crate::actor`]) plugs
//! those in through [`Layer`], and keeps its own per-reactor state in
//! `Core::layer`.

use std::any::{Any, TypeId};

use crate::reactor::Core;

/// The layer of the runtime above the reactor: its per-reactor state (this
/// type itself, kept in `Core::layer`), its per-slot data, its per-type
/// functions and its timer actions.
pub trait Layer: Default + Sized + 'static {
    /// Data the layer keeps in every slot next to the cell (links,
    /// monitors, an exit in progress, ...).
    type Slot: 'static;
    /// Functions of the layer's own for one cell type.
    type VTable: 'static;
    /// A timer action of the layer's own, fired without allocating.
    type Timer: 'static;

    /// Runs after every call into cell code (a run, a turn-end hook, a
    /// timer, a command from another thread), to settle what it left
    /// pending: exits, dropped replies.
    fn settle(core: &mut Core<Self>);

    /// True while settling has work queued, so the reactor must not block
    /// in `poll`.
    fn pending(core: &Core<Self>) -> bool;

    /// Fires one of the layer's timers.
    fn fire(core: &mut Core<Self>, timer: Self::Timer);

    /// The reactor is stopping: end every cell still alive.
    fn shutdown(core: &mut Core<Self>);

    /// Frees what the layer keeps for reuse; called with the reactor's
    /// once-a-second trim.
    fn trim(_core: &mut Core<Self>) {}
}

/// The functions the reactor calls for one cell type.
pub struct VTable<L: Layer> {
    /// One run of the cell: called when it is taken off the run queue.
    pub(crate) run: fn(&mut Core<L>, crate::reactor::ActorId),
    /// The cell's turn-end hook, if it asked for one this turn.
    pub(crate) turn_end: fn(&mut Core<L>, crate::reactor::ActorId),
    /// Frees memory the cell keeps for reuse while it is idle.
    pub(crate) trim: fn(&mut dyn Any),
    /// The cell's type name, for logs, metrics and traces.
    pub(crate) type_name: fn() -> &'static str,
    /// The layer's own functions for this type.
    pub(crate) layer: L::VTable,
}

impl<L: Layer> VTable<L> {
    /// A table from its functions.
    pub const fn new(
        run: fn(&mut Core<L>, crate::reactor::ActorId),
        turn_end: fn(&mut Core<L>, crate::reactor::ActorId),
        trim: fn(&mut dyn Any),
        type_name: fn() -> &'static str,
        layer: L::VTable,
    ) -> VTable<L> {
        VTable {
            run,
            turn_end,
            trim,
            type_name,
            layer,
        }
    }

    /// The layer's own functions.
    pub fn layer(&self) -> &L::VTable {
        &self.layer
    }

    /// The cell's type name.
    pub fn type_name(&self) -> &'static str {
        (self.type_name)()
    }
}

impl<L: Layer> std::fmt::Debug for VTable<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VTable({})", (self.type_name)())
    }
}

/// One slot of the slab: a cell and its scheduling state.
pub(crate) struct Slot<L: Layer> {
    /// The cell, type-erased.
    pub(crate) cell: Box<dyn Any>,
    /// The concrete type inside `cell`, for downcasts without a virtual
    /// call.
    pub(crate) type_id: TypeId,
    pub(crate) vtable: &'static VTable<L>,
    /// In the run queue now.
    pub(crate) scheduled: bool,
    /// Asked for its turn-end hook this turn.
    pub(crate) turn_end: bool,
    /// I/O readiness bits not yet handed to the cell.
    pub(crate) ready: u8,
    /// Metrics clock when it was last queued.
    #[cfg(feature = "metrics")]
    pub(crate) enq: u64,
    /// Its type's index in the per-type metrics.
    #[cfg(feature = "metrics")]
    pub(crate) ty: u32,
    /// The layer's data.
    pub(crate) data: L::Slot,
}

impl<L: Layer> Slot<L> {
    /// Marks the cell scheduled, stamped with `clock`; true if it was not
    /// (the caller then queues it).
    #[inline(always)]
    pub(crate) fn mark_scheduled(&mut self, _clock: u64) -> bool {
        if self.scheduled {
            return false;
        }
        self.scheduled = true;
        #[cfg(feature = "metrics")]
        {
            self.enq = _clock;
        }
        true
    }

    /// The cell as a `T`, without checking.
    ///
    /// # Safety
    ///
    /// The cell must be a `T`: it was inserted as one, for instance because
    /// the caller is a function of the slot's own table.
    #[inline(always)]
    pub(crate) unsafe fn cell_unchecked<T: 'static>(&mut self) -> &mut T {
        debug_assert!(self.type_id == TypeId::of::<T>());
        let ptr: *mut dyn Any = &mut *self.cell;
        // SAFETY: the caller guarantees the pointee is a `T`; the borrow is
        // tied to `&mut self`.
        unsafe { &mut *ptr.cast::<T>() }
    }

    /// The cell as a `T`, if that is its type.
    #[inline]
    pub(crate) fn cell_mut<T: 'static>(&mut self) -> Option<&mut T> {
        if self.type_id == TypeId::of::<T>() {
            let ptr: *mut dyn Any = &mut *self.cell;
            // SAFETY: `type_id` is the `TypeId` of the value this box was
            // created with (recorded by `Core::insert` from the same
            // value), and the box's contents are never replaced, so the
            // pointee is a `T`. The borrow is tied to `&mut self`. Comparing
            // the stored id skips `Any::type_id`, a virtual call on every
            // send (about 65 instructions per echoed line, measured with
            // callgrind).
            Some(unsafe { &mut *ptr.cast::<T>() })
        } else {
            None
        }
    }
}
