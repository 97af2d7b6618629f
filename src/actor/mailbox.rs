//! An actor's mailbox: a FIFO queue whose first message lives inline.
//!
//! Most actors of a connection server receive a message at a time (a
//! session answering one line, an actor in ping-pong) or only a few in
//! their whole life (a socket told who controls it). Holding one message
//! inline serves them without touching the allocator: no queue is
//! allocated, and none is later freed, which under a burst of new
//! connections would leave holes the process keeps resident. Actors that
//! receive bursts get a ring buffer, which keeps its capacity while they
//! are busy and is freed by [`Mailbox::trim`] when they are idle.

use std::collections::VecDeque;

/// A FIFO queue of `T`, inline while it holds at most one element and no
/// ring buffer has been needed since the last trim.
#[derive(Debug, Default)]
pub(crate) enum Mailbox<T> {
    #[default]
    Empty,
    One(T),
    Many(VecDeque<T>),
}

/// The ring buffer's first capacity: a burst is likely to continue.
const FIRST_RING: usize = 8;

impl<T> Mailbox<T> {
    /// Appends `x`.
    #[inline(always)]
    pub(crate) fn push_back(&mut self, x: T) {
        match self {
            Mailbox::Many(q) => q.push_back(x),
            Mailbox::Empty => *self = Mailbox::One(x),
            Mailbox::One(_) => self.spill(x),
        }
    }

    /// Moves the inline element to a new ring buffer, followed by `x`.
    #[cold]
    fn spill(&mut self, x: T) {
        let mut q = VecDeque::with_capacity(FIRST_RING);
        if let Mailbox::One(first) = std::mem::take(self) {
            q.push_back(first);
        }
        q.push_back(x);
        *self = Mailbox::Many(q);
    }

    /// Removes the oldest element.
    #[inline(always)]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        match self {
            Mailbox::Many(q) => q.pop_front(),
            Mailbox::Empty => None,
            Mailbox::One(_) => match std::mem::take(self) {
                Mailbox::One(x) => Some(x),
                _ => None,
            },
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Mailbox::Empty => 0,
            Mailbox::One(_) => 1,
            Mailbox::Many(q) => q.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frees the ring buffer if it is empty (an idle actor).
    pub(crate) fn trim(&mut self) {
        if matches!(self, Mailbox::Many(q) if q.is_empty()) {
            *self = Mailbox::Empty;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mailbox;

    #[test]
    fn first_in_first_out_across_the_inline_slot_and_the_ring() {
        let mut m = Mailbox::default();
        assert_eq!(m.pop_front(), None::<u32>);
        m.push_back(1);
        assert!(matches!(m, Mailbox::One(1)));
        assert_eq!(m.pop_front(), Some(1));
        assert!(matches!(m, Mailbox::Empty));
        for i in 0..20 {
            m.push_back(i);
        }
        assert_eq!(m.len(), 20);
        assert_eq!(m.pop_front(), Some(0));
        m.push_back(20);
        let rest: Vec<u32> = std::iter::from_fn(|| m.pop_front()).collect();
        assert_eq!(rest, (1..=20).collect::<Vec<_>>());
        // The ring stays while the actor is busy, and goes when trimmed.
        assert!(matches!(m, Mailbox::Many(_)));
        m.push_back(7);
        m.trim();
        assert_eq!(m.len(), 1, "trim dropped a queued element");
        assert_eq!(m.pop_front(), Some(7));
        m.trim();
        assert!(matches!(m, Mailbox::Empty));
    }
}
