//! The run queue: which runnable actor runs next.
//!
//! FIFO, with an optional *receiver-next* slot ([`Policy::ReceiverNext`]):
//! an actor made runnable by a send from the running actor runs before the
//! queue's head, at most [`RECEIVER_NEXT_MAX`] times in a row, so a pair of
//! actors bouncing messages cannot starve the queue. Under
//! [`Policy::Random`] an actor made runnable goes to a place in the queue
//! drawn from a seeded generator (xorshift64*), and is taken from the head
//! like any other: the choice costs the other policies nothing on `pop`.
//!
//! Invariant (kept by the caller, through each slot's `scheduled` flag): an
//! actor is in the queue, or in the slot, at most once.
//!
//! Each entry carries the metrics clock at which it was queued (with the
//! `metrics` feature), for the queue-wait histogram: kept here rather than
//! in the slot, it costs memory only while the actor waits.

use std::collections::VecDeque;

use crate::reactor::rng::Rng;
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

/// [`Policy`] without its seed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Mode {
    #[default]
    Fifo,
    ReceiverNext,
    Random,
}

#[derive(Debug, Default)]
pub(crate) struct RunQueue {
    queue: VecDeque<Entry>,
    /// `Policy::ReceiverNext`: the actor to run before the queue's head.
    next: Option<Entry>,
    /// Consecutive runs taken from `next`.
    streak: u32,
    /// The policy, fixed for the queue's life (a byte: the seed is kept
    /// in `rng`, off the path every push takes).
    mode: Mode,
    /// `Policy::Random`: the generator.
    rng: Rng,
}

impl RunQueue {
    /// An empty queue run by `policy`.
    pub(crate) fn new(policy: Policy) -> RunQueue {
        let (mode, seed) = match policy {
            Policy::Fifo => (Mode::Fifo, 0),
            Policy::ReceiverNext => (Mode::ReceiverNext, 0),
            Policy::Random(seed) => (Mode::Random, seed),
        };
        RunQueue {
            mode,
            rng: Rng::new(seed),
            ..RunQueue::default()
        }
    }

    /// True under [`Policy::Fifo`]: the caller queues with
    /// [`RunQueue::push_back`] and need not work out who sent.
    #[inline(always)]
    pub(crate) fn is_fifo(&self) -> bool {
        self.mode == Mode::Fifo
    }

    /// Queues `id` at the back (FIFO).
    #[inline(always)]
    pub(crate) fn push_back(&mut self, id: Entry) {
        self.queue.push_back(id);
    }

    /// Queues `id`, whatever the policy. Under [`Policy::ReceiverNext`],
    /// `sent_by_other` (a send from another running actor made it
    /// runnable) puts it in the slot, and the slot's previous tenant goes
    /// to the back of the queue.
    #[cfg(test)]
    fn push(&mut self, id: Entry, sent_by_other: bool) {
        if self.is_fifo() {
            self.push_back(id);
        } else {
            self.push_other(id, sent_by_other);
        }
    }

    /// Queueing under the policies other than FIFO (the random draw is
    /// out of line).
    #[inline]
    pub(crate) fn push_other(&mut self, id: Entry, sent_by_other: bool) {
        match self.mode {
            Mode::ReceiverNext if sent_by_other => {
                if let Some(old) = self.next.replace(id) {
                    self.queue.push_back(old);
                }
            }
            Mode::Random => self.push_random(id),
            _ => self.queue.push_back(id),
        }
    }

    /// `Policy::Random`: puts `id` at a drawn place, from before the head
    /// to after the tail.
    #[cold]
    #[inline(never)]
    fn push_random(&mut self, id: Entry) {
        let at = self.rng.below(self.queue.len() as u64 + 1) as usize;
        self.queue.insert(at, id);
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
        let mut q = RunQueue::new(Policy::Fifo);
        q.push(id(1), false);
        q.push(id(2), true);
        q.push(id(3), false);
        assert_eq!(q.len(), 3);
        assert_eq!(drain(&mut q), [1, 2, 3]);
        assert!(q.is_empty());
    }

    #[test]
    fn receiver_next_runs_before_the_head_and_displaces_the_previous_tenant() {
        let mut q = RunQueue::new(Policy::ReceiverNext);
        q.push(id(1), false);
        q.push(id(2), true);
        assert_eq!(q.len(), 2);
        // 3 takes the slot; 2 goes to the back of the queue.
        q.push(id(3), true);
        assert_eq!(drain(&mut q), [3, 1, 2]);
    }

    #[test]
    fn receiver_next_streak_is_bounded_so_the_head_runs() {
        let mut q = RunQueue::new(Policy::ReceiverNext);
        q.push(id(9), false);
        let mut order = Vec::new();
        // A ping-pong pair keeps refilling the slot.
        for i in 0..(RECEIVER_NEXT_MAX + 2) {
            q.push(id(i % 2), true);
            order.push(q.pop().unwrap().id.index());
        }
        let head_at = order.iter().position(|&i| i == 9).expect("the head ran");
        assert_eq!(head_at, RECEIVER_NEXT_MAX as usize, "{order:?}");
    }

    fn random_order(seed: u64) -> Vec<u32> {
        let mut q = RunQueue::new(Policy::Random(seed));
        let mut order = Vec::new();
        // Pushes and pops interleaved, as a reactor does them.
        for i in 0..40 {
            q.push(id(i), i % 3 == 0);
            if i % 4 == 3 {
                order.push(q.pop().unwrap().id.index());
            }
        }
        order.extend(drain(&mut q));
        order
    }

    #[test]
    fn random_runs_everyone_once_in_an_order_its_seed_decides() {
        let a = random_order(7);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..40).collect::<Vec<u32>>(), "each actor once");
        assert_eq!(a, random_order(7), "the same seed, the same order");
        assert_ne!(a, random_order(8), "another seed, another order");
        assert_ne!(a, (0..40).collect::<Vec<u32>>(), "not FIFO");
        // Seed 0 works too.
        assert_eq!(random_order(0), random_order(0));
        assert_eq!("random:42".parse::<Policy>(), Ok(Policy::Random(42)));
        assert_eq!("random".parse::<Policy>(), Ok(Policy::Random(1)));
        assert!("random:x".parse::<Policy>().is_err());
    }

    #[test]
    fn clear_forgets_queue_and_slot() {
        let mut q = RunQueue::new(Policy::ReceiverNext);
        q.push(id(1), false);
        q.push(id(2), true);
        q.clear();
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }
}
