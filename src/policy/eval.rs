//! Judging one ClientHello as a server holding a policy would.
//!
//! Input: a [`ServerPolicy`] and an [`Offer`] (slices of the hello, as on
//! the wire). Output: a [`Verdict`]. The steps are a server's: the version
//! (RFC 8446 4.2.1: from supported_versions when the hello has it, never
//! then from the legacy field; else the highest accepted version at or
//! below the legacy field, TLS 1.2 at most), then a cipher suite the
//! policy accepts at that version, then what the suite needs: in TLS 1.3 a
//! common group and a common signature scheme valid in TLS 1.3; before
//! that, for ECDHE a common elliptic-curve group (any the policy accepts
//! when the hello lists none, RFC 8422 4), and for a signed key exchange a
//! certificate of the suite's key type and a common signature scheme (the
//! SHA-1 default of RFC 5246 7.4.1.4.1 when the hello lists none; no
//! negotiation before TLS 1.2). DHE uses the server's own parameters. The
//! reason a hello fails is the furthest step any suite reached. Lengths are
//! checked; nothing panics or allocates.

use super::{Authentication, KeyExchange, Reason, Requirement, ServerPolicy, Verdict, version_bit};

const TLS12: u16 = 0x0303;
const TLS13: u16 = 0x0304;
const SCSV_RENEGOTIATION: u16 = 0x00ff;

/// The parts of a ClientHello a server's choice depends on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offer<'a> {
    /// `legacy_version` (an SSLv2-format hello's version field).
    pub legacy_version: u16,
    /// supported_versions' list (two bytes each) when the hello has it.
    pub versions: Option<&'a [u8]>,
    /// The cipher suites (GREASE values may be left in: none matches).
    pub ciphers: &'a [u16],
    /// supported_groups' list when the hello has it.
    pub groups: Option<&'a [u8]>,
    /// signature_algorithms' list when the hello has it.
    pub sigalgs: Option<&'a [u8]>,
    /// key_share's client shares (group, length, key, repeated) when sent.
    pub key_shares: Option<&'a [u8]>,
    pub extended_master_secret: bool,
    pub renegotiation_info: bool,
    pub server_name: bool,
}

fn u16s(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// The list of a `<2..2^16-1>`-style vector (two length bytes first),
/// clamped to what is there.
pub fn list16(data: &[u8]) -> &[u8] {
    match data {
        [hi, lo, rest @ ..] => {
            let n = usize::from(u16::from_be_bytes([*hi, *lo]));
            &rest[..n.min(rest.len())]
        }
        _ => &[],
    }
}

/// The list of a `<2..254>`-style vector (one length byte first), clamped.
pub fn list8(data: &[u8]) -> &[u8] {
    match data {
        [n, rest @ ..] => &rest[..usize::from(*n).min(rest.len())],
        _ => &[],
    }
}

/// A group TLS 1.2's ECDHE can use (RFC 8422 and RFC 7027 curves, X25519,
/// X448; not the TLS 1.3-only brainpool, hybrid or finite-field groups).
pub const fn is_ec_group(g: u16) -> bool {
    matches!(g, 1..=30)
}

/// A post-quantum hybrid group: the ML-KEM hybrids and the Kyber drafts
/// browsers sent before them.
pub const fn is_pq_hybrid(g: u16) -> bool {
    matches!(g, 0x11eb..=0x11ee | 0x6399 | 0x639a | 0x4138)
}

/// The key type a signature scheme signs with.
pub const fn sigalg_key(s: u16) -> Authentication {
    let (hash, sig) = (s >> 8, s & 0xff);
    match (hash, sig) {
        (1..=6, 1) | (4..=6, 0x20) | (8, 4..=6) | (8, 9..=11) => Authentication::Rsa,
        (1..=6, 2) => Authentication::Dss,
        (1..=6, 3) | (8, 7) | (8, 8) | (8, 0x1a..=0x1c) => Authentication::Ecdsa,
        _ => Authentication::Any,
    }
}

/// A signature scheme TLS 1.3 allows in CertificateVerify (no PKCS #1
/// v1.5, SHA-1, SHA-224 or DSA).
pub const fn tls13_sigalg(s: u16) -> bool {
    let (hash, sig) = (s >> 8, s & 0xff);
    match hash {
        0..=3 => false,
        4..=6 => sig == 3,
        _ => true,
    }
}

/// What a server holding `p` would do with `o`.
pub fn judge(p: &ServerPolicy, o: &Offer<'_>) -> Verdict {
    let Some(v) = version(p.versions, o) else {
        return Verdict::Fail(Reason::NoCommonVersion, None);
    };
    let step = if v == TLS13 {
        tls13(p, o)
    } else {
        tls12(p, o, v)
    };
    if let Err(r) = step {
        return Verdict::Fail(r, None);
    }
    for r in &p.require {
        if !meets(*r, o, v) {
            return Verdict::Fail(Reason::MissingRequirement, Some(*r));
        }
    }
    Verdict::Pass
}

/// The version a server accepting `accepted` (a version mask) selects.
fn version(accepted: u8, o: &Offer<'_>) -> Option<u16> {
    match o.versions {
        Some(list) => u16s(list).filter(|v| accepted & version_bit(*v) != 0).max(),
        None => {
            let cap = o.legacy_version.min(TLS12);
            super::VERSIONS
                .iter()
                .rev()
                .copied()
                .find(|v| *v <= cap && accepted & version_bit(*v) != 0)
        }
    }
}

fn tls13(p: &ServerPolicy, o: &Offer<'_>) -> Result<(), Reason> {
    let bit = version_bit(TLS13);
    if !(o.ciphers.iter()).any(|c| p.suite(*c).is_some_and(|s| s.versions & bit != 0)) {
        return Err(Reason::NoCommonSuite);
    }
    let groups = o.groups.unwrap_or(&[]);
    if !u16s(groups).any(|g| p.groups.contains(&g)) {
        return Err(Reason::NoCommonGroup);
    }
    let sigalgs = o.sigalgs.unwrap_or(&[]);
    if !u16s(sigalgs).any(|s| tls13_sigalg(s) && p.sigalgs.contains(&s)) {
        return Err(Reason::NoCommonSigalg);
    }
    Ok(())
}

fn tls12(p: &ServerPolicy, o: &Offer<'_>, v: u16) -> Result<(), Reason> {
    let bit = version_bit(v);
    // 0: no suite in common; 1: a suite, no group; 2: a group, no signature.
    let mut reached = 0u8;
    let mut ec_group: Option<bool> = None;
    for c in o.ciphers {
        let Some(s) = p.suite(*c) else { continue };
        if s.versions & bit == 0 {
            continue;
        }
        reached = reached.max(1);
        if s.kx == KeyExchange::Ecdhe {
            let ok = *ec_group.get_or_insert_with(|| match o.groups {
                Some(list) => u16s(list).any(|g| is_ec_group(g) && p.groups.contains(&g)),
                None => p.groups.iter().any(|g| is_ec_group(*g)),
            });
            if !ok {
                continue;
            }
        }
        reached = 2;
        if signs(p, o, v, s.kx, s.auth) {
            return Ok(());
        }
    }
    Err(match reached {
        0 => Reason::NoCommonSuite,
        1 => Reason::NoCommonGroup,
        _ => Reason::NoCommonSigalg,
    })
}

/// Whether the server can authenticate a suite: a key of its type, and in
/// TLS 1.2 a signature scheme of that type the hello accepts.
fn signs(p: &ServerPolicy, o: &Offer<'_>, v: u16, kx: KeyExchange, auth: Authentication) -> bool {
    let has_key = |key| p.sigalgs.iter().any(|s| sigalg_key(*s) == key);
    match (kx, auth) {
        (KeyExchange::Rsa, _) => has_key(Authentication::Rsa),
        (_, Authentication::Any) => true,
        (_, key) if v < TLS12 => has_key(key),
        (_, key) => match o.sigalgs {
            Some(list) => u16s(list).any(|s| sigalg_key(s) == key && p.sigalgs.contains(&s)),
            None => {
                let default = match key {
                    Authentication::Rsa => 0x0201,
                    Authentication::Dss => 0x0202,
                    _ => 0x0203,
                };
                p.sigalgs.contains(&default)
            }
        },
    }
}

fn meets(r: Requirement, o: &Offer<'_>, v: u16) -> bool {
    match r {
        Requirement::PqHybridGroup => u16s(o.groups.unwrap_or(&[])).any(is_pq_hybrid),
        Requirement::PqHybridKeyShare => {
            let mut rest = o.key_shares.unwrap_or(&[]);
            while let [a, b, c, d, tail @ ..] = rest {
                if is_pq_hybrid(u16::from_be_bytes([*a, *b])) {
                    return true;
                }
                let n = usize::from(u16::from_be_bytes([*c, *d]));
                rest = tail.get(n..).unwrap_or(&[]);
            }
            false
        }
        Requirement::ExtendedMasterSecret => v == TLS13 || o.extended_master_secret,
        Requirement::SecureRenegotiation => {
            v == TLS13 || o.renegotiation_info || o.ciphers.contains(&SCSV_RENEGOTIATION)
        }
        Requirement::ServerName => o.server_name,
    }
}

#[cfg(test)]
mod tests {
    use super::super::presets;
    use super::*;

    fn be(v: &[u16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    /// A modern client: TLS 1.3 and 1.2, AEAD suites and CBC, the usual
    /// groups and schemes.
    struct Hello {
        legacy: u16,
        versions: Option<Vec<u8>>,
        ciphers: Vec<u16>,
        groups: Option<Vec<u8>>,
        sigalgs: Option<Vec<u8>>,
        shares: Option<Vec<u8>>,
        ems: bool,
    }

    impl Hello {
        fn modern() -> Hello {
            Hello {
                legacy: 0x0303,
                versions: Some(be(&[0x0a0a, 0x0304, 0x0303])),
                ciphers: vec![
                    0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc013, 0x002f,
                ],
                groups: Some(be(&[0x0a0a, 29, 23, 24])),
                sigalgs: Some(be(&[0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501])),
                shares: Some([be(&[29, 32]), vec![0; 32]].concat()),
                ems: true,
            }
        }

        fn tls10() -> Hello {
            Hello {
                legacy: 0x0301,
                versions: None,
                ciphers: vec![0xc013, 0xc014, 0x002f, 0x0035, 0x000a, 0x00ff],
                groups: Some(be(&[23, 24])),
                sigalgs: None,
                shares: None,
                ems: false,
            }
        }

        fn offer(&self) -> Offer<'_> {
            Offer {
                legacy_version: self.legacy,
                versions: self.versions.as_deref(),
                ciphers: &self.ciphers,
                groups: self.groups.as_deref(),
                sigalgs: self.sigalgs.as_deref(),
                key_shares: self.shares.as_deref(),
                extended_master_secret: self.ems,
                renegotiation_info: false,
                server_name: true,
            }
        }
    }

    fn verdict(policy: &str, h: &Hello) -> Verdict {
        judge(&presets::get(policy).unwrap(), &h.offer())
    }

    fn fail(r: Reason) -> Verdict {
        Verdict::Fail(r, None)
    }

    #[test]
    fn judge_modern_client_passes_all_but_pq() {
        let h = Hello::modern();
        for p in [
            "mozilla-modern",
            "mozilla-intermediate",
            "nist-800-52r2",
            "ecdhe-aead",
            "tls13-only",
        ] {
            assert_eq!(verdict(p, &h), Verdict::Pass, "{p}");
        }
        assert_eq!(verdict("pq-hybrid", &h), fail(Reason::NoCommonGroup));
    }

    #[test]
    fn judge_tls10_client() {
        let h = Hello::tls10();
        for p in presets::ALL.iter().map(|p| p.0) {
            assert_eq!(verdict(p, &h), fail(Reason::NoCommonVersion), "{p}");
        }
    }

    #[test]
    fn judge_supported_versions_rules_over_the_legacy_field() {
        // TLS 1.3 only in supported_versions: a TLS 1.2 policy finds no version,
        // whatever the legacy field says.
        let mut h = Hello::modern();
        h.versions = Some(be(&[0x0304]));
        let p = presets::get("mozilla-intermediate").unwrap();
        let mut tls12_only = p.clone();
        tls12_only.versions = version_bit(TLS12);
        assert_eq!(
            judge(&tls12_only, &h.offer()),
            fail(Reason::NoCommonVersion)
        );
        // Without the extension, a legacy field of TLS 1.3 means TLS 1.2.
        h.versions = None;
        h.legacy = 0x0304;
        assert_eq!(judge(&tls12_only, &h.offer()), Verdict::Pass);
        assert_eq!(verdict("tls13-only", &h), fail(Reason::NoCommonVersion));
        // Drafts and GREASE are no version.
        h.versions = Some(be(&[0x7f17, 0x1a1a]));
        assert_eq!(verdict("tls13-only", &h), fail(Reason::NoCommonVersion));
    }

    #[test]
    fn judge_tls12_cbc_only_client() {
        // TLS 1.2 with CBC suites only (old .NET, Java 7 lists).
        let mut h = Hello::modern();
        h.versions = None;
        h.ciphers = vec![0xc013, 0xc014, 0xc027, 0x002f, 0x0035, 0x003c];
        assert_eq!(
            verdict("mozilla-intermediate", &h),
            fail(Reason::NoCommonSuite)
        );
        assert_eq!(verdict("ecdhe-aead", &h), fail(Reason::NoCommonSuite));
        assert_eq!(verdict("nist-800-52r2", &h), Verdict::Pass);
        assert_eq!(verdict("tls13-only", &h), fail(Reason::NoCommonVersion));
    }

    #[test]
    fn judge_groups_decide_ecdhe() {
        let mut h = Hello::modern();
        h.versions = None;
        h.ciphers = vec![0xc02f];
        // Only X448 and brainpool: nothing in common with the policy.
        h.groups = Some(be(&[30, 26]));
        assert_eq!(
            verdict("mozilla-intermediate", &h),
            fail(Reason::NoCommonGroup)
        );
        // No supported_groups at all: the server picks its own curve.
        h.groups = None;
        assert_eq!(verdict("mozilla-intermediate", &h), Verdict::Pass);
        // A DHE suite needs no group from the hello.
        h.groups = Some(be(&[30]));
        h.ciphers = vec![0xc02f, 0x009e];
        assert_eq!(verdict("mozilla-intermediate", &h), Verdict::Pass);
        // TLS 1.3 needs a common group even with the extension missing.
        let mut h = Hello::modern();
        h.groups = None;
        assert_eq!(verdict("tls13-only", &h), fail(Reason::NoCommonGroup));
    }

    #[test]
    fn judge_signature_algorithms() {
        // ECDSA-only server (Mozilla modern's P-256 certificate): a TLS 1.3
        // client offering RSA schemes only has no common scheme.
        let mut h = Hello::modern();
        h.sigalgs = Some(be(&[0x0804, 0x0805, 0x0401]));
        assert_eq!(verdict("mozilla-modern", &h), fail(Reason::NoCommonSigalg));
        assert_eq!(verdict("mozilla-intermediate", &h), Verdict::Pass);
        // PKCS #1 v1.5 alone is no TLS 1.3 scheme.
        h.sigalgs = Some(be(&[0x0401, 0x0501]));
        assert_eq!(verdict("tls13-only", &h), fail(Reason::NoCommonSigalg));
        // ... but signs TLS 1.2 with an RSA certificate.
        h.versions = Some(be(&[0x0303]));
        assert_eq!(verdict("mozilla-intermediate", &h), Verdict::Pass);
        // A TLS 1.2 hello without signature_algorithms means SHA-1, which
        // no preset signs with.
        h.sigalgs = None;
        assert_eq!(
            verdict("mozilla-intermediate", &h),
            fail(Reason::NoCommonSigalg)
        );
    }

    #[test]
    fn judge_requirements() {
        let mut p = presets::get("tls13-only").unwrap();
        p.require = vec![Requirement::PqHybridGroup, Requirement::PqHybridKeyShare];
        let mut h = Hello::modern();
        assert_eq!(
            judge(&p, &h.offer()),
            Verdict::Fail(Reason::MissingRequirement, Some(Requirement::PqHybridGroup))
        );
        h.groups = Some(be(&[0x11ec, 29, 23]));
        assert_eq!(
            judge(&p, &h.offer()),
            Verdict::Fail(
                Reason::MissingRequirement,
                Some(Requirement::PqHybridKeyShare)
            )
        );
        h.shares = Some([be(&[29, 2]), vec![0, 0], be(&[0x11ec, 3]), vec![1, 2, 3]].concat());
        assert_eq!(judge(&p, &h.offer()), Verdict::Pass);
        assert_eq!(verdict("pq-hybrid", &h), Verdict::Pass);
        // A share list that lies about its lengths ends the walk.
        h.shares = Some(be(&[29, 0xffff, 0x11ec]));
        assert!(matches!(judge(&p, &h.offer()), Verdict::Fail(..)));

        let mut p = presets::get("nist-800-52r2").unwrap();
        p.require = vec![
            Requirement::ExtendedMasterSecret,
            Requirement::SecureRenegotiation,
        ];
        let mut h = Hello::modern();
        h.versions = None;
        assert_eq!(
            judge(&p, &h.offer()),
            Verdict::Fail(
                Reason::MissingRequirement,
                Some(Requirement::SecureRenegotiation)
            )
        );
        h.ciphers.push(SCSV_RENEGOTIATION);
        assert_eq!(judge(&p, &h.offer()), Verdict::Pass);
        h.ems = false;
        assert_eq!(
            judge(&p, &h.offer()),
            Verdict::Fail(
                Reason::MissingRequirement,
                Some(Requirement::ExtendedMasterSecret)
            )
        );
        // TLS 1.3 has both built in.
        let h = Hello::modern();
        let mut h13 = Hello::modern();
        h13.ems = false;
        assert_eq!(judge(&p, &h.offer()), Verdict::Pass);
        assert_eq!(judge(&p, &h13.offer()), Verdict::Pass);
    }

    #[test]
    fn judge_static_rsa_needs_an_rsa_key_only() {
        let mut h = Hello::tls10();
        h.legacy = 0x0303;
        h.ciphers = vec![0x009c]; // TLS_RSA_WITH_AES_128_GCM_SHA256
        h.sigalgs = Some(be(&[0x0403]));
        let mut p = presets::get("nist-800-52r2").unwrap();
        assert_eq!(judge(&p, &h.offer()), fail(Reason::NoCommonSuite));
        let rsa = super::super::Suite {
            id: 0x009c,
            versions: version_bit(TLS12),
            kx: KeyExchange::Rsa,
            auth: Authentication::Rsa,
        };
        p = ServerPolicy::new(
            p.name,
            p.title,
            p.source,
            p.versions,
            vec![rsa],
            p.groups,
            p.sigalgs,
            vec![],
        );
        assert_eq!(judge(&p, &h.offer()), Verdict::Pass);
        p.sigalgs.retain(|s| sigalg_key(*s) != Authentication::Rsa);
        assert_eq!(judge(&p, &h.offer()), fail(Reason::NoCommonSigalg));
    }

    #[test]
    fn judge_garbage_never_panics() {
        let p = presets::get("mozilla-intermediate").unwrap();
        for bytes in [&[][..], &[0], &[0, 1, 2], &[0xff; 7]] {
            let o = Offer {
                legacy_version: 0x0303,
                versions: Some(bytes),
                ciphers: &[0xc02f],
                groups: Some(bytes),
                sigalgs: Some(bytes),
                key_shares: Some(bytes),
                ..Offer::default()
            };
            let _ = judge(&p, &o);
            assert!(list16(bytes).len() <= bytes.len());
            assert!(list8(bytes).len() <= bytes.len());
        }
    }

    #[test]
    fn sigalg_key_types() {
        assert_eq!(sigalg_key(0x0401), Authentication::Rsa);
        assert_eq!(sigalg_key(0x0804), Authentication::Rsa);
        assert_eq!(sigalg_key(0x080b), Authentication::Rsa);
        assert_eq!(sigalg_key(0x0403), Authentication::Ecdsa);
        assert_eq!(sigalg_key(0x0807), Authentication::Ecdsa);
        assert_eq!(sigalg_key(0x0202), Authentication::Dss);
        assert!(tls13_sigalg(0x0403) && tls13_sigalg(0x0804) && tls13_sigalg(0x0807));
        assert!(!tls13_sigalg(0x0401) && !tls13_sigalg(0x0203) && !tls13_sigalg(0x0303));
    }
}
