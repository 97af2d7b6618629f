//! The socket actors' one system call of their own (everything else goes
//! through mio and socket2): `read(2)` straight into a buffer's spare
//! capacity.

use std::io;
use std::os::fd::AsRawFd;

use bytes::{BufMut, BytesMut};

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
    let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised the first `n <= want` bytes of the
    // spare capacity.
    unsafe { buf.advance_mut(n) };
    Ok(n)
}
