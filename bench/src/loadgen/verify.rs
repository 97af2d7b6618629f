//! Deterministic request lines and a streaming, allocation-free reply checker.
//!
//! # Line format
//!
//! Line number `seq` of connection `conn` with length `len` is:
//!
//! * bytes `0..16`: 8 lowercase hex digits of `conn` followed by 8 lowercase hex
//!   digits of the low 32 bits of `seq` (truncated when `len < 16`);
//! * bytes `16..len`: printable filler `'!'..='~'` (94 symbols, repeating) in
//!   a rotation that depends on `conn`.
//!
//! There is never an LF (or any byte outside `0x21..=0x7e`) inside a line, and a
//! line is exactly `len` bytes long. The expected reply is
//! `"You said: " + line + "\n"`, or another prefix (even none, for a plain
//! echo) given to [`ReplyVerifier::with_prefix`].
//!
//! Consecutive lines of a connection differ in the embedded counter; any lost,
//! duplicated, reordered or resized line also shifts everything after it, so
//! it is caught as well.
//!
//! Because the content is a pure function of `(conn, seq, len)`, nothing is
//! stored per in-flight line: the checker only keeps the sequence number of the
//! reply it is waiting for and how many bytes of that reply it has already
//! matched. A reply split across any number of reads is reassembled implicitly
//! by that byte offset. Short replies (up to [`TEMPLATE_MAX`] bytes) are kept
//! as a per-connection template in which only the 8 counter digits are
//! rewritten per line, so generating a line is one copy and checking a reply
//! is one `memcmp`. Longer replies are compared segment by segment (constant
//! prefix, 16-byte header, runs of a static filler table, final LF). Neither
//! path allocates per line.

use std::sync::Arc;

/// The constant prefix of every reply, unless another is given.
pub const REPLY_PREFIX: &[u8] = b"You said: ";

const HEADER_LEN: usize = 16;
const PERIOD: usize = 94; // '!' ..= '~'
const FILL_REPEAT: usize = 44;
const FILL_LEN: usize = PERIOD * FILL_REPEAT;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// `'!'..='~'` repeated, so any run of up to `FILL_LEN - PERIOD` filler bytes
/// starting at any rotation is one contiguous slice of this table.
static FILL: [u8; FILL_LEN] = build_fill();

const fn build_fill() -> [u8; FILL_LEN] {
    let mut t = [0u8; FILL_LEN];
    let mut i = 0;
    while i < FILL_LEN {
        t[i] = 0x21 + (i % PERIOD) as u8;
        i += 1;
    }
    t
}

/// Length in bytes of the reply to a line of `line_bytes` bytes
/// (`"You said: "` + line + `"\n"`).
pub const fn reply_len(line_bytes: usize) -> usize {
    REPLY_PREFIX.len() + line_bytes + 1
}

/// The deterministic content of one request line (without its LF).
///
/// Cheap to build (16 hex digits); hands out the line as contiguous segments so
/// it can be appended to a buffer or compared without materialising it.
#[derive(Clone, Debug)]
pub struct LineSpec {
    header: [u8; HEADER_LEN],
    rot: usize,
    len: usize,
}

impl LineSpec {
    /// The spec of line `seq` of connection `conn`, `len` bytes long.
    pub fn new(conn: u32, seq: u64, len: usize) -> LineSpec {
        let mut header = [0u8; HEADER_LEN];
        let c = conn as u64;
        let s = seq & 0xffff_ffff;
        for i in 0..8 {
            header[i] = HEX[((c >> (28 - 4 * i)) & 0xf) as usize];
            header[8 + i] = HEX[((s >> (28 - 4 * i)) & 0xf) as usize];
        }
        let rot = (c.wrapping_mul(7) % PERIOD as u64) as usize;
        LineSpec { header, rot, len }
    }

    /// Line length in bytes (excluding the LF).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length line.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The longest contiguous run of line bytes starting at `off` (`off < len`).
    #[inline]
    pub fn segment(&self, off: usize) -> &[u8] {
        debug_assert!(off < self.len);
        let hdr_end = HEADER_LEN.min(self.len);
        if off < hdr_end {
            &self.header[off..hdr_end]
        } else {
            let start = (self.rot + (off - HEADER_LEN)) % PERIOD;
            let avail = FILL_LEN - start;
            &FILL[start..start + avail.min(self.len - off)]
        }
    }

    /// Appends the line followed by `'\n'` to `out`.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.len + 1);
        let mut off = 0;
        while off < self.len {
            let seg = self.segment(off);
            out.extend_from_slice(seg);
            off += seg.len();
        }
        out.push(b'\n');
    }

    /// The line as a freshly allocated vector (without LF); for tests and tools.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len + 1);
        self.append_to(&mut v);
        v.pop();
        v
    }
}

/// Appends line `seq` of connection `conn` (exactly `len` bytes) and an LF to `out`.
pub fn append_line(conn: u32, seq: u64, len: usize, out: &mut Vec<u8>) {
    LineSpec::new(conn, seq, len).append_to(out);
}

/// Byte-slice equality for short slices of equal length, inline (word-wise,
/// no library call); the hot path of checking small replies.
#[inline(always)]
fn eq_short(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    if !(8..=128).contains(&n) {
        return a == b;
    }
    let load = |s: &[u8], i: usize| u64::from_ne_bytes(s[i..i + 8].try_into().unwrap());
    let mut diff = load(a, n - 8) ^ load(b, n - 8);
    let mut i = 0;
    while i + 8 <= n {
        diff |= load(a, i) ^ load(b, i);
        i += 8;
    }
    diff == 0
}

/// `out.extend_from_slice(src)`, word-wise for short slices.
#[inline(always)]
fn extend_short(out: &mut Vec<u8>, src: &[u8]) {
    let n = src.len();
    if !(8..=128).contains(&n) {
        out.extend_from_slice(src);
        return;
    }
    out.reserve(n);
    let len = out.len();
    // SAFETY: `reserve` guarantees `n` writable bytes after `len`; every byte
    // in `len..len + n` is written (the last word overlaps) before `set_len`.
    unsafe {
        let dst = out.as_mut_ptr().add(len);
        let sp = src.as_ptr();
        let mut i = 0;
        while i + 8 <= n {
            std::ptr::write_unaligned(
                dst.add(i) as *mut u64,
                std::ptr::read_unaligned(sp.add(i) as *const u64),
            );
            i += 8;
        }
        std::ptr::write_unaligned(
            dst.add(n - 8) as *mut u64,
            std::ptr::read_unaligned(sp.add(n - 8) as *const u64),
        );
        out.set_len(len + n);
    }
}

/// Replies up to this many bytes are handled through a [`ReplyTemplate`].
pub const TEMPLATE_MAX: usize = 1024;

/// The complete expected reply (`prefix + line + "\n"`, the prefix
/// `"You said: "` by default) of one connection's current line; moving to
/// another sequence number rewrites only the 8 counter digits.
#[derive(Clone, Debug)]
pub struct ReplyTemplate {
    buf: Vec<u8>,
    prefix_len: usize,
    line_bytes: usize,
}

impl ReplyTemplate {
    /// Template for line `seq` of connection `conn`, replies starting with
    /// [`REPLY_PREFIX`].
    pub fn new(conn: u32, seq: u64, line_bytes: usize) -> ReplyTemplate {
        ReplyTemplate::with_prefix(REPLY_PREFIX, conn, seq, line_bytes)
    }

    /// Template for line `seq` of connection `conn`, replies starting with
    /// `prefix` (empty for a plain echo).
    pub fn with_prefix(prefix: &[u8], conn: u32, seq: u64, line_bytes: usize) -> ReplyTemplate {
        let mut buf = Vec::with_capacity(prefix.len() + line_bytes + 1);
        buf.extend_from_slice(prefix);
        append_line(conn, seq, line_bytes, &mut buf);
        ReplyTemplate {
            buf,
            prefix_len: prefix.len(),
            line_bytes,
        }
    }

    /// Switches to line `seq` (same connection).
    #[inline]
    pub fn set_seq(&mut self, seq: u64) {
        let s = seq & 0xffff_ffff;
        let first = self.prefix_len + 8;
        let n = self.line_bytes.min(HEADER_LEN).saturating_sub(8);
        for i in 0..n {
            self.buf[first + i] = HEX[((s >> (28 - 4 * i)) & 0xf) as usize];
        }
    }

    /// The whole reply.
    #[inline]
    pub fn reply(&self) -> &[u8] {
        &self.buf
    }

    /// The request: the line and its LF.
    #[inline]
    pub fn request(&self) -> &[u8] {
        &self.buf[self.prefix_len..]
    }
}

/// Produces the request lines of one connection, in sequence.
#[derive(Clone, Debug)]
pub struct LineWriter {
    conn: u32,
    line_bytes: usize,
    template: Option<ReplyTemplate>,
}

impl LineWriter {
    /// A writer for connection `conn` with lines of `line_bytes` bytes.
    pub fn new(conn: u32, line_bytes: usize) -> LineWriter {
        LineWriter {
            conn,
            line_bytes,
            template: (reply_len(line_bytes) <= TEMPLATE_MAX)
                .then(|| ReplyTemplate::new(conn, 0, line_bytes)),
        }
    }

    /// Appends line `seq` and its LF to `out`.
    #[inline]
    pub fn append(&mut self, seq: u64, out: &mut Vec<u8>) {
        match &mut self.template {
            Some(t) => {
                t.set_seq(seq);
                extend_short(out, t.request());
            }
            None => append_line(self.conn, seq, self.line_bytes, out),
        }
    }
}

/// Why a reply stream was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// A byte differs from the expected reply.
    Mismatch {
        /// Sequence number of the line whose reply is wrong.
        seq: u64,
        /// Byte offset inside that reply.
        offset: usize,
        /// The byte that was expected.
        expected: u8,
        /// The byte that arrived.
        got: u8,
    },
    /// Reply bytes arrived for a line that has not been sent.
    Unsolicited {
        /// Sequence number the bytes would belong to.
        seq: u64,
    },
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Mismatch {
                seq,
                offset,
                expected,
                got,
            } => write!(
                f,
                "reply to line {seq} differs at byte {offset}: expected {:?}, got {:?}",
                *expected as char, *got as char
            ),
            VerifyError::Unsolicited { seq } => {
                write!(f, "reply bytes for line {seq}, which was never sent")
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Expected {
    Template(ReplyTemplate),
    Segments(LineSpec),
}

/// Streaming checker of one connection's replies, in order.
///
/// Feed it whatever `read` returned; it matches the bytes against
/// `<prefix><line seq>\n` (the prefix `You said: ` by default) for
/// consecutive `seq` starting at 0, across any read boundaries, without
/// buffering.
#[derive(Clone, Debug)]
pub struct ReplyVerifier {
    conn: u32,
    line_bytes: usize,
    prefix: Arc<[u8]>,
    next_seq: u64,
    pos: usize,
    expected: Expected,
}

impl ReplyVerifier {
    /// A checker for connection `conn` whose lines are `line_bytes` long,
    /// replies starting with [`REPLY_PREFIX`].
    pub fn new(conn: u32, line_bytes: usize) -> ReplyVerifier {
        ReplyVerifier::with_prefix(&Arc::from(REPLY_PREFIX), conn, line_bytes)
    }

    /// A checker for connection `conn` whose lines are `line_bytes` long,
    /// replies starting with `prefix` (empty for a plain echo).
    pub fn with_prefix(prefix: &Arc<[u8]>, conn: u32, line_bytes: usize) -> ReplyVerifier {
        let expected = if prefix.len() + line_bytes < TEMPLATE_MAX {
            Expected::Template(ReplyTemplate::with_prefix(prefix, conn, 0, line_bytes))
        } else {
            Expected::Segments(LineSpec::new(conn, 0, line_bytes))
        };
        ReplyVerifier {
            conn,
            line_bytes,
            prefix: prefix.clone(),
            next_seq: 0,
            pos: 0,
            expected,
        }
    }

    /// Sequence number of the reply being waited for (= replies completed).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Bytes of the current reply already matched (0 between replies).
    pub fn partial_bytes(&self) -> usize {
        self.pos
    }

    #[inline]
    fn expected_at(&self, pos: usize) -> &[u8] {
        match &self.expected {
            Expected::Template(t) => &t.reply()[pos..],
            Expected::Segments(spec) => {
                let plen = self.prefix.len();
                if pos < plen {
                    &self.prefix[pos..]
                } else if pos < plen + self.line_bytes {
                    spec.segment(pos - plen)
                } else {
                    b"\n"
                }
            }
        }
    }

    fn advance(&mut self) {
        self.pos = 0;
        self.next_seq += 1;
        match &mut self.expected {
            Expected::Template(t) => t.set_seq(self.next_seq),
            Expected::Segments(spec) => {
                *spec = LineSpec::new(self.conn, self.next_seq, self.line_bytes)
            }
        }
    }

    /// Checks `data`, the next bytes of the reply stream.
    ///
    /// `sent` is the number of lines sent so far on this connection: bytes that
    /// would start the reply to line `sent` or later are unsolicited.
    /// Returns the number of replies completed by `data`.
    pub fn feed(&mut self, mut data: &[u8], sent: u64) -> Result<u64, VerifyError> {
        let total = self.prefix.len() + self.line_bytes + 1;
        let mut done = 0;
        while !data.is_empty() {
            if self.next_seq >= sent {
                return Err(VerifyError::Unsolicited { seq: self.next_seq });
            }
            let n;
            {
                let seg = self.expected_at(self.pos);
                n = seg.len().min(data.len());
                if !eq_short(&data[..n], &seg[..n]) {
                    let i = (0..n).find(|&i| data[i] != seg[i]).unwrap_or(0);
                    return Err(VerifyError::Mismatch {
                        seq: self.next_seq,
                        offset: self.pos + i,
                        expected: seg[i],
                        got: data[i],
                    });
                }
            }
            data = &data[n..];
            self.pos += n;
            if self.pos == total {
                self.advance();
                done += 1;
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(conn: u32, seq: u64, len: usize) -> Vec<u8> {
        let mut v = REPLY_PREFIX.to_vec();
        append_line(conn, seq, len, &mut v);
        v
    }

    #[test]
    fn lines_have_exact_length_and_are_printable() {
        for len in [
            0usize,
            1,
            5,
            15,
            16,
            17,
            32,
            100,
            2000,
            94 * 44 + 300,
            65536,
        ] {
            for seq in [0u64, 1, 2, 93, 12345, u64::MAX] {
                let line = LineSpec::new(7, seq, len).to_vec();
                assert_eq!(line.len(), len);
                assert!(line.iter().all(|&b| (0x21..=0x7e).contains(&b)));
            }
        }
    }

    #[test]
    fn template_and_writer_match_spec() {
        for len in [0usize, 3, 8, 9, 12, 16, 17, 32, 200, 1013, 1014, 5000] {
            let mut t = ReplyTemplate::new(5, 0, len);
            let mut w = LineWriter::new(5, len);
            for seq in [0u64, 1, 15, 16, 255, 1 << 20, u32::MAX as u64, 1 << 33] {
                let want = reply(5, seq, len);
                let mut out = Vec::new();
                w.append(seq, &mut out);
                assert_eq!(out, want[REPLY_PREFIX.len()..], "len {len} seq {seq}");
                if reply_len(len) <= TEMPLATE_MAX {
                    t.set_seq(seq);
                    assert_eq!(t.reply(), &want[..], "len {len} seq {seq}");
                }
            }
        }
    }

    #[test]
    fn short_helpers() {
        let src: Vec<u8> = (0..200u8).collect();
        for n in 0..200 {
            let mut out = vec![7u8; 3];
            extend_short(&mut out, &src[..n]);
            assert_eq!(&out[3..], &src[..n]);
            assert_eq!(&out[..3], &[7, 7, 7]);
            assert!(eq_short(&src[..n], &out[3..]));
            for i in 0..n {
                let mut b = src[..n].to_vec();
                b[i] ^= 0x20;
                assert!(!eq_short(&src[..n], &b), "n {n} i {i}");
            }
        }
    }

    #[test]
    fn lines_vary_per_line_and_connection() {
        let a = LineSpec::new(1, 1, 32).to_vec();
        let b = LineSpec::new(1, 2, 32).to_vec();
        let c = LineSpec::new(2, 1, 32).to_vec();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(&a[..16], b"0000000100000001");
    }

    #[test]
    fn correct_replies_pass() {
        let mut v = ReplyVerifier::new(3, 32);
        let mut stream = Vec::new();
        for seq in 0..10 {
            stream.extend_from_slice(&reply(3, seq, 32));
        }
        assert_eq!(v.feed(&stream, 10), Ok(10));
        assert_eq!(v.next_seq(), 10);
        assert_eq!(v.partial_bytes(), 0);
    }

    #[test]
    fn wrong_byte_fails_anywhere() {
        // Template path (short) and segment path (long), first and later line.
        for len in [40usize, 3000] {
            for seq in [0u64, 1] {
                let mut good = Vec::new();
                for s in 0..=seq {
                    good.extend_from_slice(&reply(4, s, len));
                }
                let base = good.len() - reply_len(len);
                for i in base..good.len() {
                    let mut bad = good.clone();
                    bad[i] ^= 0x01;
                    let mut v = ReplyVerifier::new(4, len);
                    match v.feed(&bad, seq + 1) {
                        Err(VerifyError::Mismatch { seq: s, offset, .. }) => {
                            assert_eq!(s, seq);
                            assert_eq!(offset, i - base);
                        }
                        other => panic!("len {len} byte {i}: expected mismatch, got {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn reply_for_other_line_fails() {
        let mut v = ReplyVerifier::new(4, 32);
        assert!(matches!(
            v.feed(&reply(4, 1, 32), 2),
            Err(VerifyError::Mismatch { .. })
        ));
    }

    #[test]
    fn split_reply_is_reassembled() {
        for len in [32usize, 5000] {
            split_reply_is_reassembled_for(len);
        }
    }

    fn split_reply_is_reassembled_for(len: usize) {
        let mut stream = Vec::new();
        for seq in 0..3 {
            stream.extend_from_slice(&reply(9, seq, len));
        }
        for chunk in [1usize, 2, 7, 10, 11, 43, 94, 1000, 4096] {
            let mut v = ReplyVerifier::new(9, len);
            let mut done = 0;
            for piece in stream.chunks(chunk) {
                done += v.feed(piece, 3).unwrap();
            }
            assert_eq!(done, 3, "chunk {chunk}");
            assert_eq!(v.partial_bytes(), 0);
        }
        // A reply cut in the middle is pending, not complete.
        let mut v = ReplyVerifier::new(9, len);
        assert_eq!(v.feed(&stream[..len / 2], 3), Ok(0));
        assert_eq!(v.partial_bytes(), len / 2);
        assert_eq!(v.feed(&stream[len / 2..], 3), Ok(3));
    }

    #[test]
    fn unsolicited_bytes_fail() {
        let mut v = ReplyVerifier::new(1, 32);
        assert_eq!(v.feed(b"You", 0), Err(VerifyError::Unsolicited { seq: 0 }));
        let mut v = ReplyVerifier::new(1, 32);
        let mut two = reply(1, 0, 32);
        two.extend_from_slice(&reply(1, 1, 32));
        assert_eq!(v.feed(&two, 1), Err(VerifyError::Unsolicited { seq: 1 }));
    }

    #[test]
    fn empty_lines() {
        let mut v = ReplyVerifier::new(1, 0);
        assert_eq!(v.feed(b"You said: \nYou said: \n", 2), Ok(2));
    }
}
