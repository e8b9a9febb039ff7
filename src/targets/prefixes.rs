//! Target address prefixes: `--target-cidr` and the `Storage` prefixes of
//! Microsoft's Azure Service Tags JSON (`--azure-service-tags`).
//!
//! Input: CIDR strings (`20.60.0.0/16`, `2603:1000::/47`) and the Service Tags
//! file. Output: an immutable set answering "is this server address a
//! target?". Invariants: prefixes are stored as merged, sorted, non-overlapping
//! inclusive ranges per family, so a lookup is one binary search and memory is
//! proportional to the number of distinct ranges (the whole public file has
//! about 60k prefixes; `Storage` alone about 3k). Host bits set in a prefix
//! (`10.1.2.3/8`) are an error, as in `ip route`: a typo must not silently
//! widen the target set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// Parses `addr/len` (or a bare address, a host prefix).
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let s = s.trim();
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{s:?} is not an IP prefix (e.g. 20.60.0.0/16 or 2603:1000::/47)"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("{s:?}: prefix length must be 0 to {max}")),
        },
    };
    let host_bits_set = match ip {
        IpAddr::V4(a) => len < 32 && u32::from(a) & (u32::MAX >> len) != 0,
        IpAddr::V6(a) => len < 128 && u128::from(a) & (u128::MAX >> len) != 0,
    };
    if host_bits_set {
        return Err(format!(
            "{s:?}: host bits are set (did you mean {}/{len}?)",
            network(ip, len)
        ));
    }
    Ok((ip, len))
}

fn network(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// Sorts ranges and joins the overlapping and adjacent ones (`succ`: the next
/// value, `None` at the family's last address).
fn merge<T: Copy + Ord>(mut r: Vec<(T, T)>, succ: fn(T) -> Option<T>) -> Vec<(T, T)> {
    r.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(r.len());
    for (lo, hi) in r {
        match out.last_mut() {
            Some(last) if succ(last.1).is_none_or(|n| lo <= n) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

impl PrefixSet {
    /// Builds the set from validated prefixes.
    pub fn from_prefixes(prefixes: impl IntoIterator<Item = (IpAddr, u8)>) -> PrefixSet {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (ip, len) in prefixes {
            match ip {
                IpAddr::V4(a) => {
                    let lo = u32::from(a);
                    let hi = lo | u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                    v4.push((lo, hi));
                }
                IpAddr::V6(a) => {
                    let lo = u128::from(a);
                    let hi = lo | u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                    v6.push((lo, hi));
                }
            }
        }
        PrefixSet {
            v4: merge(v4, |x: u32| x.checked_add(1)),
            v6: merge(v6, |x: u128| x.checked_add(1)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Distinct ranges after merging (for the startup log line).
    pub fn ranges(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        fn find<T: Ord + Copy>(r: &[(T, T)], x: T) -> bool {
            let i = r.partition_point(|&(lo, _)| lo <= x);
            i > 0 && x <= r[i - 1].1
        }
        match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => find(&self.v4, u32::from(v4)),
                None => find(&self.v6, u128::from(a)),
            },
        }
    }
}

/// The prefixes of the Service Tags whose name is one of `tags` (exact,
/// case-insensitive), or, when `tags` is empty, of every tag named after one
/// of `families` or `<family>.<region>` (the chosen services' tags, e.g.
/// `Storage` and `Storage.WestEurope`). Errors name the file and what is
/// wrong with it.
pub fn service_tag_prefixes(
    path: &Path,
    tags: &[String],
    families: &[&str],
) -> Result<Vec<(IpAddr, u8)>, String> {
    Ok(tagged_prefixes(path, tags, families)?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// The family of a Service Tag name: the index in `families` of `Storage`
/// for `Storage` and `Storage.WestEurope`; `None` for a tag of no family.
fn family_of(name: &str, families: &[&str]) -> Option<usize> {
    families.iter().position(|f| {
        name.eq_ignore_ascii_case(f)
            || (name.len() > f.len() + 1
                && name.as_bytes()[f.len()] == b'.'
                && name[..f.len()].eq_ignore_ascii_case(f))
    })
}

/// A prefix of a Service Tag, with its tag's family (see [`tagged_prefixes`]).
pub type TaggedPrefix = (Option<usize>, (IpAddr, u8));

/// As [`service_tag_prefixes`], each prefix with the index in `families`
/// of its tag's family (`None`: a tag named with `--service-tag` that is
/// of no chosen service's family).
pub fn tagged_prefixes(
    path: &Path,
    tags: &[String],
    families: &[&str],
) -> Result<Vec<TaggedPrefix>, String> {
    #[derive(serde::Deserialize)]
    struct File {
        values: Vec<Value>,
    }
    #[derive(serde::Deserialize)]
    struct Value {
        name: String,
        properties: Properties,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Properties {
        #[serde(default)]
        address_prefixes: Vec<String>,
    }
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if meta.len() > 64 << 20 {
        return Err(format!(
            "{shown}: {} bytes; a Service Tags file is a few MB (limit 64 MiB)",
            meta.len()
        ));
    }
    let text = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    let file: File = serde_json::from_slice(&text).map_err(|e| {
        format!("{shown}: not a Service Tags file (expected {{\"values\": [{{\"name\", \"properties\": {{\"addressPrefixes\"}}}}]}}): {e}")
    })?;
    let wanted = |name: &str| {
        if tags.is_empty() {
            family_of(name, families).is_some()
        } else {
            tags.iter().any(|t| t.eq_ignore_ascii_case(name))
        }
    };
    let mut found = vec![false; tags.len()];
    let mut out = Vec::new();
    for v in &file.values {
        if !wanted(&v.name) {
            continue;
        }
        for (i, t) in tags.iter().enumerate() {
            found[i] |= t.eq_ignore_ascii_case(&v.name);
        }
        let family = family_of(&v.name, families);
        for p in &v.properties.address_prefixes {
            let prefix = parse_cidr(p).map_err(|e| format!("{shown}: tag {}: {e}", v.name))?;
            out.push((family, prefix));
        }
    }
    if let Some(i) = found.iter().position(|f| !f) {
        return Err(format!(
            "{shown}: no service tag named {:?} (e.g. Storage, Storage.WestEurope)",
            tags[i]
        ));
    }
    if out.is_empty() {
        return Err(format!(
            "{shown}: the Storage tags list no address prefixes"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(p: &[&str]) -> PrefixSet {
        PrefixSet::from_prefixes(p.iter().map(|s| parse_cidr(s).unwrap()))
    }

    #[test]
    fn prefixes_contain() {
        let s = set(&[
            "20.60.0.0/16",
            "20.61.0.0/16",
            "52.239.148.0/27",
            "2603:1000::/47",
        ]);
        assert_eq!(s.ranges(), 3, "adjacent /16s merge");
        for yes in [
            "20.60.0.0",
            "20.61.255.255",
            "52.239.148.31",
            "2603:1000:1:ffff::1",
            "::ffff:20.60.1.1",
        ] {
            assert!(s.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in [
            "20.59.255.255",
            "20.62.0.0",
            "52.239.148.32",
            "2603:1000:2::",
            "10.0.0.1",
            "::1",
        ] {
            assert!(!s.contains(no.parse().unwrap()), "{no}");
        }
    }

    #[test]
    fn prefixes_edges() {
        let all = set(&["0.0.0.0/0", "::/0"]);
        assert!(all.contains("255.255.255.255".parse().unwrap()));
        assert!(all.contains("ffff::".parse().unwrap()));
        let host = set(&["192.0.2.7", "192.0.2.7/32", "2001:db8::1/128"]);
        assert_eq!(host.ranges(), 2);
        assert!(host.contains("192.0.2.7".parse().unwrap()));
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        assert!(PrefixSet::default().is_empty());
        assert!(!PrefixSet::default().contains("1.1.1.1".parse().unwrap()));
        // Overlapping and nested prefixes merge.
        assert_eq!(
            set(&["10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8"]).ranges(),
            1
        );
    }

    #[test]
    fn prefixes_bad() {
        for bad in [
            "10.1.2.3/8",
            "10.0.0.0/33",
            "2001:db8::1/64",
            "blob",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
        assert!(parse_cidr("10.1.2.3/8").unwrap_err().contains("10.0.0.0/8"));
    }

    fn tags_file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    const TAGS: &str = r#"{"changeNumber": 1, "cloud": "Public", "values": [
        {"name": "AzureCloud", "id": "AzureCloud", "properties": {"addressPrefixes": ["1.0.0.0/8"]}},
        {"name": "Storage", "id": "Storage", "properties": {"region": "", "addressPrefixes": ["20.60.0.0/16", "2603:1000::/47"]}},
        {"name": "Storage.WestEurope", "id": "Storage.WestEurope", "properties": {"region": "westeurope", "addressPrefixes": ["20.60.0.0/24"]}},
        {"name": "Storage.EastUS", "id": "Storage.EastUS", "properties": {"addressPrefixes": ["52.239.152.0/22"]}},
        {"name": "StorageSyncService", "id": "StorageSyncService", "properties": {"addressPrefixes": ["9.0.0.0/8"]}}
    ]}"#;

    #[test]
    fn service_tags_storage_by_default() {
        let f = tags_file(TAGS);
        let s =
            PrefixSet::from_prefixes(service_tag_prefixes(f.path(), &[], &["Storage"]).unwrap());
        assert!(s.contains("20.60.200.1".parse().unwrap()));
        assert!(s.contains("52.239.153.1".parse().unwrap()));
        assert!(
            !s.contains("1.2.3.4".parse().unwrap()),
            "AzureCloud is not Storage"
        );
        assert!(
            !s.contains("9.1.1.1".parse().unwrap()),
            "StorageSyncService is not Storage"
        );
    }

    #[test]
    fn service_tags_chosen_region() {
        let f = tags_file(TAGS);
        let tags = vec!["storage.westeurope".to_string()];
        let s =
            PrefixSet::from_prefixes(service_tag_prefixes(f.path(), &tags, &["Storage"]).unwrap());
        assert!(s.contains("20.60.0.9".parse().unwrap()));
        assert!(!s.contains("20.60.1.9".parse().unwrap()));
        let e = service_tag_prefixes(f.path(), &["Storage.Mars".to_string()], &["Storage"])
            .unwrap_err();
        assert!(e.contains("Storage.Mars"), "{e}");
    }

    #[test]
    fn service_tags_bad_files() {
        for (text, says) in [
            ("", "not a Service Tags file"),
            ("{\"values\": 3}", "not a Service Tags file"),
            ("{\"values\": []}", "no address prefixes"),
            (
                r#"{"values": [{"name": "Storage", "properties": {"addressPrefixes": ["20.60.0.1/16"]}}]}"#,
                "host bits",
            ),
        ] {
            let f = tags_file(text);
            let e = service_tag_prefixes(f.path(), &[], &["Storage"]).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
        let e = service_tag_prefixes(Path::new("/nonexistent/tags.json"), &[], &["Storage"])
            .unwrap_err();
        assert!(e.contains("/nonexistent/tags.json"), "{e}");
    }
}
