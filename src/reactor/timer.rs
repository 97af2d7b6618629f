//! The timer queue: a binary heap of deadlines over a slab of entries.
//!
//! Cancelling removes the slab entry and leaves the heap entry behind; a heap
//! entry whose slab entry is gone (or reused, told apart by `seq`) is skipped
//! when it surfaces. Timers with equal deadlines fire in the order they were
//! set.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use slab::Slab;

use crate::actor::RequestId;
use crate::reactor::Core;

/// Identifies a timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    key: u32,
    seq: u64,
}

/// What happens when a timer fires.
pub(crate) enum TimerAction {
    /// Run this against the reactor (deliver a message, usually).
    Call(Box<dyn FnOnce(&mut Core)>),
    /// Reject a pending request with a timeout.
    RequestTimeout(RequestId),
}

struct Entry {
    seq: u64,
    action: TimerAction,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    entries: Slab<Entry>,
    seq: u64,
}

impl Timers {
    pub(crate) fn add(&mut self, deadline: Instant, action: TimerAction) -> TimerId {
        self.seq += 1;
        let seq = self.seq;
        let key = self.entries.insert(Entry { seq, action }) as u32;
        self.heap.push(Reverse((deadline, seq, key)));
        // Cancelled entries linger in the heap until they surface; rebuild
        // when they outnumber live ones, so churn cannot grow it unbounded.
        if self.heap.len() > 64 && self.heap.len() > 4 * self.entries.len() {
            let entries = &self.entries;
            self.heap
                .retain(|Reverse((_, s, k))| entries.get(*k as usize).is_some_and(|e| e.seq == *s));
        }
        TimerId { key, seq }
    }

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
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<TimerAction> {
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

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
