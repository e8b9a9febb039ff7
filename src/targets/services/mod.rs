//! Service presets: Microsoft services, their endpoint names and the day
//! each stops accepting TLS 1.0 and 1.1.
//!
//! Input: `--services LIST` (names of rows, `storage` for every Storage
//! row, `microsoft` for all). Output: the target patterns of the chosen
//! rows, the Service Tag names for SNI-less matching, and for a target name
//! its service and destination (the first label under the service's
//! suffix). Invariants: service names are a closed set (the table's, plus
//! `other` for a `--target` pattern no row covers), so they can label
//! metrics; a date is judged against a flow's capture time, never the wall
//! clock; each row names its public source.

use std::borrow::Cow;
use std::sync::Arc;

/// One service: its name (a metric label), what it is, its endpoint
/// suffixes (public and sovereign clouds; `privatelink.` forms match
/// because a suffix matches one or more labels), its Service Tags, the day
/// TLS 1.0/1.1 ends, and where that day is published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: &'static str,
    pub title: &'static str,
    pub suffixes: &'static [&'static str],
    /// Endpoints that are names of their own (`login.microsoftonline.com`),
    /// matched exactly.
    pub exact: &'static [&'static str],
    pub service_tags: &'static [&'static str],
    /// `YYYY-MM-DD` (UTC midnight).
    pub tls_end: &'static str,
    pub source: &'static str,
}

mod builtin;

pub use builtin::BUILT_IN;

/// The table in use, once a services file was read: the built-in rows,
/// replaced and extended by the file's. Each table read is leaked once and
/// kept for the life of the process (rows are borrowed `'static` by the
/// flows in flight); a file read again with the same bytes is not read anew.
static INSTALLED: std::sync::RwLock<Option<Installed>> = std::sync::RwLock::new(None);

#[derive(Clone, Copy)]
struct Installed {
    rows: &'static [Service],
    /// A hash of the bytes of the file the rows came from.
    digest: u64,
}

/// The service table in use: the built-in rows, with a services file's rows
/// (`--services-file`) replacing and adding to them once installed.
pub fn table() -> &'static [Service] {
    installed().map_or(BUILT_IN, |i| i.rows)
}

fn installed() -> Option<Installed> {
    *crate::sync::read(&INSTALLED)
}

/// A table read from a services file, not yet in use ([`install`]).
#[derive(Clone, Debug)]
pub struct Candidate {
    rows: &'static [Service],
    digest: u64,
}

impl Candidate {
    pub fn rows(&self) -> &'static [Service] {
        self.rows
    }
}

/// Puts a table read by [`read_file`] in use.
pub fn install(c: &Candidate) {
    *crate::sync::write(&INSTALLED) = Some(Installed {
        rows: c.rows,
        digest: c.digest,
    });
}

/// Reads a services file and installs its table (`tlscensus services`).
pub fn install_file(path: &std::path::Path) -> Result<(), String> {
    install(&read_file(path)?);
    Ok(())
}

/// Rows a services file may hold at most, and endpoints per row.
pub const MAX_ROWS: usize = 64;
pub const MAX_ENDPOINTS: usize = 64;

/// One row of a services file: a built-in `name` replaces that row.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRow {
    name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    suffixes: Vec<String>,
    #[serde(default)]
    exact: Vec<String>,
    #[serde(default)]
    service_tags: Vec<String>,
    tls_end: FileDate,
    #[serde(default)]
    source: String,
}

/// `tls_end`: a string in JSON; in TOML a string or a bare local date
/// (`tls_end = 2027-05-31`).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum FileDate {
    Text(String),
    Toml(toml::value::Datetime),
}

impl FileDate {
    fn into_text(self) -> String {
        match self {
            FileDate::Text(s) => s,
            FileDate::Toml(d) => d.to_string(),
        }
    }
}

/// A TOML services file: `[[service]]` tables.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    service: Vec<FileRow>,
}

/// The rows of a services file: TOML when the name ends in `.toml` or the
/// text does not start as a JSON list does (`[` then `{` or `]`), else JSON.
fn parse_rows(path: &std::path::Path, text: &[u8]) -> Result<Vec<FileRow>, String> {
    let shown = path.display();
    let toml_named = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let mut rest = text.iter().copied().skip_while(u8::is_ascii_whitespace);
    let json_list = rest.next() == Some(b'[')
        && matches!(rest.find(|b| !b.is_ascii_whitespace()), Some(b'{' | b']'));
    if toml_named || !json_list {
        let text = std::str::from_utf8(text).map_err(|e| format!("{shown}: not UTF-8: {e}"))?;
        let file: TomlFile = toml::from_str(text)
            .map_err(|e| format!("{shown} (TOML): {}", e.to_string().trim_end()))?;
        return Ok(file.service);
    }
    serde_json::from_slice(text).map_err(|e| format!("{shown} (JSON): {e}"))
}

/// Reads a services file (a JSON list of rows, or TOML `[[service]]`
/// tables) into the table it stands for: the rows in use, with each of the
/// file's rows replacing the row of its name or added after them. A row
/// keeps its index for the life of the process (indices key the
/// per-destination readiness): a row a later file no longer holds goes back
/// to its built-in form, or stays as it was when it has none. Errors name
/// the file and the row. The file's bytes are hashed: the same bytes as the
/// table in use give that table, without reading the rows again.
pub fn read_file(path: &std::path::Path) -> Result<Candidate, String> {
    use std::hash::{BuildHasher, Hasher};
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    if text.len() > 1 << 20 {
        return Err(format!("{shown}: larger than 1 MiB"));
    }
    let mut h = ahash::RandomState::with_seeds(1, 2, 3, 4).build_hasher();
    h.write(&text);
    let digest = h.finish();
    if let Some(i) = installed().filter(|i| i.digest == digest) {
        return Ok(Candidate {
            rows: i.rows,
            digest,
        });
    }
    let rows = parse_rows(path, &text)?;
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let leak_all = |v: Vec<String>| -> &'static [&'static str] {
        Vec::leak(
            v.into_iter()
                .map(|s| leak(s.trim().trim_start_matches("*.").to_ascii_lowercase()))
                .collect(),
        )
    };
    // The rows in use, each file row back to its built-in form.
    let mut out: Vec<Service> = table()
        .iter()
        .map(|r| {
            BUILT_IN
                .iter()
                .find(|b| b.name == r.name)
                .unwrap_or(r)
                .clone()
        })
        .collect();
    for (n, r) in rows.into_iter().enumerate() {
        let at = format!("{shown}: row {} ({:?})", n + 1, r.name);
        let name = r.name.trim().to_ascii_lowercase();
        if name.is_empty()
            || name == OTHER
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "{at}: a name is lower-case letters, digits and '-', not \"other\""
            ));
        }
        let tls_end = r.tls_end.into_text();
        if days_of(&tls_end).is_none() {
            return Err(format!("{at}: tls_end {tls_end:?} is not YYYY-MM-DD"));
        }
        if r.suffixes.is_empty() && r.exact.is_empty() {
            return Err(format!("{at}: no suffixes or exact names"));
        }
        if r.suffixes.len() + r.exact.len() > MAX_ENDPOINTS {
            return Err(format!("{at}: more than {MAX_ENDPOINTS} endpoints"));
        }
        let patterns: Vec<String> = r
            .suffixes
            .iter()
            .map(|x| format!("*.{}", x.trim().trim_start_matches("*.")))
            .chain(r.exact.iter().cloned())
            .collect();
        crate::targets::patterns::TargetSet::parse(patterns.iter().map(String::as_str))
            .map_err(|e| format!("{at}: {e}"))?;
        let row = Service {
            name: leak(name.clone()),
            title: leak(if r.title.is_empty() {
                name.clone()
            } else {
                r.title
            }),
            suffixes: leak_all(r.suffixes),
            exact: leak_all(r.exact),
            service_tags: Vec::leak(r.service_tags.into_iter().map(leak).collect()),
            tls_end: leak(tls_end),
            source: leak(if r.source.is_empty() {
                format!("{shown}")
            } else {
                r.source
            }),
        };
        match out.iter().position(|s| s.name == row.name) {
            Some(i) => out[i] = row,
            None if out.len() < MAX_ROWS => out.push(row),
            None => return Err(format!("{at}: more than {MAX_ROWS} services in all")),
        }
    }
    Ok(Candidate {
        rows: Vec::leak(out),
        digest,
    })
}

/// The label of a target no row covers (a `--target` pattern of its own).
pub const OTHER: &str = "other";

/// The rows `--services` names: row names, `storage` (every `storage-*`
/// row), `microsoft` (all); an unknown name is an error naming the choices.
pub fn select(list: &str) -> Result<Vec<usize>, String> {
    select_in(table(), list)
}

/// [`select`] in the table `rows`.
pub fn select_in(rows: &[Service], list: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let word = word.to_ascii_lowercase();
        let picked: Vec<usize> = match word.as_str() {
            "microsoft" | "all" => (0..rows.len()).collect(),
            "storage" => (0..rows.len())
                .filter(|&i| rows[i].name.starts_with("storage-"))
                .collect(),
            "blob" => vec![0],
            w => match rows.iter().position(|s| s.name == w) {
                Some(i) => vec![i],
                None => {
                    let names: Vec<&str> = rows.iter().map(|s| s.name).collect();
                    return Err(format!(
                        "{word:?} is not a service: one of {}, storage, microsoft (tlscensus services lists them)",
                        names.join(", ")
                    ));
                }
            },
        };
        for i in picked {
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    if out.is_empty() {
        return Err("no service named".into());
    }
    Ok(out)
}

/// The service a (lower-case, trailing-dot-free) target name belongs to,
/// among `chosen` rows: the row with the longest matching suffix.
pub fn service_of(name: &str, chosen: &[usize]) -> Option<usize> {
    let name = name.strip_suffix('.').unwrap_or(name);
    chosen
        .iter()
        .filter_map(|&i| {
            let s = &table()[i];
            let exact = s.exact.iter().any(|e| e.eq_ignore_ascii_case(name));
            s.suffixes
                .iter()
                .filter(|x| under(name, x))
                .map(|x| x.len())
                .max()
                .or(exact.then_some(usize::MAX))
                .map(|len| (len, i))
        })
        .max()
        .map(|(_, i)| i)
}

/// `name` is one or more labels under `suffix` (case-insensitive).
fn under(name: &str, suffix: &str) -> bool {
    let (n, x) = (name.as_bytes(), suffix.as_bytes());
    // Names are nearly always lower case already: a byte compare first.
    n.len() > x.len() + 1
        && n[n.len() - x.len() - 1] == b'.'
        && (n.ends_with(x) || n[n.len() - x.len()..].eq_ignore_ascii_case(x))
}

/// The target patterns of a service: `*.suffix` and the exact names.
pub fn patterns(s: &Service) -> impl Iterator<Item = String> + '_ {
    s.suffixes
        .iter()
        .map(|x| format!("*.{x}"))
        .chain(s.exact.iter().map(|e| e.to_string()))
}

/// The destination a target name names under its service: the first label
/// (`acct` of `acct.privatelink.blob.core.windows.net`, `srv` of
/// `srv.database.windows.net`, `mi` of `mi.dns-zone.database.windows.net`),
/// lower case; for a name no row covers, the name itself.
pub fn destination_of(name: &str) -> Cow<'_, str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let part = if name.starts_with("*.") {
        name // a certificate's wildcard names no one destination
    } else {
        match name.split_once('.') {
            Some((first, _)) if !first.is_empty() => first,
            _ => name,
        }
    };
    lower(part)
}

/// `s` in lower case, borrowed when it already is.
fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// Server names a [`Classifier`] remembers before it starts over.
pub const CLASSIFIER_CAP: usize = 4096;

/// One worker's memo of [`classify`] for server names: a census meets the
/// same few accounts again and again, and a lookup costs a hash of the name
/// where classifying walks every chosen row's suffixes. Owned by one
/// worker; at [`CLASSIFIER_CAP`] names it is emptied (a cache: nothing is
/// lost, the next flows classify again).
pub struct Classifier {
    chosen: Vec<usize>,
    /// Service Tag prefixes that name one chosen service each.
    by_address: Arc<Vec<(usize, crate::targets::prefixes::PrefixSet)>>,
    names: NameMemo<String>,
    /// Flows without a name: their destination is the server address.
    addrs: NameMemo<std::net::IpAddr>,
}

type NameMemo<K> = hashbrown::HashMap<K, (Option<usize>, Arc<str>), ahash::RandomState>;

impl Classifier {
    pub fn new(
        chosen: &[usize],
        by_address: Arc<Vec<(usize, crate::targets::prefixes::PrefixSet)>>,
    ) -> Self {
        Classifier {
            chosen: chosen.to_vec(),
            by_address,
            names: NameMemo::default(),
            addrs: NameMemo::default(),
        }
    }

    /// [`classify`] with this worker's chosen services.
    pub fn classify(
        &mut self,
        name: Option<&str>,
        server: std::net::IpAddr,
    ) -> (Option<usize>, Arc<str>) {
        let chosen = &self.chosen;
        let (service, destination) = match name {
            Some(name) => {
                if self.names.len() >= CLASSIFIER_CAP {
                    self.names.clear();
                }
                self.names.entry_ref(name).or_insert_with(|| {
                    let (service, destination) = classify(chosen, Some(name), server);
                    (service, destination.into_owned().into())
                })
            }
            None => {
                if self.addrs.len() >= CLASSIFIER_CAP {
                    self.addrs.clear();
                }
                let by_address = &self.by_address;
                self.addrs.entry(server).or_insert_with(|| {
                    let (service, destination) = classify(chosen, None, server);
                    // The Service Tags say whose address it is, when only
                    // one chosen service's tags hold it.
                    let mut tagged = by_address.iter().filter(|(_, set)| set.contains(server));
                    let service = match (tagged.next(), tagged.next()) {
                        (Some((i, _)), None) => Some(*i),
                        _ => service,
                    };
                    (service, destination.into_owned().into())
                })
            }
        };
        (*service, Arc::clone(destination))
    }
}

/// A target flow's service (`None`: a `--target` pattern no chosen row
/// covers, labelled `other`) and destination, from how it matched: the
/// target name it led to, or for a `cidr` match the server address (and the
/// service, when only one is chosen).
pub fn classify<'a>(
    chosen: &[usize],
    name: Option<&'a str>,
    server: std::net::IpAddr,
) -> (Option<usize>, Cow<'a, str>) {
    match name {
        Some(n) => {
            let n = n.strip_prefix("*.").unwrap_or(n);
            let service = service_of(n, chosen).or_else(|| {
                // A certificate's wildcard (`*.blob.core.windows.net`) is the suffix itself.
                chosen.iter().copied().find(|&i| {
                    table()[i]
                        .suffixes
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(n))
                })
            });
            // An endpoint that is a name of its own is its own destination.
            let bare = n.strip_suffix('.').unwrap_or(n);
            let own = service.is_some_and(|i| {
                table()[i]
                    .exact
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(bare))
            });
            let destination = if own {
                lower(bare)
            } else {
                destination_of(name.unwrap_or(n))
            };
            (service, destination)
        }
        None => {
            let service = match chosen {
                [one] => Some(*one),
                _ => None,
            };
            (service, Cow::Owned(server.to_string()))
        }
    }
}

/// The label of a service index (`other` for `None`).
pub fn label(service: Option<usize>) -> &'static str {
    service
        .and_then(|i| table().get(i))
        .map_or(OTHER, |s| s.name)
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian).
pub fn days_of(date: &str) -> Option<i64> {
    let (y, m, d) = match *date.as_bytes() {
        // The usual form, read without splitting (this runs per event).
        [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1]
            if [y0, y1, y2, y3, m0, m1, d0, d1]
                .iter()
                .all(u8::is_ascii_digit) =>
        {
            let n = |b: &[u8]| b.iter().fold(0i64, |a, b| a * 10 + i64::from(b - b'0'));
            (n(&[y0, y1, y2, y3]), n(&[m0, m1]), n(&[d0, d1]))
        }
        _ => {
            let mut parts = date.split('-');
            let ymd = (
                parts.next()?.parse::<i64>().ok()?,
                parts.next()?.parse::<i64>().ok()?,
                parts.next()?.parse::<i64>().ok()?,
            );
            if parts.next().is_some() {
                return None;
            }
            ymd
        }
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

impl Service {
    /// The end day as nanoseconds since the epoch (UTC midnight).
    pub fn tls_end_ns(&self) -> u64 {
        days_of(self.tls_end).map_or(u64::MAX, |d| (d.max(0) as u64) * 86_400 * 1_000_000_000)
    }

    /// Whether capture time `ts_ns` is on or after the end day; `None`
    /// without a capture time (0: pcapng Simple Packet Blocks carry none).
    pub fn broken_at(&self, ts_ns: u64) -> Option<bool> {
        (ts_ns != 0).then(|| ts_ns >= self.tls_end_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifier_remembers_what_classify_says() {
        let chosen = select("microsoft").unwrap();
        let mut c = Classifier::new(&chosen, Default::default());
        let server = std::net::IpAddr::from([192, 0, 2, 1]);
        let names = [
            "Acct.blob.core.windows.net",
            "acct.blob.core.windows.net.",
            "*.blob.core.windows.net",
            "blob.core.windows.net",
            "srv.database.windows.net",
            "login.microsoftonline.com",
            "example.org",
        ];
        for round in 0..3 {
            for n in names {
                let want = classify(&chosen, Some(n), server);
                let (svc, dest) = c.classify(Some(n), server);
                assert_eq!((svc, &*dest), (want.0, &*want.1), "{n} round {round}");
            }
        }
        for i in 0..CLASSIFIER_CAP + 10 {
            let n = format!("a{i}.queue.core.windows.net");
            let (svc, dest) = c.classify(Some(&n), server);
            let want = classify(&chosen, Some(&n), server);
            assert_eq!((svc, &*dest), (want.0, &*want.1));
        }
        assert!(c.names.len() <= CLASSIFIER_CAP);
        let other = std::net::IpAddr::from([192, 0, 2, 2]);
        for addr in [other, server] {
            let (svc, dest) = c.classify(None, addr);
            let want = classify(&chosen, None, addr);
            assert_eq!((svc, &*dest), (want.0, &*want.1));
        }
    }

    /// An endpoint that is the apex name of its row (Resource Manager's
    /// `management.azure.com`) is matched, as are the names under it.
    #[test]
    fn apex_endpoints_match() {
        let chosen = select("microsoft").unwrap();
        let server = std::net::IpAddr::from([192, 0, 2, 1]);
        let arm = table().iter().position(|s| s.name == "arm");
        for (n, dest) in [
            ("management.azure.com", "management.azure.com"),
            ("Management.Azure.com.", "management.azure.com"),
            (
                "management.usgovcloudapi.net",
                "management.usgovcloudapi.net",
            ),
            ("eastus.management.azure.com", "eastus"),
        ] {
            let (service, destination) = classify(&chosen, Some(n), server);
            assert_eq!(service, arm, "{n}");
            assert_eq!(destination, dest, "{n}");
        }
        assert_eq!(
            classify(&chosen, Some("xmanagement.azure.com"), server).0,
            None
        );
    }

    #[test]
    fn services_files_in_json_and_toml() {
        let p = std::path::Path::new;
        let toml = "# on-premises\n[[service]]\nname = \"onprem\"\nexact = [\"sql.corp.example\"]\ntls_end = 2027-01-01\n\n[[service]]\nname = \"b\"\nsuffixes = [\"b.example\"]\ntls_end = \"2026-02-03\"\n";
        for name in ["s.toml", "s.conf"] {
            let rows = parse_rows(p(name), toml.as_bytes()).unwrap();
            let got: Vec<(String, String)> = rows
                .into_iter()
                .map(|r| (r.name, r.tls_end.into_text()))
                .collect();
            assert_eq!(
                got,
                [
                    ("onprem".into(), "2027-01-01".into()),
                    ("b".into(), "2026-02-03".into())
                ]
            );
        }
        let json = r#" [ {"name": "j", "exact": ["j.example"], "tls_end": "2027-01-01"} ]"#;
        for name in ["s.json", "s.conf"] {
            let rows = parse_rows(p(name), json.as_bytes()).unwrap();
            assert_eq!(rows[0].name, "j");
        }
        assert!(parse_rows(p("e.json"), b" [ ] ").unwrap().is_empty());
        let err = parse_rows(p("s.toml"), b"[[service]]\nname = \"x\"\ncolour = 1\n")
            .err()
            .unwrap();
        assert!(
            err.contains("s.toml (TOML)") && err.contains("colour"),
            "{err}"
        );
        let err = parse_rows(p("s.json"), b"[{\"name\": 1}]").err().unwrap();
        assert!(err.contains("s.json (JSON)"), "{err}");
        assert!(parse_rows(p("s.toml"), b"\xff\xfe").is_err());
    }

    #[test]
    fn table_is_well_formed() {
        for (i, s) in table().iter().enumerate() {
            assert!(days_of(s.tls_end).is_some(), "{}", s.name);
            assert!(s.source.starts_with("https://"), "{}", s.name);
            assert!(!s.suffixes.is_empty() || !s.exact.is_empty(), "{}", s.name);
            assert_eq!(
                table().iter().position(|t| t.name == s.name),
                Some(i),
                "unique"
            );
            for suffix in s.suffixes {
                assert_eq!(
                    service_of(&format!("x.{suffix}"), &[i]),
                    Some(i),
                    "{suffix}"
                );
            }
        }
        assert_eq!(table()[0].name, "storage-blob", "`blob` and the default");
    }

    #[test]
    fn services_and_destinations() {
        let all = select("microsoft").unwrap();
        let name = |n: &str| service_of(n, &all).map(|i| table()[i].name);
        assert_eq!(name("acct.blob.core.windows.net"), Some("storage-blob"));
        assert_eq!(
            name("ACCT.privatelink.blob.core.windows.net."),
            Some("storage-blob")
        );
        assert_eq!(name("srv.database.windows.net"), Some("sql"));
        assert_eq!(name("mi.a1b2c3.database.windows.net"), Some("sql"));
        assert_eq!(name("ns.servicebus.windows.net"), Some("servicebus"));
        // The longest suffix wins: table.cosmos.azure.com is Cosmos DB's,
        // table.core.windows.net Storage's.
        assert_eq!(name("acct.table.cosmos.azure.com"), Some("cosmosdb"));
        assert_eq!(name("acct.table.core.windows.net"), Some("storage-table"));
        assert_eq!(name("blob.core.windows.net"), None, "the suffix alone");
        assert_eq!(name("evilblob.core.windows.net"), None);
        assert_eq!(
            destination_of("Acct.privatelink.blob.core.windows.net"),
            "acct"
        );
        assert_eq!(destination_of("mi.a1b2c3.database.windows.net"), "mi");
        assert_eq!(
            destination_of("*.blob.core.windows.net"),
            "*.blob.core.windows.net"
        );
    }

    #[test]
    fn selection() {
        assert_eq!(select("storage-blob").unwrap(), [0]);
        assert_eq!(select("storage").unwrap().len(), 6);
        assert_eq!(select("sql, storage-blob,sql").unwrap().len(), 2);
        assert_eq!(select("microsoft").unwrap().len(), table().len());
        let e = select("sql,bogus").unwrap_err();
        assert!(e.contains("\"bogus\" is not a service"), "{e}");
        assert!(select(" , ").is_err());
    }

    #[test]
    fn dates_judged_by_capture_time() {
        assert_eq!(days_of("1970-01-01"), Some(0));
        assert_eq!(days_of("2026-02-03"), Some(20_487));
        assert_eq!(days_of("2026-13-01"), None);
        assert_eq!(days_of("2026-2-3"), Some(20_487));
        assert_eq!(days_of("2026-02-03-01"), None);
        assert_eq!(days_of("2026-0a-03"), None);
        assert_eq!(days_of("2026-00-10"), None);
        let blob = &table()[0];
        let day = 86_400 * 1_000_000_000u64;
        assert_eq!(blob.broken_at(20_486 * day + day - 1), Some(false));
        assert_eq!(blob.broken_at(20_487 * day), Some(true));
        assert_eq!(blob.broken_at(0), None);
    }
}
