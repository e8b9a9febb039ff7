//! TLS wire bytes, built field by field: records, handshake messages,
//! extensions, ClientHellos, ServerHellos and alerts. The one builder the
//! unit tests, the integration tests, the examples (the flood and benchmark
//! generators) and fuzz seeds share; nothing on the packet path uses it.
//! Every field is set on purpose, so a test can break exactly one rule.

/// A handshake message with its 4-byte header.
pub fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let n = body.len();
    let mut v = vec![msg_type, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    v.extend_from_slice(body);
    v
}

/// A TLS record.
pub fn record(content_type: u8, version: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![content_type];
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn extension(t: u16, data: &[u8]) -> Vec<u8> {
    let mut v = t.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

pub fn sni_extension(name: &str) -> Vec<u8> {
    let mut entry = vec![0u8];
    entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
    entry.extend_from_slice(name.as_bytes());
    let mut list = (entry.len() as u16).to_be_bytes().to_vec();
    list.extend(entry);
    extension(0, &list)
}

pub fn supported_versions_extension(versions: &[u16]) -> Vec<u8> {
    let mut data = vec![(versions.len() * 2) as u8];
    for v in versions {
        data.extend_from_slice(&v.to_be_bytes());
    }
    extension(43, &data)
}

/// A ClientHello record with these extensions (already framed).
pub fn client_hello(version: u16, extensions: &[Vec<u8>]) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x5a; 32]); // random
    b.push(0); // session id
    b.extend_from_slice(&[0, 4, 0x00, 0x2f, 0x00, 0x35]); // two ciphers
    b.extend_from_slice(&[1, 0]); // null compression
    let all: Vec<u8> = extensions.concat();
    b.extend_from_slice(&(all.len() as u16).to_be_bytes());
    b.extend(all);
    record(22, 0x0301, &handshake(1, &b))
}

/// The random of a HelloRetryRequest (RFC 8446 4.1.3).
pub const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A ServerHello record: `version` in the hello, `selected` in
/// supported_versions when given.
pub fn server_hello_with_random(version: u16, selected: Option<u16>, random: [u8; 32]) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend_from_slice(&random);
    b.push(0); // session id
    b.extend_from_slice(&[0x00, 0x2f]); // cipher
    b.push(0); // compression
    let exts = match selected {
        Some(v) => extension(43, &v.to_be_bytes()),
        None => Vec::new(),
    };
    b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    b.extend(exts);
    record(22, 0x0303, &handshake(2, &b))
}

pub fn server_hello(version: u16, selected: Option<u16>) -> Vec<u8> {
    server_hello_with_random(version, selected, [0x33; 32])
}

pub fn alert(level: u8, description: u8) -> Vec<u8> {
    record(21, 0x0303, &[level, description])
}
