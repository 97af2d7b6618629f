//! systemd's two interfaces for services, spoken directly (no libsystemd):
//!
//! - **socket activation**: [`listen_fds`] takes the listening sockets the
//!   service manager passed (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`;
//!   descriptors from 3 on), see `sd_listen_fds(3)`;
//! - **readiness notification**: [`notify`] sends one datagram such as
//!   `READY=1` or `STOPPING=1` to `$NOTIFY_SOCKET` (a path, or an abstract
//!   socket when it starts with `@`), see `sd_notify(3)`.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::net::UnixDatagram;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// One socket passed by the service manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenFd {
    /// The descriptor, open for the life of the process.
    pub fd: RawFd,
    /// Its `FileDescriptorName=` (systemd's default is the socket unit's
    /// name).
    pub name: Option<String>,
}

/// The sockets passed to this process, if `LISTEN_PID` names it (else
/// none: they were meant for another process). Each is marked
/// close-on-exec, and the variables are removed from the environment so
/// that child processes do not take them for theirs.
pub fn listen_fds() -> io::Result<Vec<ListenFd>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    let fds = listen_fds_from(
        pid.as_deref(),
        count.as_deref(),
        names.as_deref(),
        std::process::id(),
    )?;
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    for f in &fds {
        // SAFETY: fcntl on a descriptor number only reads and sets its
        // flags; an invalid one fails with EBADF.
        let flags = unsafe { libc::fcntl(f.fd, libc::F_GETFD) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(f.fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "LISTEN_FDS names descriptor {}, which is not open: {}",
                    f.fd,
                    io::Error::last_os_error()
                ),
            ));
        }
    }
    Ok(fds)
}

/// [`listen_fds`]'s reading of the variables, for process `me`, without
/// touching the environment or the descriptors.
pub fn listen_fds_from(
    pid: Option<&str>,
    count: Option<&str>,
    names: Option<&str>,
    me: u32,
) -> io::Result<Vec<ListenFd>> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let (Some(pid), Some(count)) = (pid, count) else {
        return Ok(Vec::new());
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| bad(format!("LISTEN_PID is not a process id: {pid:?}")))?;
    if pid != me {
        return Ok(Vec::new());
    }
    let n: RawFd = count
        .trim()
        .parse()
        .ok()
        .filter(|&n| (0..=4096).contains(&n))
        .ok_or_else(|| {
            bad(format!(
                "LISTEN_FDS is not a count of descriptors: {count:?}"
            ))
        })?;
    let names: Vec<&str> = names.map(|n| n.split(':').collect()).unwrap_or_default();
    Ok((0..n)
        .map(|i| ListenFd {
            fd: LISTEN_FDS_START + i,
            name: names
                .get(i as usize)
                .filter(|n| !n.is_empty())
                .map(|n| n.to_string()),
        })
        .collect())
}

/// Sends `state` (`READY=1`, `STOPPING=1`, `STATUS=...`, lines joined by
/// newlines) to the service manager. `Ok(false)` when `$NOTIFY_SOCKET` is
/// not set: not run by a service manager that listens.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(path) => notify_to(&path.to_string_lossy(), state).map(|()| true),
        None => Ok(false),
    }
}

/// Sends `state` to the notification socket at `path` (`@name` for an
/// abstract one).
pub fn notify_to(path: &str, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_fds_are_for_the_named_process_only() {
        let fds = listen_fds_from(Some("42"), Some("2"), Some("echo:admin"), 42).unwrap();
        assert_eq!(
            fds,
            vec![
                ListenFd {
                    fd: 3,
                    name: Some("echo".into())
                },
                ListenFd {
                    fd: 4,
                    name: Some("admin".into())
                },
            ]
        );
        assert!(listen_fds_from(Some("42"), Some("2"), None, 43)
            .unwrap()
            .is_empty());
        assert!(listen_fds_from(None, None, None, 42).unwrap().is_empty());
        let one = listen_fds_from(Some("7"), Some("1"), None, 7).unwrap();
        assert_eq!(one[0].name, None);
        assert!(listen_fds_from(Some("x"), Some("1"), None, 7).is_err());
        assert!(listen_fds_from(Some("7"), Some("-1"), None, 7).is_err());
    }

    #[test]
    fn notify_sends_one_datagram_to_a_path_or_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("credit-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1\nSTATUS=listening").unwrap();
        let mut buf = [0u8; 128];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=listening");
        let _ = std::fs::remove_dir_all(&dir);

        use std::os::linux::net::SocketAddrExt;
        let name = format!("credit-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
