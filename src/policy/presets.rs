//! The built-in policies, each a policy file compiled in (`presets/`):
//! read by the same checks as a user's file, and printed by `tlscensus
//! policies show NAME` as a starting point for one.

use super::ServerPolicy;

/// Every preset's name and its file, in the order `tlscensus policies`
/// lists them.
pub const ALL: [(&str, &str); 6] = [
    (
        "mozilla-modern",
        include_str!("presets/mozilla-modern.toml"),
    ),
    (
        "mozilla-intermediate",
        include_str!("presets/mozilla-intermediate.toml"),
    ),
    ("nist-800-52r2", include_str!("presets/nist-800-52r2.toml")),
    ("ecdhe-aead", include_str!("presets/ecdhe-aead.toml")),
    ("tls13-only", include_str!("presets/tls13-only.toml")),
    ("pq-hybrid", include_str!("presets/pq-hybrid.toml")),
];

/// The preset named `name`.
pub fn get(name: &str) -> Option<ServerPolicy> {
    let (_, text) = ALL.iter().find(|(n, _)| *n == name)?;
    super::file::parse(&format!("preset {name}"), text).ok()
}

/// The file text of the preset named `name`.
pub fn text(name: &str) -> Option<&'static str> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_under_their_names() {
        for (name, text) in ALL {
            let p = super::super::file::parse(name, text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.name, name);
            assert!(!p.source.is_empty() && !p.title.is_empty());
            assert_eq!(get(name), Some(p));
        }
        assert_eq!(get("nope"), None);
    }
}
