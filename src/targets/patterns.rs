//! Target server-name patterns: which TLS flows the census is about.
//!
//! Input: patterns (`*.blob.core.windows.net`, `storage.example.com`) and server
//! names from ClientHellos. Output: match or not. Matching is ASCII
//! case-insensitive and ignores one trailing dot on either side; a leading `*.`
//! matches one or more labels, so `*.blob.core.windows.net` matches
//! `acct.blob.core.windows.net` and `acct.privatelink.blob.core.windows.net` but
//! not `blob.core.windows.net` itself.

/// The default targets: Azure Blob Storage endpoints in every cloud.
pub const DEFAULT_TARGETS: [&str; 4] = [
    "*.blob.core.windows.net",
    "*.blob.core.usgovcloudapi.net",
    "*.blob.core.chinacloudapi.cn",
    "*.blob.storage.azure.net",
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// `*.suffix`: stored as `.suffix`, lower case.
    Suffix(String),
    Exact(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSet {
    patterns: Vec<Pattern>,
}

impl TargetSet {
    pub fn defaults() -> Self {
        TargetSet::parse(DEFAULT_TARGETS.iter().copied()).unwrap_or(TargetSet {
            patterns: Vec::new(),
        })
    }

    /// How many patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Parses patterns; a `*` anywhere but a leading `*.` is an error.
    pub fn parse<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut out = Vec::new();
        for p in patterns {
            let raw = p.trim();
            let lower = raw.trim_end_matches('.').to_ascii_lowercase();
            let (suffix, rest) = match lower.strip_prefix("*.") {
                Some(rest) => (true, rest.to_string()),
                None => (false, lower.clone()),
            };
            if rest.is_empty()
                || rest.contains('*')
                || rest.starts_with('.')
                || rest.contains("..")
                || !rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            {
                return Err(format!(
                    "target pattern {raw:?}: use a host name, optionally with a leading '*.' (e.g. '*.blob.core.windows.net')"
                ));
            }
            out.push(if suffix {
                Pattern::Suffix(format!(".{rest}"))
            } else {
                Pattern::Exact(rest)
            });
        }
        Ok(TargetSet { patterns: out })
    }

    pub fn matches(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name);
        self.patterns.iter().any(|p| match p {
            Pattern::Exact(e) => name.eq_ignore_ascii_case(e),
            Pattern::Suffix(s) => has_suffix(name, s),
        })
    }

    /// Whether a name from a server certificate (subject CN or dNSName SAN)
    /// says the server is a target. A plain name is matched like an SNI. A
    /// wildcard `*.R` (RFC 6125: the `*` stands for exactly one label) covers
    /// every host `L.R`; it matches when every such host matches a target, i.e.
    /// a `*.S` pattern with `R` equal to `S` or inside it. It never matches an
    /// exact pattern: the certificate covers that name and any other, so it
    /// does not tell which one the client wanted. Other `*` forms never match.
    pub fn matches_certificate_name(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name);
        let Some(rest) = name.strip_prefix("*.") else {
            return !name.contains('*') && self.matches(name);
        };
        if rest.is_empty() || rest.contains('*') {
            return false;
        }
        self.patterns.iter().any(|p| match p {
            Pattern::Exact(_) => false,
            // `s` is `.suffix`: R == suffix, or R ends with `.suffix`.
            Pattern::Suffix(s) => rest.eq_ignore_ascii_case(&s[1..]) || has_suffix(rest, s),
        })
    }
}

/// `name` as a lookup key: lowercase, without a trailing dot; borrowed when
/// it already is one (most server names are), so looking a name up does not
/// copy it.
pub fn name_key(name: &str) -> std::borrow::Cow<'_, str> {
    lowercase(name.strip_suffix('.').unwrap_or(name))
}

/// `name` in lowercase, borrowed when it already is.
pub fn lowercase(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// `name` is longer than `suffix` and ends with it, ASCII case-insensitively.
fn has_suffix(name: &str, suffix: &str) -> bool {
    name.len() > suffix.len()
        && name.is_char_boundary(name.len() - suffix.len())
        && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// The Azure Storage account a storage endpoint name belongs to: the first
/// label of `<account>.blob.core.windows.net`, of the private-endpoint form
/// `<account>.privatelink.blob.core.windows.net` and of the DNS-zone form
/// `<account>.z<NN>.blob.storage.azure.net` (in every cloud; also `-secondary`
/// names, whose account is the part before it). `None` for other names.
pub fn account_of(name: &str) -> Option<&str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    // (a byte search: `split_once` with a char costs several times as much
    // on names this short, and this runs per event)
    let dot = name.bytes().position(|b| b == b'.')?;
    let (account, rest) = (&name[..dot], &name[dot + 1..]);
    const PRIVATE: &str = "privatelink.";
    let rest = match rest.get(..PRIVATE.len()) {
        Some(p) if p.eq_ignore_ascii_case(PRIVATE) => &rest[PRIVATE.len()..],
        _ => rest,
    };
    let service = DEFAULT_TARGETS.iter().any(|t| {
        let suffix = &t[2..];
        rest.eq_ignore_ascii_case(suffix)
            || (suffix == "blob.storage.azure.net"
                && rest.split_once('.').is_some_and(|(zone, r)| {
                    r.eq_ignore_ascii_case(suffix)
                        && zone
                            .as_bytes()
                            .first()
                            .is_some_and(|b| b.eq_ignore_ascii_case(&b'z'))
                }))
    });
    let account = account.strip_suffix("-secondary").unwrap_or(account);
    // Account names: 3 to 24 lower-case letters and digits.
    (service
        && (3..=24).contains(&account.len())
        && account.bytes().all(|b| b.is_ascii_alphanumeric()))
    .then_some(account)
}

#[cfg(test)]
mod tests {
    #[test]
    fn storage_account_names() {
        for (name, want) in [
            ("acct.blob.core.windows.net", Some("acct")),
            ("Acct01.BLOB.core.windows.net.", Some("Acct01")),
            ("acct-secondary.blob.core.windows.net", Some("acct")),
            ("acct.privatelink.blob.core.windows.net", Some("acct")),
            ("acct.blob.core.usgovcloudapi.net", Some("acct")),
            ("acct.blob.core.chinacloudapi.cn", Some("acct")),
            ("acct.z13.blob.storage.azure.net", Some("acct")),
            ("acct.PrivateLink.Blob.core.windows.net", Some("acct")),
            ("acct.Z13.BLOB.storage.azure.net", Some("acct")),
            ("acct.privatelink", None),
            ("acct.privatelink.", None),
            ("acct.x13.blob.storage.azure.net", None),
            ("acct.privatelinké.blob.core.windows.net", None),
            ("acct.file.core.windows.net", None),
            ("blob.ams23prdstr02a.store.core.windows.net", None),
            ("a.blob.core.windows.net", None),
            ("storage.example.com", None),
            ("blob.core.windows.net", None),
            ("", None),
        ] {
            assert_eq!(super::account_of(name), want, "{name}");
        }
    }

    use super::*;

    #[test]
    fn default_targets() {
        let t = TargetSet::defaults();
        for yes in [
            "acct.blob.core.windows.net",
            "ACCT.BLOB.CORE.WINDOWS.NET",
            "acct.blob.core.windows.net.",
            "acct-secondary.blob.core.windows.net",
            "acct.privatelink.blob.core.windows.net",
            "acct.blob.core.usgovcloudapi.net",
            "acct.blob.core.chinacloudapi.cn",
            "acct.z7.blob.storage.azure.net",
        ] {
            assert!(t.matches(yes), "{yes}");
        }
        for no in [
            "blob.core.windows.net",
            "acct.file.core.windows.net",
            "acct.blob.core.windows.net.evil.com",
            "xblob.core.windows.net",
            "",
            "ü.blob.core.windows.nét",
        ] {
            assert!(!t.matches(no), "{no}");
        }
    }

    #[test]
    fn exact_and_suffix() {
        let t = TargetSet::parse(["Storage.Example.com.", "*.corp"]).unwrap();
        assert!(t.matches("storage.example.com"));
        assert!(!t.matches("x.storage.example.com"));
        assert!(t.matches("a.b.corp"));
        assert!(!t.matches("corp"));
    }

    #[test]
    fn certificate_names() {
        let t = TargetSet::parse(["*.blob.core.windows.net", "storage.example.com"]).unwrap();
        for (name, want) in [
            ("*.blob.core.windows.net", true),
            ("*.BLOB.core.windows.net.", true),
            ("*.privatelink.blob.core.windows.net", true),
            ("*.z13.blob.storage.azure.net", false),
            ("acct.blob.core.windows.net", true),
            ("*.core.windows.net", false),
            ("*.windows.net", false),
            ("*.file.core.windows.net", false),
            ("blob.core.windows.net", false),
            ("storage.example.com", true),
            ("*.example.com", false),
            ("a*.blob.core.windows.net", false),
            ("*.*.blob.core.windows.net", false),
            ("*.", false),
            ("*", false),
            ("", false),
            ("*.ü.blob.core.windows.net", true),
            ("*.xblob.core.windows.net", false),
        ] {
            assert_eq!(t.matches_certificate_name(name), want, "{name}");
        }
    }

    #[test]
    fn bad_patterns() {
        for bad in ["", "*", "*.", "a*.b", "foo..bar", "*.*.x", "a b"] {
            assert!(TargetSet::parse([bad]).is_err(), "{bad:?}");
        }
    }
}
