//! HTTP CONNECT (RFC 9110 9.3.6): a client asks an explicit web proxy for a
//! tunnel to `host:port`; after a 2xx answer, both directions carry the
//! client's TLS.
//!
//! Input: the client's and the server's (proxy's) stream starts. Output:
//! `None` when the client's stream does not begin with `CONNECT `, else a
//! [`Verdict`]. Requests and answers are HTTP/1.0 or 1.1 heads (any header
//! case, folded lines, `\r\n` or bare `\n`), possibly split over segments;
//! informational (1xx) answers are skipped. A refusal (407, 403, 5xx, ...)
//! whose connection stays open may be followed by another CONNECT on the
//! same connection (a 407 answered with credentials): its body
//! (`Content-Length` or chunked) is skipped and the next exchange read. A
//! refusal that closes the connection, or a client that goes on with
//! something other than CONNECT, is [`Verdict::NoTls`].

use super::{Kind, Pair, Verdict, authority, line_end, tls, trim_eol};

const KIND: Kind = Kind::HttpConnect;

pub fn connect((client, server): Pair<'_>) -> Option<Verdict> {
    const METHOD: &[u8] = b"CONNECT ";
    if client.len() < METHOD.len() {
        return (!client.is_empty() && METHOD.starts_with(client)).then_some(need(false));
    }
    if !client.starts_with(METHOD) {
        return None;
    }
    let (mut c, mut s) = (0usize, 0usize);
    let mut refused = false;
    loop {
        let rest = &client[c..];
        if rest.is_empty() {
            return Some(need(refused));
        }
        let connect =
            rest.starts_with(METHOD) || (rest.len() < METHOD.len() && METHOD.starts_with(rest));
        if !connect {
            // After a refusal the client went on with something else.
            return Some(Verdict::NoTls(KIND));
        }
        let Some(req_len) = head_len(rest) else {
            return Some(need(refused));
        };
        let Some(target) = request_target(&rest[..req_len]) else {
            return Some(Verdict::GaveUp(KIND));
        };
        // The proxy's answer (after any 1xx).
        let (status, head) = loop {
            let Some(resp_len) = head_len(&server[s..]) else {
                return Some(need(refused));
            };
            let head = &server[s..s + resp_len];
            let Some(status) = status_code(head) else {
                return Some(Verdict::GaveUp(KIND));
            };
            s += resp_len;
            if status >= 200 {
                break (status, head);
            }
        };
        if (200..300).contains(&status) {
            let mut p = tls(KIND, c + req_len, s);
            p.authority = authority(target);
            return Some(Verdict::Tls(p));
        }
        // Refused: the connection goes on only if the answer's end is known
        // and the proxy keeps it open.
        let headers = Headers::of(head);
        if headers.close {
            return Some(Verdict::NoTls(KIND));
        }
        let body = if headers.chunked {
            match chunked_len(&server[s..]) {
                Chunked::Len(n) => n,
                Chunked::NeedMore => return Some(need(true)),
                Chunked::Bad => return Some(Verdict::GaveUp(KIND)),
            }
        } else {
            match headers.content_length {
                Some(n) => n,
                // No length: the body runs to the end of the connection.
                None => return Some(Verdict::NoTls(KIND)),
            }
        };
        s = s.saturating_add(body);
        if s > server.len() {
            return Some(need(true));
        }
        c += req_len;
        refused = true;
    }
}

fn need(refused: bool) -> Verdict {
    Verdict::NeedMore {
        kind: KIND,
        refused,
    }
}

/// Length of the HTTP head at the start of `b`, through its empty line.
fn head_len(b: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(n) = line_end(&b[at..]) {
        let line = &b[at..at + n];
        at += n;
        if at > n && trim_eol(line).is_empty() {
            return Some(at);
        }
    }
    None
}

/// The request-target of `CONNECT target HTTP/1.x`.
fn request_target(head: &[u8]) -> Option<&[u8]> {
    let line = trim_eol(&head[..line_end(head)?]);
    let rest = line.strip_prefix(b"CONNECT ")?;
    let sp = rest.iter().position(|&b| b == b' ')?;
    let (target, version) = (&rest[..sp], &rest[sp + 1..]);
    http_version(version)?;
    (!target.is_empty()).then_some(target)
}

fn http_version(v: &[u8]) -> Option<u8> {
    match *v {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() => Some(minor),
        _ => None,
    }
}

/// The status code of `HTTP/1.x NNN reason`.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = trim_eol(&head[..line_end(head)?]);
    http_version(line.get(..8)?)?;
    match *line.get(8..)? {
        [b' ', a, b, c, ..] if [a, b, c].iter().all(u8::is_ascii_digit) => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// What an answer's headers say about its body and connection.
#[derive(Debug, Default, PartialEq, Eq)]
struct Headers {
    content_length: Option<usize>,
    chunked: bool,
    /// The proxy closes the connection after this answer (`Connection:
    /// close`, or HTTP/1.0 without keep-alive).
    close: bool,
}

impl Headers {
    fn of(head: &[u8]) -> Headers {
        let mut h = Headers::default();
        let mut lines = head.split(|&b| b == b'\n');
        let status = lines.next().map(trim_eol).unwrap_or(&[]);
        let http10 = status.starts_with(b"HTTP/1.0");
        let mut keep_alive = false;
        for line in lines {
            let line = trim_eol(line);
            // Folded continuation lines (obs-fold) carry no header name.
            if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                continue;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                h.content_length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                h.chunked = contains_token(value, b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection")
                || name.eq_ignore_ascii_case(b"proxy-connection")
            {
                h.close |= contains_token(value, b"close");
                keep_alive |= contains_token(value, b"keep-alive");
            }
        }
        h.close |= http10 && !keep_alive;
        h
    }
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

enum Chunked {
    Len(usize),
    NeedMore,
    Bad,
}

/// Length of a chunked body at the start of `b` (chunks, the last chunk,
/// trailers and the empty line).
fn chunked_len(b: &[u8]) -> Chunked {
    let mut at = 0usize;
    loop {
        let Some(n) = line_end(&b[at..]) else {
            return Chunked::NeedMore;
        };
        let line = trim_eol(&b[at..at + n]);
        let hex = line
            .split(|&c| c == b';')
            .next()
            .unwrap_or(&[])
            .trim_ascii();
        let Some(size) = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
        else {
            return Chunked::Bad;
        };
        at += n;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let Some(n) = line_end(&b[at..]) else {
                    return Chunked::NeedMore;
                };
                let empty = trim_eol(&b[at..at + n]).is_empty();
                at += n;
                if empty {
                    return Chunked::Len(at);
                }
            }
        }
        // The chunk's data and its CRLF.
        at = at.saturating_add(size);
        match b.get(at..) {
            None | Some([]) | Some([b'\r']) => return Chunked::NeedMore,
            Some([b'\r', b'\n', ..]) => at += 2,
            Some([b'\n', ..]) => at += 1,
            Some(_) => return Chunked::Bad,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preamble::{Preamble, parse};

    const HELLO: &[u8] = &[22, 3, 1, 0, 4, 1, 0, 0, 0];
    const REQ: &[u8] =
        b"CONNECT acct.blob.core.windows.net:443 HTTP/1.1\r\nHost: acct.blob.core.windows.net:443\r\nUser-Agent: curl/7.88.1\r\n\r\n";
    const OK: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

    fn tunnel(client_at: usize, server_at: usize, authority: &str) -> Verdict {
        Verdict::Tls(Preamble {
            authority: Some(authority.into()),
            ..tls(KIND, client_at, server_at)
        })
    }

    #[test]
    fn connect_tunnel_in_any_split() {
        let client = [REQ, HELLO].concat();
        let server = [OK, &[22, 3, 3][..]].concat();
        let want = tunnel(REQ.len(), OK.len(), "acct.blob.core.windows.net:443");
        assert_eq!(connect((&client, &server)), Some(want.clone()));
        for cut in 0..REQ.len() {
            let v = connect((&client[..cut], &server));
            assert!(
                matches!(v, Some(Verdict::NeedMore { .. })) || (cut == 0 && v.is_none()),
                "{cut}: {v:?}"
            );
        }
        for cut in 0..OK.len() {
            assert!(matches!(
                connect((&client, &server[..cut])),
                Some(Verdict::NeedMore { .. })
            ));
        }
        // The hello before the answer (a client that does not wait).
        assert_eq!(connect((&client, OK)), Some(want.clone()));
        // Through parse(): the client may be either direction.
        let Verdict::Tls(p) = parse([&server, &client]) else {
            panic!()
        };
        assert_eq!((p.client, p.tls_at), (1, [OK.len(), REQ.len()]));
    }

    #[test]
    fn connect_http10_bare_newlines_header_case_ipv6() {
        let req = b"CONNECT [2001:db8::1]:8443 HTTP/1.0\nhOST: x\n\n";
        let ok = b"HTTP/1.0 200 OK\nProxy-agent: x\n\n";
        assert_eq!(
            connect((req, ok)),
            Some(tunnel(req.len(), ok.len(), "[2001:db8::1]:8443"))
        );
    }

    #[test]
    fn connect_refused_then_authenticated() {
        let r407 = b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 5\r\n\r\nnope!";
        let req2 = b"CONNECT a.example:443 HTTP/1.1\r\nProxy-Authorization: Basic dTpw\r\n\r\n";
        let client = [REQ, &req2[..]].concat();
        let server = [&r407[..], OK].concat();
        assert_eq!(
            connect((&client, &server)),
            Some(tunnel(client.len(), server.len(), "a.example:443"))
        );
        // After the 407, before the second CONNECT: refused so far.
        assert_eq!(
            connect((REQ, r407)),
            Some(Verdict::NeedMore {
                kind: KIND,
                refused: true
            })
        );
        // A chunked refusal body is skipped the same way.
        let chunked =
            b"HTTP/1.1 407 No\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
        let server = [&chunked[..], OK].concat();
        assert_eq!(
            connect((&client, &server)),
            Some(tunnel(client.len(), server.len(), "a.example:443"))
        );
    }

    #[test]
    fn connect_refusals_without_a_tunnel() {
        let forbidden = b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(connect((REQ, forbidden)), Some(Verdict::NoTls(KIND)));
        let http10 = b"HTTP/1.0 503 Service Unavailable\r\n\r\n";
        assert_eq!(connect((REQ, http10)), Some(Verdict::NoTls(KIND)));
        let no_length = b"HTTP/1.1 502 Bad Gateway\r\n\r\n<html>";
        assert_eq!(connect((REQ, no_length)), Some(Verdict::NoTls(KIND)));
        // After a refusal the client sends something else.
        let r407 = b"HTTP/1.1 407 x\r\nContent-Length: 0\r\n\r\n";
        let client = [REQ, b"GET / HTTP/1.1\r\n\r\n"].concat();
        assert_eq!(connect((&client, r407)), Some(Verdict::NoTls(KIND)));
    }

    #[test]
    fn connect_informational_answers_and_garbage() {
        let server = [&b"HTTP/1.1 100 Continue\r\n\r\n"[..], OK].concat();
        assert_eq!(
            connect((REQ, &server)),
            Some(tunnel(
                REQ.len(),
                server.len(),
                "acct.blob.core.windows.net:443"
            ))
        );
        assert_eq!(
            connect((b"CONNECT x HTTP/2\r\n\r\n", OK)),
            Some(Verdict::GaveUp(KIND))
        );
        assert_eq!(
            connect((REQ, b"SSH-2.0-x\r\n\r\n")),
            Some(Verdict::GaveUp(KIND))
        );
        assert_eq!(connect((b"CONNEXION", b"")), None);
        assert_eq!(connect((b"GET / HTTP/1.1\r\n", b"")), None);
    }
}
