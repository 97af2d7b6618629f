//! What socket actors keep once per reactor, through the reactor's public
//! extension point ([`Local`]): a pool of emptied I/O buffers and the socket
//! counters.

use bytes::BytesMut;

use crate::net::budget::{Act, Budget};
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

/// The read buffer a fresh read gets past half the memory budget.
const WARM_READ: usize = 2048;

/// Most read buffers kept. The byte bound below sees a buffer still
/// shared with units by the part of it the pool holds, which may be small,
/// so this also bounds what such buffers keep alive: 64 times the largest
/// buffer a socket may grow (128 KiB at the default limits).
const READ_POOL_MAX: usize = 64;

/// Most output buffers kept: one per socket that wrote in a turn, for a
/// broadcast to many sockets (they are never shared, so the byte bound
/// holds for them).
const WRITE_POOL_MAX: usize = 4096;

/// Buffer bytes freed since the last trim past which the allocator is
/// asked to give its free pages back to the system: a burst (thousands of
/// sockets writing in one turn, or connections holding output that end)
/// leaves the heap full of freed buffers between live allocations, which
/// the allocator keeps resident otherwise.
const RELEASE_AFTER: usize = 1 << 20;

/// Connections ended since the last trim past which the allocator is asked
/// to give its free pages back (each leaves a few kilobytes of actor state
/// and mailbox behind).
const RELEASE_AFTER_ENDED: usize = 64;

/// Returns the allocator's free pages to the system, where it can
/// (glibc's `malloc_trim`); elsewhere, nothing.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes a padding size and only releases memory
    // the allocator holds free; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A pooled read buffer is handed out only for a request of at least this
/// fraction of its size: a socket cutting short lines does not get (and
/// fill, and hold while its peer is slow) a buffer grown for long ones.
const HAND_OUT_MAX_RATIO: usize = 4;

/// Most bytes of buffer capacity kept in each pool, so that a burst of
/// long lines cannot leave the pool holding much memory until the next
/// trim.
const POOL_BYTES_MAX: usize = 8 << 20;

/// Pooled buffers looked at by one `take` besides the newest: the oldest
/// ones, the likeliest to have had their units dropped.
const TAKE_SCAN: usize = 4;

/// Emptied buffers of one kind, for reuse. Read buffers and output
/// buffers are kept apart: they differ in size, and a read buffer may come
/// back while units cut from it are still alive, so it must not go to a
/// writer (which would then allocate) before they are dropped.
#[derive(Debug)]
struct Pool {
    /// The buffers, oldest first, each with its capacity when given back.
    buffers: Vec<(BytesMut, usize)>,
    /// Capacity of the buffers kept.
    bytes: usize,
    /// Most buffers kept.
    max: usize,
    /// Most bytes of capacity kept.
    bytes_max: usize,
}

impl Pool {
    fn new(max: usize, bytes_max: usize) -> Pool {
        Pool {
            buffers: Vec::new(),
            bytes: 0,
            max,
            bytes_max,
        }
    }

    /// An empty buffer with room for at least `min` bytes: a pooled one
    /// whose whole allocation can be reused (no unit cut from it is alive
    /// any more), else a new one. The newest is tried first (it is warm in
    /// the cache, and free unless units of the last read are still alive),
    /// then the oldest few. A buffer still shared with units stays in the
    /// pool and becomes reusable once they are dropped, so a socket
    /// answering long lines by reference cycles through a few buffers
    /// instead of allocating one per line.
    ///
    /// `near` also refuses buffers far larger than `min` (read buffers,
    /// which reads fill); output buffers are taken at their least size and
    /// grow, so any size will do.
    #[inline(always)]
    fn take(&mut self, min: usize, near: bool) -> BytesMut {
        if let Some((mut b, had)) = self.buffers.pop() {
            Pool::reset(&mut b);
            if Pool::fits(&mut b, min, near) {
                self.bytes -= had;
                return b;
            }
            self.buffers.push((b, had));
            return self.take_older(min, near);
        }
        Pool::fresh(min)
    }

    /// `take` when the newest buffer is still shared: the oldest few.
    #[cold]
    fn take_older(&mut self, min: usize, near: bool) -> BytesMut {
        let older = self.buffers.len() - 1;
        for i in 0..older.min(TAKE_SCAN) {
            let (b, _) = &mut self.buffers[i];
            Pool::reset(b);
            if Pool::fits(b, min, near) {
                let (b, had) = self.buffers.remove(i);
                self.bytes -= had;
                return b;
            }
        }
        Pool::fresh(min)
    }

    /// Empties `b` and, if no unit shares its allocation any more, gives
    /// it the whole allocation back: a buffer comes back as the view left
    /// after the units cut from its front, which may be a small part of
    /// it.
    #[inline]
    fn reset(b: &mut BytesMut) {
        b.clear();
        let _ = b.try_reclaim(b.capacity() + 1);
    }

    /// True if `b` (emptied) has room for `min` bytes and, if `near`, is
    /// not far larger than that.
    #[inline]
    fn fits(b: &mut BytesMut, min: usize, near: bool) -> bool {
        (!near || b.capacity() <= min.saturating_mul(HAND_OUT_MAX_RATIO)) && b.try_reclaim(min)
    }

    fn fresh(min: usize) -> BytesMut {
        // Rounded up to a power of two: a buffer that must grow for a long
        // unit then has room for what follows it, and the pool's buffers
        // come in a few sizes that fit many requests.
        BytesMut::with_capacity(min.checked_next_power_of_two().unwrap_or(min))
    }

    #[inline]
    fn give(&mut self, b: BytesMut) {
        let cap = b.capacity();
        if self.buffers.len() < self.max && cap > 0 && self.bytes + cap <= self.bytes_max {
            self.bytes += cap;
            self.buffers.push((b, cap));
        }
    }
}

/// The socket actors' per-reactor state.
#[derive(Debug)]
pub(crate) struct NetLocal {
    read: Pool,
    write: Pool,
    pub(crate) stats: SocketStats,
    /// The buffer memory budget.
    pub(crate) budget: Budget,
    /// PROXY headers read, of which `LOCAL`, and connections refused for
    /// their header (or its absence).
    pub(crate) proxy: ProxyCounts,
    /// Sockets alive on this reactor (accepted and outgoing).
    pub(crate) live: u64,
}

/// The PROXY protocol's counters (see [`crate::net::proxy`]), and the
/// limit on logging its refusals.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProxyCounts {
    pub(crate) headers: u64,
    pub(crate) local: u64,
    pub(crate) refused: u64,
    /// The second the refusals logged lately fall in, and how many were
    /// logged and left out in it.
    log_window: Option<std::time::Instant>,
    logged: u32,
    unlogged: u64,
}

/// Refusals logged one by one per second; the rest are summed up.
const REFUSALS_LOGGED: u32 = 10;

impl ProxyCounts {
    /// Counts a refusal and logs it, unless more than [`REFUSALS_LOGGED`]
    /// were logged this second (a scan or a flood must not flood the log):
    /// those are counted and summed up in one line when the next second's
    /// first one comes.
    pub(crate) fn refused(
        &mut self,
        now: std::time::Instant,
        peer: Option<std::net::SocketAddr>,
        e: &crate::net::ProxyError,
    ) {
        self.refused += 1;
        let fresh = self
            .log_window
            .is_none_or(|w| now.saturating_duration_since(w) >= std::time::Duration::from_secs(1));
        if fresh {
            if self.unlogged > 0 {
                log::info!(
                    "{} more connections refused for their PROXY header (not logged one by one)",
                    self.unlogged
                );
            }
            self.log_window = Some(now);
            self.logged = 0;
            self.unlogged = 0;
        }
        if self.logged >= REFUSALS_LOGGED {
            self.unlogged += 1;
            return;
        }
        self.logged += 1;
        match peer {
            Some(peer) => log::info!("connection from {peer} refused: {e}"),
            None => log::info!("connection refused: {e}"),
        }
    }
}

impl Default for NetLocal {
    fn default() -> NetLocal {
        NetLocal {
            read: Pool::new(READ_POOL_MAX, POOL_BYTES_MAX),
            write: Pool::new(WRITE_POOL_MAX, POOL_BYTES_MAX),
            stats: SocketStats::default(),
            budget: Budget::default(),
            proxy: ProxyCounts::default(),
            live: 0,
        }
    }
}

impl NetLocal {
    /// Sets the budget's limit; each pool keeps at most a sixteenth of it
    /// (8 MiB at most), so that idle buffers cannot hold a small budget
    /// up.
    pub(crate) fn set_limit(&mut self, limit: Option<usize>) {
        self.budget.set_limit(limit);
        let bytes_max = limit.map_or(POOL_BYTES_MAX, |l| (l / 16).min(POOL_BYTES_MAX));
        self.read.bytes_max = bytes_max;
        self.write.bytes_max = bytes_max;
    }

    /// Bytes the pools keep.
    #[inline]
    pub(crate) fn pool_bytes(&self) -> usize {
        self.read.bytes + self.write.bytes
    }

    /// Everything accounted: the sockets' charges and the pools.
    #[inline]
    pub(crate) fn total(&self) -> usize {
        self.budget.sockets + self.pool_bytes()
    }

    /// A socket's charge went from `was` to `now`.
    #[inline]
    pub(crate) fn charge(&mut self, was: usize, now: usize) -> Act {
        let pools = self.pool_bytes();
        self.budget.charge(was, now, pools)
    }

    /// An empty read buffer with room for at least `min` bytes. Past half
    /// the memory budget a fresh read gets a small buffer: thousands of
    /// sockets reading in one turn then add little before the budget
    /// sees it (a unit longer than that still grows its buffer).
    pub(crate) fn take_read(&mut self, min: usize) -> BytesMut {
        let min = if self.budget.warm() {
            min.min(WARM_READ)
        } else {
            min
        };
        self.read.take(min, true)
    }

    /// A read buffer for a unit that needs `min` bytes, whatever the
    /// budget.
    pub(crate) fn take_read_for(&mut self, min: usize) -> BytesMut {
        self.read.take(min, true)
    }

    /// Returns a read buffer (socket actors give theirs back at the end of
    /// the turn, once the units cut from it have usually been handled).
    pub(crate) fn give_read(&mut self, b: BytesMut) {
        self.read.give(b);
    }

    /// A buffer for a socket's output queue.
    pub(crate) fn take_tail(&mut self) -> BytesMut {
        self.write.take(crate::net::socket::TAIL_MIN, false)
    }

    /// Returns an output buffer, emptied by a flush.
    pub(crate) fn give_tail(&mut self, b: BytesMut) {
        self.write.give(b);
    }
}

impl Local for NetLocal {
    fn trim(&mut self) {
        let before = self.total();
        self.read = Pool::new(READ_POOL_MAX, self.read.bytes_max);
        self.write = Pool::new(WRITE_POOL_MAX, self.write.bytes_max);
        // Buffers freed since the last trim (pooled ones just now, and
        // those of connections that ended or drained): past a megabyte,
        // ask the allocator to give free pages back.
        let now = self.total();
        let fell = self.budget.fell_since_trim(before, now);
        // Connections that ended free their actors and mailboxes too,
        // which the budget does not count.
        let ended = self.budget.ended_since_trim();
        if fell >= RELEASE_AFTER || ended >= RELEASE_AFTER_ENDED {
            release_free_memory();
        }
    }

    /// The total fell by what the pools kept: that may release the
    /// parked, with nobody else active to wake them.
    fn to_wake(&mut self, out: &mut Vec<crate::reactor::ActorId>) {
        if self.budget.check(self.total()) == Act::Release {
            out.append(&mut self.budget.take_parked());
        }
    }

    fn counters(&self) -> Option<Counters> {
        cfg!(feature = "metrics").then(|| {
            let b = &self.budget;
            let mut values: Vec<_> = NAMES.into_iter().zip(self.stats.values()).collect();
            values.extend([
                ("mem_high", b.high_events),
                ("parks", b.parks),
                ("overload", b.overload_closes),
                ("proxied", self.proxy.headers),
                ("proxy_local", self.proxy.local),
                ("proxy_refused", self.proxy.refused),
            ]);
            let m = b.snapshot(self.pool_bytes());
            Counters {
                group: "sockets",
                values,
                gauges: vec![
                    ("conns", self.live),
                    ("mem", m.total as u64),
                    ("mem_peak", m.peak as u64),
                ],
            }
        })
    }
}
