//! Property tests for the framer: chunking invariance, unit bounds,
//! reconstruction, and bounded buffering when the caller respects `room()`.

use bytes::BytesMut;
use credit_actors::net::framing::*;
use proptest::prelude::*;

type Res = Result<Unit, UnitError>;

fn drain(f: &mut Framer, buf: &mut BytesMut, eof: bool, out: &mut Vec<Res>) {
    // A framer must terminate; bound the loop so a bug cannot hang the test.
    for _ in 0..1_000_000 {
        match f.next_unit(buf, eof) {
            Some(r) => out.push(r),
            None => return,
        }
    }
    panic!("next_unit never returned None");
}

/// Everything at once, with eof.
fn whole(mode: &Mode, max: usize, stream: &[u8]) -> Vec<Res> {
    let mut f = Framer::new(mode.clone(), max);
    let mut buf = BytesMut::from(stream);
    let mut out = Vec::new();
    drain(&mut f, &mut buf, true, &mut out);
    assert!(buf.is_empty());
    out
}

/// In chunks of the given sizes (cycled); eof either signalled on the last
/// chunk's drain or by a separate final drain.
fn chunked(mode: &Mode, max: usize, stream: &[u8], sizes: &[usize], eof_on_last: bool) -> Vec<Res> {
    let mut f = Framer::new(mode.clone(), max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = sizes[i % sizes.len()].min(stream.len() - pos);
        i += 1;
        buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        let last = pos == stream.len();
        drain(&mut f, &mut buf, eof_on_last && last, &mut out);
    }
    drain(&mut f, &mut buf, true, &mut out);
    assert!(buf.is_empty());
    out
}

/// A reader that never reads more than `room()` allows.
fn room_limited(mode: &Mode, max: usize, stream: &[u8], sizes: &[usize]) -> Vec<Res> {
    let dlen = match mode {
        Mode::Raw => 0,
        Mode::Text(d) | Mode::Binary(d) => d.as_bytes().len(),
    };
    let mut f = Framer::new(mode.clone(), max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let room = f.room(&buf);
        assert!(room > 0, "no room after next_unit returned None");
        let n = sizes[i % sizes.len()].min(stream.len() - pos).min(room);
        i += 1;
        buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        assert!(
            buf.len() <= max + dlen,
            "buffer {} > {}",
            buf.len(),
            max + dlen
        );
        drain(&mut f, &mut buf, false, &mut out);
    }
    drain(&mut f, &mut buf, true, &mut out);
    out
}

const ALPHABET: &[u8] = b"ab\r\n\xc3\xa9\xff";

fn delimiter() -> impl Strategy<Value = Delimiter> {
    prop_oneof![
        Just(Delimiter::lf()),
        Just(Delimiter::crlf()),
        Just(Delimiter::crlf_crlf()),
        proptest::collection::vec(proptest::sample::select(ALPHABET), 3)
            .prop_map(|v| Delimiter::new(v).unwrap()),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    (delimiter(), any::<bool>()).prop_map(|(d, t)| if t { Mode::Text(d) } else { Mode::Binary(d) })
}

/// A stream biased to contain delimiters, delimiter prefixes, UTF-8 and
/// invalid UTF-8.
fn stream(delim: Delimiter) -> impl Strategy<Value = Vec<u8>> {
    let d = delim.as_bytes().to_vec();
    let piece = prop_oneof![
        3 => Just(d.clone()),
        1 => (1..d.len().max(2)).prop_map(move |k| d[..k.min(d.len())].to_vec()),
        4 => proptest::collection::vec(proptest::sample::select(ALPHABET), 0..12),
        1 => proptest::collection::vec(Just(b'x'), 0..100),
        1 => Just("héllo wörld".as_bytes().to_vec()),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn case() -> impl Strategy<Value = (Mode, usize, Vec<u8>, Vec<usize>)> {
    (
        mode(),
        1usize..64,
        proptest::collection::vec(1usize..40, 1..20),
    )
        .prop_flat_map(|(mode, max, sizes)| {
            let d = match &mode {
                Mode::Text(d) | Mode::Binary(d) => d.clone(),
                Mode::Raw => unreachable!(),
            };
            (Just(mode), Just(max), stream(d), Just(sizes))
        })
}

fn delim_of(mode: &Mode) -> &[u8] {
    match mode {
        Mode::Text(d) | Mode::Binary(d) => d.as_bytes(),
        Mode::Raw => &[],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (1) The results do not depend on how the stream is cut into reads.
    #[test]
    fn chunking_invariance((mode, max, stream, sizes) in case()) {
        let reference = whole(&mode, max, &stream);
        prop_assert_eq!(&chunked(&mode, max, &stream, &sizes, true), &reference);
        prop_assert_eq!(&chunked(&mode, max, &stream, &sizes, false), &reference);
        prop_assert_eq!(&chunked(&mode, max, &stream, &[1], true), &reference);
    }

    /// (2) No unit exceeds max_unit, and text units are text.
    #[test]
    fn units_bounded((mode, max, stream, sizes) in case()) {
        for u in chunked(&mode, max, &stream, &sizes, true).into_iter().flatten() {
            prop_assert!(u.len() <= max);
            prop_assert_eq!(u.as_text().is_some(), matches!(mode, Mode::Text(_)));
        }
    }

    /// (2b) A text unit holds valid UTF-8, however the stream was cut and
    /// whatever was discarded before it: `Text` derefs to `&str` unchecked.
    #[test]
    fn text_units_are_utf8((mode, max, stream, sizes) in case()) {
        for u in chunked(&mode, max, &stream, &sizes, true).into_iter().flatten() {
            if let Some(t) = u.as_text() {
                prop_assert!(std::str::from_utf8(t.as_bytes()).is_ok(), "{:?}", t.as_bytes());
            }
        }
    }

    /// (3) Without errors, units and delimiters rebuild the stream.
    #[test]
    fn reconstruction((mode, max, stream, sizes) in case()) {
        let results = chunked(&mode, max, &stream, &sizes, true);
        if results.iter().all(|r| r.is_ok()) {
            let d = delim_of(&mode);
            let mut recon = Vec::new();
            for r in &results {
                recon.extend_from_slice(r.as_ref().unwrap().as_bytes());
                recon.extend_from_slice(d);
            }
            // The last unit may be an eof partial, which had no delimiter.
            let ok = recon == stream
                || (recon.ends_with(d) && recon[..recon.len() - d.len()] == stream[..]);
            prop_assert!(ok, "recon {:?} stream {:?}", recon, stream);
        }
    }

    /// (4) A caller that respects room() never buffers more than
    /// max_unit + delimiter length, always has room, and sees the same units.
    #[test]
    fn room_respected((mode, max, stream, sizes) in case()) {
        let reference = whole(&mode, max, &stream);
        prop_assert_eq!(&room_limited(&mode, max, &stream, &sizes), &reference);
    }

    /// Raw mode: bounded units that concatenate to the stream; bounded buffer.
    #[test]
    fn raw_mode(max in 1usize..64, stream in proptest::collection::vec(any::<u8>(), 0..500),
                sizes in proptest::collection::vec(1usize..100, 1..10)) {
        let results = room_limited(&Mode::Raw, max, &stream, &sizes);
        let mut recon = Vec::new();
        for r in results {
            let u = r.unwrap();
            prop_assert!(!u.is_empty() && u.len() <= max);
            recon.extend_from_slice(u.as_bytes());
        }
        prop_assert_eq!(recon, stream);
    }

    /// Arbitrary interleavings of appends, polls, mode and limit changes never
    /// panic and never yield an overlong unit.
    #[test]
    fn no_panic(ops in proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..30).prop_map(Op::Append),
            proptest::collection::vec(proptest::sample::select(ALPHABET), 0..30).prop_map(Op::Append),
            any::<bool>().prop_map(Op::Poll),
            prop_oneof![Just(Mode::Raw), mode()].prop_map(Op::SetMode),
            (0usize..20).prop_map(Op::SetMax),
        ], 0..60)) {
        let mut f = Framer::default();
        let mut buf = BytesMut::new();
        for op in ops {
            match op {
                Op::Append(b) => buf.extend_from_slice(&b),
                Op::Poll(eof) => {
                    let mut out = Vec::new();
                    drain(&mut f, &mut buf, eof, &mut out);
                    for u in out.into_iter().flatten() {
                        prop_assert!(u.len() <= f.max_unit());
                    }
                    prop_assert!(eof || f.room(&buf) > 0);
                }
                Op::SetMode(m) => f.set_mode(m),
                Op::SetMax(m) => f.set_max_unit(m),
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Poll(bool),
    SetMode(Mode),
    SetMax(usize),
}
