//! RESP2, the Redis protocol, read the way a socket actor hands input
//! over: a line at a time (CRLF-delimited units) for everything but bulk
//! strings, whose payload (and its CRLF) is read by length.
//!
//! [`Reader::want`] says how the socket must cut the next unit; the
//! controller switches the socket's mode accordingly, and feeds each unit
//! to [`Reader::line`] or [`Reader::bytes`]. A bulk string that arrives in
//! one unit is kept as that unit's shared bytes, without a copy; one split
//! over several reads is gathered into one buffer.
//!
//! A reader made with [`Reader::with_lines_up_to`] reads a bulk string no
//! longer than a line as lines: the socket stays in line mode (no switch
//! of its mode for each string, two messages each way saved), and a
//! payload that holds CRLFs arrives as several lines, joined again.

use bytes::{Bytes, BytesMut};

/// A reply, or a message pushed to a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `+OK`.
    Simple(Bytes),
    /// `-ERR ...`.
    Error(Bytes),
    /// `:1`.
    Integer(i64),
    /// `$n` and n bytes; `None` for `$-1`.
    Bulk(Option<Bytes>),
    /// `*n` and n frames; `None` for `*-1`.
    Array(Option<Vec<Frame>>),
}

impl Frame {
    /// The frame's bytes, for a simple or bulk string.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Frame::Simple(b) | Frame::Bulk(Some(b)) => Some(b),
            _ => None,
        }
    }
}

/// Why input is not RESP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RespError(pub &'static str);

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed RESP: {}", self.0)
    }
}

impl std::error::Error for RespError {}

/// How the next unit must be cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// A line, its CRLF removed.
    Line,
    /// At most this many bytes: the rest of a bulk string's payload and
    /// its CRLF.
    Bytes(usize),
}

/// The longest bulk string accepted (Redis's own limit is 512 MiB; a chat
/// line is far shorter).
pub const MAX_BULK: usize = 16 << 20;

/// Most elements in one reply, nested arrays' included.
pub const MAX_ARRAY: usize = 1 << 20;

/// Most bytes of bulk strings in one reply.
pub const MAX_REPLY: usize = 64 << 20;

/// A RESP2 reader. See the module docs.
#[derive(Debug, Default)]
pub struct Reader {
    /// Arrays being filled: their elements so far, and how many are due.
    stack: Vec<(Vec<Frame>, usize)>,
    /// A bulk string being read by length: what is due (payload and
    /// CRLF), and what came so far.
    bulk: Option<(usize, BytesMut)>,
    /// Elements and bulk bytes announced so far in the reply being read
    /// (bounded by [`MAX_ARRAY`] and [`MAX_REPLY`]).
    items: usize,
    bytes: usize,
    /// Bulk strings up to this long are read as lines (0: never).
    line_limit: usize,
    /// A bulk string being read as lines: payload bytes still due, and
    /// what came in more than one line.
    bulk_lines: Option<(usize, Option<BytesMut>)>,
}

impl Reader {
    /// A reader that reads bulk strings of at most `limit` bytes (and their
    /// CRLF) as lines; the socket's lines must be allowed `limit` bytes.
    pub fn with_lines_up_to(limit: usize) -> Reader {
        Reader {
            line_limit: limit,
            ..Reader::default()
        }
    }

    /// How the socket must cut the next unit.
    pub fn want(&self) -> Want {
        match &self.bulk {
            Some((due, _)) => Want::Bytes(*due),
            None => Want::Line,
        }
    }

    /// A line (CRLF removed). `Ok(Some(frame))` when it completes a
    /// top-level frame.
    pub fn line(&mut self, line: Bytes) -> Result<Option<Frame>, RespError> {
        if self.bulk.is_some() {
            return Err(RespError("a line where bulk bytes were due"));
        }
        if let Some((due, gathered)) = self.bulk_lines.take() {
            return self.bulk_line(due, gathered, line);
        }
        let (&kind, rest) = line.split_first().ok_or(RespError("an empty line"))?;
        let body = line.slice(1..);
        let frame = match kind {
            b'+' => Frame::Simple(body),
            b'-' => Frame::Error(body),
            b':' => Frame::Integer(number(rest)?),
            b'$' => {
                let n = number(rest)?;
                if n == -1 {
                    Frame::Bulk(None)
                } else if n < 0 || n as usize > MAX_BULK {
                    return Err(RespError("bulk length out of range"));
                } else if self.bytes + n as usize > MAX_REPLY {
                    return Err(RespError("reply larger than the limit"));
                } else {
                    self.bytes += n as usize;
                    if n as usize <= self.line_limit {
                        self.bulk_lines = Some((n as usize, None));
                    } else {
                        self.bulk = Some((n as usize + 2, BytesMut::new()));
                    }
                    return Ok(None);
                }
            }
            b'*' => {
                let n = number(rest)?;
                if n == -1 {
                    Frame::Array(None)
                } else if n < 0 || self.items + n as usize > MAX_ARRAY {
                    return Err(RespError("array length out of range"));
                } else if n == 0 {
                    Frame::Array(Some(Vec::new()))
                } else {
                    if self.stack.len() >= 8 {
                        return Err(RespError("arrays nested too deep"));
                    }
                    self.items += n as usize;
                    self.stack
                        .push((Vec::with_capacity(n.min(64) as usize), n as usize));
                    return Ok(None);
                }
            }
            _ => return Err(RespError("unknown type byte")),
        };
        Ok(self.complete(frame))
    }

    /// Bytes of a bulk string (payload, then CRLF), at most what
    /// [`want`](Reader::want) said.
    pub fn bytes(&mut self, chunk: Bytes) -> Result<Option<Frame>, RespError> {
        let Some((due, mut gathered)) = self.bulk.take() else {
            return Err(RespError("bulk bytes where a line was due"));
        };
        if chunk.len() > due {
            return Err(RespError("more bulk bytes than due"));
        }
        let due = due - chunk.len();
        let mut all = if gathered.is_empty() && due == 0 {
            // Whole in one unit: its bytes, not a copy.
            chunk
        } else {
            if gathered.is_empty() {
                // Grown as bytes come, not reserved on the header's word.
                gathered.reserve((chunk.len() + due).min(64 * 1024));
            }
            gathered.extend_from_slice(&chunk);
            if due > 0 {
                self.bulk = Some((due, gathered));
                return Ok(None);
            }
            gathered.freeze()
        };
        if !all.ends_with(b"\r\n") {
            return Err(RespError("bulk string not followed by CRLF"));
        }
        all.truncate(all.len() - 2);
        Ok(self.complete(Frame::Bulk(Some(all))))
    }

    /// A line of a bulk string read as lines, `due` payload bytes still
    /// to come: the last one if it is exactly that long; otherwise the
    /// payload held a CRLF there, and more follows.
    fn bulk_line(
        &mut self,
        due: usize,
        gathered: Option<BytesMut>,
        line: Bytes,
    ) -> Result<Option<Frame>, RespError> {
        if line.len() == due {
            let all = match gathered {
                Some(mut b) => {
                    b.extend_from_slice(&line);
                    b.freeze()
                }
                None => line,
            };
            return Ok(self.complete(Frame::Bulk(Some(all))));
        }
        if line.len() + 2 > due {
            return Err(RespError("bulk string not followed by CRLF"));
        }
        let mut b = gathered.unwrap_or_else(|| BytesMut::with_capacity(due + 2));
        b.extend_from_slice(&line);
        b.extend_from_slice(b"\r\n");
        self.bulk_lines = Some((due - line.len() - 2, Some(b)));
        Ok(None)
    }

    /// Puts a finished frame into the array being filled, or returns it.
    fn complete(&mut self, mut frame: Frame) -> Option<Frame> {
        loop {
            let Some((items, due)) = self.stack.last_mut() else {
                self.items = 0;
                self.bytes = 0;
                return Some(frame);
            };
            items.push(frame);
            if items.len() < *due {
                return None;
            }
            let (items, _) = self.stack.pop()?;
            frame = Frame::Array(Some(items));
        }
    }
}

fn number(digits: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RespError("not a number"))
}

/// A command as RESP: an array of bulk strings.
pub fn command<A: AsRef<[u8]>>(args: &[A]) -> Bytes {
    let mut out =
        BytesMut::with_capacity(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
    header(&mut out, b'*', args.len());
    for a in args {
        let a = a.as_ref();
        header(&mut out, b'$', a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out.freeze()
}

/// `<kind><n>\r\n`.
fn header(out: &mut BytesMut, kind: u8, n: usize) {
    out.extend_from_slice(&[kind]);
    put_decimal(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal (without `format!`, which costs a few hundred
/// instructions: this runs for every word of every command).
pub(crate) fn put_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` as a socket would, cutting bulk payloads into pieces
    /// of at most `piece` bytes.
    fn read_all(input: &[u8], piece: usize) -> Result<Vec<Frame>, RespError> {
        read_with(Reader::default(), input, piece)
    }

    fn read_with(mut r: Reader, input: &[u8], piece: usize) -> Result<Vec<Frame>, RespError> {
        let mut rest = Bytes::copy_from_slice(input);
        let mut out = Vec::new();
        while !rest.is_empty() {
            let frame = match r.want() {
                Want::Line => {
                    let at = rest
                        .windows(2)
                        .position(|w| w == b"\r\n")
                        .ok_or(RespError("no CRLF"))?;
                    let line = rest.split_to(at);
                    let _ = rest.split_to(2);
                    r.line(line)?
                }
                Want::Bytes(n) => {
                    let take = n.min(piece).min(rest.len());
                    r.bytes(rest.split_to(take))?
                }
            };
            out.extend(frame);
        }
        Ok(out)
    }

    #[test]
    fn every_kind_reads_back_whatever_the_cut() {
        let input = b"+OK\r\n-ERR no\r\n:42\r\n$5\r\nhe\r\no\r\n$-1\r\n*-1\r\n*0\r\n\
                      *3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n*2\r\n:1\r\n$0\r\n\r\n";
        let want = vec![
            Frame::Simple(Bytes::from_static(b"OK")),
            Frame::Error(Bytes::from_static(b"ERR no")),
            Frame::Integer(42),
            Frame::Bulk(Some(Bytes::from_static(b"he\r\no"))),
            Frame::Bulk(None),
            Frame::Array(None),
            Frame::Array(Some(vec![])),
            Frame::Array(Some(vec![
                Frame::Bulk(Some(Bytes::from_static(b"message"))),
                Frame::Bulk(Some(Bytes::from_static(b"room"))),
                Frame::Array(Some(vec![
                    Frame::Integer(1),
                    Frame::Bulk(Some(Bytes::new())),
                ])),
            ])),
        ];
        for piece in [1, 2, 3, 7, 1000] {
            assert_eq!(read_all(input, piece).unwrap(), want, "pieces of {piece}");
        }
        // Bulk strings read as lines, CRLFs in them or not; longer ones
        // still by length.
        for limit in [0, 4, 5, 1000] {
            let r = Reader::with_lines_up_to(limit);
            assert_eq!(read_with(r, input, 3).unwrap(), want, "lines up to {limit}");
        }
    }

    #[test]
    fn bulk_strings_read_as_lines_keep_their_crlfs_and_refuse_a_missing_one() {
        let cases: [&[u8]; 5] = [b"\r\n", b"a\r\n", b"\r\n\r\nb", b"a\rb\nc\r", b"x"];
        for payload in cases {
            let mut input = format!("${}\r\n", payload.len()).into_bytes();
            input.extend_from_slice(payload);
            input.extend_from_slice(b"\r\n:7\r\n");
            let got = read_with(Reader::with_lines_up_to(64), &input, 1).unwrap();
            let want = vec![
                Frame::Bulk(Some(Bytes::copy_from_slice(payload))),
                Frame::Integer(7),
            ];
            assert_eq!(got, want, "{payload:?}");
        }
        // Announced 3, but the line runs on: not RESP.
        let err = read_with(Reader::with_lines_up_to(64), b"$3\r\nabcd\r\n", 1);
        assert_eq!(err, Err(RespError("bulk string not followed by CRLF")));
    }

    #[test]
    fn a_bulk_string_in_one_unit_is_not_copied() {
        let mut r = Reader::default();
        assert_eq!(r.line(Bytes::from_static(b"$3")), Ok(None));
        assert_eq!(r.want(), Want::Bytes(5));
        let unit = Bytes::from_static(b"abc\r\n");
        let ptr = unit.as_ptr();
        let Ok(Some(Frame::Bulk(Some(b)))) = r.bytes(unit) else {
            panic!("no bulk");
        };
        assert_eq!((b.as_ref(), b.as_ptr()), (&b"abc"[..], ptr));
    }

    #[test]
    fn malformed_input_is_refused() {
        for bad in [
            &b"?x\r\n"[..],
            b":12a\r\n",
            b"$-2\r\n",
            b"*-5\r\n",
            b"$3\r\nabcde",
            b"$99999999999\r\n",
        ] {
            assert!(
                read_all(bad, 100).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = b"*1\r\n".repeat(9);
        assert!(read_all(&deep, 100).is_err(), "nesting is bounded");
        // Elements and bytes are bounded per reply, nested ones included,
        // and the count starts again with the next reply.
        let wide = b"*1048576\r\n*1048576\r\n";
        assert!(read_all(wide, 100).is_err(), "elements are bounded");
        let mut r = Reader::default();
        r.line(Bytes::from_static(b"*5")).unwrap();
        for _ in 0..4 {
            r.line(Bytes::from_static(b"$16000000")).unwrap();
            r.bytes(Bytes::from(vec![b'x'; 16_000_000])).unwrap();
            r.bytes(Bytes::from_static(b"\r\n")).unwrap();
        }
        assert!(
            r.line(Bytes::from_static(b"$16000000")).is_err(),
            "bytes are bounded"
        );
        let mut r = Reader::default();
        for _ in 0..5 {
            r.line(Bytes::from_static(b"$16000000")).unwrap();
            r.bytes(Bytes::from(vec![b'x'; 16_000_000])).unwrap();
            assert!(r.bytes(Bytes::from_static(b"\r\n")).unwrap().is_some());
        }
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            command(&["PUBLISH", "room", "hi there"]),
            Bytes::from_static(b"*3\r\n$7\r\nPUBLISH\r\n$4\r\nroom\r\n$8\r\nhi there\r\n")
        );
        let long = "x".repeat(1234);
        let words: Vec<&str> = vec![""; 10].into_iter().chain([long.as_str()]).collect();
        let mut want = b"*11\r\n".to_vec();
        for _ in 0..10 {
            want.extend_from_slice(b"$0\r\n\r\n");
        }
        want.extend_from_slice(format!("$1234\r\n{long}\r\n").as_bytes());
        assert_eq!(command(&words), want);
    }
}
