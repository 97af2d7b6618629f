//! I/O readiness as the reactor hands it to an actor.

/// I/O readiness handed to an actor's I/O hook: the bits of every event
/// that arrived for its sources since its last run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready(pub(crate) u8);

impl Ready {
    const READABLE: u8 = 1;
    const WRITABLE: u8 = 2;
    const READ_CLOSED: u8 = 4;
    const WRITE_CLOSED: u8 = 8;
    const ERROR: u8 = 16;
    const WAKE: u8 = 32;

    pub(crate) fn from_event(e: &mio::event::Event) -> Ready {
        let mut bits = 0;
        if e.is_readable() {
            bits |= Self::READABLE;
        }
        if e.is_writable() {
            bits |= Self::WRITABLE;
        }
        if e.is_read_closed() {
            bits |= Self::READ_CLOSED;
        }
        if e.is_write_closed() {
            bits |= Self::WRITE_CLOSED;
        }
        if e.is_error() {
            bits |= Self::ERROR;
        }
        Ready(bits)
    }

    /// True when no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Data (or an EOF, or an error) may be read.
    pub fn is_readable(self) -> bool {
        self.0 & (Self::READABLE | Self::READ_CLOSED | Self::ERROR) != 0
    }

    /// Output may be written (or the write side failed).
    pub fn is_writable(self) -> bool {
        self.0 & (Self::WRITABLE | Self::WRITE_CLOSED | Self::ERROR) != 0
    }

    /// The peer closed its write side.
    pub fn is_read_closed(self) -> bool {
        self.0 & Self::READ_CLOSED != 0
    }

    /// The error flag was set.
    pub fn is_error(self) -> bool {
        self.0 & Self::ERROR != 0
    }

    /// Someone asked for this run with `Core::wake`: the actor has work of
    /// its own to resume (a socket given credit while input waits), whether
    /// or not an I/O event came.
    pub fn is_wake(self) -> bool {
        self.0 & Self::WAKE != 0
    }

    pub(crate) const fn wake() -> Ready {
        Ready(Self::WAKE)
    }
}
