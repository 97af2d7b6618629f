//! The timer queue: a binary heap of deadlines over a slab of entries.
//!
//! Cancelling removes the slab entry and leaves the heap entry behind; a heap
//! entry whose slab entry is gone (or reused, told apart by `seq`) is skipped
//! when it surfaces, and the heap is rebuilt when such entries outnumber the
//! live ones, so churn cannot grow it without bound. Timers with equal
//! deadlines fire in the order they were set.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use slab::Slab;

/// Identifies a timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    key: u32,
    seq: u64,
}

struct Entry<A> {
    seq: u64,
    action: A,
}

/// Timers carrying actions of type `A`.
pub(crate) struct Timers<A> {
    heap: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    entries: Slab<Entry<A>>,
    seq: u64,
}

impl<A> Default for Timers<A> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            entries: Slab::new(),
            seq: 0,
        }
    }
}

impl<A> Timers<A> {
    pub(crate) fn add(&mut self, deadline: Instant, action: A) -> TimerId {
        self.seq += 1;
        let seq = self.seq;
        let key = self.entries.insert(Entry { seq, action }) as u32;
        self.heap.push(Reverse((deadline, seq, key)));
        if self.heap.len() > 64 && self.heap.len() > 4 * self.entries.len() {
            let entries = &self.entries;
            self.heap
                .retain(|Reverse((_, s, k))| entries.get(*k as usize).is_some_and(|e| e.seq == *s));
        }
        TimerId { key, seq }
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        match self.entries.get(id.key as usize) {
            Some(e) if e.seq == id.seq => {
                self.entries.remove(id.key as usize);
                true
            }
            _ => false,
        }
    }

    fn is_live(&self, seq: u64, key: u32) -> bool {
        self.entries.get(key as usize).is_some_and(|e| e.seq == seq)
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, seq, key))) = self.heap.peek().copied() {
            if self.is_live(seq, key) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// The next timer due at `now`, removed.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<A> {
        while let Some(Reverse((deadline, seq, key))) = self.heap.peek().copied() {
            if !self.is_live(seq, key) {
                self.heap.pop();
                continue;
            }
            if deadline > now {
                return None;
            }
            self.heap.pop();
            return Some(self.entries.remove(key as usize).action);
        }
        None
    }

    /// Timers set and not yet fired or cancelled.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries in the heap, stale ones included.
    #[cfg(test)]
    fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fire_all(t: &mut Timers<u32>, now: Instant) -> Vec<u32> {
        std::iter::from_fn(|| t.pop_expired(now)).collect()
    }

    #[test]
    fn fires_in_deadline_order_and_equal_deadlines_in_set_order() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.add(t0 + Duration::from_millis(30), 3);
        t.add(t0 + Duration::from_millis(10), 1);
        t.add(t0 + Duration::from_millis(20), 2);
        t.add(t0 + Duration::from_millis(20), 22);
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(fire_all(&mut t, t0 + Duration::from_millis(20)), [1, 2, 22]);
        assert_eq!(t.len(), 1);
        assert_eq!(
            fire_all(&mut t, t0 + Duration::from_millis(29)),
            [] as [u32; 0]
        );
        assert_eq!(fire_all(&mut t, t0 + Duration::from_secs(1)), [3]);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn cancelled_timer_never_fires_and_cancel_is_idempotent() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let a = t.add(t0, 1);
        let b = t.add(t0, 2);
        assert!(t.cancel(a));
        assert!(!t.cancel(a));
        assert_eq!(fire_all(&mut t, t0), [2]);
        // A fired timer cannot be cancelled, nor can a stale id cancel the
        // entry that reuses its slab slot.
        assert!(!t.cancel(b));
        let c = t.add(t0, 3);
        assert!(!t.cancel(a));
        assert!(t.cancel(c));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn churn_of_cancelled_timers_keeps_the_heap_bounded() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let keep = t.add(t0 + Duration::from_secs(60), 0);
        for i in 0..10_000 {
            let id = t.add(t0 + Duration::from_secs(30), i);
            assert!(t.cancel(id));
            assert!(t.heap_len() <= 65 + 4, "heap grew to {}", t.heap_len());
        }
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(60)));
        assert!(t.cancel(keep));
    }
}
