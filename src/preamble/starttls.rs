//! STARTTLS in line protocols: SMTP, submission and LMTP (`STARTTLS`,
//! RFC 3207), IMAP (`STARTTLS`, RFC 9051), POP3 (`STLS`, RFC 2595), FTP
//! (`AUTH TLS`/`AUTH SSL`, RFC 4217), NNTP (`STARTTLS`, RFC 4642) and
//! ManageSieve (`STARTTLS`, RFC 5804). The server greets, the client sends
//! commands, and once the server accepts the upgrade both directions carry
//! TLS.
//!
//! Input: the client's and the server's stream starts. Output: `None`
//! unless the server's stream begins with a greeting of one of these
//! protocols (`220 `/`220-`, `* OK`, `* PREAUTH`, `+OK`, `200 `/`201 `, a
//! quoted ManageSieve capability), else a [`Verdict`].
//!
//! The conversation is followed as real clients and servers speak it: any
//! number of commands before the upgrade, each paired in order with its
//! reply (pipelined commands included), replies of many lines (SMTP and FTP
//! `ddd-` up to the line with the same code and a space, FTP's free
//! continuation lines, IMAP untagged lines and literals up to the tagged
//! one, POP3 and NNTP lists up to a lone `.`, ManageSieve lines up to
//! `OK`/`NO`/`BYE`), lines split at any byte (a line counts once whole).
//! The client's TLS starts after its upgrade command, the server's after its
//! positive answer. A refused upgrade is not the end: clients try again
//! (curl sends `AUTH SSL`, then `AUTH TLS`), so the flow waits, marked
//! refused; a command that carries the session on in clear text (a login, a
//! mail transaction, a mailbox or a transfer) is [`Verdict::NoTls`]. SMTP
//! and FTP share the 220 greeting: the client's commands tell them apart.

use super::{Kind, Pair, Verdict, line_end, tls, tls_follows, trim_eol};

/// A partial first line longer than this is no greeting.
const MAX_GREETING: usize = 512;

pub fn parse((client, server): Pair<'_>) -> Option<Verdict> {
    let Some(end) = line_end(server) else {
        // A greeting not whole yet: wait for it.
        let may = !server.is_empty() && server.len() < MAX_GREETING && may_greet(server);
        return may.then(|| need(Kind::Smtp, false));
    };
    let family = Family::of_greeting(trim_eol(&server[..end]))?;
    Some(session(family, client, server))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    /// The 220 greeting: SMTP (and LMTP, submission) or FTP.
    Mail220,
    Imap,
    Pop3,
    Nntp,
    Sieve,
}

const GREETINGS: [&[u8]; 7] = [
    b"220 ",
    b"220-",
    b"* OK",
    b"* PREAUTH",
    b"+OK",
    b"200 ",
    b"201 ",
];

/// `start` (no line end yet) may grow into a greeting.
fn may_greet(start: &[u8]) -> bool {
    GREETINGS
        .iter()
        .any(|g| g.starts_with(start) || start.starts_with(g))
        || sieve_capability(start, true)
}

impl Family {
    fn of_greeting(line: &[u8]) -> Option<Family> {
        if code_line(line) == Some((220, b' ')) || code_line(line) == Some((220, b'-')) {
            Some(Family::Mail220)
        } else if line.starts_with(b"* OK") || line.starts_with(b"* PREAUTH") {
            Some(Family::Imap)
        } else if line.starts_with(b"+OK") {
            Some(Family::Pop3)
        } else if matches!(code_line(line), Some((200 | 201, b' '))) {
            Some(Family::Nntp)
        } else if sieve_capability(line, false) {
            Some(Family::Sieve)
        } else {
            None
        }
    }

    fn kind(self) -> Kind {
        match self {
            Family::Mail220 => Kind::Smtp,
            Family::Imap => Kind::Imap,
            Family::Pop3 => Kind::Pop3,
            Family::Nntp => Kind::Nntp,
            Family::Sieve => Kind::Managesieve,
        }
    }
}

/// A ManageSieve capability line: `"NAME"` or `"NAME" "value"`, the name in
/// capitals, digits and dashes (`partial`: a line not whole yet that may
/// become one).
fn sieve_capability(line: &[u8], partial: bool) -> bool {
    let Some(rest) = line.strip_prefix(b"\"") else {
        return false;
    };
    let name_len = rest
        .iter()
        .position(|&b| !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-'))
        .unwrap_or(rest.len());
    let after = &rest[name_len..];
    if partial && after.is_empty() {
        return true;
    }
    name_len > 0
        && after.first() == Some(&b'"')
        && (after.len() == 1 || after[1] == b' ' || (partial && after.len() < 2))
}

/// A reply line that starts with a three-digit code: the code and the byte
/// after it (a space for a line without text).
fn code_line(line: &[u8]) -> Option<(u16, u8)> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None => Some((code, b' ')),
        Some(&c @ (b' ' | b'-')) => Some((code, c)),
        Some(_) => None,
    }
}

fn need(kind: Kind, refused: bool) -> Verdict {
    Verdict::NeedMore { kind, refused }
}

/// What a client's command does to the conversation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// Asks for TLS.
    Upgrade,
    /// Carries the session on in clear text: a login, a transaction.
    Session,
    /// Anything else (capabilities, greetings, identification, probes).
    Probe,
}

/// How a reply to a command is framed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    /// One line, or SMTP/FTP `ddd-` lines up to `ddd `.
    Plain,
    /// A positive reply is followed by lines up to a lone `.` (POP3 CAPA,
    /// NNTP CAPABILITIES).
    DotList,
}

/// The commands each family knows before an upgrade: what each does, the
/// kind it shows (SMTP or FTP on a 220 greeting) and its reply's shape.
/// Commands not listed are probes (plain replies); the first row a verb
/// matches wins.
type Row = (Family, &'static [&'static [u8]], Role, Option<Kind>, Shape);

const COMMANDS: &[Row] = {
    use Family::*;
    use Role::*;
    use Shape::*;
    const SMTP: Option<Kind> = Some(Kind::Smtp);
    const FTP: Option<Kind> = Some(Kind::Ftp);
    &[
        (Mail220, &[b"STARTTLS"], Upgrade, SMTP, Plain),
        (
            Mail220,
            &[b"EHLO", b"HELO", b"LHLO", b"XCLIENT", b"XFORWARD"],
            Probe,
            SMTP,
            Plain,
        ),
        (
            Mail220,
            &[
                b"MAIL", b"RCPT", b"DATA", b"BDAT", b"VRFY", b"EXPN", b"ETRN",
            ],
            Session,
            SMTP,
            Plain,
        ),
        (
            Mail220,
            &[
                b"FEAT", b"SYST", b"OPTS", b"CLNT", b"HOST", b"LANG", b"PBSZ", b"PROT", b"SITE",
            ],
            Probe,
            FTP,
            Plain,
        ),
        (
            Mail220,
            &[
                b"USER", b"PASS", b"ACCT", b"PASV", b"EPSV", b"PORT", b"EPRT", b"LIST", b"NLST",
                b"RETR", b"STOR", b"CWD", b"PWD", b"TYPE", b"MLSD", b"SIZE",
            ],
            Session,
            FTP,
            Plain,
        ),
        // SMTP AUTH with a mechanism, FTP AUTH other than TLS (AUTH TLS is
        // an upgrade: see `classify`).
        (Mail220, &[b"AUTH", b"QUIT"], Session, None, Plain),
        (Imap, &[b"STARTTLS"], Upgrade, None, Plain),
        (
            Imap,
            &[
                b"LOGIN",
                b"AUTHENTICATE",
                b"SELECT",
                b"EXAMINE",
                b"LIST",
                b"LSUB",
                b"STATUS",
                b"APPEND",
                b"LOGOUT",
            ],
            Session,
            None,
            Plain,
        ),
        (Pop3, &[b"STLS"], Upgrade, None, Plain),
        (Pop3, &[b"CAPA"], Probe, None, DotList),
        (
            Pop3,
            &[
                b"USER", b"PASS", b"APOP", b"AUTH", b"STAT", b"LIST", b"RETR", b"TOP", b"UIDL",
                b"DELE", b"QUIT",
            ],
            Session,
            None,
            Plain,
        ),
        (Nntp, &[b"STARTTLS"], Upgrade, None, Plain),
        (Nntp, &[b"CAPABILITIES", b"HELP"], Probe, None, DotList),
        (
            Nntp,
            &[
                b"AUTHINFO",
                b"GROUP",
                b"LISTGROUP",
                b"ARTICLE",
                b"HEAD",
                b"BODY",
                b"STAT",
                b"LIST",
                b"NEWGROUPS",
                b"NEWNEWS",
                b"POST",
                b"IHAVE",
                b"OVER",
                b"XOVER",
                b"QUIT",
            ],
            Session,
            None,
            Plain,
        ),
        (Sieve, &[b"STARTTLS"], Upgrade, None, Plain),
        (
            Sieve,
            &[
                b"AUTHENTICATE",
                b"LOGOUT",
                b"LISTSCRIPTS",
                b"GETSCRIPT",
                b"PUTSCRIPT",
                b"SETACTIVE",
                b"DELETESCRIPT",
                b"RENAMESCRIPT",
                b"CHECKSCRIPT",
                b"HAVESPACE",
            ],
            Session,
            None,
            Plain,
        ),
    ]
};

/// A command: its role, the kind it shows and the shape of its reply
/// ([`COMMANDS`]; FTP's `AUTH TLS` and POP3's bare `AUTH`, which lists the
/// SASL mechanisms, are told by their argument).
fn classify(family: Family, verb: &[u8], arg: &[u8]) -> (Role, Option<Kind>, Shape) {
    let is = |w: &[u8]| verb.eq_ignore_ascii_case(w);
    match family {
        Family::Mail220 if is(b"AUTH") && is_ftp_tls(arg) => {
            return (Role::Upgrade, Some(Kind::Ftp), Shape::Plain);
        }
        Family::Pop3 if is(b"AUTH") && arg.is_empty() => {
            return (Role::Probe, None, Shape::DotList);
        }
        _ => {}
    }
    COMMANDS
        .iter()
        .find(|(f, verbs, ..)| *f == family && verbs.iter().any(|w| is(w)))
        .map_or(
            (Role::Probe, None, Shape::Plain),
            |&(_, _, role, kind, shape)| (role, kind, shape),
        )
}

fn is_ftp_tls(arg: &[u8]) -> bool {
    [&b"TLS"[..], b"SSL", b"TLS-C", b"TLS-P"]
        .iter()
        .any(|a| arg.eq_ignore_ascii_case(a))
}

fn session(family: Family, client: &[u8], server: &[u8]) -> Verdict {
    let mut kind = family.kind();
    // A client that answers the greeting with TLS itself: a banner before
    // implicit TLS, read as if there were no preamble (the server's bytes
    // are not TLS, the client's hello is).
    if tls_follows(client) == Some(true) {
        return Verdict::Absent;
    }
    // The greeting is the server's first reply.
    let greeting = match reply(family, server, 0, None, Shape::Plain) {
        Reply::Whole { end, positive } => {
            if !positive {
                return Verdict::NoTls(kind);
            }
            end
        }
        Reply::Partial => return need(kind, false),
        Reply::Broken => return Verdict::GaveUp(kind),
    };
    let mut s = greeting;
    let mut c = 0;
    let mut refused = false;
    loop {
        let Some(n) = line_end(&client[c..]) else {
            return need(kind, refused);
        };
        let line = trim_eol(&client[c..c + n]);
        let (tag, verb, arg) = split_command(family, line);
        // Commands of these protocols are words. A first line that is not
        // one is another protocol whose server happened to answer `+OK` or
        // `220` (a Redis reply, a banner); a later one, a session in clear.
        if verb.is_empty() || !verb.iter().all(u8::is_ascii_alphabetic) {
            return if c == 0 {
                Verdict::Absent
            } else {
                Verdict::NoTls(kind)
            };
        }
        let (role, shows, shape) = classify(family, verb, arg);
        if let Some(k) = shows {
            kind = k;
        }
        if role == Role::Session {
            return Verdict::NoTls(kind);
        }
        c += n;
        let start = s;
        let (end, positive) = match reply(family, server, s, tag, shape) {
            Reply::Whole { end, positive } => (end, positive),
            Reply::Partial => return need(kind, refused),
            Reply::Broken => return Verdict::GaveUp(kind),
        };
        s = end;
        if role != Role::Upgrade {
            continue;
        }
        if !upgrade_accepted(family, kind, &server[start..end], positive) {
            refused = true;
            continue;
        }
        // The client speaks first after the upgrade: its next bytes must
        // open TLS (the server's are the TLS reader's business, so an
        // unanswered hello is still reported).
        return match tls_follows(&client[c..]) {
            None => need(kind, false),
            Some(true) => Verdict::Tls(tls(kind, c, s)),
            Some(false) => Verdict::GaveUp(kind),
        };
    }
}

/// Whether the reply `answer` (whole) accepts the upgrade.
fn upgrade_accepted(family: Family, kind: Kind, answer: &[u8], positive: bool) -> bool {
    if !positive {
        return false;
    }
    let last = trim_eol(answer)
        .rsplit(|&b| b == b'\n')
        .next()
        .map(trim_eol)
        .unwrap_or(&[]);
    let code = code_line(last).map(|(c, _)| c);
    match family {
        Family::Mail220 if kind == Kind::Ftp => code == Some(234),
        Family::Mail220 => code == Some(220),
        Family::Nntp => code == Some(382),
        Family::Imap | Family::Pop3 | Family::Sieve => true,
    }
}

/// A command line as (IMAP tag, verb, argument).
fn split_command(family: Family, line: &[u8]) -> (Option<&[u8]>, &[u8], &[u8]) {
    let mut words = line.splitn(3, |&b| b == b' ');
    let first = words.next().unwrap_or(&[]);
    if family == Family::Imap {
        let verb = words.next().unwrap_or(&[]);
        return (Some(first), verb, words.next().unwrap_or(&[]).trim_ascii());
    }
    let rest = &line[first.len().min(line.len())..];
    (None, first, rest.trim_ascii())
}

/// A server reply read from some offset.
enum Reply {
    /// Ends at `end`; `positive`: it says yes (2xx/3xx, `OK`, `+OK`).
    Whole { end: usize, positive: bool },
    /// Not whole yet.
    Partial,
    /// Not a reply of this protocol.
    Broken,
}

/// The server's reply that starts at `at`.
fn reply(family: Family, server: &[u8], at: usize, tag: Option<&[u8]>, shape: Shape) -> Reply {
    let line_at = |at: usize| -> Option<(&[u8], usize)> {
        let n = line_end(server.get(at..)?)?;
        Some((trim_eol(&server[at..at + n]), at + n))
    };
    let Some((first, mut next)) = line_at(at) else {
        return Reply::Partial;
    };
    let positive = match family {
        Family::Mail220 | Family::Nntp => {
            let Some((code, sep)) = code_line(first) else {
                return Reply::Broken;
            };
            if sep == b'-' {
                if family == Family::Nntp {
                    return Reply::Broken;
                }
                // Lines up to one with the same code and a space (FTP's
                // continuation lines may hold anything).
                loop {
                    let Some((l, n)) = line_at(next) else {
                        return Reply::Partial;
                    };
                    next = n;
                    if code_line(l) == Some((code, b' ')) {
                        break;
                    }
                }
            }
            (100..400).contains(&code)
        }
        Family::Pop3 => {
            if first.starts_with(b"+OK") {
                true
            } else if first.starts_with(b"-ERR") {
                false
            } else {
                return Reply::Broken;
            }
        }
        Family::Imap => {
            // Untagged (`*`) and continuation (`+`) lines up to the tagged
            // one; the greeting is one untagged line.
            let mut line = first;
            loop {
                // The tag and status are on the response's first line.
                let Some((_, end)) = after_literals(line, next, &line_at) else {
                    return Reply::Partial;
                };
                next = end;
                let tagged = line;
                let Some(t) = tag else {
                    break imap_status(first.get(2..).unwrap_or(&[]));
                };
                if let Some(rest) = tagged.strip_prefix(t).and_then(|r| r.strip_prefix(b" ")) {
                    break imap_status(rest);
                }
                if !(tagged.starts_with(b"* ") || tagged.starts_with(b"+")) {
                    return Reply::Broken;
                }
                let Some((l, n)) = line_at(next) else {
                    return Reply::Partial;
                };
                line = l;
                next = n;
            }
        }
        Family::Sieve => {
            let mut line = first;
            loop {
                let Some((last, end)) = after_literals(line, next, &line_at) else {
                    return Reply::Partial;
                };
                next = end;
                if let Some(ok) = sieve_status(last) {
                    break ok;
                }
                let Some((l, n)) = line_at(next) else {
                    return Reply::Partial;
                };
                line = l;
                next = n;
            }
        }
    };
    if shape == Shape::DotList && positive {
        loop {
            let Some((l, n)) = line_at(next) else {
                return Reply::Partial;
            };
            next = n;
            if l == b"." {
                break;
            }
        }
    }
    Reply::Whole {
        end: next,
        positive,
    }
}

/// The status word of an IMAP response (`OK`, `NO`, `BAD`, `PREAUTH`, `BYE`).
fn imap_status(rest: &[u8]) -> bool {
    let word = rest.split(|&b| b == b' ').next().unwrap_or(&[]);
    word.eq_ignore_ascii_case(b"OK") || word.eq_ignore_ascii_case(b"PREAUTH")
}

/// A ManageSieve response's last line: `OK`, `NO` or `BYE` (with text or a
/// response code after a space or a parenthesis).
fn sieve_status(line: &[u8]) -> Option<bool> {
    for (word, ok) in [(&b"OK"[..], true), (b"NO", false), (b"BYE", false)] {
        if line.len() >= word.len()
            && line[..word.len()].eq_ignore_ascii_case(word)
            && matches!(line.get(word.len()), None | Some(b' ' | b'('))
        {
            return Some(ok);
        }
    }
    None
}

/// Where the response line `line` (whose line end is at `end`) really ends,
/// and its last piece: a line ending in a literal `{n}` (or `{n+}`) is
/// followed by n bytes, then the rest of the line, which may end in another
/// literal. `None` while not whole.
fn after_literals<'a>(
    mut line: &'a [u8],
    mut end: usize,
    line_at: &impl Fn(usize) -> Option<(&'a [u8], usize)>,
) -> Option<(&'a [u8], usize)> {
    while let Some(len) = literal(line) {
        (line, end) = line_at(end + len)?;
    }
    Some((line, end))
}

/// The length of the literal a line ends with (`{12}` or `{12+}`).
fn literal(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}")?;
    let body = body.strip_suffix(b"+").unwrap_or(body);
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    if digits.is_empty() || digits.len() > 6 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')),
    )
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

    /// The conversation (client then server bytes) gives TLS at their ends,
    /// and every cut of either side, at any byte, waits.
    fn upgrades(kind: Kind, client: &[u8], server: &[u8]) {
        let c = [client, HELLO].concat();
        assert_eq!(
            at(parse((&c, server))),
            (kind, [client.len(), server.len()])
        );
        for cut in 0..client.len() {
            let v = parse((&client[..cut], server));
            assert!(
                matches!(v, Some(Verdict::NeedMore { .. })),
                "client cut {cut}: {v:?}"
            );
        }
        for cut in 1..server.len() {
            let v = parse((&c, &server[..cut]));
            assert!(
                matches!(v, Some(Verdict::NeedMore { .. })),
                "server cut {cut}: {v:?}"
            );
        }
    }

    #[test]
    fn smtp_starttls() {
        upgrades(
            Kind::Smtp,
            b"EHLO client.example\r\nSTARTTLS\r\n",
            b"220 mx.example ESMTP Postfix\r\n250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n220 2.0.0 Ready to start TLS\r\n",
        );
        // A multi-line greeting, pipelined commands, LMTP.
        upgrades(
            Kind::Smtp,
            b"LHLO c\r\nNOOP\r\nSTARTTLS\r\n",
            b"220-lmtp.example\r\n220 LMTP ready\r\n250-lmtp\r\n250 STARTTLS\r\n250 ok\r\n220 go\r\n",
        );
        let client = b"EHLO client.example\r\nSTARTTLS\r\n";
        let refused = b"220 mx ESMTP\r\n250 mx\r\n454 4.7.0 TLS not available\r\n";
        assert_eq!(
            parse((client, refused)),
            Some(Verdict::NeedMore {
                kind: Kind::Smtp,
                refused: true
            })
        );
        let then_mail = [&client[..], b"MAIL FROM:<a@b>\r\n"].concat();
        assert_eq!(
            parse((&then_mail, refused)),
            Some(Verdict::NoTls(Kind::Smtp))
        );
        let clear = b"EHLO c\r\nMAIL FROM:<a@b>\r\n";
        assert_eq!(
            parse((clear, b"220 mx\r\n250 mx\r\n")),
            Some(Verdict::NoTls(Kind::Smtp))
        );
        assert_eq!(
            parse((b"", b"554 5.7.1 no service\r\n")),
            None,
            "not a greeting of these"
        );
    }

    #[test]
    fn ftp_feat_in_pieces_then_auth() {
        // vsftpd's FEAT answer: continuation lines that start with a space.
        upgrades(
            Kind::Ftp,
            b"FEAT\r\nAUTH TLS\r\n",
            b"220 (vsFTPd 3.0.3)\r\n211-Features:\r\n AUTH SSL\r\n AUTH TLS\r\n EPRT\r\n PBSZ\r\n211 End\r\n234 Proceed with negotiation.\r\n",
        );
        // curl: AUTH SSL refused, then AUTH TLS.
        upgrades(
            Kind::Ftp,
            b"AUTH SSL\r\nAUTH TLS\r\n",
            b"220 ftp\r\n500 not understood\r\n234 AUTH TLS OK.\r\n",
        );
        let client = b"AUTH TLS\r\n";
        let server = b"220 (vsFTPd 3.0.3)\r\n234 Proceed with negotiation.\r\n";
        let not_tls = [&client[..], b"USER x\r\n"].concat();
        assert_eq!(parse((&not_tls, server)), Some(Verdict::GaveUp(Kind::Ftp)));
        let no = b"220 ftp\r\n530 Please login with USER and PASS.\r\n";
        let then_user = [&client[..], b"USER anonymous\r\n"].concat();
        assert_eq!(parse((&then_user, no)), Some(Verdict::NoTls(Kind::Ftp)));
    }

    #[test]
    fn imap_pop3_nntp_sieve() {
        upgrades(
            Kind::Imap,
            b"a001 CAPABILITY\r\na002 ID (\"name\" \"x\")\r\na003 STARTTLS\r\n",
            b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\na001 OK Pre-login capabilities listed.\r\n* ID {7}\r\n(\"x\" 1)\r\na002 OK ID completed.\r\na003 OK Begin TLS negotiation now.\r\n",
        );
        let refused = b"* OK ready\r\na001 OK done\r\na002 BAD no\r\n";
        let client = b"a001 CAPABILITY\r\na002 STARTTLS\r\n";
        assert!(matches!(
            parse((client, refused)),
            Some(Verdict::NeedMore { refused: true, .. })
        ));
        let login = [&client[..], b"a003 LOGIN u p\r\n"].concat();
        assert_eq!(parse((&login, refused)), Some(Verdict::NoTls(Kind::Imap)));
        // POP3: AUTH and CAPA probes before STLS.
        upgrades(
            Kind::Pop3,
            b"AUTH\r\nCAPA\r\nSTLS\r\n",
            b"+OK Dovecot ready.\r\n+OK\r\nPLAIN\r\n.\r\n+OK\r\nCAPA\r\nSTLS\r\n.\r\n+OK Begin TLS negotiation now.\r\n",
        );
        assert_eq!(
            parse((b"USER x\r\n", b"+OK ready\r\n")),
            Some(Verdict::NoTls(Kind::Pop3))
        );
        upgrades(
            Kind::Nntp,
            b"CAPABILITIES\r\nSTARTTLS\r\n",
            b"200 news.example InterNetNews server ready\r\n101 Capability list:\r\nVERSION 2\r\nSTARTTLS\r\n.\r\n382 Continue with TLS negotiation\r\n",
        );
        assert_eq!(
            parse((b"STARTTLS\r\nGROUP a\r\n", b"201 ready\r\n580 no\r\n")),
            Some(Verdict::NoTls(Kind::Nntp))
        );
        upgrades(
            Kind::Managesieve,
            b"CAPABILITY\r\nSTARTTLS\r\n",
            b"\"IMPLEMENTATION\" \"Dovecot Pigeonhole\"\r\n\"SIEVE\" \"fileinto\"\r\n\"STARTTLS\"\r\n\"VERSION\" \"1.0\"\r\nOK \"Dovecot ready.\"\r\n\"IMPLEMENTATION\" \"Dovecot Pigeonhole\"\r\n\"STARTTLS\"\r\nOK \"Capability completed.\"\r\nOK \"Begin TLS negotiation now.\"\r\n",
        );
        assert_eq!(
            parse((
                b"STARTTLS\r\n",
                b"\"SIEVE\" \"x\"\r\nOK ready\r\nNO \"TLS unavailable\"\r\n"
            )),
            Some(Verdict::NeedMore {
                kind: Kind::Managesieve,
                refused: true
            })
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
        assert_eq!(parse((b"", b"\"quoted text\r\n")), None);
        assert_eq!(parse((b"", b"SSH-2.0-OpenSSH\r\n")), None);
        assert!(matches!(
            parse((b"", b"220 partial")),
            Some(Verdict::NeedMore { .. })
        ));
        // A client that does not speak in commands: another protocol (a
        // Redis client answered `+OK`).
        assert_eq!(
            parse((b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n", b"+OK\r\n")),
            Some(Verdict::Absent)
        );
        // A 220 conversation that breaks the reply grammar gives up.
        assert_eq!(
            parse((b"EHLO x\r\n", b"220 x\r\nnonsense\r\n")),
            Some(Verdict::GaveUp(Kind::Smtp))
        );
    }
}
