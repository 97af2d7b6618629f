//! The PROXY protocol (versions 1 and 2), as a load balancer such as
//! HAProxy or nginx sends it first on each connection it relays, to carry
//! the client's address to the server.
//!
//! [`parse`] reads a header off the front of a buffer: it says
//! [`Parsed::Incomplete`] until the whole header is there, then how many
//! bytes it took, so that what follows (the client's first line, say)
//! stays in the buffer for the framer. It never reads past the header,
//! never allocates, and refuses a header longer than the protocol allows
//! ([`MAX_V1`]) or than this parser accepts ([`MAX_V2`]) without waiting
//! for the rest.
//!
//! A socket accepted under a [`ProxyPolicy`] (see
//! [`SocketConfig::proxy`](crate::net::SocketConfig::proxy)) reads its
//! header before anything else, whatever its credit, and only from the
//! sources the policy trusts. The controller then gets
//! [`SocketEvent::Proxied`](crate::net::SocketEvent::Proxied) before any
//! unit; a refused connection closes with
//! [`CloseReason::Proxy`](crate::net::CloseReason::Proxy), and the log says
//! why.
//!
//! The specification: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// The version 2 signature: the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version 1 header, `CRLF` included (the specification's
/// figure).
pub const MAX_V1: usize = 107;

/// The longest version 2 header accepted: the 16 fixed bytes, addresses
/// (216 for Unix sockets) and room for the TLVs HAProxy sends (ALPN,
/// authority, unique id, SSL details). Longer ones are refused at once.
pub const MAX_V2: usize = 16 + 1024;

/// What a header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyCommand {
    /// The proxy opened the connection for itself (a health check): the
    /// connection's own addresses are the real ones.
    Local,
    /// The connection relays a client's.
    Proxy,
}

/// A parsed PROXY header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// `Local` for the proxy's own connections (v2 only).
    pub command: ProxyCommand,
    /// The client's address, when the header names one (not for `LOCAL`,
    /// v1 `UNKNOWN`, or a v2 family other than TCP over IPv4 or IPv6).
    pub source: Option<SocketAddr>,
    /// The address the client connected to, on the proxy.
    pub destination: Option<SocketAddr>,
}

impl ProxyHeader {
    /// A header relaying a TCP connection from `source` to `destination`
    /// (both of one family, as the protocol requires).
    pub fn proxy(source: SocketAddr, destination: SocketAddr) -> ProxyHeader {
        ProxyHeader {
            version: 2,
            command: ProxyCommand::Proxy,
            source: Some(source),
            destination: Some(destination),
        }
    }

    /// A v2 `LOCAL` header, as health checks send.
    pub fn local() -> ProxyHeader {
        ProxyHeader {
            version: 2,
            command: ProxyCommand::Local,
            source: None,
            destination: None,
        }
    }

    /// True for the proxy's own connection (`LOCAL`).
    pub fn is_local(&self) -> bool {
        self.command == ProxyCommand::Local
    }

    /// The header in version 1 (text) form. `LOCAL`, and addresses of two
    /// families or none, come out as `PROXY UNKNOWN`.
    pub fn encode_v1(&self) -> Vec<u8> {
        let line = match (self.command, self.source, self.destination) {
            (ProxyCommand::Proxy, Some(SocketAddr::V4(s)), Some(SocketAddr::V4(d))) => format!(
                "PROXY TCP4 {} {} {} {}\r\n",
                s.ip(),
                d.ip(),
                s.port(),
                d.port()
            ),
            (ProxyCommand::Proxy, Some(SocketAddr::V6(s)), Some(SocketAddr::V6(d))) => format!(
                "PROXY TCP6 {} {} {} {}\r\n",
                s.ip(),
                d.ip(),
                s.port(),
                d.port()
            ),
            _ => "PROXY UNKNOWN\r\n".to_string(),
        };
        line.into_bytes()
    }

    /// The header in version 2 (binary) form, with no TLVs. Addresses of
    /// two families or none come out as `UNSPEC`.
    pub fn encode_v2(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 36);
        out.extend_from_slice(&V2_SIGNATURE);
        out.push(match self.command {
            ProxyCommand::Local => 0x20,
            ProxyCommand::Proxy => 0x21,
        });
        let mut body = Vec::new();
        let family = match (self.command, self.source, self.destination) {
            (ProxyCommand::Local, ..) => 0x00,
            (_, Some(SocketAddr::V4(s)), Some(SocketAddr::V4(d))) => {
                body.extend_from_slice(&s.ip().octets());
                body.extend_from_slice(&d.ip().octets());
                body.extend_from_slice(&s.port().to_be_bytes());
                body.extend_from_slice(&d.port().to_be_bytes());
                0x11
            }
            (_, Some(SocketAddr::V6(s)), Some(SocketAddr::V6(d))) => {
                body.extend_from_slice(&s.ip().octets());
                body.extend_from_slice(&d.ip().octets());
                body.extend_from_slice(&s.port().to_be_bytes());
                body.extend_from_slice(&d.port().to_be_bytes());
                0x21
            }
            _ => 0x00,
        };
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }
}

/// Why a connection's PROXY header was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyError {
    /// The connection came from a source the policy does not trust: its
    /// header, whatever it says, cannot be believed.
    Untrusted(IpAddr),
    /// The connection did not start with a PROXY header.
    Missing,
    /// The header broke the protocol; the text says how.
    Malformed(&'static str),
    /// The peer closed the connection before the header was complete.
    Truncated,
    /// No complete header arrived within the policy's timeout.
    Timeout,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Untrusted(ip) => write!(
                f,
                "PROXY protocol: {ip} is not a trusted proxy (not in --proxy-from)"
            ),
            ProxyError::Missing => f.write_str("PROXY protocol: the connection sent no header"),
            ProxyError::Malformed(why) => write!(f, "PROXY protocol: malformed header: {why}"),
            ProxyError::Truncated => {
                f.write_str("PROXY protocol: connection closed in the middle of the header")
            }
            ProxyError::Timeout => f.write_str("PROXY protocol: no header within the timeout"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// What [`parse`] found at the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// What is there is a header's beginning: read more.
    Incomplete,
    /// A whole header, and the bytes it took.
    Done(ProxyHeader, usize),
}

/// Reads a PROXY header (v1 or v2) off the front of `buf`. See the module
/// docs.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    match buf.first() {
        None => Ok(Parsed::Incomplete),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(ProxyError::Missing),
    }
}

/// True if `buf` is, as far as it goes, the beginning of a header: an
/// empty buffer is; `GET /` is not.
fn starts_like(buf: &[u8], signature: &[u8]) -> bool {
    let n = buf.len().min(signature.len());
    buf[..n] == signature[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if !starts_like(buf, b"PROXY ") {
        return Err(ProxyError::Missing);
    }
    let window = &buf[..buf.len().min(MAX_V1)];
    // The first byte that is not printable ASCII must be the CR of the
    // closing CRLF, within the 107 bytes.
    let cr = match window
        .iter()
        .position(|&b| !b.is_ascii_graphic() && b != b' ')
    {
        None if window.len() == MAX_V1 => {
            return Err(ProxyError::Malformed("v1 header longer than 107 bytes"))
        }
        None => return Ok(Parsed::Incomplete),
        Some(i) if window[i] == b'\r' => i,
        Some(_) => return Err(ProxyError::Malformed("v1 header is not printable ASCII")),
    };
    match window.get(cr + 1) {
        None if cr + 1 < MAX_V1 => return Ok(Parsed::Incomplete),
        None => return Err(ProxyError::Malformed("v1 header longer than 107 bytes")),
        Some(b'\n') => {}
        Some(_) => return Err(ProxyError::Malformed("v1 header does not end with CRLF")),
    }
    let line = std::str::from_utf8(&window[6..cr])
        .map_err(|_| ProxyError::Malformed("v1 header is not printable ASCII"))?;
    let used = cr + 2;
    let mut fields = line.split(' ');
    let proto = fields.next().unwrap_or("");
    if proto == "UNKNOWN" {
        // The rest of the line, if any, is ignored (the specification).
        return Ok(Parsed::Done(
            ProxyHeader {
                version: 1,
                command: ProxyCommand::Proxy,
                source: None,
                destination: None,
            },
            used,
        ));
    }
    let v6 = match proto {
        "TCP4" => false,
        "TCP6" => true,
        _ => {
            return Err(ProxyError::Malformed(
                "v1 protocol is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    let mut next = || {
        fields
            .next()
            .filter(|f| !f.is_empty())
            .ok_or(ProxyError::Malformed("v1 header has too few fields"))
    };
    let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
    if fields.next().is_some() {
        return Err(ProxyError::Malformed("v1 header has too many fields"));
    }
    let ip = |s: &str| -> Result<IpAddr, ProxyError> {
        if v6 {
            s.parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| ProxyError::Malformed("v1 address is not IPv6"))
        } else {
            s.parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| ProxyError::Malformed("v1 address is not IPv4"))
        }
    };
    let port = |s: &str| -> Result<u16, ProxyError> {
        let digits = s.bytes().all(|b| b.is_ascii_digit()) && s.len() <= 5;
        let leading_zero = s.len() > 1 && s.starts_with('0');
        match s.parse::<u16>() {
            Ok(p) if digits && !leading_zero => Ok(p),
            _ => Err(ProxyError::Malformed(
                "v1 port is not a number from 0 to 65535",
            )),
        }
    };
    Ok(Parsed::Done(
        ProxyHeader {
            version: 1,
            command: ProxyCommand::Proxy,
            source: Some(SocketAddr::new(ip(src)?, port(sport)?)),
            destination: Some(SocketAddr::new(ip(dst)?, port(dport)?)),
        },
        used,
    ))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if !starts_like(buf, &V2_SIGNATURE) {
        return Err(ProxyError::Missing);
    }
    if buf.len() < 16 {
        // The 13th byte may already be wrong: say so without waiting.
        if let Some(&ver) = buf.get(12) {
            check_version(ver)?;
        }
        return Ok(Parsed::Incomplete);
    }
    let command = check_version(buf[12])?;
    let family = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let used = 16 + len;
    if used > MAX_V2 {
        return Err(ProxyError::Malformed(
            "v2 header longer than this server accepts",
        ));
    }
    if buf.len() < used {
        return Ok(Parsed::Incomplete);
    }
    let body = &buf[16..used];
    let (source, destination) = match command {
        // The addresses, if any, are to be ignored (the specification).
        ProxyCommand::Local => (None, None),
        ProxyCommand::Proxy => match family {
            // TCP or UDP over IPv4.
            0x11 | 0x12 => {
                if body.len() < 12 {
                    return Err(ProxyError::Malformed("v2 IPv4 addresses are cut short"));
                }
                let ip =
                    |at: usize| Ipv4Addr::new(body[at], body[at + 1], body[at + 2], body[at + 3]);
                let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
                (
                    Some(SocketAddr::new(IpAddr::V4(ip(0)), port(8))),
                    Some(SocketAddr::new(IpAddr::V4(ip(4)), port(10))),
                )
            }
            // TCP or UDP over IPv6.
            0x21 | 0x22 => {
                if body.len() < 36 {
                    return Err(ProxyError::Malformed("v2 IPv6 addresses are cut short"));
                }
                let ip = |at: usize| {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(&body[at..at + 16]);
                    Ipv6Addr::from(o)
                };
                let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
                (
                    Some(SocketAddr::new(IpAddr::V6(ip(0)), port(32))),
                    Some(SocketAddr::new(IpAddr::V6(ip(16)), port(34))),
                )
            }
            // Unspecified, or Unix sockets: no IP address to report; the
            // connection's own is used.
            0x00 | 0x31 | 0x32 => (None, None),
            _ => {
                return Err(ProxyError::Malformed(
                    "v2 address family or transport is unknown",
                ))
            }
        },
    };
    Ok(Parsed::Done(
        ProxyHeader {
            version: 2,
            command,
            source,
            destination,
        },
        used,
    ))
}

fn check_version(ver_cmd: u8) -> Result<ProxyCommand, ProxyError> {
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Malformed("v2 version is not 2"));
    }
    match ver_cmd & 0x0f {
        0 => Ok(ProxyCommand::Local),
        1 => Ok(ProxyCommand::Proxy),
        _ => Err(ProxyError::Malformed(
            "v2 command is neither LOCAL nor PROXY",
        )),
    }
}

/// A block of IP addresses: `10.0.0.0/8`, `2001:db8::/32`, or one address
/// (`192.0.2.7`, a `/32` or `/128`). An IPv4 block also matches the same
/// addresses mapped into IPv6 (`::ffff:10.0.0.1`), as a dual-stack
/// listener reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True if `ip` is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or block (like 10.0.0.0/8)"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Reads a comma-separated list of blocks (`10.0.0.0/8,::1`), as
/// `--proxy-from` takes. An empty list is refused: it would refuse every
/// connection.
pub fn parse_cidrs(s: &str) -> Result<Vec<Cidr>, String> {
    let list = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect::<Result<Vec<Cidr>, String>>()?;
    if list.is_empty() {
        return Err("the list of trusted proxies is empty".into());
    }
    Ok(list)
}

/// How long a connection may take to send its header by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which connections must start with a PROXY header, from where, and how
/// soon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyPolicy {
    /// The proxies whose headers are believed.
    pub trusted: Vec<Cidr>,
    /// How long the header may take to arrive whole.
    pub timeout: Duration,
    /// Every connection must be from a trusted source and send a header
    /// (a load-balanced service). When false, a header is read if a
    /// trusted source sends one, and any other connection is served as
    /// it is (an admin endpoint that both the proxy and operators reach).
    pub required: bool,
}

impl ProxyPolicy {
    /// Headers required, from `trusted`, within [`DEFAULT_TIMEOUT`].
    pub fn new(trusted: Vec<Cidr>) -> ProxyPolicy {
        ProxyPolicy {
            trusted,
            timeout: DEFAULT_TIMEOUT,
            required: true,
        }
    }

    /// The same policy with headers optional (see
    /// [`required`](ProxyPolicy::required)).
    pub fn optional(mut self) -> ProxyPolicy {
        self.required = false;
        self
    }

    /// True if a header from `ip` is to be believed.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }
}

/// Panics if [`parse`] breaks one of its properties on `data`: the fuzz
/// target's check, and the regression corpus's (`fuzz/regressions/proxy`).
///
/// - it never panics, and never waits for more than a header may hold;
/// - a header it reads took at most the bytes there, and no more than the
///   limits; every shorter prefix of it is `Incomplete`, and the bytes
///   after it do not change it;
/// - a refusal is final: more bytes do not change it;
/// - a header naming addresses reads back the same from its own
///   encodings.
pub fn check_properties(data: &[u8]) {
    let result = parse(data);
    match &result {
        Ok(Parsed::Done(h, used)) => {
            let used = *used;
            assert!(used <= data.len() && used <= MAX_V2.max(MAX_V1));
            if h.version == 1 {
                assert!(used <= MAX_V1, "a v1 header of {used} bytes");
            }
            assert_eq!(parse(&data[..used]), Ok(Parsed::Done(*h, used)));
            for cut in 0..used {
                assert_eq!(parse(&data[..cut]), Ok(Parsed::Incomplete), "cut at {cut}");
            }
            if let (Some(s), Some(d), ProxyCommand::Proxy) = (h.source, h.destination, h.command) {
                // Both encodings of a header of one family read back whole.
                if s.is_ipv4() == d.is_ipv4() {
                    for (v, bytes) in [(2, h.encode_v2()), (1, h.encode_v1())] {
                        let Ok(Parsed::Done(back, n)) = parse(&bytes) else {
                            panic!("the v{v} encoding of {h:?} does not read back");
                        };
                        assert_eq!(
                            (back.source, back.destination, n),
                            (h.source, h.destination, bytes.len()),
                            "v{v} round trip"
                        );
                    }
                }
            }
        }
        Ok(Parsed::Incomplete) => {
            assert!(
                data.len() < MAX_V2.max(MAX_V1),
                "waits with {} bytes",
                data.len()
            );
        }
        Err(e) => {
            let mut more = data.to_vec();
            more.extend_from_slice(b"\r\n");
            more.extend_from_slice(&[0x21; 64]);
            assert_eq!(parse(&more).err().as_ref(), Some(e), "a refusal is final");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(buf: &[u8]) -> (ProxyHeader, usize) {
        match parse(buf) {
            Ok(Parsed::Done(h, n)) => (h, n),
            other => panic!("{buf:?}: {other:?}"),
        }
    }

    fn malformed(buf: &[u8]) -> &'static str {
        match parse(buf) {
            Err(ProxyError::Malformed(why)) => why,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn v1_tcp4_and_tcp6_are_read_and_leave_what_follows() {
        let buf = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 4096\r\nhello\n";
        let (h, n) = done(buf);
        assert_eq!(&buf[n..], b"hello\n");
        assert_eq!(h.version, 1);
        assert_eq!(h.source, Some("192.0.2.7:56324".parse().unwrap()));
        assert_eq!(h.destination, Some("10.0.0.1:4096".parse().unwrap()));
        let (h, n) = done(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n");
        assert_eq!(n, 36);
        assert_eq!(h.source, Some("[2001:db8::1]:1".parse().unwrap()));
        let (h, _) = done(b"PROXY UNKNOWN ignored stuff\r\n");
        assert_eq!((h.source, h.command), (None, ProxyCommand::Proxy));
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        let src = "[2001:db8::7]:40000".parse().unwrap();
        let dst = "[2001:db8::1]:4096".parse().unwrap();
        for header in [
            ProxyHeader::proxy(src, dst).encode_v1(),
            ProxyHeader::proxy(src, dst).encode_v2(),
            ProxyHeader::local().encode_v2(),
        ] {
            for cut in 0..header.len() {
                assert_eq!(
                    parse(&header[..cut]),
                    Ok(Parsed::Incomplete),
                    "cut at {cut}"
                );
            }
            let (h, n) = done(&header);
            assert_eq!(n, header.len());
            if h.version == 1 || !h.is_local() {
                assert_eq!(h.source, Some(src));
            }
        }
    }

    #[test]
    fn encodings_read_back() {
        let v4 = ProxyHeader::proxy(
            "198.51.100.2:1234".parse().unwrap(),
            "203.0.113.9:80".parse().unwrap(),
        );
        let (h, _) = done(&v4.encode_v2());
        assert_eq!(h, v4);
        let (h, _) = done(&v4.encode_v1());
        assert_eq!(h, ProxyHeader { version: 1, ..v4 });
        let (h, n) = done(&ProxyHeader::local().encode_v2());
        assert_eq!((h, n), (ProxyHeader::local(), 16));
    }

    #[test]
    fn v2_tlvs_and_unix_addresses_are_skipped() {
        let mut buf = V2_SIGNATURE.to_vec();
        buf.extend_from_slice(&[0x21, 0x11, 0, 12 + 7]);
        buf.extend_from_slice(&[10, 0, 0, 9, 10, 0, 0, 1, 0x1f, 0x90, 0x10, 0x00]);
        // A TLV: PP2_TYPE_AUTHORITY "a.b" (type, length, value), then
        // padding.
        buf.extend_from_slice(&[0x02, 0, 3, b'a', b'.', b'b', 0]);
        buf.extend_from_slice(b"line\n");
        let (h, n) = done(&buf);
        assert_eq!(&buf[n..], b"line\n");
        assert_eq!(h.source, Some("10.0.0.9:8080".parse().unwrap()));
        let mut unix = V2_SIGNATURE.to_vec();
        unix.extend_from_slice(&[0x21, 0x31, 0, 216]);
        unix.extend_from_slice(&[0; 216]);
        let (h, n) = done(&unix);
        assert_eq!((h.source, n), (None, 232));
    }

    #[test]
    fn bad_inputs_are_refused_with_a_reason() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::Missing));
        assert_eq!(parse(b"hello\n"), Err(ProxyError::Missing));
        assert_eq!(parse(b"PROXX TCP4"), Err(ProxyError::Missing));
        assert_eq!(parse(b"\r\n\r\n\0\r\nQUIX"), Err(ProxyError::Missing));
        assert!(malformed(b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n").contains("protocol"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n").contains("too few"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n").contains("too many"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n").contains("too few"));
        assert!(malformed(b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n").contains("IPv4"));
        assert!(malformed(b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n").contains("IPv6"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n").contains("port"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n").contains("port"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n").contains("port"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX").contains("CRLF"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4\t1.2.3.4 1 2\r\n").contains("ASCII"));
        assert!(malformed("PROXY TCP4 1.2.3.4 é".as_bytes()).contains("ASCII"));
        let long = format!("PROXY UNKNOWN {}", "x".repeat(200));
        assert!(malformed(long.as_bytes()).contains("107"));
        // v2: bad version, bad command, bad family, short addresses, too
        // long: each known from the bytes already there.
        let v2 = |rest: &[u8]| [&V2_SIGNATURE[..], rest].concat();
        assert!(malformed(&v2(&[0x11])).contains("version"));
        assert!(malformed(&v2(&[0x23, 0x11, 0, 0])).contains("command"));
        assert!(malformed(&v2(&[0x21, 0x41, 0, 0])).contains("family"));
        assert!(malformed(&v2(&[0x21, 0x11, 0, 4, 1, 2, 3, 4])).contains("short"));
        assert!(malformed(&v2(&[
            0x21, 0x21, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ]))
        .contains("short"));
        assert!(malformed(&v2(&[0x21, 0x11, 0xff, 0xff])).contains("longer"));
        // LOCAL ignores whatever family and addresses follow.
        let (h, n) = done(&v2(&[
            0x20, 0x11, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2,
        ]));
        assert_eq!((h.is_local(), h.source, n), (true, None, 28));
    }

    #[test]
    fn the_regression_corpus_keeps_its_properties() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/proxy");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz/regressions/proxy") {
            let path = entry.unwrap().path();
            check_properties(&std::fs::read(&path).unwrap());
            n += 1;
        }
        assert!(n >= 20, "only {n} inputs in {}", dir.display());
    }

    #[test]
    fn cidr_blocks_match_their_addresses_only() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.255.3".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.0.1".parse().unwrap()),
            "v4-mapped"
        );
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("203.0.113.1".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("::/129".parse::<Cidr>().is_err());
        assert!("proxy.local".parse::<Cidr>().is_err());
        let list = parse_cidrs("127.0.0.1, ::1,10.0.0.0/8").unwrap();
        assert_eq!(list.len(), 3);
        assert!(parse_cidrs(" , ").is_err());
        let policy = ProxyPolicy::new(list);
        assert!(policy.trusts("10.9.9.9".parse().unwrap()));
        assert!(!policy.trusts("192.0.2.1".parse().unwrap()));
    }
}
