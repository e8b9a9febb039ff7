//! The census' saved state (`live --state FILE`): the host inventory and the
//! per-destination readiness, so "no legacy client for 30 days" survives a
//! restart or an upgrade.
//!
//! Input: the shared inventory and destinations (to save), or a file (to
//! load). Output: JSON, versioned (`"version": 1`), written atomically
//! (temporary file and rename). Invariants: a file that cannot be read, is
//! not JSON, has another version or a record that does not parse is never
//! fatal: it is renamed aside (`FILE.damaged-<unix time>`), said, and the
//! census starts empty; loading respects the inventory's and the
//! destinations' bounds; destinations are saved by service name, so a
//! changed service table cannot mislabel them (a service no longer chosen
//! loads as `other`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::inventory::{DestinationRecord, Destinations, HostFingerprint, HostRecord, Inventory};
use crate::targets::services;
use crate::tls::Version;
use crate::tls::fingerprint::Fingerprint;

pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    written_unix: u64,
    hosts: Vec<HostState>,
    destinations: Vec<DestinationState>,
}

#[derive(Serialize, Deserialize)]
struct HostState {
    host: IpAddr,
    flows: u64,
    by_version: [u64; 8],
    legacy: u64,
    rejected: u64,
    unanswered: u64,
    legacy_classes: u8,
    server_names: Vec<String>,
    names_dropped: u64,
    fingerprints: Vec<FingerprintState>,
    fingerprints_dropped: u64,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    legacy_services: Vec<String>,
    first_ns: u64,
    last_ns: u64,
}

#[derive(Serialize, Deserialize)]
struct FingerprintState {
    ja4: String,
    ja3_hash: Option<String>,
    flows: u64,
    legacy: u64,
    max_offered: Option<u16>,
    classes: u8,
    names: u16,
}

#[derive(Serialize, Deserialize)]
struct DestinationState {
    service: String,
    destination: String,
    legacy: u64,
    modern: u64,
    /// Flows a server answered (absent in files of earlier builds: taken
    /// as all, since a destination worth saving was real).
    #[serde(default)]
    answered: Option<u64>,
    legacy_sources: Vec<IpAddr>,
    sources_dropped: u64,
    first_legacy_ns: u64,
    last_legacy_ns: u64,
    last_ns: u64,
}

/// One host's saved form (made under the inventory's lock for that host
/// only, then written with no lock held).
fn host_state(host: IpAddr, r: &HostRecord) -> HostState {
    HostState {
        host,
        flows: r.flows,
        by_version: r.by_version,
        legacy: r.legacy,
        rejected: r.rejected,
        unanswered: r.unanswered,
        legacy_classes: r.legacy_classes,
        fingerprints: r
            .fingerprints
            .iter()
            .map(|f| FingerprintState {
                ja4: f.fingerprint.ja4().to_string(),
                ja3_hash: f.fingerprint.ja3_hash(),
                flows: f.flows,
                legacy: f.legacy,
                max_offered: f.max_offered.map(|v| v.0),
                classes: f.classes,
                names: f.names,
            })
            .collect(),
        server_names: r.server_names.iter().map(|n| n.to_string()).collect(),
        names_dropped: r.names_dropped,
        fingerprints_dropped: r.fingerprints_dropped,
        services: HostRecord::service_names(r.services)
            .iter()
            .map(|s| s.to_string())
            .collect(),
        legacy_services: HostRecord::service_names(r.legacy_services)
            .iter()
            .map(|s| s.to_string())
            .collect(),
        first_ns: r.first_ns,
        last_ns: r.last_ns,
    }
}

/// The hosts of a state file, each copied from the inventory as it is
/// written: the file is never held whole, nor the inventory twice.
struct HostStates<'a>(&'a Inventory);

impl Serialize for HostStates<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let hosts = self.0.addresses();
        let mut seq = s.serialize_seq(Some(hosts.len()))?;
        for ip in hosts {
            if let Some(h) = self.0.with_host(ip, host_state) {
                seq.serialize_element(&h)?;
            }
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct StateOut<'a> {
    version: u32,
    written_unix: u64,
    hosts: HostStates<'a>,
    destinations: Vec<DestinationState>,
}

/// Writes the state as JSON to `out`, host by host.
pub fn write_to(
    inventory: &Inventory,
    destinations: &Destinations,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let destinations = destinations
        .snapshot()
        .into_iter()
        .map(|((svc, destination), r)| DestinationState {
            service: services::label((svc != u16::MAX).then_some(usize::from(svc))).to_string(),
            destination,
            legacy: r.legacy,
            modern: r.modern,
            answered: Some(r.answered),
            legacy_sources: r.legacy_sources,
            sources_dropped: r.sources_dropped,
            first_legacy_ns: r.first_legacy_ns,
            last_legacy_ns: r.last_legacy_ns,
            last_ns: r.last_ns,
        })
        .collect();
    let written_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let doc = StateOut {
        version: VERSION,
        written_unix,
        hosts: HostStates(inventory),
        destinations,
    };
    serde_json::to_writer(&mut *out, &doc).map_err(std::io::Error::from)
}

/// What loading a state file did.
#[derive(Debug, PartialEq, Eq)]
pub enum Loaded {
    /// No file yet.
    Missing,
    /// Hosts and destinations restored.
    Restored { hosts: usize, destinations: usize },
    /// The file was damaged (the reason) and moved to the path given.
    SetAside(String, PathBuf),
}

/// Loads a state file into the (empty) stores.
pub fn load(path: &Path, inventory: &Inventory, destinations: &Destinations) -> Loaded {
    let text = match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => return set_aside(path, e.to_string()),
        Ok(t) => t,
    };
    let state: StateFile = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => return set_aside(path, format!("not a tlscensus state file: {e}")),
    };
    if state.version != VERSION {
        return set_aside(
            path,
            format!(
                "state version {} (this build reads {VERSION})",
                state.version
            ),
        );
    }
    let mut hosts = 0;
    for h in state.hosts {
        let mut fingerprints = Vec::new();
        for f in h.fingerprints {
            let Some(fp) = Fingerprint::from_parts(&f.ja4, f.ja3_hash.as_deref()) else {
                return set_aside(path, format!("a bad fingerprint {:?}", f.ja4));
            };
            fingerprints.push(HostFingerprint {
                fingerprint: fp,
                flows: f.flows,
                legacy: f.legacy,
                max_offered: f.max_offered.map(Version),
                classes: f.classes,
                names: f.names,
                policy_fails: 0,
            });
        }
        let record = HostRecord {
            flows: h.flows,
            by_version: h.by_version,
            legacy: h.legacy,
            rejected: h.rejected,
            unanswered: h.unanswered,
            legacy_classes: h.legacy_classes,
            names_dropped: h.names_dropped,
            fingerprints,
            fingerprints_dropped: h.fingerprints_dropped,
            services: service_bits(&h.services),
            legacy_services: service_bits(&h.legacy_services),
            first_ns: h.first_ns,
            last_ns: h.last_ns,
            ..HostRecord::default()
        };
        if inventory.restore(h.host, record, h.server_names) {
            hosts += 1;
        }
    }
    let mut dests = 0;
    for d in state.destinations {
        let svc = services::table()
            .iter()
            .position(|s| s.name == d.service)
            .map_or(u16::MAX, |i| i as u16);
        let record = DestinationRecord {
            legacy: d.legacy,
            modern: d.modern,
            answered: d.answered.unwrap_or(d.legacy + d.modern),
            legacy_sources: d.legacy_sources,
            sources_dropped: d.sources_dropped,
            first_legacy_ns: d.first_legacy_ns,
            last_legacy_ns: d.last_legacy_ns,
            last_ns: d.last_ns,
            policy_fails: 0,
        };
        if destinations.restore(svc, &d.destination, record) {
            dests += 1;
        }
    }
    Loaded::Restored {
        hosts,
        destinations: dests,
    }
}

/// Service names back to bits (by name: the table may have changed).
fn service_bits(names: &[String]) -> u64 {
    names.iter().fold(0, |bits, n| {
        let b = services::table()
            .iter()
            .position(|s| s.name == n)
            .map_or(63, |i| i.min(62));
        bits | 1 << b
    })
}

fn set_aside(path: &Path, why: String) -> Loaded {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".damaged-{now}"));
    let aside = PathBuf::from(aside);
    match std::fs::rename(path, &aside) {
        Ok(()) => Loaded::SetAside(why, aside),
        Err(e) => Loaded::SetAside(
            format!("{why}; could not move it aside: {e}"),
            path.to_path_buf(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state as JSON.
    fn render(inventory: &Inventory, destinations: &Destinations) -> String {
        let mut out = Vec::new();
        write_to(inventory, destinations, &mut out).expect("writes to memory");
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    #[test]
    fn state_round_trip_and_damage() {
        let inv = Inventory::new(10, 1 << 20);
        let dest = Destinations::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut r = HostRecord {
            flows: 3,
            legacy: 2,
            first_ns: 5,
            last_ns: 9,
            ..HostRecord::default()
        };
        r.by_version[2] = 2;
        r.fingerprints.push(HostFingerprint {
            fingerprint: Fingerprint::from_parts(
                "t10d090600_c491f621fb4c_195413a0cc0f",
                Some("dac4920d4335e769327dbf4e1b759e15"),
            )
            .unwrap(),
            flows: 2,
            legacy: 2,
            max_offered: Some(Version(0x0301)),
            classes: 4,
            names: 1,
            policy_fails: 0,
        });
        assert!(inv.restore(ip, r.clone(), vec!["acct.blob.core.windows.net".into()]));
        dest.record(0, "acct", ip, true, true, 7, 0);
        let text = render(&inv, &dest);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, &text).unwrap();
        let (inv2, dest2) = (Inventory::new(10, 1 << 20), Destinations::default());
        assert_eq!(
            load(&path, &inv2, &dest2),
            Loaded::Restored {
                hosts: 1,
                destinations: 1
            }
        );
        // (Each inventory hashes names with keys of its own.)
        let plain = |i: &Inventory| {
            let mut v = i.snapshot();
            v.iter_mut().for_each(|(_, r)| r.name_hashes.clear());
            v
        };
        assert_eq!(plain(&inv2), plain(&inv));
        assert_eq!(dest2.snapshot(), dest.snapshot());
        // Damaged: set aside, never fatal.
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        let got = load(
            &path,
            &Inventory::new(10, 1 << 20),
            &Destinations::default(),
        );
        let Loaded::SetAside(why, aside) = got else {
            panic!("{got:?}")
        };
        assert!(why.contains("not a tlscensus state file"), "{why}");
        assert!(aside.exists() && !path.exists());
        std::fs::write(&path, text.replace("\"version\":1", "\"version\":9")).unwrap();
        assert!(matches!(
            load(&path, &Inventory::new(10, 1 << 20), &Destinations::default()),
            Loaded::SetAside(w, _) if w.contains("state version 9")
        ));
        assert_eq!(
            load(&dir.path().join("none.json"), &inv2, &dest2),
            Loaded::Missing
        );
    }
}
