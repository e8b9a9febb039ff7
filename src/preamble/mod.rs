//! What precedes TLS in a stream: explicit proxies (HTTP CONNECT, SOCKS),
//! the PROXY protocol of load balancers, STARTTLS upgrades (SMTP, IMAP, POP3,
//! FTP, NNTP, ManageSieve, LDAP, XMPP), Remote Desktop's X.224 negotiation,
//! OpenVPN's control channel over TCP, and TLS after an opening none of them
//! knows and database wrappers (PostgreSQL, MySQL/MariaDB,
//! and TDS, whose handshake travels framed in TDS packets: [`Framing`]).
//!
//! Input: both directions' stream starts of a flow that does not open with
//! TLS, as they grow (each parser is pure and re-reads its few bytes from the
//! start: a preamble is at most [`MAX_PREAMBLE`] bytes). Output: a
//! [`Verdict`]: more bytes needed, no preamble this module knows, TLS that
//! starts at a given offset of each direction ([`Preamble`]), a known
//! protocol that did not become TLS (refused or never upgraded), or a give-up
//! (too long, or it broke its protocol's rules). Recognition is by content,
//! on any port, and strict: a parser claims a flow only on bytes its protocol
//! requires (a method and version line, fixed magic numbers, a numeric reply
//! code), so plain traffic falls through to "not TLS" as before. Every length
//! is checked before use; nothing here panics or allocates more than the
//! authority string it returns.

pub mod database;
pub mod http;
pub mod ldap;
pub mod openvpn;
pub mod proxy_protocol;
pub mod rdp;
pub mod socks;
pub mod starttls;
pub mod tds;
pub mod unknown;
pub mod xmpp;

use std::net::SocketAddr;

/// A preamble gives up when nothing is decided within this many bytes of
/// either direction (the CONNECT line and headers, a mail server's EHLO
/// answer, ...).
pub const MAX_PREAMBLE: usize = 8192;

/// Longest authority (host:port) kept; a longer one is cut.
pub const MAX_AUTHORITY: usize = 300;

crate::label_set! {
    /// The kinds of preamble: a closed set, the `preamble` label and event field.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Kind {
        None = "none",
        HttpConnect = "http_connect",
        Socks = "socks",
        ProxyProtocol = "proxy_protocol",
        Smtp = "smtp",
        Imap = "imap",
        Pop3 = "pop3",
        Ftp = "ftp",
        Postgres = "postgres",
        Mysql = "mysql",
        Tds = "tds",
        Ldap = "ldap",
        Xmpp = "xmpp",
        Nntp = "nntp",
        Managesieve = "managesieve",
        Rdp = "rdp",
        Openvpn = "openvpn",
        /// An opening no parser knows, then TLS ([`unknown`]).
        Unknown = "unknown",
    }
}

impl Kind {
    /// A proxy the client asked to reach a host (HTTP CONNECT, SOCKS).
    pub fn is_proxy(self) -> bool {
        matches!(self, Kind::HttpConnect | Kind::Socks)
    }
}

crate::label_set! {
    /// How a preamble ended: the `result` label of `tlscensus_preambles_total`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum PreambleResult {
        /// TLS followed.
        Tls = "tls",
        /// Refused, or the session went on in clear text.
        NoTls = "no_tls",
        /// Too long, or it broke its protocol's rules.
        GaveUp = "gave_up",
        /// The flow ended (or was evicted) before the preamble was decided.
        Incomplete = "incomplete",
        /// TLS inside a wrapper that encrypts it (OpenVPN's tls-crypt): there,
        /// but not readable.
        Hidden = "hidden",
    }
}

/// How TLS travels after the preamble.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// TLS records straight in the stream.
    #[default]
    None,
    /// The handshake inside TDS PRELOGIN packets ([`tds::unwrap`]).
    Tds,
    /// The handshake inside OpenVPN control packets whose `tls-auth` HMAC
    /// is `hmac` bytes long, 0 without one ([`openvpn::unwrap`]).
    OpenVpn { hmac: u8 },
}

/// TLS after a preamble: where it starts in each direction, and what the
/// preamble said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preamble {
    pub kind: Kind,
    /// How the TLS bytes are framed from `tls_at` on.
    pub framing: Framing,
    /// The client's direction (0 low-to-high, 1 high-to-low).
    pub client: usize,
    /// Offset of the first TLS byte in each direction's stream.
    pub tls_at: [usize; 2],
    /// The host and port the client asked a proxy for (HTTP CONNECT
    /// authority, SOCKS destination), at most [`MAX_AUTHORITY`] bytes.
    pub authority: Option<Box<str>>,
    /// The original client address a PROXY protocol header carries.
    pub proxied_src: Option<SocketAddr>,
}

impl Preamble {
    /// The host part of the authority (no port, no IPv6 brackets).
    pub fn authority_host(&self) -> Option<&str> {
        let a = self.authority.as_deref()?;
        let host = if let Some(rest) = a.strip_prefix('[') {
            rest.split(']').next().unwrap_or(rest)
        } else {
            match a.rsplit_once(':') {
                Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
                _ => a,
            }
        };
        Some(host).filter(|h| !h.is_empty())
    }
}

/// What the preamble parsers make of a flow's two stream starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A preamble of this kind (or not yet known) is under way. `refused`:
    /// the last request was refused and nothing followed yet (a proxy's 407
    /// may be followed by a second CONNECT with credentials).
    NeedMore { kind: Kind, refused: bool },
    /// Neither direction starts with a preamble this module knows.
    Absent,
    /// TLS follows the preamble.
    Tls(Preamble),
    /// A known protocol that did not become TLS: the tunnel or upgrade was
    /// refused, or the session went on in clear text.
    NoTls(Kind),
    /// Nothing decided within [`MAX_PREAMBLE`] bytes, or the preamble broke
    /// its protocol's rules.
    GaveUp(Kind),
    /// TLS follows, encrypted by the wrapper (OpenVPN's tls-crypt).
    Hidden(Kind),
}

/// One parser's view: the client's and the server's stream starts.
pub(crate) type Pair<'a> = (&'a [u8], &'a [u8]);

/// Reads the preamble of a flow whose stream starts are `streams`
/// (directions 0 and 1). Each parser tries each direction as the client.
pub fn parse(streams: [&[u8]; 2]) -> Verdict {
    for client in [0, 1] {
        let pair = (streams[client], streams[1 - client]);
        let found = http::connect(pair)
            .or_else(|| proxy_protocol::parse(pair))
            .or_else(|| socks::parse(pair))
            .or_else(|| database::parse(pair))
            .or_else(|| tds::parse(pair))
            .or_else(|| rdp::parse(pair))
            .or_else(|| openvpn::parse(pair))
            .or_else(|| ldap::parse(pair))
            .or_else(|| xmpp::parse(pair))
            .or_else(|| starttls::parse(pair));
        if let Some(v) = found {
            return place(v, client, streams);
        }
    }
    Verdict::Absent
}

/// Looks for TLS after an opening no parser knows ([`unknown`]) in a flow
/// whose client is direction `client` (known from its SYN).
pub fn search_unknown(streams: [&[u8]; 2], client: usize) -> Verdict {
    let v = unknown::search((streams[client], streams[1 - client]));
    place(v, client, streams)
}

/// Puts a parser's verdict (offsets in client, server order) in direction
/// order, and gives up on a preamble that went on too long.
fn place(v: Verdict, client: usize, streams: [&[u8]; 2]) -> Verdict {
    match v {
        Verdict::Tls(mut p) => {
            p.client = client;
            if client == 1 {
                p.tls_at.swap(0, 1);
            }
            Verdict::Tls(p)
        }
        Verdict::NeedMore { kind, .. }
            if streams[0].len() >= MAX_PREAMBLE || streams[1].len() >= MAX_PREAMBLE =>
        {
            Verdict::GaveUp(kind)
        }
        other => other,
    }
}

/// The end of the first line of `b` (the index after its `\n`), if whole.
pub(crate) fn line_end(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n').map(|i| i + 1)
}

/// The line without its `\r\n` or `\n`.
pub(crate) fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// An authority string from wire bytes: printable ASCII only, cut at
/// [`MAX_AUTHORITY`].
pub(crate) fn authority(bytes: &[u8]) -> Option<Box<str>> {
    let bytes = &bytes[..bytes.len().min(MAX_AUTHORITY)];
    if bytes.is_empty() || !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    std::str::from_utf8(bytes).ok().map(Box::from)
}

/// TLS from the given offsets (client, server); the parser's caller places
/// them in direction order.
pub(crate) fn tls(kind: Kind, client_at: usize, server_at: usize) -> Preamble {
    Preamble {
        kind,
        framing: Framing::None,
        client: 0,
        tls_at: [client_at, server_at],
        authority: None,
        proxied_src: None,
    }
}

/// Whether the bytes after a preamble open a TLS record or an SSLv2 hello:
/// `None` until the first two bytes (the first, for SSLv2) are there, so the
/// answer is the same however the stream grows.
pub(crate) fn tls_follows(b: &[u8]) -> Option<bool> {
    match *b {
        [t, ..] if t & 0x80 != 0 => Some(true),
        [] | [_] => None,
        [t, major, ..] => Some((20..=24).contains(&t) && major == 3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_authority_host() {
        let p = |a: &str| Preamble {
            authority: Some(a.into()),
            ..tls(Kind::HttpConnect, 0, 0)
        };
        assert_eq!(
            p("acct.blob.core.windows.net:443").authority_host(),
            Some("acct.blob.core.windows.net")
        );
        assert_eq!(p("[2001:db8::1]:443").authority_host(), Some("2001:db8::1"));
        assert_eq!(p("host").authority_host(), Some("host"));
        assert_eq!(p(":443").authority_host(), None);
    }

    #[test]
    fn preamble_direct_tls_and_plain_traffic_are_absent() {
        let hello = [22, 3, 1, 0, 5, 1, 0, 0, 1, 0];
        assert_eq!(parse([&hello, b""]), Verdict::Absent);
        assert_eq!(parse([b"GET / HTTP/1.1\r\n\r\n", b""]), Verdict::Absent);
        assert_eq!(
            parse([b"SSH-2.0-OpenSSH_9.2\r\n", b"SSH-2.0-x\r\n"]),
            Verdict::Absent
        );
        assert_eq!(parse([b"", b""]), Verdict::Absent);
    }

    #[test]
    fn preamble_gives_up_past_the_bound() {
        let mut req = b"CONNECT a.example:443 HTTP/1.1\r\n".to_vec();
        while req.len() < MAX_PREAMBLE {
            req.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(parse([&req, b""]), Verdict::GaveUp(Kind::HttpConnect));
    }
}
