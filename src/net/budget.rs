//! The reactor's buffer memory against one limit: every socket's read
//! buffer and output queue, and the buffer pools.
//!
//! Each socket keeps the figure it last reported (its *charge*: the
//! capacity of its read buffer, plus its unsent output and the spare room
//! of its output buffer) and reports the difference when it settles: after
//! each read, each flush and each hand-back of a buffer, and when it ends.
//! Every socket that was written to in a turn is flushed, and so settled,
//! at the end of that turn. Between turns the total is therefore exactly
//! the sum of the sockets' charges and the pools' bytes; a send made in
//! place during a turn is counted at that turn's end. The cost is an add
//! and a compare per settle, never per line.
//!
//! As the total grows ([`Budget::charge`]):
//! 1. above the *high mark* (half the limit) the budget is
//!    *pressed*: sockets whose peer is not reading (output left after a
//!    flush) or that are collecting a long unit (a read buffer's worth or
//!    more) stop reading and park, and listeners stop accepting. A socket
//!    that is drained and cutting short units reads on: what it reads is
//!    answered within the turn and its buffers go back at the turn's end,
//!    so a client that reads its replies keeps getting them;
//! 2. at the limit the sockets holding the most (parked, or with output
//!    left after a flush) are closed with `CloseReason::Overload` until
//!    what remains is at most the high mark.
//!
//! Below the *low mark* (a quarter of the limit) the budget is no longer pressed
//! and every parked socket and listener is woken.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::actor::{ActorId, Addr};
use crate::net::socket::Socket;

/// A snapshot of a reactor's buffer memory (see [`buffer_memory`]).
///
/// [`buffer_memory`]: crate::net::buffer_memory
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferMemory {
    /// The limit, if one is set.
    pub limit: Option<usize>,
    /// Bytes accounted now: `sockets + pools`.
    pub total: usize,
    /// The sum of the sockets' charges.
    pub sockets: usize,
    /// Bytes kept by the buffer pools.
    pub pools: usize,
    /// The largest total seen.
    pub peak: usize,
    /// True from passing the high mark until falling below the low mark.
    pub pressed: bool,
    /// Sockets and listeners parked, waiting for the low mark.
    pub parked: usize,
    /// Times the high mark was passed.
    pub high_events: u64,
    /// Connections closed with `CloseReason::Overload`.
    pub overload_closes: u64,
}

/// How long the budget may stay pressed before the connections holding
/// the most are closed.
pub(crate) const PRESSED_MAX: Duration = Duration::from_secs(5);

/// What a change of the total asks of the socket that reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Act {
    /// Nothing.
    None,
    /// The total fell below the low mark: wake the parked.
    Release,
    /// The total reached the limit: close the largest holders.
    Overload,
}

/// The budget's state, in the socket layer's per-reactor state.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    high: usize,
    low: usize,
    /// The sum of the sockets' charges.
    pub(crate) sockets: usize,
    pressed: bool,
    /// The total was at or over the low mark when last checked.
    warm: bool,
    /// Sockets and listeners parked for memory (a dead one is skipped when
    /// woken).
    parked: HashSet<ActorId>,
    /// Sockets that hold memory without making progress: parked, or with
    /// output left after a flush. Their charge, to choose whom to close.
    holders: HashMap<ActorId, (Addr<Socket>, usize)>,
    /// Bytes held by sockets told to close for overload and not yet
    /// ended: not counted again when choosing more.
    closing: usize,
    /// Those sockets, with what each held when chosen.
    doomed: HashMap<ActorId, usize>,
    peak: usize,
    /// When the budget was last pressed, or relieved.
    pressed_since: Option<Instant>,
    /// The largest total since the last trim.
    peak_since_trim: usize,
    /// Sockets that ended since the last trim.
    ended_since_trim: usize,
    pub(crate) high_events: u64,
    pub(crate) overload_closes: u64,
    pub(crate) parks: u64,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget::new(None)
    }
}

impl Budget {
    pub(crate) fn new(limit: Option<usize>) -> Budget {
        let limit = limit.unwrap_or(usize::MAX).max(1);
        Budget {
            limit,
            high: limit / 2,
            low: limit / 4,
            sockets: 0,
            pressed: false,
            warm: false,
            parked: HashSet::new(),
            holders: HashMap::new(),
            closing: 0,
            doomed: HashMap::new(),
            peak: 0,
            pressed_since: None,
            peak_since_trim: 0,
            ended_since_trim: 0,
            high_events: 0,
            overload_closes: 0,
            parks: 0,
        }
    }

    /// Sets the limit (`None`: none); keeps what is accounted.
    pub(crate) fn set_limit(&mut self, limit: Option<usize>) {
        let fresh = Budget::new(limit);
        self.limit = fresh.limit;
        self.high = fresh.high;
        self.low = fresh.low;
    }

    pub(crate) fn limit(&self) -> Option<usize> {
        (self.limit != usize::MAX).then_some(self.limit)
    }

    /// True if the total was at or over the low mark when last checked.
    #[inline]
    pub(crate) fn warm(&self) -> bool {
        self.warm
    }

    /// True while the budget is pressed (see the module docs).
    #[inline]
    pub(crate) fn pressed(&self) -> bool {
        self.pressed
    }

    /// A socket's charge went from `was` to `now`; `pools` is what the
    /// pools keep. Says what the change asks for.
    #[inline]
    pub(crate) fn charge(&mut self, was: usize, now: usize, pools: usize) -> Act {
        self.sockets = self.sockets - was + now;
        self.check(self.sockets + pools)
    }

    /// Compares `total` with the marks.
    pub(crate) fn check(&mut self, total: usize) -> Act {
        self.warm = total >= self.low;
        if total > self.peak_since_trim {
            self.peak_since_trim = total;
            self.peak = self.peak.max(total);
        }
        if total > self.high {
            if !self.pressed {
                self.pressed = true;
                self.pressed_since = Some(crate::hooks::clock_now());
                self.high_events += 1;
                log::warn!(
                    "buffer memory {total} bytes, over half the {} byte budget: \
                     connections that do not read stop being read, accepting pauses",
                    self.limit
                );
            }
            if total >= self.limit && total.saturating_sub(self.closing) > self.high {
                return Act::Overload;
            }
        } else if total < self.low && self.pressed {
            self.pressed = false;
            self.pressed_since = None;
            self.closing = 0;
            self.doomed.clear();
            log::info!(
                "buffer memory {total} bytes, under a quarter of the budget: reading and accepting again"
            );
            return Act::Release;
        }
        Act::None
    }

    /// At a trim: how many sockets ended since the last one.
    pub(crate) fn ended_since_trim(&mut self) -> usize {
        std::mem::take(&mut self.ended_since_trim)
    }

    /// At a trim that took the total from `before` to `now`: how far it
    /// fell from its largest since the last trim.
    pub(crate) fn fell_since_trim(&mut self, before: usize, now: usize) -> usize {
        let fell = self.peak_since_trim.max(before).saturating_sub(now);
        self.peak_since_trim = now;
        fell
    }

    /// Notes `who` as parked (once, however often it parks).
    pub(crate) fn park(&mut self, who: ActorId) {
        if self.parked.insert(who) {
            self.parks += 1;
        }
    }

    /// The parked, to wake.
    pub(crate) fn take_parked(&mut self) -> Vec<ActorId> {
        // In id order: the order they run in does not hang on the hash.
        let mut parked: Vec<ActorId> = self.parked.drain().collect();
        parked.sort_unstable();
        parked
    }

    /// Lists (or updates) a socket that holds memory without progress;
    /// one already told to close is not listed again.
    pub(crate) fn hold(&mut self, sock: Addr<Socket>, charge: usize) {
        if !self.doomed.contains_key(&sock.id()) {
            self.holders.insert(sock.id(), (sock, charge));
        }
    }

    /// Takes a socket off the holders.
    pub(crate) fn unhold(&mut self, sock: ActorId) {
        self.holders.remove(&sock);
    }

    /// A socket ended: if it was told to close for overload, what it held
    /// is no longer closing.
    #[inline]
    pub(crate) fn ended(&mut self, sock: ActorId) {
        self.ended_since_trim += 1;
        if !self.doomed.is_empty() {
            if let Some(charge) = self.doomed.remove(&sock) {
                self.closing = self.closing.saturating_sub(charge);
            }
        }
    }

    /// The holders to close, largest first, until what remains (less what
    /// is already closing) is at most the high mark; each taken off the
    /// holders, with its charge.
    pub(crate) fn victims(&mut self, total: usize) -> Vec<(Addr<Socket>, usize)> {
        self.victims_down_to(total, self.high)
    }

    /// The holders to close, largest first, until what remains is at most
    /// `target`.
    fn victims_down_to(&mut self, total: usize, target: usize) -> Vec<(Addr<Socket>, usize)> {
        let mut by_size: Vec<_> = self.holders.values().copied().collect();
        by_size.sort_unstable_by_key(|&(s, c)| (std::cmp::Reverse(c), s.id()));
        let mut out = Vec::new();
        for (sock, charge) in by_size {
            if total.saturating_sub(self.closing) <= target {
                break;
            }
            self.holders.remove(&sock.id());
            self.closing += charge;
            self.doomed.insert(sock.id(), charge);
            self.overload_closes += 1;
            out.push((sock, charge));
        }
        out
    }

    /// Pressed for longer than [`PRESSED_MAX`] without reaching the limit:
    /// the connections holding the most are closed until what remains is
    /// under the low mark, so that accepting resumes (connections that
    /// stopped sending but never read would otherwise keep it paused for
    /// as long as they stay).
    pub(crate) fn relief(&mut self, total: usize, now: Instant) -> Vec<(Addr<Socket>, usize)> {
        match self.pressed_since {
            Some(t) if self.pressed && now.duration_since(t) >= PRESSED_MAX => {
                self.pressed_since = Some(now);
                log::warn!(
                    "buffer memory over half its budget for {}s: closing the connections holding the most",
                    PRESSED_MAX.as_secs()
                );
                self.victims_down_to(total, self.low.saturating_sub(1))
            }
            _ => Vec::new(),
        }
    }

    /// Whether a socket told to close for overload still should: the
    /// budget may have been released since.
    pub(crate) fn still_over(&self) -> bool {
        self.pressed
    }

    /// A snapshot, with the pools' bytes.
    pub(crate) fn snapshot(&self, pools: usize) -> BufferMemory {
        BufferMemory {
            limit: self.limit(),
            total: self.sockets + pools,
            sockets: self.sockets,
            pools,
            peak: self.peak.max(self.sockets + pools),
            pressed: self.pressed,
            parked: self.parked.len(),
            high_events: self.high_events,
            overload_closes: self.overload_closes,
        }
    }
}

/// A default budget for a server: a quarter of the memory this process
/// may use (the machine's, or its cgroup's limit if lower), and at least
/// 64 MiB. A quarter leaves room for the kernel's socket buffers, which
/// grow with the connections too, and for everything else on the machine.
pub fn default_buffer_limit() -> usize {
    const FLOOR: usize = 64 << 20;
    let machine = physical_memory();
    let cgroup = cgroup_limit();
    let usable = match (machine, cgroup) {
        (Some(m), Some(c)) => m.min(c),
        (Some(m), None) => m,
        (None, Some(c)) => c,
        (None, None) => return 1 << 30,
    };
    (usable / 4).max(FLOOR)
}

/// Parses a buffer limit for a command line: bytes, with an optional
/// `K`, `M` or `G` suffix (powers of 1024; `KiB`, `MiB`, `GiB` and `KB`,
/// `MB`, `GB` mean the same), or `none` for no limit.
pub fn parse_buffer_limit(text: &str) -> Result<Option<usize>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("none") || t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (like 64MiB, 1G or 1048576)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use K, M or G)")),
    };
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if bytes < 64 * 1024 {
        return Err(format!("{text:?} is too small: at least 64K"));
    }
    Ok(Some(bytes))
}

/// The limit a server's `--max-buffer-memory` flag asks for: its value
/// parsed ([`parse_buffer_limit`]), or [`default_buffer_limit`] when the
/// flag is absent.
pub fn buffer_limit_arg(arg: Option<&str>) -> Result<Option<usize>, String> {
    arg.map_or(Ok(Some(default_buffer_limit())), parse_buffer_limit)
}

fn physical_memory() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn cgroup_limit() -> Option<usize> {
    // cgroup v2, then v1; "max" or an absurd figure means none.
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok();
    let v1 = || std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes").ok();
    let text = v2.or_else(v1)?;
    let bytes: usize = text.trim().parse().ok()?;
    (bytes < (1usize << 50)).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_units_and_none() {
        assert_eq!(parse_buffer_limit("64MiB"), Ok(Some(64 << 20)));
        assert_eq!(parse_buffer_limit("1g"), Ok(Some(1 << 30)));
        assert_eq!(parse_buffer_limit("65536"), Ok(Some(65536)));
        assert_eq!(parse_buffer_limit("512 K"), Ok(Some(512 << 10)));
        assert_eq!(parse_buffer_limit("none"), Ok(None));
        assert!(parse_buffer_limit("12 parsecs").is_err());
        assert!(parse_buffer_limit("1000").is_err(), "below 64K");
        assert!(parse_buffer_limit("M").is_err());
        assert!(default_buffer_limit() >= 64 << 20);
        assert_eq!(buffer_limit_arg(None), Ok(Some(default_buffer_limit())));
        assert_eq!(buffer_limit_arg(Some("none")), Ok(None));
    }

    #[test]
    fn marks_press_at_half_and_release_under_a_quarter() {
        let mut b = Budget::new(Some(1000));
        assert_eq!(b.charge(0, 450, 0), Act::None);
        assert!(!b.pressed());
        assert_eq!(b.charge(450, 510, 0), Act::None);
        assert!(b.pressed());
        assert_eq!(b.high_events, 1);
        // Between the marks it stays pressed.
        assert_eq!(b.charge(510, 300, 0), Act::None);
        assert!(b.pressed());
        assert_eq!(b.charge(300, 249, 0), Act::Release);
        assert!(!b.pressed());
        // The pools count too.
        assert_eq!(b.charge(249, 249, 300), Act::None);
        assert!(b.pressed());
        assert_eq!(b.high_events, 2);
    }

    #[test]
    fn at_the_limit_the_largest_holders_go_until_the_high_mark() {
        let mut b = Budget::new(Some(1000));
        let sock = |k: u32| Addr::<Socket>::new(ActorId::new(k, 1));
        b.hold(sock(1), 100);
        b.hold(sock(2), 300);
        b.hold(sock(3), 200);
        assert_eq!(b.charge(0, 1100, 0), Act::Overload);
        let v = b.victims(1100);
        // 1100 - 300 = 800 and 800 - 200 = 600 are over 500, so the
        // third goes too.
        assert_eq!(v, vec![(sock(2), 300), (sock(3), 200), (sock(1), 100)]);
        assert_eq!(b.overload_closes, 3);
        // What is closing is not counted twice.
        assert_eq!(b.check(1100), Act::None);
        b.ended(sock(2).id());
        b.ended(sock(3).id());
        assert_eq!(b.check(1100), Act::Overload);
        assert!(b.victims(1100).is_empty(), "nobody left to close");
    }
}
