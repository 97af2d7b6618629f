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

/// Most buffers kept in the pool.
const POOL_MAX: usize = 256;

/// The socket actors' per-reactor state.
#[derive(Debug, Default)]
pub(crate) struct NetLocal {
    /// Emptied I/O buffers for reuse, so a busy socket does not allocate
    /// per read and an idle one holds none.
    buffers: Vec<BytesMut>,
    pub(crate) stats: SocketStats,
}

impl NetLocal {
    /// An empty buffer with room for at least `min` bytes, from the pool
    /// when one is there.
    pub(crate) fn take_buffer(&mut self, min: usize) -> BytesMut {
        let mut b = self.buffers.pop().unwrap_or_default();
        b.clear();
        b.reserve(min);
        b
    }

    /// Returns a buffer to the pool.
    pub(crate) fn give_buffer(&mut self, b: BytesMut) {
        if self.buffers.len() < POOL_MAX && b.capacity() > 0 {
            self.buffers.push(b);
        }
    }
}

impl Local for NetLocal {
    fn trim(&mut self) {
        self.buffers = Vec::new();
    }

    fn counters(&self) -> Option<Counters> {
        cfg!(feature = "metrics").then(|| Counters {
            group: "sockets",
            values: NAMES.into_iter().zip(self.stats.values()).collect(),
        })
    }
}
