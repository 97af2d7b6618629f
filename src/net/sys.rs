//! The socket actors' system calls of their own: `read(2)` straight into a
//! buffer's spare capacity, and `sendto`/`sendmsg` for writes. Everything
//! else goes through mio and socket2.
//!
//! They are made with `syscall(2)`, not through libc's `read` and `send`:
//! those are cancellation points, and in a process with more than one
//! thread each call brackets the system call with two calls into the
//! thread library (about 60 instructions per call, under callgrind, on a
//! path taken twice per echoed line). Nothing here is ever cancelled.

use std::io::{self, IoSlice, Write};
use std::os::fd::{AsRawFd, RawFd};

use bytes::{BufMut, BytesMut};

/// The result of a system call that returns a count, or -1 and `errno`.
fn check(r: libc::c_long) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Reads at most `max` bytes from `fd` into `buf`'s spare capacity (which
/// must hold at least `max` bytes), and marks what arrived as part of
/// `buf`. `Ok(0)` is EOF.
///
/// Reading into uninitialised memory avoids zeroing 16 KiB per read on the
/// hot path, which is why this is not `Read::read`.
pub(crate) fn read_into(fd: &impl AsRawFd, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    let spare = buf.chunk_mut();
    let want = spare.len().min(max);
    // SAFETY: `spare` is the buffer's uninitialised tail, valid for `want <=
    // spare.len()` bytes of writes; `read(2)` writes at most `want` bytes
    // and returns how many.
    let r = unsafe {
        libc::syscall(
            libc::SYS_read,
            fd.as_raw_fd(),
            spare.as_mut_ptr().cast::<libc::c_void>(),
            want,
        )
    };
    let n = check(r)?;
    // SAFETY: the kernel initialised the first `n <= want` bytes of the
    // spare capacity.
    unsafe { buf.advance_mut(n) };
    Ok(n)
}

/// Writes to a connected socket, never raising SIGPIPE (`MSG_NOSIGNAL`):
/// a peer that went away is an `EPIPE` error, not the end of the process.
#[derive(Debug)]
pub(crate) struct SocketWriter(pub(crate) RawFd);

impl Write for SocketWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` bytes of reads; the null
        // address with length 0 is what `send(2)` passes for a connected
        // socket.
        let r = unsafe {
            libc::syscall(
                libc::SYS_sendto,
                self.0,
                buf.as_ptr().cast::<libc::c_void>(),
                buf.len(),
                libc::MSG_NOSIGNAL,
                std::ptr::null::<libc::sockaddr>(),
                0,
            )
        };
        check(r)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: a zeroed `msghdr` is a valid empty one; it then points at
        // `bufs`, whose `IoSlice`s have the layout of `iovec` (as the
        // standard library guarantees on Unix), valid for the call.
        let r = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = bufs.len().min(libc::c_int::MAX as usize) as _;
            libc::syscall(
                libc::SYS_sendmsg,
                self.0,
                &msg as *const libc::msghdr,
                libc::MSG_NOSIGNAL,
            )
        };
        check(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
