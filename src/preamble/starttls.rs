//! STARTTLS in text protocols: SMTP (`STARTTLS`, RFC 3207), IMAP
//! (`STARTTLS`, RFC 9051), POP3 (`STLS`, RFC 2595) and FTP (`AUTH TLS`,
//! RFC 4217). The server greets, the client sends commands, and once the
//! server accepts the upgrade both directions carry TLS.
//!
//! Input: the client's and the server's stream starts. Output: `None`
//! unless the server's stream begins with a greeting of one of these
//! protocols (`220 `/`220-`, `* OK`, `+OK`), else a [`Verdict`]. Commands
//! and replies are paired in order (multi-line SMTP/FTP replies, IMAP
//! untagged lines and tags, POP3 multi-line `CAPA`); the client's TLS starts
//! after its upgrade command, the server's after its positive answer to it.
//! A refused upgrade, or a session that goes on in clear text (any command
//! other than the few a client sends before upgrading), is
//! [`Verdict::NoTls`]. SMTP and FTP share the 220 greeting: the client's
//! first command tells them apart.

use super::{Kind, Pair, Verdict, line_end, tls, tls_follows, trim_eol};

/// Commands read before the upgrade; more is a session in clear text.
const MAX_COMMANDS: usize = 8;

/// The greetings that open these protocols.
const GREETINGS: [&[u8]; 5] = [b"220 ", b"220-", b"* OK", b"* PREAUTH", b"+OK"];

pub fn parse((client, server): Pair<'_>) -> Option<Verdict> {
    let Some(end) = line_end(server) else {
        // A greeting not whole yet: wait for it.
        let may = !server.is_empty()
            && server.len() < 512
            && GREETINGS
                .iter()
                .any(|g| g.starts_with(server) || server.starts_with(g));
        return may.then(|| need(Kind::Smtp));
    };
    let greeting = &server[..end];
    let family = if is_reply(greeting, b"220") {
        Family::SmtpOrFtp
    } else if greeting.starts_with(b"* OK") || greeting.starts_with(b"* PREAUTH") {
        Family::Imap
    } else if greeting.starts_with(b"+OK") {
        Family::Pop3
    } else {
        return None;
    };
    Some(session(family, client, server))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    SmtpOrFtp,
    Imap,
    Pop3,
}

/// A numeric reply line `CODE ` or `CODE-` (or exactly the code).
fn is_reply(line: &[u8], code: &[u8]) -> bool {
    let line = trim_eol(line);
    line.starts_with(code) && matches!(line.get(3), None | Some(b' ' | b'-'))
}

fn need(kind: Kind) -> Verdict {
    Verdict::NeedMore {
        kind,
        refused: false,
    }
}

fn session(family: Family, client: &[u8], server: &[u8]) -> Verdict {
    let mut kind = match family {
        Family::SmtpOrFtp => Kind::Smtp,
        Family::Imap => Kind::Imap,
        Family::Pop3 => Kind::Pop3,
    };
    // The greeting is the server's first reply.
    // A client that answers the greeting with TLS itself: a banner before
    // implicit TLS, read as if there were no preamble (the server's bytes
    // are not TLS, the client's hello is).
    if tls_follows(client) == Some(true) {
        return Verdict::Absent;
    }
    let Some(mut s) = reply_end(family, server, 0, None, false) else {
        return need(kind);
    };
    let mut c = 0;
    for _ in 0..MAX_COMMANDS {
        let Some(n) = line_end(&client[c..]) else {
            return need(kind);
        };
        let line = trim_eol(&client[c..c + n]);
        let (tag, verb, arg) = split_command(family, line);
        let verb = verb.to_ascii_uppercase();
        let upgrade = match (family, verb.as_slice()) {
            (Family::SmtpOrFtp, b"STARTTLS") => {
                kind = Kind::Smtp;
                true
            }
            (Family::SmtpOrFtp, b"AUTH")
                if [&b"TLS"[..], b"SSL", b"TLS-C", b"TLS-P"]
                    .iter()
                    .any(|a| arg.eq_ignore_ascii_case(a)) =>
            {
                kind = Kind::Ftp;
                true
            }
            (Family::Imap, b"STARTTLS") | (Family::Pop3, b"STLS") => true,
            (Family::SmtpOrFtp, b"EHLO" | b"HELO" | b"LHLO") => {
                kind = Kind::Smtp;
                false
            }
            (Family::SmtpOrFtp, b"FEAT" | b"SYST") => {
                kind = Kind::Ftp;
                false
            }
            (Family::SmtpOrFtp, b"NOOP" | b"RSET")
            | (Family::Imap, b"CAPABILITY" | b"NOOP" | b"ID")
            | (Family::Pop3, b"CAPA" | b"NOOP") => false,
            // Anything else goes on in clear text.
            _ => return Verdict::NoTls(kind),
        };
        c += n;
        let multiline = family == Family::Pop3 && verb == b"CAPA";
        let start = s;
        let Some(end) = reply_end(family, server, s, tag, multiline) else {
            return need(kind);
        };
        s = end;
        if upgrade {
            let answer = trim_eol(&server[start..end]);
            let last = answer
                .rsplit(|&b| b == b'\n')
                .next()
                .map(trim_eol)
                .unwrap_or(&[]);
            let accepted = match family {
                Family::SmtpOrFtp if kind == Kind::Ftp => last.starts_with(b"234"),
                Family::SmtpOrFtp => last.starts_with(b"220"),
                Family::Pop3 => last.starts_with(b"+OK"),
                Family::Imap => tag.is_some_and(|t| {
                    last.get(t.len() + 1..)
                        .is_some_and(|r| r.len() >= 2 && r[..2].eq_ignore_ascii_case(b"OK"))
                }),
            };
            if !accepted {
                return Verdict::NoTls(kind);
            }
            // The client speaks first after the upgrade: its next bytes
            // must open TLS (the server's are the TLS reader's business, so
            // an unanswered hello is still reported).
            return match tls_follows(&client[c..]) {
                None => need(kind),
                Some(true) => Verdict::Tls(tls(kind, c, s)),
                Some(false) => Verdict::GaveUp(kind),
            };
        }
    }
    Verdict::NoTls(kind)
}

/// A command line as (IMAP tag, verb, argument).
fn split_command(family: Family, line: &[u8]) -> (Option<&[u8]>, &[u8], &[u8]) {
    let mut words = line.splitn(3, |&b| b == b' ');
    let first = words.next().unwrap_or(&[]);
    if family == Family::Imap {
        let verb = words.next().unwrap_or(&[]);
        return (Some(first), verb, words.next().unwrap_or(&[]));
    }
    let rest = &line[first.len().min(line.len())..];
    (None, first, rest.trim_ascii())
}

/// The end of the server's reply that starts at `at`: SMTP/FTP lines until
/// one whose code is followed by a space; IMAP lines until the one tagged
/// `tag` (untagged `*` lines before it; the greeting is one line); POP3 one
/// line, or lines up to `.` for a multi-line answer.
fn reply_end(
    family: Family,
    server: &[u8],
    mut at: usize,
    tag: Option<&[u8]>,
    multiline: bool,
) -> Option<usize> {
    loop {
        let n = line_end(server.get(at..)?)?;
        let line = trim_eol(&server[at..at + n]);
        at += n;
        let done = match family {
            Family::SmtpOrFtp => {
                line.len() < 4 || line[3] != b'-' || !line[..3].iter().all(u8::is_ascii_digit)
            }
            Family::Imap => match tag {
                Some(t) => line.starts_with(t) && line.get(t.len()) == Some(&b' '),
                None => true,
            },
            Family::Pop3 if multiline && line.starts_with(b"+OK") => {
                // Lines up to a lone ".".
                loop {
                    let n = line_end(server.get(at..)?)?;
                    let l = trim_eol(&server[at..at + n]);
                    at += n;
                    if l == b"." {
                        break;
                    }
                }
                true
            }
            Family::Pop3 => true,
        };
        if done {
            return Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] = &[22, 3, 1, 0, 4, 1, 0, 0, 0];

    fn at(v: Option<Verdict>) -> (Kind, [usize; 2]) {
        match v {
            Some(Verdict::Tls(p)) => (p.kind, p.tls_at),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn smtp_starttls() {
        let client = b"EHLO client.example\r\nSTARTTLS\r\n";
        let server = b"220 mx.example ESMTP Postfix\r\n250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n220 2.0.0 Ready to start TLS\r\n";
        let c = [&client[..], HELLO].concat();
        assert_eq!(
            at(parse((&c, server))),
            (Kind::Smtp, [client.len(), server.len()])
        );
        for cut in 0..client.len() {
            assert!(matches!(
                parse((&client[..cut], server)),
                Some(Verdict::NeedMore { .. })
            ));
        }
        for cut in 30..server.len() {
            assert!(matches!(
                parse((client, &server[..cut])),
                Some(Verdict::NeedMore { .. })
            ));
        }
        let refused = b"220 mx ESMTP\r\n250 mx\r\n454 4.7.0 TLS not available\r\n";
        assert_eq!(parse((client, refused)), Some(Verdict::NoTls(Kind::Smtp)));
        let clear = b"EHLO c\r\nMAIL FROM:<a@b>\r\n";
        assert_eq!(
            parse((clear, b"220 mx\r\n250 mx\r\n")),
            Some(Verdict::NoTls(Kind::Smtp))
        );
    }

    #[test]
    fn ftp_auth_tls() {
        let client = b"AUTH TLS\r\n";
        let server = b"220 (vsFTPd 3.0.3)\r\n234 Proceed with negotiation.\r\n";
        let c = [&client[..], HELLO].concat();
        assert_eq!(
            at(parse((&c, server))),
            (Kind::Ftp, [client.len(), server.len()])
        );
        assert!(matches!(
            parse((client, server)),
            Some(Verdict::NeedMore { .. })
        ));
        let not_tls = [&client[..], b"USER x\r\n"].concat();
        assert_eq!(parse((&not_tls, server)), Some(Verdict::GaveUp(Kind::Ftp)));
        let no = b"220 ftp\r\n530 Please login with USER and PASS.\r\n";
        assert_eq!(parse((client, no)), Some(Verdict::NoTls(Kind::Ftp)));
    }

    #[test]
    fn imap_and_pop3() {
        let client = b"a001 CAPABILITY\r\na002 STARTTLS\r\n";
        let server = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\na001 OK Pre-login capabilities listed.\r\na002 OK Begin TLS negotiation now.\r\n";
        let c = [&client[..], HELLO].concat();
        assert_eq!(
            at(parse((&c, server))),
            (Kind::Imap, [client.len(), server.len()])
        );
        let refused = b"* OK ready\r\na001 OK done\r\na002 BAD no\r\n";
        assert_eq!(parse((client, refused)), Some(Verdict::NoTls(Kind::Imap)));
        let client = b"CAPA\r\nSTLS\r\n";
        let server =
            b"+OK Dovecot ready.\r\n+OK\r\nCAPA\r\nSTLS\r\n.\r\n+OK Begin TLS negotiation now.\r\n";
        let c = [&client[..], HELLO].concat();
        assert_eq!(
            at(parse((&c, server))),
            (Kind::Pop3, [client.len(), server.len()])
        );
        assert_eq!(
            parse((b"USER x\r\n", b"+OK ready\r\n")),
            Some(Verdict::NoTls(Kind::Pop3))
        );
    }

    /// regression_12 (server banner before the hello): TLS right after the
    /// greeting is no STARTTLS.
    #[test]
    fn banner_then_tls_is_no_preamble() {
        assert_eq!(parse((HELLO, b"220 welcome\r\n")), Some(Verdict::Absent));
        assert!(matches!(
            parse((&HELLO[..1], b"220 welcome\r\n")),
            Some(Verdict::NeedMore { .. })
        ));
    }

    #[test]
    fn not_a_greeting() {
        assert_eq!(parse((b"", b"HTTP/1.1 200 OK\r\n")), None);
        assert_eq!(parse((b"", b"2200 x\r\n")), None);
        assert!(matches!(
            parse((b"", b"220 partial")),
            Some(Verdict::NeedMore { .. })
        ));
    }
}
