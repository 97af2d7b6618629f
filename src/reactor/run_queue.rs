//! The run queue: which runnable actor runs next.
//!
//! FIFO, with an optional *receiver-next* slot ([`Policy::ReceiverNext`]):
//! an actor made runnable by a send from the running actor runs before the
//! queue's head, at most [`RECEIVER_NEXT_MAX`] times in a row, so a pair of
//! actors bouncing messages cannot starve the queue.
//!
//! Invariant (kept by the caller, through each slot's `scheduled` flag): an
//! actor is in the queue, or in the slot, at most once.
//!
//! Each entry carries the metrics clock at which it was queued (with the
//! `metrics` feature), for the queue-wait histogram: kept here rather than
//! in the slot, it costs memory only while the actor waits.

use std::collections::VecDeque;

use crate::reactor::{ActorId, Policy};

/// Most consecutive runs taken from the receiver-next slot.
pub const RECEIVER_NEXT_MAX: u32 = 3;

/// A queued actor and when it was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: ActorId,
    #[cfg(feature = "metrics")]
    pub(crate) enq: u64,
}

impl Entry {
    #[inline(always)]
    pub(crate) fn new(id: ActorId, _enq: u64) -> Entry {
        Entry {
            id,
            #[cfg(feature = "metrics")]
            enq: _enq,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct RunQueue {
    queue: VecDeque<Entry>,
    /// `Policy::ReceiverNext`: the actor to run before the queue's head.
    next: Option<Entry>,
    /// Consecutive runs taken from `next`.
    streak: u32,
}

impl RunQueue {
    /// Queues `id`. Under [`Policy::ReceiverNext`], `sent_by_other` (a send
    /// from another running actor made it runnable) puts it in the slot,
    /// and the slot's previous tenant goes to the back of the queue.
    #[inline]
    pub(crate) fn push(&mut self, id: Entry, policy: Policy, sent_by_other: bool) {
        if sent_by_other && policy == Policy::ReceiverNext {
            if let Some(old) = self.next.replace(id) {
                self.queue.push_back(old);
            }
        } else {
            self.queue.push_back(id);
        }
    }

    /// The next actor to run: the receiver-next slot (at most
    /// `RECEIVER_NEXT_MAX` times in a row), else the queue's head.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Entry> {
        if let Some(id) = self.next.take() {
            if self.streak < RECEIVER_NEXT_MAX || self.queue.is_empty() {
                self.streak += 1;
                return Some(id);
            }
            self.queue.push_back(id);
        }
        self.streak = 0;
        self.queue.pop_front()
    }

    /// Actors waiting, the slot included.
    pub(crate) fn len(&self) -> usize {
        self.queue.len() + usize::from(self.next.is_some())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.next.is_none()
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.next = None;
        self.streak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u32) -> Entry {
        Entry::new(ActorId::new(i, 0), u64::from(i))
    }

    fn drain(q: &mut RunQueue) -> Vec<u32> {
        std::iter::from_fn(|| q.pop())
            .map(|a| {
                #[cfg(feature = "metrics")]
                assert_eq!(a.enq, u64::from(a.id.index()), "stamp lost");
                a.id.index()
            })
            .collect()
    }

    #[test]
    fn fifo_pops_in_push_order_whoever_sent() {
        let mut q = RunQueue::default();
        q.push(id(1), Policy::Fifo, false);
        q.push(id(2), Policy::Fifo, true);
        q.push(id(3), Policy::Fifo, false);
        assert_eq!(q.len(), 3);
        assert_eq!(drain(&mut q), [1, 2, 3]);
        assert!(q.is_empty());
    }

    #[test]
    fn receiver_next_runs_before_the_head_and_displaces_the_previous_tenant() {
        let mut q = RunQueue::default();
        q.push(id(1), Policy::ReceiverNext, false);
        q.push(id(2), Policy::ReceiverNext, true);
        assert_eq!(q.len(), 2);
        // 3 takes the slot; 2 goes to the back of the queue.
        q.push(id(3), Policy::ReceiverNext, true);
        assert_eq!(drain(&mut q), [3, 1, 2]);
    }

    #[test]
    fn receiver_next_streak_is_bounded_so_the_head_runs() {
        let mut q = RunQueue::default();
        q.push(id(9), Policy::ReceiverNext, false);
        let mut order = Vec::new();
        // A ping-pong pair keeps refilling the slot.
        for i in 0..(RECEIVER_NEXT_MAX + 2) {
            q.push(id(i % 2), Policy::ReceiverNext, true);
            order.push(q.pop().unwrap().id.index());
        }
        let head_at = order.iter().position(|&i| i == 9).expect("the head ran");
        assert_eq!(head_at, RECEIVER_NEXT_MAX as usize, "{order:?}");
    }

    #[test]
    fn clear_forgets_queue_and_slot() {
        let mut q = RunQueue::default();
        q.push(id(1), Policy::ReceiverNext, false);
        q.push(id(2), Policy::ReceiverNext, true);
        q.clear();
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }
}
