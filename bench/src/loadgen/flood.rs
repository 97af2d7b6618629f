//! The flood scenario: hostile connections that write lines as fast as
//! they can and never read, beside one well-behaved client that sends a
//! line and reads its reply, again and again. It samples the server's RSS
//! before the flood, at its peak, and for a while after the hostile
//! connections leave, and checks every reply the good client gets.
//!
//! What a server should do: keep its memory bounded (stop reading from
//! connections that do not read, close some if it must), keep answering
//! the good client, and give the memory back afterwards.

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::loadgen::{raise_nofile_limit, read_rss_kib};

/// Settings of a flood run.
#[derive(Clone, Debug)]
pub struct FloodConfig {
    /// The echo server.
    pub addr: SocketAddr,
    /// Hostile connections.
    pub conns: usize,
    /// Bytes each hostile connection writes at most.
    pub bytes_per_conn: usize,
    /// Bytes per line, excluding the LF.
    pub line_bytes: usize,
    /// How long the flood lasts.
    pub duration: Duration,
    /// How long RSS is watched once the hostile connections have left.
    pub after: Duration,
    /// The server's process id (for its RSS).
    pub server_pid: Option<u32>,
    /// Print a progress line on stderr once per second.
    pub progress: bool,
}

impl Default for FloodConfig {
    fn default() -> FloodConfig {
        FloodConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 4096)),
            conns: 1000,
            bytes_per_conn: 1 << 20,
            line_bytes: 100,
            duration: Duration::from_secs(5),
            after: Duration::from_secs(10),
            server_pid: None,
            progress: true,
        }
    }
}

/// What the good client saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct GoodClient {
    /// Lines sent.
    pub sent: u64,
    /// Replies received and correct.
    pub answered: u64,
    /// Wrong replies, resets, timeouts.
    pub errors: u64,
    /// The longest wait for a reply.
    pub max_wait: Duration,
}

/// The outcome of a flood run.
#[derive(Clone, Debug)]
pub struct FloodReport {
    /// The settings.
    pub config: FloodConfig,
    /// Hostile connections that wrote at least one byte.
    pub connected: usize,
    /// Bytes the hostile connections wrote.
    pub flooded: u64,
    /// Hostile connections the server closed (write failed).
    pub closed: usize,
    /// The good client.
    pub good: GoodClient,
    /// Server RSS in KiB: before the flood, its peak, and at the end of
    /// the after period.
    pub rss_kib: Option<(u64, u64, u64)>,
    /// Seconds after the hostile connections left until RSS was within
    /// twice its starting figure (if it got there).
    pub back_within_2x: Option<f64>,
}

impl FloodReport {
    /// True if the good client got every reply, correct.
    pub fn is_clean(&self) -> bool {
        self.good.errors == 0 && self.good.answered == self.good.sent && self.good.sent > 0
    }

    /// One JSON object.
    pub fn to_json(&self) -> String {
        let (start, peak, after) = self.rss_kib.unwrap_or_default();
        format!(
            concat!(
                "{{\"scenario\":\"flood\",\"conns\":{},\"connected\":{},\"flooded\":{},",
                "\"closed\":{},\"good_sent\":{},\"good_answered\":{},\"good_errors\":{},",
                "\"good_max_wait_ms\":{:.1},\"rss_start_kib\":{},\"rss_peak_kib\":{},",
                "\"rss_after_kib\":{},\"back_within_2x_s\":{}}}"
            ),
            self.config.conns,
            self.connected,
            self.flooded,
            self.closed,
            self.good.sent,
            self.good.answered,
            self.good.errors,
            self.good.max_wait.as_secs_f64() * 1e3,
            start,
            peak,
            after,
            self.back_within_2x
                .map_or("null".to_string(), |s| format!("{s:.1}")),
        )
    }
}

impl fmt::Display for FloodReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "flood        {} hostile connections ({} wrote), {:.1} MB written, never read; {} closed by the server",
            c.conns,
            self.connected,
            self.flooded as f64 / 1e6,
            self.closed
        )?;
        let g = &self.good;
        writeln!(
            f,
            "good client  {} lines, {} answered, {} errors, longest wait {:.1} ms",
            g.sent,
            g.answered,
            g.errors,
            g.max_wait.as_secs_f64() * 1e3
        )?;
        if let Some((start, peak, after)) = self.rss_kib {
            writeln!(
                f,
                "server rss   before {start} KiB  peak {peak} KiB  {:.0} s after {after} KiB  (within 2x of before: {})",
                c.after.as_secs_f64(),
                self.back_within_2x
                    .map_or("never".to_string(), |s| format!("after {s:.1} s"))
            )?;
        }
        Ok(())
    }
}

/// The good client: a line, its reply, again, until told to stop.
fn good_client(addr: SocketAddr, stop: Arc<AtomicBool>) -> io::Result<GoodClient> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut g = GoodClient::default();
    let mut reply = String::new();
    while !stop.load(Ordering::Relaxed) {
        let line = format!("good {}", g.sent);
        let t = Instant::now();
        g.sent += 1;
        if writer.write_all(format!("{line}\n").as_bytes()).is_err() {
            g.errors += 1;
            break;
        }
        reply.clear();
        match reader.read_line(&mut reply) {
            Ok(n) if n > 0 && reply.trim_end() == format!("You said: {line}") => {
                g.answered += 1;
                g.max_wait = g.max_wait.max(t.elapsed());
            }
            _ => {
                g.errors += 1;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(g)
}

/// A connection that will never read, started without waiting for the
/// handshake, with a small receive buffer so that what the server sends
/// it stays in the server's memory rather than in the kernel's.
fn hostile_connection(addr: SocketAddr) -> io::Result<mio::net::TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_recv_buffer_size(4096)?;
    s.set_nonblocking(true)?;
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(s.into()))
}

/// Runs the flood against `cfg.addr`.
pub fn run(cfg: &FloodConfig) -> io::Result<FloodReport> {
    let _ = raise_nofile_limit();
    let rss = |pid: Option<u32>| pid.and_then(read_rss_kib);
    let rss_start = rss(cfg.server_pid);

    // The good client is there first, and stays.
    let stop = Arc::new(AtomicBool::new(false));
    let good = {
        let (addr, stop) = (cfg.addr, stop.clone());
        std::thread::spawn(move || good_client(addr, stop))
    };

    // Hostile connections, opened without waiting: once the server pauses
    // accepting, the rest wait in its backlog (or for the handshake).
    let mut hostile = Vec::with_capacity(cfg.conns);
    for _ in 0..cfg.conns {
        match hostile_connection(cfg.addr) {
            Ok(s) => hostile.push((s, 0usize, false)),
            Err(e) if hostile.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    let mut line = vec![b'x'; cfg.line_bytes];
    line.push(b'\n');
    let chunk = line.repeat((16 * 1024 / line.len()).max(1));
    let t0 = Instant::now();
    let mut peak = rss_start.unwrap_or(0);
    let mut last_progress = t0;
    let mut flooded = 0u64;
    while t0.elapsed() < cfg.duration {
        let mut wrote = false;
        for (s, done, dead) in hostile.iter_mut() {
            while !*dead && *done < cfg.bytes_per_conn {
                let n = chunk.len().min(cfg.bytes_per_conn - *done);
                // Whole lines only; the last chunk may end mid-line.
                match s.write(&chunk[..n]) {
                    Ok(0) => *dead = true,
                    Ok(k) => {
                        *done += k;
                        flooded += k as u64;
                        wrote = true;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::NotConnected
                                | io::ErrorKind::Interrupted
                        ) =>
                    {
                        break
                    }
                    Err(_) => *dead = true,
                }
            }
        }
        if let Some(k) = rss(cfg.server_pid) {
            peak = peak.max(k);
        }
        if cfg.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprint!(
                "\rflood {:.0}s: {:.1} MB written, server rss {} KiB   ",
                t0.elapsed().as_secs_f64(),
                flooded as f64 / 1e6,
                rss(cfg.server_pid).unwrap_or(0)
            );
        }
        if !wrote {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if cfg.progress {
        eprintln!();
    }
    stop.store(true, Ordering::Relaxed);
    let good = good
        .join()
        .map_err(|_| io::Error::other("the good client panicked"))??;
    let connected = hostile.iter().filter(|(_, done, _)| *done > 0).count();
    let closed = hostile.iter().filter(|(_, _, dead)| *dead).count();
    drop(hostile);

    // After: how soon RSS is back within twice its start.
    let left = Instant::now();
    let mut back = None;
    let mut after = 0;
    while left.elapsed() < cfg.after {
        std::thread::sleep(Duration::from_millis(100));
        if let (Some(k), Some(start)) = (rss(cfg.server_pid), rss_start) {
            after = k;
            peak = peak.max(k);
            if back.is_none() && k <= 2 * start {
                back = Some(left.elapsed().as_secs_f64());
            }
        }
    }
    Ok(FloodReport {
        config: cfg.clone(),
        connected,
        flooded,
        closed,
        good,
        rss_kib: rss_start.map(|s| (s, peak, after)),
        back_within_2x: back,
    })
}
