//! Operating-system helpers: file-descriptor limit, `/proc` sampling, and
//! non-blocking client sockets with an optional source address.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a properly initialised struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
                return Err(io::Error::last_os_error());
            }
            lim.rlim_cur = lim.rlim_max;
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    Ok(lim.rlim_cur as u64)
}

/// Resident set size (`VmRSS`) of process `pid` in KiB, from `/proc/<pid>/status`.
pub fn read_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Number of open file descriptors of process `pid` (entries of `/proc/<pid>/fd`).
pub fn count_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// How many connections one local address can keep open towards one server
/// address: the size of the ephemeral port range, with a 10 % margin.
pub fn ports_per_source_ip() -> usize {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<usize>().ok());
            let lo = it.next()??;
            let hi = it.next()??;
            Some(hi.saturating_sub(lo) + 1)
        })
        .unwrap_or(28_232);
    range * 9 / 10
}

/// Source addresses `127.0.0.1 ..= 127.0.0.n` (n capped at 254).
pub fn loopback_sources(n: usize) -> Vec<IpAddr> {
    (1..=n.clamp(1, 254))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8)))
        .collect()
}

/// Starts a non-blocking connect to `addr` (TCP_NODELAY set), optionally from
/// source address `src` (bound with `IP_BIND_ADDRESS_NO_PORT` so the port is
/// chosen per destination at connect time).
pub fn start_connect(addr: SocketAddr, src: Option<IpAddr>) -> io::Result<TcpStream> {
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    sock.set_nodelay(true)?;
    if let Some(ip) = src {
        if ip.is_ipv4() {
            use std::os::fd::AsRawFd;
            let one: libc::c_int = 1;
            // SAFETY: valid fd and option buffer. Failure only costs port range.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    &one as *const libc::c_int as *const libc::c_void,
                    size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        sock.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(sock.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_of_self() {
        let kib = read_rss_kib(std::process::id()).unwrap();
        assert!(kib > 0);
        assert!(count_fds(std::process::id()).unwrap() >= 3);
    }

    #[test]
    fn sources() {
        let v = loopback_sources(3);
        assert_eq!(v.len(), 3);
        assert_eq!(v[2], "127.0.0.3".parse::<IpAddr>().unwrap());
        assert!(ports_per_source_ip() > 1000);
    }
}

/// A one-shot timer with microsecond precision (a `timerfd` on the
/// monotonic clock), for sending on schedule: `epoll`'s own timeout is in
/// whole milliseconds.
#[derive(Debug)]
pub struct Timer {
    fd: std::os::fd::OwnedFd,
}

impl Timer {
    /// A disarmed timer. Also asks the kernel for 1 ns of timer slack on
    /// the calling thread, so that wake-ups come when asked rather than up
    /// to 50 µs later.
    pub fn new() -> io::Result<Timer> {
        use std::os::fd::FromRawFd;
        // SAFETY: timerfd_create takes no pointers; a non-negative result
        // is a new descriptor that nothing else owns.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: prctl with integer arguments only; a failure leaves the
        // default slack, which is harmless.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        Ok(Timer { fd })
    }

    /// The descriptor, to register for readability.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    /// Fires once, `after` from now (at least 1 ns: zero would disarm).
    pub fn arm(&self, after: std::time::Duration) {
        let after = after.max(std::time::Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec for the call's duration; the
        // old value is not asked for (null).
        unsafe {
            libc::timerfd_settime(self.raw_fd(), 0, &spec, std::ptr::null_mut());
        }
    }

    /// Consumes the expiry count so the next expiry wakes the loop again.
    pub fn clear(&self) {
        let mut n = 0u64;
        // SAFETY: reads at most 8 bytes into a live u64; the descriptor is
        // non-blocking, so an empty timer returns EAGAIN at once.
        unsafe {
            libc::read(self.raw_fd(), (&mut n as *mut u64).cast(), 8);
        }
    }
}
