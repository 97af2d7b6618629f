//! Cutting a socket's read buffer into *work units*.
//!
//! A socket actor reads into a [`BytesMut`] and calls [`Framer::next_unit`]
//! until it returns `None`; each returned unit is handed to the controlling
//! actor. The framer never owns input bytes: everything not yet cut stays in
//! the caller's buffer, which is why the mode can be switched at any moment
//! (e.g. from CRLFCRLF-delimited headers to a raw body) without losing data.
//!
//! # Invariants
//!
//! * **Zero copy.** Every unit is a slice split off the front of the caller's
//!   buffer (`split_to(..).freeze()`); text units are validated in place.
//! * **Bounded units.** No delivered unit is longer than `max_unit` bytes
//!   (delimiters excluded). A unit of exactly `max_unit` bytes is accepted.
//! * **Bounded buffer.** If the caller never lets the buffer grow beyond what
//!   [`Framer::room`] allows, the buffer never exceeds `max_unit +
//!   delimiter.len()` bytes (`max_unit` in raw mode), and whenever
//!   `next_unit` returns `None` before end of input, `room` is positive, so the
//!   caller can always make progress. Overlong units are detected as soon as
//!   no delimiter could still end a legal unit, reported once
//!   ([`UnitError::TooLong`]) and then discarded through the next delimiter.
//! * **Chunking invariance.** In delimited modes, the sequence of results for a
//!   byte stream does not depend on how the stream was split into reads,
//!   provided the caller drains with `next_unit` after each read (and passes
//!   `eof = true` once the peer is done).
//! * **Linear scanning.** The framer remembers how far it has searched for a
//!   delimiter, so repeatedly polling a slowly growing partial unit costs
//!   O(total bytes), not O(n²).
//! * **No panics** on any input.
//!
//! Between calls the caller may only *append* to the buffer. If it removes or
//! replaces buffered bytes itself, it must call [`Framer::set_mode`] (with the
//! same mode if nothing should change) so the scan state is reset.

use std::fmt;
use std::ops::Deref;
use std::str::Utf8Error;

use bytes::{Buf, Bytes, BytesMut};

/// A non-empty byte-string delimiter (LF, CRLF, CRLFCRLF, any bytes).
///
/// Non-emptiness is enforced at construction because an empty delimiter would
/// match everywhere and cut the stream into infinitely many empty units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delimiter(Bytes);

impl Delimiter {
    /// `\n`: line-oriented protocols that accept bare LF.
    pub const LF: Delimiter = Delimiter(Bytes::from_static(b"\n"));
    /// `\r\n`: line-oriented internet protocols (SMTP, Redis, HTTP lines).
    pub const CRLF: Delimiter = Delimiter(Bytes::from_static(b"\r\n"));
    /// `\r\n\r\n`: the end of an HTTP/1 header block.
    pub const CRLF_CRLF: Delimiter = Delimiter(Bytes::from_static(b"\r\n\r\n"));

    /// Builds a delimiter from any bytes; fails on empty input because an
    /// empty delimiter cannot make progress through a stream.
    pub fn new(bytes: impl Into<Bytes>) -> Result<Delimiter, FramingError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Err(FramingError::EmptyDelimiter)
        } else {
            Ok(Delimiter(bytes))
        }
    }

    /// The LF delimiter, as a function for call sites that prefer one
    /// (static bytes, no allocation).
    pub fn lf() -> Delimiter {
        Delimiter::LF
    }

    /// The CRLF delimiter (static bytes, no allocation).
    pub fn crlf() -> Delimiter {
        Delimiter::CRLF
    }

    /// The CRLFCRLF delimiter (static bytes, no allocation).
    pub fn crlf_crlf() -> Delimiter {
        Delimiter::CRLF_CRLF
    }

    /// The delimiter's bytes, so callers can re-join units with it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes; always at least 1.
    // Not public API: callers use `as_bytes().len()`; kept private so the
    // public surface stays as specified.
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// How input is cut into work units.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Whatever the buffer holds (one read's worth), as one binary unit of at
    /// most `max_unit` bytes. The default, because it imposes no protocol.
    #[default]
    Raw,
    /// Units end at the delimiter (removed); delivered as validated UTF-8
    /// text, so the receiver can treat them as `&str` without re-checking.
    Text(Delimiter),
    /// Units end at the delimiter (removed); delivered as bytes, for protocols
    /// whose records are not text.
    Binary(Delimiter),
}

/// Validated UTF-8 over shared bytes: a string unit without a copy.
///
/// Invariant: the bytes are valid UTF-8 (checked at construction).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(Bytes);

impl Text {
    /// The text as a `&str`, free of charge because it was validated once.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor (`TryFrom<Bytes>`, `From<String>`,
        // `from_static`) guarantees the bytes are valid UTF-8, and `Bytes` is
        // immutable, so they still are.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The raw UTF-8 bytes, e.g. for writing back to a socket.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The shared bytes, for handing on without copying.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// A text from a string literal without allocating.
    pub fn from_static(s: &'static str) -> Text {
        Text(Bytes::from_static(s.as_bytes()))
    }

    /// Length in bytes (not characters).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty text (e.g. an empty line).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Validates without copying; the error says where the first bad byte is.
impl TryFrom<Bytes> for Text {
    type Error = Utf8Error;

    fn try_from(bytes: Bytes) -> Result<Text, Utf8Error> {
        // Most lines are ASCII: a word-at-a-time check settles those before
        // the full decoder runs.
        if !bytes.is_ascii() {
            std::str::from_utf8(&bytes)?;
        }
        Ok(Text(bytes))
    }
}

/// Reuses the string's allocation; no validation needed.
impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Bytes::from(s.into_bytes()))
    }
}

/// Lets a `Text` be used wherever a `&str` is expected.
impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Text {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Prints the text itself.
impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

/// Prints like a `str` (quoted, escaped), not as a byte list.
impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// One work unit handed to the controlling actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A unit cut in [`Mode::Text`]: already validated UTF-8.
    Text(Text),
    /// A unit cut in [`Mode::Raw`] or [`Mode::Binary`].
    Bytes(Bytes),
}

impl Unit {
    /// The unit's bytes whatever its kind, e.g. for echoing.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Unit::Text(t) => t.as_bytes(),
            Unit::Bytes(b) => b,
        }
    }

    /// Length in bytes (delimiter excluded).
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for an empty unit (two consecutive delimiters).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text, if this unit was cut in text mode.
    pub fn as_text(&self) -> Option<&Text> {
        match self {
            Unit::Text(t) => Some(t),
            Unit::Bytes(_) => None,
        }
    }

    /// The shared bytes, for handing on without copying.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Unit::Text(t) => t.into_bytes(),
            Unit::Bytes(b) => b,
        }
    }
}

/// A unit that could not be delivered; the framer has already skipped it and
/// goes on with the next one, so one bad unit never stalls a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitError {
    /// The unit grew past the limit before its delimiter arrived. Its bytes
    /// are discarded up to and including the next delimiter; reported once
    /// per overlong unit, at the moment it is detected.
    TooLong {
        /// The `max_unit` in force when the unit was rejected.
        limit: usize,
    },
    /// A text-mode unit was not valid UTF-8; its bytes are dropped.
    InvalidUtf8 {
        /// Byte offset within the unit of the first invalid byte.
        valid_up_to: usize,
    },
}

/// Messages say what happened and what the framer did about it.
impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitError::TooLong { limit } => write!(
                f,
                "work unit longer than {limit} bytes (limit); discarded up to the next delimiter"
            ),
            UnitError::InvalidUtf8 { valid_up_to } => write!(
                f,
                "work unit is not valid UTF-8 (first bad byte at offset {valid_up_to}); discarded"
            ),
        }
    }
}

impl std::error::Error for UnitError {}

/// A framer configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// A delimiter must have at least one byte, or the stream never advances.
    EmptyDelimiter,
    /// A unit limit of zero would reject every non-empty unit.
    ZeroLimit,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::EmptyDelimiter => f.write_str("delimiter must not be empty"),
            FramingError::ZeroLimit => {
                f.write_str("maximum work unit size must be at least 1 byte")
            }
        }
    }
}

impl std::error::Error for FramingError {}

/// The framer: mode, limit, and scan state. One per connection, because the
/// scan state belongs to that connection's buffer.
#[derive(Debug)]
pub struct Framer {
    /// The mode, as its delimiter (none: raw) and whether units are text:
    /// smaller than a `Mode`, and every connection holds a framer.
    delim: Option<Delimiter>,
    text: bool,
    /// Discarding the rest of an overlong unit (already reported).
    discarding: bool,
    max_unit: usize,
    /// Offset in the caller's buffer where the next delimiter search starts;
    /// no delimiter occurrence starts before it. Both offsets are kept in
    /// 32 bits, saturating: a smaller value than the true one only means
    /// searching or checking again.
    scan_from: u32,
    /// How many bytes at the front of the caller's buffer are known to be
    /// ASCII, so that text units cut from them need no validation: each
    /// byte is checked once, in one pass over all the units of a read,
    /// instead of once per unit.
    ascii_upto: u32,
}

/// `n` in 32 bits, saturating.
#[inline(always)]
fn sat32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Default for Framer {
    /// Raw mode with [`Framer::DEFAULT_MAX_UNIT`].
    fn default() -> Framer {
        Framer::new(Mode::Raw, Framer::DEFAULT_MAX_UNIT)
    }
}

impl Framer {
    /// 64 KiB: comfortably above typical lines and header blocks, small
    /// enough that a misbehaving peer cannot make a connection hog memory.
    pub const DEFAULT_MAX_UNIT: usize = 64 * 1024;

    /// A framer; a `max_unit` of 0 is clamped to 1 so construction cannot
    /// fail (use [`Framer::try_new`] to reject it instead).
    pub fn new(mode: Mode, max_unit: usize) -> Framer {
        let mut f = Framer {
            delim: None,
            text: false,
            discarding: false,
            max_unit: max_unit.max(1),
            scan_from: 0,
            ascii_upto: 0,
        };
        f.set_mode(mode);
        f
    }

    /// Like [`Framer::new`] but reports a zero limit as a configuration error,
    /// for limits coming from user input.
    pub fn try_new(mode: Mode, max_unit: usize) -> Result<Framer, FramingError> {
        if max_unit == 0 {
            Err(FramingError::ZeroLimit)
        } else {
            Ok(Framer::new(mode, max_unit))
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        match (&self.delim, self.text) {
            (None, _) => Mode::Raw,
            (Some(d), true) => Mode::Text(d.clone()),
            (Some(d), false) => Mode::Binary(d.clone()),
        }
    }

    /// The current unit limit in bytes (delimiter excluded).
    pub fn max_unit(&self) -> usize {
        self.max_unit
    }

    /// Change mode at any time. Bytes still in the caller's buffer are re-cut
    /// under the new mode (scan state resets; discard state ends).
    pub fn set_mode(&mut self, mode: Mode) {
        (self.delim, self.text) = match mode {
            Mode::Raw => (None, false),
            Mode::Text(d) => (Some(d), true),
            Mode::Binary(d) => (Some(d), false),
        };
        self.scan_from = 0;
        self.discarding = false;
        self.ascii_upto = 0;
    }

    /// Change the unit limit (0 is clamped to 1). Takes effect from the next
    /// call; the scan position and any discard in progress are kept.
    pub fn set_max_unit(&mut self, max_unit: usize) {
        self.max_unit = max_unit.max(1);
    }

    /// True while discarding an overlong unit.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// The most bytes the caller should let `buf` hold (delimited: `max_unit
    /// + delimiter.len()`; raw: `max_unit`) minus what it holds now: reading
    /// beyond that could never help. The caller reads at most `room(buf)` more
    /// bytes. Always positive after `next_unit` returned `None` (before eof).
    pub fn room(&self, buf: &BytesMut) -> usize {
        let limit = match &self.delim {
            None => self.max_unit,
            Some(d) => self.max_unit.saturating_add(d.len()),
        };
        limit.saturating_sub(buf.len())
    }

    /// Cut the next unit off the front of `buf`. Returns `None` when `buf`
    /// holds no complete unit (the partial stays in `buf`).
    ///
    /// `eof`: the peer has finished sending; a trailing partial unit
    /// (non-empty) is then delivered as the last unit (text mode validates
    /// it). In discard state at eof the rest is dropped and `None` returned.
    #[inline(always)]
    pub fn next_unit(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Result<Unit, UnitError>> {
        match self.next_line(buf) {
            Line::Unit(unit) => return Some(unit),
            // A partial line that cannot be overlong yet: nothing to do.
            Line::Partial if !eof && buf.len() <= self.max_unit => return None,
            Line::Partial | Line::General => {}
        }
        let before = buf.len();
        let unit = self.cut(buf, eof);
        // Everything consumed came off the front.
        self.ascii_upto = self.ascii_upto.saturating_sub(sat32(before - buf.len()));
        unit
    }

    /// The common case, straight through: a one-byte delimiter found, the
    /// unit within the limit, nothing being discarded. A partial unit moves
    /// the scan position past what was searched, so it is not searched
    /// again; every other case goes to the general path.
    #[inline(always)]
    fn next_line(&mut self, buf: &mut BytesMut) -> Line {
        if self.discarding {
            return Line::General;
        }
        let Some(delim) = &self.delim else {
            return Line::General;
        };
        let text = self.text;
        let &[b] = delim.as_bytes() else {
            return Line::General;
        };
        let start = (self.scan_from as usize).min(buf.len());
        let Some(off) = find_byte(&buf[start..], b) else {
            self.scan_from = sat32(buf.len());
            return Line::Partial;
        };
        let pos = start + off;
        if pos > self.max_unit {
            return Line::General;
        }
        self.scan_from = 0;
        let ascii = text && self.ascii_before(buf, pos);
        self.ascii_upto = self.ascii_upto.saturating_sub(sat32(pos + 1));
        // The delimiter goes with the split and is cut off the unit: one
        // split of the shared buffer instead of a split and an advance.
        let mut unit = buf.split_to(pos + 1).freeze();
        unit.truncate(pos);
        Line::Unit(finish(unit, text, ascii))
    }

    /// Whether `buf[..end]` is ASCII, extending the known-ASCII prefix over
    /// the rest of the buffer first when it does not reach `end`.
    #[inline(always)]
    fn ascii_before(&mut self, buf: &[u8], end: usize) -> bool {
        if end > self.ascii_upto as usize {
            let from = (self.ascii_upto as usize).min(buf.len());
            self.ascii_upto = sat32(from + ascii_prefix(&buf[from..]));
        }
        end <= self.ascii_upto as usize
    }

    fn cut(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Result<Unit, UnitError>> {
        let text = self.text;
        let delim: &[u8] = match &self.delim {
            None => {
                if buf.is_empty() {
                    return None;
                }
                let n = buf.len().min(self.max_unit);
                return Some(Ok(Unit::Bytes(buf.split_to(n).freeze())));
            }
            Some(d) => &d.0,
        };
        let dlen = delim.len();
        // Bytes at the end of the buffer that might be the start of a
        // delimiter whose remainder has not arrived yet.
        let tail = dlen.saturating_sub(1);

        if self.discarding {
            match find_from(buf, delim, &mut self.scan_from) {
                Some(pos) => {
                    buf.advance(pos + dlen);
                    self.scan_from = 0;
                    self.discarding = false;
                    // The known-ASCII prefix counted from the old front:
                    // forget it, or the unit cut next could be taken as
                    // checked without being so (a rare path: an overlong
                    // unit was just dropped).
                    self.ascii_upto = 0;
                    // Fall through: continue with the next unit.
                }
                None => {
                    if eof {
                        buf.clear();
                        self.scan_from = 0;
                        self.discarding = false;
                    } else {
                        let keep = buf.len().min(tail);
                        buf.advance(buf.len() - keep);
                        self.scan_from = 0;
                    }
                    return None;
                }
            }
        }

        let limit = UnitError::TooLong {
            limit: self.max_unit,
        };
        match find_from(buf, delim, &mut self.scan_from) {
            Some(pos) => {
                self.scan_from = 0;
                if pos > self.max_unit {
                    buf.advance(pos + dlen);
                    return Some(Err(limit));
                }
                let ascii = text && self.ascii_before(buf, pos);
                let unit = buf.split_to(pos).freeze();
                buf.advance(dlen);
                Some(finish(unit, text, ascii))
            }
            None if eof => {
                self.scan_from = 0;
                if buf.is_empty() {
                    None
                } else if buf.len() > self.max_unit {
                    buf.clear();
                    Some(Err(limit))
                } else {
                    let ascii = text && self.ascii_before(buf, buf.len());
                    let unit = buf.split().freeze();
                    Some(finish(unit, text, ascii))
                }
            }
            None => {
                if buf.len() > self.max_unit.saturating_add(tail) {
                    // Any delimiter still to come would start past max_unit:
                    // report now, keep only what might begin a delimiter.
                    let keep = tail;
                    buf.advance(buf.len() - keep);
                    self.scan_from = 0;
                    self.discarding = true;
                    Some(Err(limit))
                } else {
                    None
                }
            }
        }
    }
}

/// What the straight-through path of [`Framer::next_unit`] found.
enum Line {
    /// A unit, cut.
    Unit(Result<Unit, UnitError>),
    /// No delimiter in the buffer (one byte long): a partial unit.
    Partial,
    /// A case for the general path.
    General,
}

/// Leftmost delimiter occurrence in `buf`, resuming where the previous
/// unsuccessful search left off (`scan_from`); on failure records where to
/// resume. No occurrence starts before `scan_from`.
fn find_from(buf: &BytesMut, delim: &[u8], scan_from: &mut u32) -> Option<usize> {
    let start = (*scan_from as usize).min(buf.len());
    if start == buf.len() {
        // Nothing new since the last search (the common case when credit
        // arrives after the buffer was drained).
        return None;
    }
    match find_in(&buf[start..], delim) {
        Some(off) => Some(start + off),
        None => {
            // A delimiter might straddle the end of the buffer: its first
            // `delim.len() - 1` bytes may already be here.
            *scan_from = sat32(buf.len().saturating_sub(delim.len().saturating_sub(1)));
            None
        }
    }
}

/// The length of the longest ASCII prefix of `bytes`: sixty-four bytes at
/// a time while they are all ASCII (eight words or-ed together, which the
/// compiler turns into vector loads), then sixteen, eight and one to find
/// the first high byte.
#[inline]
fn ascii_prefix(bytes: &[u8]) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut n = 0;
    for block in bytes.chunks_exact(64) {
        let any = block.chunks_exact(8).fold(0, |acc, w| {
            acc | u64::from_le_bytes(w.try_into().unwrap_or_default())
        });
        if any & HIGH != 0 {
            break;
        }
        n += 64;
    }
    let word = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()) & HIGH)
    };
    while n + 16 <= bytes.len() {
        if (word(n).unwrap_or(HIGH) | word(n + 8).unwrap_or(HIGH)) != 0 {
            break;
        }
        n += 16;
    }
    while let Some(w) = word(n) {
        if w != 0 {
            return n + (w.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    if n < bytes.len() && bytes.len() >= 8 {
        // The last eight bytes, overlapping what is known ASCII (whose high
        // bits are clear, so a set bit is past `n`).
        let last = bytes.len() - 8;
        let w = word(last).unwrap_or_default();
        return if w == 0 {
            bytes.len()
        } else {
            last + (w.trailing_zeros() / 8) as usize
        };
    }
    while n < bytes.len() && bytes[n] < 0x80 {
        n += 1;
    }
    n
}

/// Wraps a cut unit according to the mode; `ascii` says the framer already
/// knows the text unit is ASCII.
#[inline(always)]
fn finish(unit: Bytes, text: bool, ascii: bool) -> Result<Unit, UnitError> {
    if !text {
        return Ok(Unit::Bytes(unit));
    }
    if ascii {
        return Ok(Unit::Text(Text(unit)));
    }
    match Text::try_from(unit) {
        Ok(t) => Ok(Unit::Text(t)),
        Err(e) => Err(UnitError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        }),
    }
}

/// Leftmost occurrence of a non-empty `needle` in `hay` (the per-line hot
/// spot of a line server).
fn find_in(hay: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [] => None,
        [b] => find_byte(hay, *b),
        _ => memchr::memmem::find(hay, needle),
    }
}

/// How far [`find_byte`] looks eight bytes at a time before it hands over
/// to `memchr`.
const SHORT_SCAN: usize = 64;

/// Leftmost `b` in `hay`. Lines are short, and `memchr`'s vectorised search
/// spends more on setting up than a short line takes to scan (about 90
/// instructions per 33-byte line against about 40, under callgrind), so the
/// first [`SHORT_SCAN`] bytes are scanned a word at a time: a byte of the
/// word equals `b` where the word XOR `b`-in-every-byte has a zero byte,
/// and the lowest zero byte is found exactly by `(w - 0x01..) & !w &
/// 0x80..`. Longer stretches go to `memchr`.
#[inline(always)]
fn find_byte(hay: &[u8], b: u8) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let pattern = LOW.wrapping_mul(u64::from(b));
    let mut at = 0;
    while at < SHORT_SCAN {
        let Some(word) = hay.get(at..at + 8) else {
            break;
        };
        let w = u64::from_le_bytes(word.try_into().unwrap_or_default()) ^ pattern;
        let zero = w.wrapping_sub(LOW) & !w & HIGH;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    if at >= SHORT_SCAN {
        return memchr::memchr(b, &hay[at..]).map(|p| at + p);
    }
    if at < hay.len() && hay.len() >= 8 {
        // The last eight bytes, overlapping bytes known not to be `b`: no
        // zero byte there, so none is flagged, and a flagged byte is past
        // `at`.
        let last = hay.len() - 8;
        let word = hay.get(last..).unwrap_or_default();
        let w = u64::from_le_bytes(word.try_into().unwrap_or_default()) ^ pattern;
        let zero = w.wrapping_sub(LOW) & !w & HIGH;
        return (zero != 0).then(|| last + (zero.trailing_zeros() / 8) as usize);
    }
    hay[at..].iter().position(|&c| c == b).map(|p| at + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(f: &mut Framer, buf: &mut BytesMut, eof: bool) -> Vec<Result<Unit, UnitError>> {
        let mut out = Vec::new();
        while let Some(r) = f.next_unit(buf, eof) {
            out.push(r);
        }
        out
    }

    fn text(s: &'static str) -> Result<Unit, UnitError> {
        Ok(Unit::Text(Text::from_static(s)))
    }

    fn bin(s: &'static [u8]) -> Result<Unit, UnitError> {
        Ok(Unit::Bytes(Bytes::from_static(s)))
    }

    #[test]
    fn lf_lines() {
        let mut f = Framer::new(Mode::Text(Delimiter::lf()), 100);
        let mut buf = BytesMut::from(&b"hello\nworld\npart"[..]);
        assert_eq!(
            drain(&mut f, &mut buf, false),
            vec![text("hello"), text("world")]
        );
        assert_eq!(&buf[..], b"part");
        buf.extend_from_slice(b"ial\n");
        assert_eq!(drain(&mut f, &mut buf, false), vec![text("partial")]);
        assert!(buf.is_empty());
    }

    #[test]
    fn crlf_lines() {
        let mut f = Framer::new(Mode::Text(Delimiter::crlf()), 100);
        let mut buf = BytesMut::from(&b"a\rb\r\nc\nd\r\n\r"[..]);
        assert_eq!(
            drain(&mut f, &mut buf, false),
            vec![text("a\rb"), text("c\nd")]
        );
        assert_eq!(&buf[..], b"\r");
    }

    #[test]
    fn http_headers_then_raw_body() {
        let mut f = Framer::new(Mode::Text(Delimiter::crlf_crlf()), 1024);
        let mut buf = BytesMut::from(
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nbody\r\n\r\nxy"[..],
        );
        assert_eq!(
            f.next_unit(&mut buf, false),
            Some(text("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9"))
        );
        f.set_mode(Mode::Raw);
        assert_eq!(drain(&mut f, &mut buf, false), vec![bin(b"body\r\n\r\nxy")]);
        assert!(buf.is_empty());
    }

    #[test]
    fn mode_switch_resets_scan_state() {
        let mut f = Framer::new(Mode::Binary(Delimiter::crlf_crlf()), 1024);
        let mut buf = BytesMut::from(&b"abc\r\ndef"[..]);
        assert_eq!(f.next_unit(&mut buf, false), None);
        f.set_mode(Mode::Binary(Delimiter::crlf()));
        assert_eq!(f.next_unit(&mut buf, false), Some(bin(b"abc")));
    }

    #[test]
    fn delimiter_straddles_chunks() {
        let mut f = Framer::new(Mode::Binary(Delimiter::crlf_crlf()), 100);
        let mut buf = BytesMut::from(&b"head\r\n"[..]);
        assert_eq!(f.next_unit(&mut buf, false), None);
        buf.extend_from_slice(b"\r");
        assert_eq!(f.next_unit(&mut buf, false), None);
        buf.extend_from_slice(b"\nrest");
        assert_eq!(f.next_unit(&mut buf, false), Some(bin(b"head")));
        assert_eq!(&buf[..], b"rest");
    }

    #[test]
    fn exact_limit_accepted() {
        let mut f = Framer::new(Mode::Text(Delimiter::crlf()), 5);
        let mut buf = BytesMut::new();
        for chunk in [&b"123"[..], b"45", b"\r", b"\n"] {
            buf.extend_from_slice(chunk);
            let got = drain(&mut f, &mut buf, false);
            if chunk == b"\n" {
                assert_eq!(got, vec![text("12345")]);
            } else {
                assert!(got.is_empty());
            }
            assert!(f.room(&buf) > 0);
        }
    }

    #[test]
    fn limit_plus_one_rejected_next_line_served() {
        // All at once: the delimiter is found past the limit.
        let mut f = Framer::new(Mode::Text(Delimiter::lf()), 5);
        let mut buf = BytesMut::from(&b"123456\nok\n"[..]);
        assert_eq!(
            drain(&mut f, &mut buf, false),
            vec![Err(UnitError::TooLong { limit: 5 }), text("ok")]
        );
        // Byte by byte: detected before the delimiter arrives.
        let mut f = Framer::new(Mode::Text(Delimiter::lf()), 5);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in b"123456\nok\n" {
            buf.extend_from_slice(&[b]);
            got.extend(drain(&mut f, &mut buf, false));
        }
        assert_eq!(got, vec![Err(UnitError::TooLong { limit: 5 }), text("ok")]);
        assert!(!f.is_discarding());
    }

    #[test]
    fn overlong_without_delimiter_stays_bounded() {
        let max = 1000;
        let delim = Delimiter::crlf();
        let mut f = Framer::new(Mode::Binary(delim.clone()), max);
        let mut buf = BytesMut::new();
        let chunk = vec![b'x'; 4096];
        let mut errors = 0;
        let mut fed = 0;
        while fed < 10 * 1024 * 1024 {
            buf.extend_from_slice(&chunk);
            fed += chunk.len();
            // The chunk may be larger than room; the framer still copes.
            for r in drain(&mut f, &mut buf, false) {
                assert_eq!(r, Err(UnitError::TooLong { limit: max }));
                errors += 1;
            }
            assert!(buf.len() <= max + delim.as_bytes().len());
            assert!(f.is_discarding());
        }
        assert_eq!(errors, 1);
        buf.extend_from_slice(b"\r\nnext\r\n");
        assert_eq!(drain(&mut f, &mut buf, false), vec![bin(b"next")]);
        assert!(!f.is_discarding());
    }

    #[test]
    fn overlong_respecting_room_bounded() {
        let max = 1000;
        let mut f = Framer::new(Mode::Text(Delimiter::crlf_crlf()), max);
        let mut buf = BytesMut::new();
        let mut errors = 0;
        for _ in 0..10_000 {
            let n = f.room(&buf).min(4096);
            assert!(n > 0);
            buf.extend_from_slice(&vec![b'\r'; n]);
            assert!(buf.len() <= max + 4);
            errors += drain(&mut f, &mut buf, false).len();
        }
        assert_eq!(errors, 1);
    }

    #[test]
    fn invalid_utf8_then_next_line() {
        let mut f = Framer::new(Mode::Text(Delimiter::lf()), 100);
        let mut buf = BytesMut::from(&b"abc\xffdef\nnext\n"[..]);
        assert_eq!(
            drain(&mut f, &mut buf, false),
            vec![Err(UnitError::InvalidUtf8 { valid_up_to: 3 }), text("next")]
        );
        // Binary mode does not care.
        let mut f = Framer::new(Mode::Binary(Delimiter::lf()), 100);
        let mut buf = BytesMut::from(&b"abc\xff\n"[..]);
        assert_eq!(drain(&mut f, &mut buf, false), vec![bin(b"abc\xff")]);
    }

    #[test]
    fn trailing_partial_at_eof() {
        let mut f = Framer::new(Mode::Text(Delimiter::crlf()), 10);
        let mut buf = BytesMut::from(&b"one\r\ntwo\r"[..]);
        assert_eq!(drain(&mut f, &mut buf, false), vec![text("one")]);
        assert_eq!(drain(&mut f, &mut buf, true), vec![text("two\r")]);
        assert!(buf.is_empty());
        assert_eq!(f.next_unit(&mut buf, true), None);
        // Invalid trailing text is reported.
        let mut buf = BytesMut::from(&b"\xc3"[..]);
        assert_eq!(
            drain(&mut f, &mut buf, true),
            vec![Err(UnitError::InvalidUtf8 { valid_up_to: 0 })]
        );
        // Overlong trailing partial (within the detection slack) is rejected.
        let mut buf = BytesMut::from(&b"0123456789A"[..]);
        assert_eq!(drain(&mut f, &mut buf, false), vec![]);
        assert_eq!(
            drain(&mut f, &mut buf, true),
            vec![Err(UnitError::TooLong { limit: 10 })]
        );
    }

    #[test]
    fn discard_at_eof_drops_rest() {
        let mut f = Framer::new(Mode::Binary(Delimiter::lf()), 2);
        let mut buf = BytesMut::from(&b"abcdef"[..]);
        assert_eq!(
            drain(&mut f, &mut buf, false),
            vec![Err(UnitError::TooLong { limit: 2 })]
        );
        assert!(f.is_discarding());
        buf.extend_from_slice(b"gh");
        assert_eq!(f.next_unit(&mut buf, true), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn empty_lines() {
        let mut f = Framer::new(Mode::Text(Delimiter::lf()), 10);
        let mut buf = BytesMut::from(&b"\n\na\n\n"[..]);
        assert_eq!(
            drain(&mut f, &mut buf, true),
            vec![text(""), text(""), text("a"), text("")]
        );
        let mut f = Framer::new(Mode::Binary(Delimiter::crlf()), 10);
        let mut buf = BytesMut::from(&b"\r\n\r\n"[..]);
        assert_eq!(drain(&mut f, &mut buf, true), vec![bin(b""), bin(b"")]);
    }

    #[test]
    fn raw_mode() {
        let mut f = Framer::new(Mode::default(), 4);
        let mut buf = BytesMut::new();
        assert_eq!(f.next_unit(&mut buf, true), None);
        assert_eq!(f.room(&buf), 4);
        buf.extend_from_slice(b"abcdefghij");
        assert_eq!(
            drain(&mut f, &mut buf, false),
            vec![bin(b"abcd"), bin(b"efgh"), bin(b"ij")]
        );
    }

    #[test]
    fn text_is_zero_copy() {
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"first line\nsecond\n");
        let base = buf.as_ptr() as usize;
        let end = base + buf.capacity();
        let mut f = Framer::new(Mode::Text(Delimiter::lf()), 64);
        for _ in 0..2 {
            let unit = f.next_unit(&mut buf, false).unwrap().unwrap();
            let t = unit.as_text().unwrap();
            let p = t.as_bytes().as_ptr() as usize;
            assert!(p >= base && p + t.len() <= end);
        }
    }

    #[test]
    fn constructors_and_display() {
        assert_eq!(Delimiter::new(""), Err(FramingError::EmptyDelimiter));
        assert_eq!(Delimiter::new("\n"), Ok(Delimiter::lf()));
        assert_eq!(Delimiter::crlf_crlf().as_bytes(), b"\r\n\r\n");
        assert_eq!(
            Framer::try_new(Mode::Raw, 0).unwrap_err(),
            FramingError::ZeroLimit
        );
        assert_eq!(Framer::new(Mode::Raw, 0).max_unit(), 1);
        let t = Text::from(String::from("héllo"));
        assert_eq!(format!("{t}"), "héllo");
        assert_eq!(format!("{t:?}"), "\"héllo\"");
        assert_eq!(t.len(), 6);
        assert!(Text::try_from(Bytes::from_static(b"\xff")).is_err());
        assert_eq!(
            UnitError::TooLong { limit: 65536 }.to_string(),
            "work unit longer than 65536 bytes (limit); discarded up to the next delimiter"
        );
        assert_eq!(
            UnitError::InvalidUtf8 { valid_up_to: 3 }.to_string(),
            "work unit is not valid UTF-8 (first bad byte at offset 3); discarded"
        );
    }

    #[test]
    fn ascii_prefix_stops_at_the_first_high_byte() {
        assert_eq!(ascii_prefix(b""), 0);
        assert_eq!(ascii_prefix(b"abc"), 3);
        let mut long = vec![b'a'; 300];
        assert_eq!(ascii_prefix(&long), 300);
        assert_eq!(ascii_prefix(&long[..130]), 130);
        for at in [
            0, 7, 8, 15, 16, 17, 31, 63, 64, 65, 127, 128, 200, 255, 256, 299,
        ] {
            long[at] = 0xc3;
            assert_eq!(ascii_prefix(&long), at, "high byte at {at}");
            long[at] = b'a';
        }
    }

    #[test]
    fn a_unit_after_a_discarded_overlong_one_is_still_validated() {
        // The discard drops bytes from the buffer's front in the middle of
        // a cut; the bytes that follow must not pass as checked ASCII.
        let mut f = Framer::new(Mode::Text(Delimiter::crlf()), 4);
        let mut buf = BytesMut::from(&b"ok\r\nAAAAAAAA"[..]);
        assert_eq!(
            drain(&mut f, &mut buf, false),
            vec![text("ok"), Err(UnitError::TooLong { limit: 4 })]
        );
        buf.extend_from_slice(b"B\r\n\xff\r\n");
        assert_eq!(
            drain(&mut f, &mut buf, false),
            vec![Err(UnitError::InvalidUtf8 { valid_up_to: 0 })]
        );
    }

    #[test]
    fn units_after_a_non_ascii_unit_are_still_validated() {
        let mut f = Framer::new(Mode::Text(Delimiter::lf()), 100);
        let mut buf = BytesMut::from(&b"plain\n\xc3\xa9t\xc3\xa9\nbad \xff\nok\n"[..]);
        assert_eq!(
            drain(&mut f, &mut buf, false),
            vec![
                text("plain"),
                Ok(Unit::Text(Text::from(String::from("été")))),
                Err(UnitError::InvalidUtf8 { valid_up_to: 4 }),
                text("ok")
            ]
        );
        // Appended later: scanned afresh.
        buf.extend_from_slice(b"more \xff\nfine\n");
        assert_eq!(
            drain(&mut f, &mut buf, false),
            vec![Err(UnitError::InvalidUtf8 { valid_up_to: 5 }), text("fine")]
        );
    }

    #[test]
    fn find_byte_agrees_with_a_plain_search() {
        let mut hay = vec![b'x'; 300];
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 200, 300] {
            assert_eq!(find_byte(&hay[..len], b'\n'), None, "len {len}");
        }
        for at in [0, 1, 7, 8, 15, 56, 63, 64, 65, 71, 72, 150, 299] {
            hay[at] = b'\n';
            assert_eq!(find_byte(&hay, b'\n'), Some(at), "at {at}");
            if at > 0 {
                hay[at - 1] = 0x8a; // a high byte next to it
                assert_eq!(find_byte(&hay, b'\n'), Some(at), "at {at}");
                hay[at - 1] = b'x';
            }
            hay[at] = b'x';
        }
        // Every byte value, with neighbours that differ by one bit.
        for b in 0..=255u8 {
            let hay = [b ^ 1, b ^ 0x80, b.wrapping_add(1), b, b];
            assert_eq!(find_byte(&hay, b), Some(3), "byte {b}");
        }
    }

    #[test]
    fn find_in_works() {
        assert_eq!(find_in(b"abc", b"c"), Some(2));
        assert_eq!(find_in(b"aab", b"ab"), Some(1));
        assert_eq!(find_in(b"\r\r\n\r\n", b"\r\n\r\n"), Some(1));
        assert_eq!(find_in(b"\r\n\r", b"\r\n\r\n"), None);
        assert_eq!(find_in(b"", b"ab"), None);
    }
}
