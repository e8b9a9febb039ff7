//! Any bytes as a ClientHello body (and, when they start like a record
//! carrying a handshake message, the body inside it): the census' one-pass
//! reader and tls-parser, the oracle, read the same version, session ID, cipher suites
//! and extension block, and the same server name and supported versions
//! from every extension.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tls_parser::{
    TlsExtension, parse_tls_client_hello_extension, parse_tls_handshake_client_hello,
};
use tlscensus::tls::hello::{parse_client_hello, server_name, supported_versions};

fn same(body: &[u8]) {
    let ours = parse_client_hello(body);
    let theirs = parse_tls_handshake_client_hello(body).ok().map(|(_, h)| h);
    assert_eq!(
        ours.is_some(),
        theirs.is_some(),
        "accepted by one reader only"
    );
    let (Some(ours), Some(theirs)) = (ours, theirs) else {
        return;
    };
    assert_eq!(ours.version, theirs.version.0);
    assert_eq!(ours.session_id, theirs.session_id.unwrap_or(&[]));
    let ciphers: Vec<u16> = theirs.ciphers.iter().map(|c| c.0).collect();
    assert_eq!(ours.cipher_suites().collect::<Vec<_>>(), ciphers);
    assert_eq!(ours.extensions, theirs.ext);
    // Each extension, framed as tls-parser takes it.
    let mut walked = 0;
    for (ext_type, data) in ours.extensions() {
        walked += 4 + data.len();
        let mut one = ext_type.to_be_bytes().to_vec();
        one.extend_from_slice(&(data.len() as u16).to_be_bytes());
        one.extend_from_slice(data);
        let parsed = parse_tls_client_hello_extension(&one).ok().map(|(_, e)| e);
        match ext_type {
            0 => {
                let name = match parsed {
                    Some(TlsExtension::SNI(names)) => {
                        names.iter().find(|(t, _)| t.0 == 0).map(|(_, n)| *n)
                    }
                    _ => None,
                };
                assert_eq!(server_name(data), name, "server_name");
            }
            43 => {
                let versions = match parsed {
                    Some(TlsExtension::SupportedVersions(l)) => Some(
                        l.iter()
                            .flat_map(|v| v.0.to_be_bytes())
                            .collect::<Vec<u8>>(),
                    ),
                    _ => None,
                };
                assert_eq!(
                    supported_versions(data).map(<[u8]>::to_vec),
                    versions,
                    "supported_versions"
                );
            }
            _ => {}
        }
    }
    assert!(walked <= ours.extensions.map_or(0, <[u8]>::len));
}

fuzz_target!(|data: &[u8]| {
    same(data);
    // A record with a handshake message: its body too (the seeds are
    // stream starts).
    if let [0x16, 3, _, _, _, 1, _, _, _, body @ ..] = data {
        same(body);
    }
});
