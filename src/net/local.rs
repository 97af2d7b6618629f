//! What socket actors keep once per reactor, through the reactor's public
//! extension point ([`Local`]): a pool of emptied I/O buffers and the socket
//! counters.

use bytes::BytesMut;

use crate::reactor::{Counters, Local, Metrics};

/// Per-socket counters, summed over every socket of a reactor. They appear
/// in [`Metrics::counters`] as the group `sockets`; read them back with
/// [`SocketStats::of`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Units delivered to controllers (errors included).
    pub units: u64,
    /// Times delivery stopped with data waiting because credit was zero.
    pub credit_stalls: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// `read` calls.
    pub reads: u64,
    /// `read` calls that found nothing (`WouldBlock`).
    pub empty_reads: u64,
    /// `write`/`writev` flush attempts.
    pub flushes: u64,
    /// Times input was held back because output passed the high-water mark.
    pub high_water: u64,
}

/// The counter names, in the order `--stats` prints them.
const NAMES: [&str; 8] = [
    "units", "in", "out", "reads", "wb", "writes", "stalls", "hw",
];

impl SocketStats {
    /// The socket counters of a metrics snapshot (zero if there are none:
    /// no socket ever ran, or metrics are compiled out).
    pub fn of(metrics: &Metrics) -> SocketStats {
        let Some(g) = metrics.group("sockets") else {
            return SocketStats::default();
        };
        let v = |name| g.get(name).unwrap_or(0);
        SocketStats {
            units: v("units"),
            bytes_in: v("in"),
            bytes_out: v("out"),
            reads: v("reads"),
            empty_reads: v("wb"),
            flushes: v("writes"),
            credit_stalls: v("stalls"),
            high_water: v("hw"),
        }
    }

    fn values(&self) -> [u64; 8] {
        [
            self.units,
            self.bytes_in,
            self.bytes_out,
            self.reads,
            self.empty_reads,
            self.flushes,
            self.credit_stalls,
            self.high_water,
        ]
    }
}

/// Most buffers kept in each pool.
const POOL_MAX: usize = 256;

/// Emptied buffers of one kind, for reuse. Read buffers and output
/// buffers are kept apart: they differ in size, and a read buffer may come
/// back while units cut from it are still alive, so it must not go to a
/// writer (which would then allocate) before they are dropped.
#[derive(Debug, Default)]
struct Pool {
    buffers: Vec<BytesMut>,
}

impl Pool {
    /// An empty buffer with room for at least `min` bytes: the last one
    /// given back if its whole allocation can be reused (no unit cut from
    /// it is alive any more), else a new one.
    fn take(&mut self, min: usize) -> BytesMut {
        if let Some(mut b) = self.buffers.pop() {
            b.clear();
            if b.try_reclaim(min) {
                return b;
            }
            // Still shared with units: it is freed when they are dropped.
        }
        BytesMut::with_capacity(min)
    }

    fn give(&mut self, b: BytesMut) {
        if self.buffers.len() < POOL_MAX && b.capacity() > 0 {
            self.buffers.push(b);
        }
    }
}

/// The socket actors' per-reactor state.
#[derive(Debug, Default)]
pub(crate) struct NetLocal {
    read: Pool,
    write: Pool,
    pub(crate) stats: SocketStats,
}

impl NetLocal {
    /// An empty read buffer with room for at least `min` bytes.
    pub(crate) fn take_read(&mut self, min: usize) -> BytesMut {
        self.read.take(min)
    }

    /// Returns a read buffer (socket actors give theirs back at the end of
    /// the turn, once the units cut from it have usually been handled).
    pub(crate) fn give_read(&mut self, b: BytesMut) {
        self.read.give(b);
    }

    /// A buffer for a socket's output queue.
    pub(crate) fn take_tail(&mut self) -> BytesMut {
        self.write.take(crate::net::socket::TAIL_MIN)
    }

    /// Returns an output buffer, emptied by a flush.
    pub(crate) fn give_tail(&mut self, b: BytesMut) {
        self.write.give(b);
    }
}

impl Local for NetLocal {
    fn trim(&mut self) {
        self.read = Pool::default();
        self.write = Pool::default();
    }

    fn counters(&self) -> Option<Counters> {
        cfg!(feature = "metrics").then(|| Counters {
            group: "sockets",
            values: NAMES.into_iter().zip(self.stats.values()).collect(),
        })
    }
}
