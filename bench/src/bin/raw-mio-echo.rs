//! Minimal single-threaded raw-mio echo-line server: the performance floor.
//!
//! For every LF-terminated line `L` it answers `You said: L\n`, in order.
//! No actors, no framework: one `mio::Poll`, a slab of connections, and
//! per connection a read buffer and an output buffer.
//!
//! * Sockets are registered once, edge-triggered, for READABLE | WRITABLE.
//! * Reads go straight into the read buffer's spare capacity (`libc::read`);
//!   a short read (n < spare space) is taken as "drained" instead of paying an
//!   extra syscall for `EAGAIN`.
//! * All complete lines of one read are answered into one output buffer and
//!   sent with ONE write. Unsent bytes stay queued for the WRITABLE edge; a
//!   connection whose output backlog exceeds 1 MiB is not read from until it
//!   drains.
//! * EOF is a half-close: every complete line is answered, then the
//!   connection is closed (an unterminated last line is dropped).
//! * Buffers are returned to a small pool as soon as they are empty, so an idle
//!   connection owns no buffer memory.
//!
//! Usage: `raw-mio-echo [--bind ADDR] [--port N]` (defaults 127.0.0.1, 4096).

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
const PREFIX: &[u8] = b"You said: ";
/// Initial (and pooled) buffer capacity.
const CHUNK: usize = 16 * 1024;
/// Stop reading a connection whose unsent output exceeds this.
const MAX_BACKLOG: usize = 1 << 20;
/// Longest line accepted; a longer one closes the connection.
const MAX_LINE: usize = 64 << 20;
/// Buffers kept for reuse.
const POOL_MAX: usize = 128;
/// Pooled buffers are at most this big.
const POOL_BUF_MAX: usize = 256 * 1024;

/// Index of the first LF in `hay` (word-at-a-time scan).
#[inline]
fn find_lf(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const LF: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let mut i = 0;
    while i + 8 <= hay.len() {
        let w = u64::from_le_bytes(hay[i..i + 8].try_into().unwrap()) ^ LF;
        let t = w.wrapping_sub(LO) & !w & HI;
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(|&b| b == b'\n').map(|p| i + p)
}

#[derive(Default)]
struct Pool {
    bufs: Vec<Vec<u8>>,
}

impl Pool {
    fn get(&mut self) -> Vec<u8> {
        self.bufs.pop().unwrap_or_else(|| Vec::with_capacity(CHUNK))
    }

    fn put(&mut self, mut b: Vec<u8>) {
        if b.capacity() >= CHUNK && b.capacity() <= POOL_BUF_MAX && self.bufs.len() < POOL_MAX {
            b.clear();
            self.bufs.push(b);
        }
    }
}

struct Conn {
    stream: TcpStream,
    /// Unprocessed input (at most one partial line between reads).
    rbuf: Vec<u8>,
    /// Bytes at the front of `rbuf` known to contain no LF.
    scanned: usize,
    out: Vec<u8>,
    out_pos: usize,
    /// The socket may have unread data (edge seen, not yet drained).
    readable: bool,
    eof: bool,
}

enum Next {
    Keep,
    Close,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            scanned: 0,
            out: Vec::new(),
            out_pos: 0,
            readable: true,
            eof: false,
        }
    }

    fn backlog(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// One write of everything pending; a short write waits for WRITABLE.
    fn flush(&mut self, pool: &mut Pool) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(n) => {
                    self.out_pos += n;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() && self.out.capacity() > 0 {
            pool.put(std::mem::take(&mut self.out));
            self.out_pos = 0;
        }
        Ok(())
    }

    /// One read into the spare capacity of the read buffer. Returns the bytes
    /// read and whether the read filled all the spare space.
    fn read_once(&mut self, pool: &mut Pool) -> io::Result<(usize, bool)> {
        if self.rbuf.capacity() == 0 {
            self.rbuf = pool.get();
        } else if self.rbuf.len() == self.rbuf.capacity() {
            if self.rbuf.len() >= MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            self.rbuf.reserve(self.rbuf.capacity());
        }
        let spare = self.rbuf.spare_capacity_mut();
        let want = spare.len();
        loop {
            // SAFETY: reading into the vector's spare capacity; `set_len` only
            // covers the bytes the kernel wrote.
            let n = unsafe {
                libc::read(
                    self.stream.as_raw_fd(),
                    spare.as_mut_ptr() as *mut libc::c_void,
                    want,
                )
            };
            if n >= 0 {
                let n = n as usize;
                // SAFETY: the kernel initialised `n <= want` bytes of the
                // spare capacity, right after the vector's length.
                unsafe { self.rbuf.set_len(self.rbuf.len() + n) };
                return Ok((n, n == want));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Answers every complete line in the read buffer into the output buffer.
    fn answer_lines(&mut self, pool: &mut Pool) {
        let mut start = 0;
        let mut from = self.scanned;
        let len = self.rbuf.len();
        while let Some(i) = find_lf(&self.rbuf[from..len]) {
            let end = from + i + 1;
            if self.out.capacity() == 0 {
                self.out = pool.get();
            }
            self.out.extend_from_slice(PREFIX);
            self.out.extend_from_slice(&self.rbuf[start..end]);
            start = end;
            from = end;
        }
        if start == len {
            self.rbuf.clear();
            self.scanned = 0;
            pool.put(std::mem::take(&mut self.rbuf));
        } else {
            if start > 0 {
                self.rbuf.copy_within(start..len, 0);
                self.rbuf.truncate(len - start);
            }
            self.scanned = self.rbuf.len();
        }
    }

    fn on_event(&mut self, readable: bool, pool: &mut Pool) -> Next {
        if readable {
            self.readable = true;
        }
        if self.backlog() > 0 && self.flush(pool).is_err() {
            return Next::Close;
        }
        while self.readable && !self.eof && self.backlog() < MAX_BACKLOG {
            let full = match self.read_once(pool) {
                Ok((0, _)) => {
                    self.eof = true;
                    self.readable = false;
                    false
                }
                Ok((_, full)) => {
                    self.answer_lines(pool);
                    full
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    false
                }
                Err(_) => return Next::Close,
            };
            if !full {
                self.readable = false;
            }
            if self.backlog() > 0 && self.flush(pool).is_err() {
                return Next::Close;
            }
            if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
                pool.put(std::mem::take(&mut self.rbuf));
            }
        }
        if self.eof && self.backlog() == 0 {
            return Next::Close;
        }
        Next::Keep
    }
}

fn parse_args() -> Result<SocketAddr, String> {
    let mut bind: IpAddr = [127, 0, 0, 1].into();
    let mut port: u16 = 4096;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bind" => {
                let v = args.next().ok_or("--bind needs an address")?;
                bind = v.parse().map_err(|e| format!("--bind {v}: {e}"))?;
            }
            "--port" => {
                let v = args.next().ok_or("--port needs a number")?;
                port = v.parse().map_err(|e| format!("--port {v}: {e}"))?;
            }
            "-h" | "--help" => {
                println!("usage: raw-mio-echo [--bind ADDR] [--port N]  (defaults 127.0.0.1 4096)");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(SocketAddr::new(bind, port))
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(TcpListener::from_std(s.into()))
}

fn main() {
    let addr = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("raw-mio-echo: {e}");
            std::process::exit(2);
        }
    };
    // Many idle connections (c10k) need many descriptors.
    let _ = credit_bench::loadgen::raise_nofile_limit();
    let mut listener = match listen(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("raw-mio-echo: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = run(&mut listener) {
        eprintln!("raw-mio-echo: {e}");
        std::process::exit(1);
    }
}

fn run(listener: &mut TcpListener) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<Conn> = Slab::with_capacity(1024);
    let mut pool = Pool::default();
    let mut accept_warned = false;
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            let token = Token(entry.key());
                            if poll
                                .registry()
                                .register(
                                    &mut stream,
                                    token,
                                    Interest::READABLE | Interest::WRITABLE,
                                )
                                .is_ok()
                            {
                                entry.insert(Conn::new(stream));
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            if !accept_warned {
                                eprintln!("raw-mio-echo: accept: {e}");
                                accept_warned = true;
                            }
                            break;
                        }
                    }
                }
                continue;
            }
            let key = ev.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
            if let Next::Close = conn.on_event(readable, &mut pool) {
                let c = conns.remove(key);
                pool.put(c.rbuf);
                pool.put(c.out);
            }
        }
    }
}
