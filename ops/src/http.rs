//! The little of HTTP/1.1 the admin endpoint needs: reading a request
//! head (cut off the input at its blank line by the socket's framer), and
//! writing a response.

use std::fmt::Write;

/// Longest request head accepted, blank line included.
pub const MAX_HEAD: usize = 8 * 1024;

/// Longest request body accepted (read and discarded: no route takes one).
pub const MAX_BODY: usize = 64 * 1024;

/// A request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The connection stays open after the response.
    pub keep_alive: bool,
    /// Bytes of body that follow the head.
    pub body: usize,
    /// The `Accept` header asks for OpenMetrics.
    pub openmetrics: bool,
}

/// Reads a request head: the request line and the header lines, without
/// the blank line that ends them. `Err` says what is wrong, for a 400.
pub fn parse_head(head: &[u8]) -> Result<Request, &'static str> {
    let head = std::str::from_utf8(head).map_err(|_| "the request head is not text")?;
    // A server should ignore empty lines before the request line (RFC 9112,
    // 2.2), as some clients send one after a body.
    let head = head.trim_start_matches("\r\n");
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(is_token) {
        return Err("malformed method");
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("malformed request target");
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err("unsupported HTTP version"),
    };
    let mut keep_alive = http11;
    let mut body: Option<usize> = None;
    let mut host = false;
    let mut openmetrics = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err("malformed header line");
        };
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err("malformed header name");
        }
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err("control characters in a header value");
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("host") {
            host = true;
        } else if name.eq_ignore_ascii_case("accept") {
            openmetrics |= value.contains("application/openmetrics-text");
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<usize>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or("malformed Content-Length")?;
            if body.is_some_and(|b| b != n) {
                return Err("conflicting Content-Length headers");
            }
            body = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("Transfer-Encoding is not supported");
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    if http11 && !host {
        return Err("an HTTP/1.1 request needs a Host header");
    }
    let body = body.unwrap_or(0);
    if body > MAX_BODY {
        return Err("request body too large");
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        keep_alive,
        body,
        openmetrics,
    })
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A response: the status line, the headers, and the body unless the
/// request was `HEAD`.
pub fn response(
    status: u16,
    content_type: &str,
    body: &str,
    keep_alive: bool,
    head_only: bool,
    extra: &[(&str, &str)],
) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Unknown",
    };
    let mut out = String::with_capacity(160 + body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: {}\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (name, value) in extra {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_with_their_connection_and_body() {
        let r = parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*").unwrap();
        assert_eq!(
            r,
            Request {
                method: "GET".into(),
                path: "/metrics".into(),
                keep_alive: true,
                body: 0,
                openmetrics: false,
            }
        );
        let r = parse_head(b"\r\nGET /readyz HTTP/1.0").unwrap();
        assert!(!r.keep_alive, "HTTP/1.0 closes by default");
        let r = parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive").unwrap();
        assert!(r.keep_alive);
        let r =
            parse_head(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nConnection: close")
                .unwrap();
        assert_eq!((r.body, r.keep_alive), (12, false));
    }

    #[test]
    fn bad_heads_say_why() {
        for (head, why) in [
            (&b"GET /"[..], "request line"),
            (b"GET / HTTP/1.1 x", "request line"),
            (b"GET  / HTTP/1.1", "request line"),
            (b"G(T / HTTP/1.1\r\nHost: a", "method"),
            (b"GET metrics HTTP/1.1\r\nHost: a", "target"),
            (b"GET / HTTP/2.0", "version"),
            (b"GET / HTTP/1.1", "Host"),
            (b"GET / HTTP/1.1\r\nHost a", "header line"),
            (b"GET / HTTP/1.1\r\n Host: a", "header name"),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x",
                "Content-Length",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1",
                "Content-Length",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2",
                "conflicting",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked",
                "Transfer-Encoding",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999",
                "too large",
            ),
            (b"GET / HTTP/1.1\r\nHost: a\x01", "control"),
            (b"GET /\xff HTTP/1.1", "text"),
        ] {
            let err = parse_head(head).unwrap_err();
            assert!(
                err.contains(why),
                "{:?}: {err}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn responses_carry_their_length_and_head_has_no_body() {
        let r = response(200, "text/plain", "ok\n", true, false, &[]);
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(r.contains("Content-Length: 3\r\n"));
        assert!(r.contains("Connection: keep-alive\r\n"));
        assert!(r.ends_with("\r\n\r\nok\n"));
        let r = response(
            405,
            "text/plain",
            "no\n",
            false,
            true,
            &[("Allow", "GET, HEAD")],
        );
        assert!(r.contains("Allow: GET, HEAD\r\n"));
        assert!(r.contains("Content-Length: 3\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
