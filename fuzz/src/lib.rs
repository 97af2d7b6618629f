//! The framer property checked by the fuzz targets.
//!
//! An input is decoded into a case (mode, `max_unit`, delimiter, read
//! sizes, byte stream); [`check_framer`] feeds the stream to a
//! [`Framer`] the way a socket does (never more than `room()` allows,
//! draining after every read, `eof` at the end) and panics if any property
//! fails:
//!
//! - no panic inside the framer, and `next_unit` always returns `None`
//!   after finitely many units;
//! - no unit longer than `max_unit`; text units only in text mode;
//! - the buffer never exceeds `max_unit` plus the delimiter's length, and
//!   `room()` is positive whenever `next_unit` returned `None` before EOF;
//! - delimited modes: the same results as feeding the whole stream in one
//!   chunk; when every unit is `Ok`, units and delimiters rebuild the
//!   stream;
//! - raw mode: non-empty units that concatenate to the stream.
//!
//! Input layout (missing bytes read as 0):
//!
//! | bytes | meaning |
//! |---|---|
//! | 1 | flags: bits 0-1 mode (0 raw, 1 and 3 text, 2 binary); bit 2 signal `eof` with the last read; bit 3 small `max_unit` |
//! | 2 | `max_unit`, little endian: `1 + v % 16` with bit 3, else `1 + v % 1024` |
//! | 1 | delimiter length `1 + v % 4` |
//! | 1-4 | the delimiter |
//! | 1 | number of read sizes `1 + v % 16` |
//! | n | read sizes (0 reads as 1), cycled |
//! | rest | the byte stream |

use bytes::BytesMut;
use credit_actors::net::framing::{Delimiter, Framer, Mode, Unit, UnitError};

/// One decoded case.
#[derive(Debug, Clone)]
pub struct Case {
    /// How the stream is cut.
    pub mode: Mode,
    /// The unit limit.
    pub max_unit: usize,
    /// Read sizes, cycled.
    pub sizes: Vec<usize>,
    /// Pass `eof = true` to the drain after the last read (else only to a
    /// separate final drain).
    pub eof_on_last: bool,
    /// The peer's bytes.
    pub stream: Vec<u8>,
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
}

impl Case {
    /// Decodes an input (see the module docs for the layout).
    pub fn parse(data: &[u8]) -> Case {
        let mut c = Cursor(data);
        let flags = c.byte();
        let raw_max = u16::from_le_bytes([c.byte(), c.byte()]) as usize;
        let max_unit = if flags & 8 != 0 {
            1 + raw_max % 16
        } else {
            1 + raw_max % 1024
        };
        let dlen = 1 + (c.byte() % 4) as usize;
        let delim: Vec<u8> = (0..dlen).map(|_| c.byte()).collect();
        let delim = Delimiter::new(delim).expect("non-empty delimiter");
        let mode = match flags & 3 {
            0 => Mode::Raw,
            2 => Mode::Binary(delim),
            _ => Mode::Text(delim),
        };
        let n = 1 + (c.byte() % 16) as usize;
        let sizes = (0..n).map(|_| (c.byte() as usize).max(1)).collect();
        Case {
            mode,
            max_unit,
            sizes,
            eof_on_last: flags & 4 != 0,
            stream: c.0.to_vec(),
        }
    }

    /// Encodes a case back into an input ([`Case::parse`] of the result
    /// gives the same case, for `max_unit <= 1024`, at most 16 sizes each
    /// at most 255, and a delimiter of 1 to 4 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let (mode_bits, delim) = match &self.mode {
            Mode::Raw => (0u8, &b"\n"[..]),
            Mode::Text(d) => (1, d.as_bytes()),
            Mode::Binary(d) => (2, d.as_bytes()),
        };
        let small = self.max_unit <= 16;
        let flags = mode_bits | if self.eof_on_last { 4 } else { 0 } | if small { 8 } else { 0 };
        let v = (self.max_unit - 1) as u16;
        let mut out = vec![flags];
        out.extend_from_slice(&v.to_le_bytes());
        out.push((delim.len() - 1) as u8);
        out.extend_from_slice(delim);
        out.push((self.sizes.len() - 1) as u8);
        out.extend(self.sizes.iter().map(|&s| s as u8));
        out.extend_from_slice(&self.stream);
        out
    }

    fn delimiter(&self) -> &[u8] {
        match &self.mode {
            Mode::Raw => &[],
            Mode::Text(d) | Mode::Binary(d) => d.as_bytes(),
        }
    }
}

type Res = Result<Unit, UnitError>;

/// Drains the framer; panics if it yields more results than the input could
/// possibly hold (a framer that never returns `None`).
fn drain(f: &mut Framer, buf: &mut BytesMut, eof: bool, bound: usize, out: &mut Vec<Res>) {
    for _ in 0..=bound {
        match f.next_unit(buf, eof) {
            Some(r) => out.push(r),
            None => return,
        }
    }
    panic!("next_unit returned more than {bound} results without None");
}

/// The whole stream in one read, then EOF.
fn whole(case: &Case) -> Vec<Res> {
    let mut f = Framer::new(case.mode.clone(), case.max_unit);
    let mut buf = BytesMut::from(&case.stream[..]);
    let mut out = Vec::new();
    drain(&mut f, &mut buf, true, case.stream.len() + 1, &mut out);
    assert!(buf.is_empty(), "bytes left after EOF: {buf:?}");
    out
}

/// Reads of the case's sizes, never beyond `room()`, draining after each.
fn like_a_socket(case: &Case) -> Vec<Res> {
    let limit = case.max_unit + case.delimiter().len();
    let bound = case.stream.len() + 1;
    let mut f = Framer::new(case.mode.clone(), case.max_unit);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let (mut pos, mut i) = (0, 0);
    while pos < case.stream.len() {
        let room = f.room(&buf);
        assert!(room > 0, "no room with {} bytes buffered", buf.len());
        let n = case.sizes[i % case.sizes.len()]
            .min(case.stream.len() - pos)
            .min(room);
        i += 1;
        buf.extend_from_slice(&case.stream[pos..pos + n]);
        pos += n;
        assert!(buf.len() <= limit, "buffer {} > {limit}", buf.len());
        let last = pos == case.stream.len();
        drain(&mut f, &mut buf, case.eof_on_last && last, bound, &mut out);
    }
    drain(&mut f, &mut buf, true, bound, &mut out);
    assert!(buf.is_empty(), "bytes left after EOF: {buf:?}");
    out
}

/// Checks every property on the case decoded from `data`; panics on a
/// violation.
pub fn check_framer(data: &[u8]) {
    let case = Case::parse(data);
    let fed = like_a_socket(&case);
    let text = matches!(case.mode, Mode::Text(_));
    for u in fed.iter().flatten() {
        assert!(
            u.len() <= case.max_unit,
            "unit of {} > {}",
            u.len(),
            case.max_unit
        );
        assert_eq!(u.as_text().is_some(), text, "unit kind vs mode");
    }
    let reference = whole(&case);
    if matches!(case.mode, Mode::Raw) {
        let mut joined = Vec::new();
        for r in &fed {
            let u = r.as_ref().expect("raw mode never fails a unit");
            assert!(!u.is_empty(), "empty raw unit");
            joined.extend_from_slice(u.as_bytes());
        }
        assert_eq!(joined, case.stream, "raw units do not rebuild the stream");
        return;
    }
    assert_eq!(fed, reference, "results depend on how the stream was read");
    if fed.iter().all(|r| r.is_ok()) {
        let d = case.delimiter();
        let mut recon = Vec::new();
        for r in &fed {
            recon.extend_from_slice(r.as_ref().unwrap().as_bytes());
            recon.extend_from_slice(d);
        }
        // The last unit may be a partial cut at EOF, with no delimiter.
        let ok = recon == case.stream
            || (recon.ends_with(d) && recon[..recon.len() - d.len()] == case.stream[..]);
        assert!(ok, "units do not rebuild the stream");
    }
}

/// SplitMix64, for the stable random drivers: small, fast, and
/// reproducible from the seed.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 for `n` 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
