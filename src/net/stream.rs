//! The seam between the socket actors and the network: a connected
//! stream, a listening socket, and the few calls the actors make on them.
//!
//! In the default build these are mio's `TcpStream` and `TcpListener` and
//! the calls are the ones in `sys.rs`, inlined: the seam compiles to the
//! same code as calling them directly. With the `sim` feature each is an
//! enum of the real thing and a handle into the simulated network of the
//! thread ([`crate::sim`]), which a simulated reactor runs on; the real
//! variant then costs a predictable branch per call.

#[cfg(not(feature = "sim"))]
mod imp {
    use std::io;
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;

    use bytes::BytesMut;

    use crate::net::sys;

    /// A connected stream.
    pub(crate) type Stream = mio::net::TcpStream;
    /// A listening socket.
    pub(crate) type ListenSocket = mio::net::TcpListener;
    /// What a flush writes through.
    pub(crate) type Writer = sys::SocketWriter;

    /// Reads at most `max` bytes into `buf`'s spare capacity.
    #[inline(always)]
    pub(crate) fn read_into(s: &Stream, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        sys::read_into(s, buf, max)
    }

    /// The writer a flush writes `s`'s output through.
    #[inline(always)]
    pub(crate) fn writer(s: &Stream) -> Writer {
        sys::SocketWriter(s.as_raw_fd())
    }

    /// Starts a non-blocking connect to `addr`.
    pub(crate) fn connect(addr: SocketAddr) -> io::Result<Stream> {
        Stream::connect(addr)
    }

    /// Bytes the kernel holds for `s`, not yet read (`FIONREAD`; 0 on
    /// error). For the live lints, not the data path.
    pub(crate) fn available(s: &Stream) -> usize {
        super::fionread(s.as_raw_fd())
    }

    /// A real listening socket as the listener holds it.
    #[inline(always)]
    pub(crate) fn real_listener(l: mio::net::TcpListener) -> ListenSocket {
        l
    }

    /// The simulated network never answers for a real build.
    #[inline(always)]
    pub(crate) fn simulated_bind(_port: u16) -> Option<io::Result<ListenSocket>> {
        None
    }
}

#[cfg(feature = "sim")]
mod imp {
    use std::io::{self, IoSlice, Write};
    use std::net::{Shutdown, SocketAddr};
    use std::os::fd::AsRawFd;

    use bytes::BytesMut;
    use mio::event::Source;
    use mio::{Interest, Registry, Token};

    use crate::net::sys;
    use crate::sim::net::{SimConn, SimListener, SimStream};

    /// A connected stream: a real one, or one of the simulated network.
    #[derive(Debug)]
    pub(crate) enum Stream {
        Tcp(mio::net::TcpStream),
        Sim(SimStream),
    }

    /// A listening socket: a real one, or one of the simulated network.
    #[derive(Debug)]
    pub(crate) enum ListenSocket {
        Tcp(mio::net::TcpListener),
        Sim(SimListener),
    }

    /// What a flush writes through.
    #[derive(Debug)]
    pub(crate) enum Writer {
        Tcp(sys::SocketWriter),
        Sim(SimConn),
    }

    #[inline]
    pub(crate) fn read_into(s: &Stream, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        match s {
            Stream::Tcp(s) => sys::read_into(s, buf, max),
            Stream::Sim(s) => s.read_into(buf, max),
        }
    }

    #[inline]
    pub(crate) fn writer(s: &Stream) -> Writer {
        match s {
            Stream::Tcp(s) => Writer::Tcp(sys::SocketWriter(s.as_raw_fd())),
            Stream::Sim(s) => Writer::Sim(s.handle()),
        }
    }

    pub(crate) fn available(s: &Stream) -> usize {
        match s {
            Stream::Tcp(s) => super::fionread(s.as_raw_fd()),
            Stream::Sim(s) => s.available(),
        }
    }

    pub(crate) fn connect(addr: SocketAddr) -> io::Result<Stream> {
        match crate::sim::net::connect(addr) {
            Some(r) => r.map(Stream::Sim),
            None => mio::net::TcpStream::connect(addr).map(Stream::Tcp),
        }
    }

    /// On a thread with a simulated network: a listener of that network.
    pub(crate) fn simulated_bind(port: u16) -> Option<io::Result<ListenSocket>> {
        crate::sim::net::bind(port).map(|r| r.map(ListenSocket::Sim))
    }

    pub(crate) fn real_listener(l: mio::net::TcpListener) -> ListenSocket {
        ListenSocket::Tcp(l)
    }

    impl Write for Writer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            match self {
                Writer::Tcp(w) => w.write(buf),
                Writer::Sim(s) => s.write_vectored(&[IoSlice::new(buf)]),
            }
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            match self {
                Writer::Tcp(w) => w.write_vectored(bufs),
                Writer::Sim(s) => s.write_vectored(bufs),
            }
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Stream {
        pub(crate) fn set_nodelay(&self, on: bool) -> io::Result<()> {
            match self {
                Stream::Tcp(s) => s.set_nodelay(on),
                Stream::Sim(_) => Ok(()),
            }
        }

        pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
            match self {
                Stream::Tcp(s) => s.shutdown(how),
                Stream::Sim(s) => s.shutdown(how),
            }
        }

        pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
            match self {
                Stream::Tcp(s) => s.peer_addr(),
                Stream::Sim(s) => s.peer_addr(),
            }
        }

        pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
            match self {
                Stream::Tcp(s) => s.take_error(),
                Stream::Sim(s) => s.take_error(),
            }
        }
    }

    impl ListenSocket {
        pub(crate) fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
            match self {
                ListenSocket::Tcp(l) => l.accept().map(|(s, a)| (Stream::Tcp(s), a)),
                ListenSocket::Sim(l) => l.accept().map(|(s, a)| (Stream::Sim(s), a)),
            }
        }

        pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
            match self {
                ListenSocket::Tcp(l) => l.local_addr(),
                ListenSocket::Sim(l) => Ok(l.local_addr()),
            }
        }
    }

    /// Registration: the real sources with mio, the simulated ones with
    /// the simulated network (which then reports their readiness to the
    /// simulated reactor under the same token).
    macro_rules! source {
        ($t:ident) => {
            impl Source for $t {
                fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
                    match self {
                        $t::Tcp(s) => s.register(r, t, i),
                        $t::Sim(s) => s.register(t, i),
                    }
                }
                fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
                    match self {
                        $t::Tcp(s) => s.reregister(r, t, i),
                        $t::Sim(s) => s.register(t, i),
                    }
                }
                fn deregister(&mut self, r: &Registry) -> io::Result<()> {
                    match self {
                        $t::Tcp(s) => s.deregister(r),
                        $t::Sim(s) => s.deregister(),
                    }
                }
            }
        };
    }
    source!(Stream);
    source!(ListenSocket);
}

pub(crate) use imp::*;

/// Bytes in a socket's receive queue (`FIONREAD`), 0 on error.
fn fionread(fd: std::os::fd::RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: `FIONREAD` writes one `int` through the pointer, which is
    // valid for it.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n as *mut libc::c_int) };
    if r < 0 {
        0
    } else {
        n.max(0) as usize
    }
}
