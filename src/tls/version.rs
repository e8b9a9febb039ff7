//! TLS protocol versions as they appear on the wire, and the one place where the
//! versions of a handshake are reduced to "highest offered" and "negotiated".
//!
//! Input: raw `u16` values from records, hellos and the supported_versions extension.
//! Output: [`Version`] newtypes that keep unknown and GREASE values intact, and a
//! stable string form (`TLSv1.2`, `0x7a7a`, ...). Invariant: TLS 1.3 drafts
//! (`0x7f00 | n`) compare and print as TLS 1.3; GREASE values never count.

use std::fmt;

/// A TLS/SSL protocol version exactly as carried on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u16);

/// GREASE values (RFC 8701) of any 16-bit registry (versions, cipher
/// suites, extensions, groups, signature algorithms): `0x?a?a` with both
/// bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

impl Version {
    pub const SSL2: Version = Version(0x0002);
    pub const SSL3: Version = Version(0x0300);
    pub const TLS10: Version = Version(0x0301);
    pub const TLS11: Version = Version(0x0302);
    pub const TLS12: Version = Version(0x0303);
    pub const TLS13: Version = Version(0x0304);

    /// GREASE values (RFC 8701): `0x?a?a` with both bytes equal.
    pub fn is_grease(self) -> bool {
        is_grease(self.0)
    }

    /// TLS 1.3 draft versions (`0x7f00 | draft`) and the final value map to TLS 1.3;
    /// everything else stays as it is.
    pub fn canonical(self) -> Version {
        if self.0 >> 8 == 0x7f {
            Version::TLS13
        } else {
            self
        }
    }

    /// The order used for "highest" and "below the minimum": the wire value
    /// after [`canonical`](Self::canonical), for SSLv2 and the `0x03xx` family
    /// (SSLv2 sorts below SSLv3; a future `0x0305` above TLS 1.3). Any other
    /// value (`0xfb1a`, `0x7e01`, DTLS `0xfefd`) has no place in that order:
    /// `None`, and it never counts as higher or lower than a known version.
    pub fn rank(self) -> Option<u16> {
        let c = self.canonical();
        (c == Version::SSL2 || c.0 >> 8 == 0x03).then_some(c.0)
    }

    /// The closed set of names a metric label or inventory column may take.
    pub fn class(self) -> VersionClass {
        match self.canonical() {
            Version::SSL2 => VersionClass::Ssl2,
            Version::SSL3 => VersionClass::Ssl3,
            Version::TLS10 => VersionClass::Tls10,
            Version::TLS11 => VersionClass::Tls11,
            Version::TLS12 => VersionClass::Tls12,
            Version::TLS13 => VersionClass::Tls13,
            _ => VersionClass::Other,
        }
    }

    /// Parses a user-supplied version: `TLSv1.2`, `tls1.2`, `1.2`, `SSLv3`, `0x0303`.
    pub fn parse_user(s: &str) -> Option<Version> {
        let t = s.trim().to_ascii_lowercase();
        if let Some(hex) = t.strip_prefix("0x") {
            return u16::from_str_radix(hex, 16).ok().map(Version);
        }
        let t = t.replace(['v', '_', ' '], "");
        match t.as_str() {
            "ssl2" | "ssl2.0" => Some(Version::SSL2),
            "ssl3" | "ssl3.0" => Some(Version::SSL3),
            "tls1" | "tls1.0" | "1.0" | "1" => Some(Version::TLS10),
            "tls1.1" | "1.1" => Some(Version::TLS11),
            "tls1.2" | "1.2" => Some(Version::TLS12),
            "tls1.3" | "1.3" => Some(Version::TLS13),
            _ => None,
        }
    }
}

impl Version {
    /// The name of a known version (drafts as TLS 1.3); `None` for others,
    /// which `Display` writes as `0x` and four hex digits.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.canonical() {
            Version::SSL2 => "SSLv2",
            Version::SSL3 => "SSLv3",
            Version::TLS10 => "TLSv1.0",
            Version::TLS11 => "TLSv1.1",
            Version::TLS12 => "TLSv1.2",
            Version::TLS13 => "TLSv1.3",
            _ => return None,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "0x{:04x}", self.canonical().0),
        }
    }
}

crate::label_set! {
    /// A version as a label value: every wire value maps to one of eight names
    /// (`other`: a value outside the known set; `unknown`: no version seen), so a
    /// label or a column can never take more values than these, whatever the wire says.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum VersionClass {
        Ssl2 = "SSLv2",
        Ssl3 = "SSLv3",
        Tls10 = "TLSv1.0",
        Tls11 = "TLSv1.1",
        Tls12 = "TLSv1.2",
        Tls13 = "TLSv1.3",
        Other = "other",
        Unknown = "unknown",
    }
}

impl VersionClass {
    /// `None` (no version seen) is `Unknown`.
    pub fn of(v: Option<Version>) -> VersionClass {
        v.map_or(VersionClass::Unknown, Version::class)
    }
}

/// The highest version a client offers: the highest ranked non-GREASE value of
/// the supported_versions list when the extension is present and holds one,
/// else the hello's own version. A listed value without a rank (see
/// [`Version::rank`]) is the answer only when nothing ranked is listed.
pub fn client_max_version(hello_version: Version, supported: Option<&[Version]>) -> Version {
    // One plain loop (this runs several times per flow): the first listed
    // value, and the last of the highest ranked.
    let (mut first, mut best) = (None, None);
    for &v in supported.unwrap_or(&[]) {
        if v.is_grease() {
            continue;
        }
        first.get_or_insert(v);
        if let Some(r) = v.rank()
            && best.is_none_or(|(b, _)| r >= b)
        {
            best = Some((r, v));
        }
    }
    match best.map(|(_, v)| v).or(first) {
        Some(v) => v.canonical(),
        None => hello_version.canonical(),
    }
}

/// The version a server picked: supported_versions' selected_version when present
/// (TLS 1.3), else the ServerHello's version.
pub fn negotiated_version(server_hello_version: Version, selected: Option<Version>) -> Version {
    match selected {
        Some(v) if !v.is_grease() => v.canonical(),
        _ => server_hello_version.canonical(),
    }
}

/// True when `v` is below the configured minimum. A value without a rank is
/// never below it: the census cannot call an unknown version legacy.
pub fn is_below(v: Version, min: Version) -> bool {
    match (v.rank(), min.rank()) {
        (Some(v), Some(min)) => v < min,
        _ => false,
    }
}

/// True when a server's chosen version is above anything the client offered
/// (a broken or spoofed reply): the client's own limit then decides.
pub fn above_offer(negotiated: Version, client_max: Version) -> bool {
    match (negotiated.rank(), client_max.rank()) {
        (Some(n), Some(c)) => n > c,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The loop gives what the rule says, written plainly: the highest
        /// ranked non-GREASE value listed (the last of equals), else the
        /// first listed, else the hello's own version.
        #[test]
        fn client_max_version_as_written(
            hello in any::<u16>(),
            listed in proptest::option::of(proptest::collection::vec(
                prop_oneof![
                    Just(0x0300u16), Just(0x0301), Just(0x0302), Just(0x0303), Just(0x0304),
                    Just(0x7f17), Just(0x7f1c), Just(0x0a0a), Just(0xfafa), Just(0x0002),
                    any::<u16>(),
                ],
                0..8,
            )),
        ) {
            let supported: Option<Vec<Version>> =
                listed.map(|l| l.into_iter().map(Version).collect());
            let mut plain = supported.iter().flatten().copied().filter(|v| !v.is_grease());
            let first = plain.clone().next();
            let ranked = plain
                .by_ref()
                .filter_map(|v| Some((v.rank()?, v)))
                .max_by_key(|(r, _)| *r)
                .map(|(_, v)| v);
            let want = ranked.or(first).unwrap_or(Version(hello)).canonical();
            prop_assert_eq!(client_max_version(Version(hello), supported.as_deref()), want);
        }
    }

    #[test]
    fn version_names() {
        let table = [
            (0x0002, "SSLv2"),
            (0x0300, "SSLv3"),
            (0x0301, "TLSv1.0"),
            (0x0302, "TLSv1.1"),
            (0x0303, "TLSv1.2"),
            (0x0304, "TLSv1.3"),
            (0x7f17, "TLSv1.3"),
            (0x0a0a, "0x0a0a"),
            (0xfefd, "0xfefd"),
            (0x0305, "0x0305"),
        ];
        for (raw, name) in table {
            assert_eq!(Version(raw).to_string(), name, "{raw:#06x}");
        }
    }

    #[test]
    fn grease_detection() {
        for g in [0x0a0a, 0x1a1a, 0x2a2a, 0xfafa] {
            assert!(Version(g).is_grease());
        }
        for v in [0x0303, 0x0a1a, 0x7f1c] {
            assert!(!Version(v).is_grease());
        }
    }

    #[test]
    fn client_max_table() {
        use Version as V;
        let cases: &[(u16, Option<&[u16]>, u16)] = &[
            // no extension: the hello version
            (0x0301, None, 0x0301),
            (0x0300, None, 0x0300),
            (0x0002, None, 0x0002),
            // extension wins, GREASE ignored
            (0x0303, Some(&[0x2a2a, 0x0304, 0x0303]), 0x0304),
            // extension order does not matter
            (0x0303, Some(&[0x0302, 0x0303, 0x0301]), 0x0303),
            // drafts count as TLS 1.3
            (0x0303, Some(&[0x7f1c, 0x0303]), 0x0304),
            // only GREASE listed: fall back to the hello version
            (0x0303, Some(&[0x5a5a]), 0x0303),
            // empty list: fall back
            (0x0301, Some(&[]), 0x0301),
            // a future 0x03xx value ranks above TLS 1.3
            (0x0303, Some(&[0x0305, 0x0304]), 0x0305),
            // values outside the order never beat a known version (regression_12)
            (0x0303, Some(&[0xfb1a, 0x0304, 0x0303]), 0x0304),
            (0x0303, Some(&[0x0303, 0x7e01]), 0x0303),
            (0x0303, Some(&[0xfefd, 0x0302]), 0x0302),
            // ... but are the answer when nothing known is listed
            (0x0303, Some(&[0x7e01]), 0x7e01),
        ];
        for (hello, list, want) in cases {
            let list: Option<Vec<V>> = list.map(|l| l.iter().map(|&v| V(v)).collect());
            assert_eq!(
                client_max_version(V(*hello), list.as_deref()),
                V(*want),
                "hello {hello:#06x} list {list:?}"
            );
        }
    }

    #[test]
    fn negotiated_table() {
        use Version as V;
        assert_eq!(negotiated_version(V(0x0303), Some(V(0x0304))), V::TLS13);
        assert_eq!(negotiated_version(V(0x0303), None), V::TLS12);
        assert_eq!(negotiated_version(V(0x0301), None), V::TLS10);
        assert_eq!(negotiated_version(V(0x0303), Some(V(0x7f17))), V::TLS13);
        assert_eq!(negotiated_version(V(0x0303), Some(V(0x3a3a))), V::TLS12);
    }

    #[test]
    fn below_minimum() {
        assert!(is_below(Version::TLS11, Version::TLS12));
        assert!(is_below(Version::SSL2, Version::TLS12));
        assert!(!is_below(Version::TLS12, Version::TLS12));
        assert!(!is_below(Version(0x7f1c), Version::TLS12));
        assert!(!is_below(Version(0xfb1a), Version::TLS12));
        assert!(!is_below(Version(0x0100), Version::TLS12));
    }

    #[test]
    fn version_classes() {
        let table = [
            (0x0002, "SSLv2"),
            (0x0301, "TLSv1.0"),
            (0x7f17, "TLSv1.3"),
            (0x0305, "other"),
            (0x0a0a, "other"),
            (0xfb1a, "other"),
        ];
        for (raw, name) in table {
            assert_eq!(Version(raw).class().as_str(), name, "{raw:#06x}");
        }
        assert_eq!(VersionClass::of(None).as_str(), "unknown");
        for (i, c) in VersionClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[test]
    fn above_offer_table() {
        use Version as V;
        assert!(above_offer(V::TLS13, V::TLS10));
        assert!(above_offer(V::TLS12, V::TLS11));
        assert!(!above_offer(V::TLS10, V::TLS12));
        assert!(!above_offer(V::TLS12, V::TLS12));
        assert!(!above_offer(V(0xfb1a), V::TLS10));
    }

    #[test]
    fn parse_user_forms() {
        assert_eq!(Version::parse_user("TLSv1.2"), Some(Version::TLS12));
        assert_eq!(Version::parse_user("tls1.0"), Some(Version::TLS10));
        assert_eq!(Version::parse_user("1.3"), Some(Version::TLS13));
        assert_eq!(Version::parse_user("SSLv3"), Some(Version::SSL3));
        assert_eq!(Version::parse_user("0x0302"), Some(Version::TLS11));
        assert_eq!(Version::parse_user("TLS 9"), None);
        assert_eq!(Version::parse_user("0xzz"), None);
    }
}
