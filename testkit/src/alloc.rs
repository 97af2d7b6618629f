//! A global allocator that counts allocations and live heap bytes, per
//! thread and in all.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    // `const` and without a destructor: reading it never allocates, and it
    // stays readable while the thread is torn down.
    static THREAD_ALLOCS: Cell<u64> = const { Cell::new(0) };
    // Bytes allocated minus bytes freed on this thread: a block freed on
    // another thread than the one that allocated it skews both threads.
    static THREAD_LIVE: Cell<i64> = const { Cell::new(0) };
}

static ALL_ALLOCS: AtomicU64 = AtomicU64::new(0);

/// Counts every allocation (and reallocation) on its way to the system
/// allocator. Install it in a test binary with
/// `#[global_allocator] static A: CountingAlloc = CountingAlloc;`, then read
/// [`CountingAlloc::thread`]: the count of the calling thread only, so tests
/// running in parallel in one binary do not disturb each other.
#[derive(Debug)]
pub struct CountingAlloc;

impl CountingAlloc {
    /// Allocations made on the calling thread so far.
    pub fn thread() -> u64 {
        THREAD_ALLOCS.with(Cell::get)
    }

    /// Allocations made on every thread so far.
    pub fn all() -> u64 {
        ALL_ALLOCS.load(Ordering::Relaxed)
    }

    /// Heap bytes allocated and not yet freed by the calling thread (as
    /// requested, without the allocator's own overhead). Meaningful for a
    /// thread that frees what it allocates, such as a reactor's.
    pub fn thread_live() -> i64 {
        THREAD_LIVE.with(Cell::get)
    }

    fn count() {
        ALL_ALLOCS.fetch_add(1, Ordering::Relaxed);
        THREAD_ALLOCS.with(|c| c.set(c.get() + 1));
    }

    fn live(delta: i64) {
        THREAD_LIVE.with(|c| c.set(c.get() + delta));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counting touches only an atomic and a thread-local `Cell`, neither of which
// allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count();
        Self::live(layout.size() as i64);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count();
        Self::live(layout.size() as i64);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count();
        Self::live(new_size as i64 - layout.size() as i64);
        // SAFETY: as above; `ptr` came from this allocator, which is System.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::live(-(layout.size() as i64));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}
