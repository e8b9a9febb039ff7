//! Test builders for TLS wire bytes, shared by the unit tests of the TLS
//! readers (the end-to-end tests have their own in `tests/common/craft.rs`).

/// A TLS record: content type, record version, payload.
pub fn record(ct: u8, version: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![ct];
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A handshake message: type, 24-bit length, body.
pub fn hs(t: u8, body: &[u8]) -> Vec<u8> {
    let n = body.len();
    let mut v = vec![t, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    v.extend_from_slice(body);
    v
}

/// An extension: type, 16-bit length, data.
pub fn ext(t: u16, data: &[u8]) -> Vec<u8> {
    let mut v = t.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}
