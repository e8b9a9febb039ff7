//! XMPP STARTTLS (RFC 6120 5.4): both sides open an XML stream, the server
//! offers `<starttls/>` among its stream features, the client asks for it
//! with `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>` and the server
//! answers `<proceed/>` (then TLS) or `<failure/>`.
//!
//! Input: the client's and the server's stream starts. Output: `None`
//! unless the client's stream opens an XML stream (`<?xml` or
//! `<stream:stream`) and the server's does too, else a [`Verdict`]: TLS after
//! the client's `<starttls .../>` element and the server's `<proceed .../>`.
//! The client is the side whose `<starttls` is not inside `<stream:features>`
//! (the server's offer). Elements are found by their names, not parsed as
//! XML: only these few elements matter, and all of them stay within
//! [`super::MAX_PREAMBLE`].

use super::{Kind, Pair, Verdict, tls};

const KIND: Kind = Kind::Xmpp;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The end of the element named `name` that starts at `hay[at..]` (self-
/// closing `/>`, or its closing tag).
fn element_end(hay: &[u8], at: usize, name: &[u8]) -> Option<usize> {
    let rest = hay.get(at..)?;
    let open_end = find(rest, b">")?;
    if open_end > 0 && rest[open_end - 1] == b'/' {
        return Some(at + open_end + 1);
    }
    let mut close = b"</".to_vec();
    close.extend_from_slice(name);
    close.push(b'>');
    find(rest, &close).map(|c| at + c + close.len())
}

fn opens_stream(b: &[u8]) -> bool {
    let b = b.trim_ascii_start();
    b.starts_with(b"<?xml") || b.starts_with(b"<stream:stream")
}

/// `b` opens an XML stream, or is still too short to tell.
fn may_open_stream(b: &[u8]) -> bool {
    let t = b.trim_ascii_start();
    opens_stream(b) || b"<?xml".starts_with(t) || b"<stream:stream".starts_with(t)
}

pub fn parse((client, server): Pair<'_>) -> Option<Verdict> {
    let need = Verdict::NeedMore {
        kind: KIND,
        refused: false,
    };
    if !opens_stream(client) {
        // A prefix of a stream opening: wait for the bytes that tell.
        return (!client.is_empty() && may_open_stream(client)).then_some(need);
    }
    let Some(ask) = find(client, b"<starttls") else {
        return Some(need);
    };
    // The server's offer is inside its features; the client's request is not.
    if find(&client[..ask], b"<stream:features").is_some() {
        return None;
    }
    if !may_open_stream(server) {
        return None;
    }
    let Some(client_at) = element_end(client, ask, b"starttls") else {
        return Some(need);
    };
    // The server's answer comes after its features.
    let Some(features) = find(server, b"<stream:features") else {
        return Some(need);
    };
    let after = &server[features..];
    let proceed = find(after, b"<proceed");
    let failure = find(after, b"<failure");
    let proceeds = match (proceed, failure) {
        (Some(p), Some(f)) => p < f,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => return Some(need),
    };
    if !proceeds {
        return Some(Verdict::NoTls(KIND));
    }
    let p = proceed.unwrap_or(0);
    Some(match element_end(server, features + p, b"proceed") {
        Some(server_at) => Verdict::Tls(tls(KIND, client_at, server_at)),
        None => need,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' to='example.org' version='1.0'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    const SERVER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' id='1' from='example.org' version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";

    #[test]
    fn xmpp_starttls() {
        let Some(Verdict::Tls(p)) = parse((CLIENT, SERVER)) else {
            panic!("{:?}", parse((CLIENT, SERVER)));
        };
        assert_eq!(p.tls_at, [CLIENT.len(), SERVER.len()]);
        // The server's side read as a client: its starttls is an offer.
        assert_eq!(parse((SERVER, CLIENT)), None);
        for cut in 1..CLIENT.len() {
            assert!(
                matches!(parse((&CLIENT[..cut], b"")), Some(Verdict::NeedMore { .. })),
                "{cut}"
            );
        }
        for cut in 0..SERVER.len() {
            assert!(
                matches!(
                    parse((CLIENT, &SERVER[..cut])),
                    Some(Verdict::NeedMore { .. })
                ),
                "{cut}"
            );
        }
        let failure = b"<?xml version='1.0'?><stream:stream><stream:features><starttls/></stream:features><failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
        assert_eq!(parse((CLIENT, failure)), Some(Verdict::NoTls(KIND)));
        assert_eq!(parse((b"<html>", b"")), None);
    }
}
