//! What the reactor needs from the layer above it.
//!
//! The reactor schedules type-erased cells: it owns them in its slab, queues
//! their ids, and calls them through a table of plain functions ([`VTable`])
//! built by the layer that created them. It knows nothing of messages,
//! links, requests or sockets; the actor layer ([`crate::actor`]) plugs
//! those in through [`Layer`], and keeps its own per-reactor state in
//! `Core::layer`.

use std::any::TypeId;
use std::ptr::NonNull;

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

    /// Runs once at the end of every turn, after the turn-end hooks.
    fn turn_done(_core: &mut Core<Self>) {}

    /// Messages waiting for a cell of `table`'s type: for the trace's `E`
    /// events and the live lints, read only while tracing or sampling.
    ///
    /// # Safety
    ///
    /// `cell` is a live cell of the type `table` was made for.
    unsafe fn waiting(_cell: NonNull<u8>, _table: &Self::VTable) -> usize {
        0
    }

    /// A warning about a cell's state that lasts while it is wrong (a
    /// socket out of credit with input waiting), for the live lints. The
    /// layer reads nothing a run or hook of the cell borrows (`None`
    /// while one is in progress).
    ///
    /// # Safety
    ///
    /// `cell` is a live cell of the type `table` was made for.
    unsafe fn warning(_cell: NonNull<u8>, _table: &Self::VTable) -> Option<String> {
        None
    }
}

/// The functions the reactor calls for one cell type.
pub struct VTable<L: Layer> {
    /// One run of the cell: called when it is taken off the run queue.
    pub(crate) run: fn(&mut Core<L>, crate::reactor::ActorId),
    /// The cell's turn-end hook, if it asked for one this turn.
    pub(crate) turn_end: fn(&mut Core<L>, crate::reactor::ActorId),
    /// Frees memory the cell keeps for reuse while it is idle. Must touch
    /// nothing a run of the cell borrows: it may be called during one.
    pub(crate) trim: unsafe fn(NonNull<u8>),
    /// Drops and frees a cell the slab no longer holds.
    pub(crate) drop: unsafe fn(NonNull<u8>),
    /// The cell's type name, for logs, metrics and traces.
    pub(crate) type_name: fn() -> &'static str,
    /// The cell's concrete type, for downcasts without a virtual call.
    pub(crate) type_id: TypeId,
    /// The layer's own functions for this type.
    pub(crate) layer: L::VTable,
}

impl<L: Layer> VTable<L> {
    /// A table from its functions.
    pub const fn new(
        run: fn(&mut Core<L>, crate::reactor::ActorId),
        turn_end: fn(&mut Core<L>, crate::reactor::ActorId),
        trim: unsafe fn(NonNull<u8>),
        drop: unsafe fn(NonNull<u8>),
        type_name: fn() -> &'static str,
        type_id: TypeId,
        layer: L::VTable,
    ) -> VTable<L> {
        VTable {
            run,
            turn_end,
            trim,
            drop,
            type_name,
            type_id,
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
///
/// The cell is a `Box` of the type `vtable.type_id` names, held as a raw
/// pointer: its address stays put while the slab grows and moves slots
/// around, and moving a raw pointer asserts nothing about the memory it
/// points to, which a running cell is borrowing from. The slot owns the
/// box and frees it through the table when dropped.
pub(crate) struct Slot<L: Layer> {
    pub(crate) cell: NonNull<u8>,
    pub(crate) vtable: &'static VTable<L>,
    /// In the run queue now.
    pub(crate) scheduled: bool,
    /// Asked for its turn-end hook this turn.
    pub(crate) turn_end: bool,
    /// I/O readiness bits not yet handed to the cell.
    pub(crate) ready: u8,
    /// Its type's index in the per-type metrics.
    #[cfg(feature = "metrics")]
    pub(crate) ty: u32,
    /// The layer's data.
    pub(crate) data: L::Slot,
}

impl<L: Layer> Drop for Slot<L> {
    fn drop(&mut self) {
        // SAFETY: the slot owns its cell, created by `Core::insert` as a
        // box of the table's type; nothing else frees it (`into_parts`
        // forgets the slot).
        unsafe { (self.vtable.drop)(self.cell) }
    }
}

impl<L: Layer> Slot<L> {
    /// Marks the cell scheduled; true if it was not (the caller then
    /// queues it).
    #[inline(always)]
    pub(crate) fn mark_scheduled(&mut self) -> bool {
        if self.scheduled {
            return false;
        }
        self.scheduled = true;
        true
    }

    /// Takes the slot apart: its cell (which the caller now owns and must
    /// free through the table), its table and the layer's data.
    pub(crate) fn into_parts(self) -> (NonNull<u8>, &'static VTable<L>, L::Slot) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so `data` is moved out exactly
        // once; the other fields are `Copy`.
        let data = unsafe { std::ptr::read(&this.data) };
        (this.cell, this.vtable, data)
    }

    /// The cell as a `T`, without checking.
    ///
    /// # Safety
    ///
    /// The cell must be a `T`: it was inserted as one, for instance because
    /// the caller is a function of the slot's own table.
    #[inline(always)]
    pub(crate) unsafe fn cell_unchecked<T: 'static>(&self) -> *mut T {
        debug_assert!(self.vtable.type_id == TypeId::of::<T>());
        self.cell.as_ptr().cast::<T>()
    }

    /// The cell as a `T`, if that is its type. Comparing the table's type
    /// id is one load; `Any::type_id` was a virtual call on every send.
    #[inline]
    pub(crate) fn cell_ptr<T: 'static>(&self) -> Option<*mut T> {
        (self.vtable.type_id == TypeId::of::<T>()).then(|| self.cell.as_ptr().cast::<T>())
    }
}
