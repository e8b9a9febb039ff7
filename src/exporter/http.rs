//! The exporter's HTTP/1.x request head parser and response writer.
//!
//! Input: the bytes a client sent up to the end of its request head (at most
//! [`MAX_REQUEST`]). Output: a borrowed [`Request`] (method, path, query, the
//! Authorization header's value) or an [`HttpError`]. Invariants:
//! every byte is hostile; nothing here allocates per header or panics; header
//! names are matched without regard to case; a request line or header with a
//! control character, a missing version, or a repeated Authorization header is
//! refused.

use std::io::Write;

/// Largest request head accepted.
pub const MAX_REQUEST: usize = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The target's path, query removed.
    pub path: &'a str,
    /// The target's query (after `?`), empty when none.
    pub query: &'a str,
    /// The value of the Authorization header, trimmed.
    pub authorization: Option<&'a str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// Not a request line of `METHOD TARGET HTTP/1.x`.
    RequestLine,
    /// A header line without a colon, or with bytes no header may hold.
    Header,
    /// Authorization sent twice.
    DuplicateAuthorization,
    /// Not UTF-8.
    Encoding,
}

/// The end of the request head (after its blank line) in `buf`, if there.
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses a request head (request line and headers).
pub fn parse_request(head: &[u8]) -> Result<Request<'_>, HttpError> {
    let head = std::str::from_utf8(head).map_err(|_| HttpError::Encoding)?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().ok_or(HttpError::RequestLine)?;
    if line.bytes().any(|b| b.is_ascii_control()) {
        return Err(HttpError::RequestLine);
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::RequestLine);
    };
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
        || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
    {
        return Err(HttpError::RequestLine);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut authorization = None;
    for h in lines {
        if h.is_empty() {
            break;
        }
        if h.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(HttpError::Header);
        }
        let (name, value) = h.split_once(':').ok_or(HttpError::Header)?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(HttpError::Header);
        }
        if name.eq_ignore_ascii_case("authorization") {
            if authorization.is_some() {
                return Err(HttpError::DuplicateAuthorization);
            }
            authorization = Some(value.trim());
        }
    }
    Ok(Request {
        method,
        path,
        query,
        authorization,
    })
}

/// The reason phrase of the statuses the exporter sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    }
}

/// A response head; `extra` are whole header lines (validated when configured).
pub fn response_head(status: u16, ctype: &str, len: usize, extra: &[String]) -> Vec<u8> {
    let mut h = Vec::with_capacity(256);
    let _ = write!(
        h,
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nConnection: close\r\n",
        reason(status)
    );
    for line in extra {
        h.extend_from_slice(line.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"\r\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_parse_plain_get() {
        let r = parse_request(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(
            (r.method, r.path, r.authorization),
            ("GET", "/metrics", None)
        );
        let r = parse_request(b"HEAD / HTTP/1.0\n\n").unwrap();
        assert_eq!(r.method, "HEAD");
    }

    #[test]
    fn http_parse_authorization_any_case() {
        let r =
            parse_request(b"GET /metrics HTTP/1.1\r\nauthorization:  Basic YTpi \r\n\r\n").unwrap();
        assert_eq!(r.authorization, Some("Basic YTpi"));
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nAuthorization: a\r\nAUTHORIZATION: b\r\n\r\n"),
            Err(HttpError::DuplicateAuthorization)
        );
    }

    #[test]
    fn http_parse_refuses_garbage() {
        for bad in [
            &b""[..],
            b"GET /metrics\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET /\x00 HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_request(bad), Err(HttpError::RequestLine), "{bad:?}");
        }
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"),
            Err(HttpError::Header)
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n"),
            Err(HttpError::Header)
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\n\xff\r\n\r\n"),
            Err(HttpError::Encoding)
        );
    }

    #[test]
    fn http_head_end() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
