//! Validated configuration: raw flags (`cli`) in, checked values out.
//!
//! Invariant: every bound is non-zero and every per-worker share is at least
//! one unit, so the pipeline never divides by zero or starts with no room.

use std::path::PathBuf;

use crate::capture::live::{LiveOptions, default_bpf};
use crate::cli::{By, CensusArgs, Format, LiveArgs, ReadArgs};
use crate::decode::{TunnelPorts, tunnel};
use crate::error::SetupError;
use crate::flow::{StreamLimits, TableLimits};
use crate::hosts::labels::Labels;
use crate::hosts::names::{NameSettings, NameSource};
use crate::hosts::resolve::ResolveSettings;
use crate::policy::PolicySet;
use crate::targets::prefixes::{self, PrefixSet};
use crate::targets::services;
use crate::targets::{Matcher, TargetSet};
use crate::tls::Version;
use std::sync::Arc;

pub mod file;
pub mod inputs;

pub use inputs::{Input, MAX_DIR_DEPTH, expand_inputs};

/// The census pipeline's settings (shared by offline and live modes).
#[derive(Clone, Debug)]
pub struct Config {
    pub targets: TargetSet,
    /// The chosen service rows (`targets::services::table()` indices).
    pub services: Vec<usize>,
    /// Server addresses that are targets when a flow has no SNI
    /// (--target-cidr and the service tags).
    pub prefixes: Arc<PrefixSet>,
    /// The Service Tag prefixes of each chosen service whose tag family no
    /// other chosen service shares: they name the service of a flow matched
    /// by address (`services::Classifier`).
    pub service_prefixes: Arc<Vec<(usize, PrefixSet)>>,
    /// Proxies (--proxy): their outbound flows are relayed.
    pub proxies: Arc<PrefixSet>,
    pub max_dns_entries: usize,
    pub dns_grace_secs: u64,
    pub max_dns_ttl_secs: u32,
    pub all: bool,
    /// Keep each hello's JA4_r and JA3 strings for the events.
    pub raw_fingerprints: bool,
    /// Server policies every fingerprinted hello is judged by (--policy).
    pub policies: Arc<PolicySet>,
    /// Client labels by JA4 (built-in catalogue and --fingerprints files).
    pub labels: Arc<Labels>,
    /// Passive host names: sources in priority order, age, bound.
    pub names: NameSettings,
    /// `--resolve`: active reverse DNS of legacy sources without a name.
    pub resolve: Option<ResolveSettings>,
    pub min_version: Version,
    pub workers: usize,
    /// Limits of one worker's flow table (its share of the totals).
    pub table: TableLimits,
    pub max_hosts: usize,
    pub max_server_name_bytes: usize,
    pub max_legacy_sources: usize,
    pub max_fragments: usize,
    pub max_fragment_bytes: usize,
    pub fragment_timeout_ns: u64,
    /// UDP ports VXLAN and Geneve are decoded on.
    pub tunnels: TunnelPorts,
    pub events: Option<String>,
    /// Where and how events are written, with `--events`.
    pub event_settings: Option<crate::events::EventSettings>,
    /// Live mode: idle flows also time out on the wall clock when no packets come.
    pub wall_clock: bool,
}

impl Config {
    /// The matching rules over the configured target names and prefixes.
    pub fn matcher(&self) -> Matcher<'_> {
        Matcher {
            names: &self.targets,
            prefixes: &self.prefixes,
        }
    }
}

/// Settings of `tlscensus read`.
#[derive(Clone, Debug)]
pub struct ReadConfig {
    pub census: Config,
    pub inputs: Vec<PathBuf>,
    pub format: Format,
    pub by: By,
    pub metrics_file: Option<PathBuf>,
    pub fail_on_legacy: bool,
    pub progress: bool,
    /// `--filter`: checked to compile (for Ethernet) here.
    pub filter: Option<String>,
}

impl Config {
    /// Checks the options and puts a `--services-file`'s table in use.
    pub fn from_args(a: &CensusArgs) -> Result<Config, SetupError> {
        let (config, table) = Config::prepare(a)?;
        if let Some(t) = &table {
            services::install(t);
        }
        Ok(config)
    }

    /// Checks the options, reading every file they name, without changing
    /// anything in use: a `--services-file`'s table is returned, to be
    /// installed ([`services::install`]) when the configuration is taken.
    pub fn prepare(a: &CensusArgs) -> Result<(Config, Option<services::Candidate>), SetupError> {
        let bad = |m: String| SetupError::Config(m);
        let min_version = Version::parse_user(&a.min_version).ok_or_else(|| {
            bad(format!(
                "--min-version {:?}: expected one of SSLv3, TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3",
                a.min_version
            ))
        })?;
        // The services' endpoints, then --target patterns (which alone
        // replace the default, Blob Storage, as before services existed).
        let candidate = match &a.services_file {
            Some(path) => {
                Some(services::read_file(path).map_err(|e| bad(format!("--services-file {e}")))?)
            }
            None => None,
        };
        let rows = candidate.as_ref().map_or(services::table(), |c| c.rows());
        let services = match (&a.services, a.targets.is_empty()) {
            (Some(list), _) => {
                services::select_in(rows, list).map_err(|e| bad(format!("--services: {e}")))?
            }
            (None, true) => vec![0],
            (None, false) => Vec::new(),
        };
        let mut patterns: Vec<String> = services
            .iter()
            .flat_map(|&i| services::patterns(&rows[i]))
            .collect();
        patterns.extend(a.targets.iter().cloned());
        let targets = TargetSet::parse(patterns.iter().map(String::as_str)).map_err(bad)?;
        let workers = match a.workers {
            Some(0) => return Err(bad("--workers must be at least 1".into())),
            Some(n) if n > 256 => return Err(bad("--workers must be at most 256".into())),
            Some(n) => n,
            // The capture thread keeps a core to itself: on 2 cores, 2 workers
            // made it share with both and read ~10% slower than 1 worker.
            None => {
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
            }
        };
        for (name, v) in [
            ("--max-flows", a.max_flows),
            ("--max-handshakes", a.max_handshakes),
            ("--max-stream-bytes", a.max_stream_bytes),
            ("--max-buffer-bytes", a.max_buffer_bytes),
            ("--max-hosts", a.max_hosts),
            ("--max-server-name-bytes", a.max_server_name_bytes),
            ("--max-fragments", a.max_fragments),
            ("--max-fragment-bytes", a.max_fragment_bytes),
        ] {
            if v == 0 {
                return Err(bad(format!("{name} must be at least 1")));
            }
        }
        // A flow table indexes its flows with 32-bit numbers.
        for (name, v) in [
            ("--max-flows", a.max_flows),
            ("--max-handshakes", a.max_handshakes),
        ] {
            if v > 1 << 30 {
                return Err(bad(format!("{name} must be at most 1073741824")));
            }
        }
        if a.max_stream_bytes > 1 << 24 {
            return Err(bad("--max-stream-bytes must be at most 16777216".into()));
        }
        if a.flow_timeout == 0 {
            return Err(bad("--flow-timeout must be at least 1 second".into()));
        }
        let pick = |given: &[u16], default: u16| {
            if given.is_empty() {
                vec![default]
            } else {
                given.to_vec()
            }
        };
        let tunnels = TunnelPorts::new(
            &pick(&a.vxlan_ports, tunnel::VXLAN_PORT),
            &pick(&a.geneve_ports, tunnel::GENEVE_PORT),
        )
        .ok_or_else(|| {
            bad(format!(
                "--vxlan-port and --geneve-port: at most {} ports each, none 0, none in both",
                tunnel::MAX_PORTS
            ))
        })?;
        let table = TableLimits {
            max_flows: (a.max_flows / workers).max(1),
            max_handshakes: (a.max_handshakes / workers).max(1),
            idle_timeout_ns: a.flow_timeout.saturating_mul(1_000_000_000),
            stream: StreamLimits {
                max_bytes: a.max_stream_bytes,
                max_pending: 32,
            },
            max_buffer_bytes: (a.max_buffer_bytes / workers).max(a.max_stream_bytes),
        };
        let mut cidrs = Vec::new();
        for c in &a.target_cidrs {
            cidrs.push(prefixes::parse_cidr(c).map_err(|e| bad(format!("--target-cidr {e}")))?);
        }
        let mut service_prefixes = Vec::new();
        match &a.azure_service_tags {
            Some(path) => {
                let families = tag_families(rows, &services);
                let tagged = prefixes::tagged_prefixes(path, &a.service_tags, &families)
                    .map_err(|e| bad(format!("--azure-service-tags {e}")))?;
                cidrs.extend(tagged.iter().map(|(_, p)| *p));
                service_prefixes = prefixes_by_service(rows, &services, &families, &tagged);
            }
            None if !a.service_tags.is_empty() => {
                return Err(bad(
                    "--service-tag needs --azure-service-tags FILE (Microsoft's Service Tags JSON)"
                        .into(),
                ));
            }
            None => {}
        }
        let mut proxies = Vec::new();
        for c in &a.proxies {
            proxies.push(prefixes::parse_cidr(c).map_err(|e| bad(format!("--proxy {e}")))?);
        }
        if a.max_dns_entries == 0 {
            return Err(bad("--max-dns-entries must be at least 1".into()));
        }
        if a.max_dns_ttl == 0 {
            return Err(bad("--max-dns-ttl must be at least 1 second".into()));
        }
        if a.dns_grace > 7 * 86_400 {
            return Err(bad(
                "--dns-grace must be at most 604800 seconds (7 days)".into()
            ));
        }
        let policies = Arc::new(PolicySet::from_args(&a.policies).map_err(SetupError::ConfigFile)?);
        let config = Config {
            targets,
            services,
            prefixes: Arc::new(PrefixSet::from_prefixes(cidrs)),
            service_prefixes: Arc::new(service_prefixes),
            proxies: Arc::new(PrefixSet::from_prefixes(proxies)),
            max_dns_entries: a.max_dns_entries,
            dns_grace_secs: a.dns_grace,
            max_dns_ttl_secs: a.max_dns_ttl,
            all: a.all,
            raw_fingerprints: a.raw_fingerprints,
            policies: Arc::clone(&policies),
            names: name_settings(a)?,
            resolve: resolve_settings(a)?,
            labels: Arc::new(
                Labels::load(&a.fingerprint_files)
                    .map_err(|e| bad(format!("--fingerprints {e}")))?,
            ),
            min_version,
            workers,
            table,
            max_hosts: a.max_hosts,
            max_server_name_bytes: a.max_server_name_bytes,
            max_legacy_sources: a.max_legacy_sources,
            max_fragments: a.max_fragments,
            max_fragment_bytes: a.max_fragment_bytes,
            tunnels,
            fragment_timeout_ns: 30_000_000_000,
            events: a.events.clone(),
            event_settings: event_settings(a, &policies)?,
            wall_clock: false,
        };
        Ok((config, candidate))
    }
}

/// The event destination and its settings, checked together.
fn event_settings(
    a: &CensusArgs,
    policies: &Arc<PolicySet>,
) -> Result<Option<crate::events::EventSettings>, SetupError> {
    use crate::events::sink::{Destination, FACILITIES, Rotation, SyslogFormat};
    let bad = |m: String| SetupError::Config(m);
    let Some(dest) = a.events.as_deref() else {
        return Ok(None);
    };
    let dest = Destination::parse(dest).map_err(|e| bad(format!("--events {e}")))?;
    let layout = layout_of(a.events_format);
    let rotation = Rotation {
        max_bytes: a.events_rotate_size,
        max_age: a.events_rotate_interval.map(std::time::Duration::from_secs),
        keep: a.events_keep,
    };
    if rotation.is_on() && !matches!(dest, Destination::File(_)) {
        return Err(bad(
            "--events-rotate-size and --events-rotate-interval rotate an event file: --events names none"
                .into(),
        ));
    }
    if matches!(dest, Destination::Syslog(_)) && layout == crate::events::Layout::Zeek {
        return Err(bad(
            "--events-format zeek is a tab-separated file with header lines; to syslog, use zeek-json"
                .into(),
        ));
    }
    Ok(Some(crate::events::EventSettings {
        policies: Arc::clone(policies),
        dest,
        layout,
        rotation,
        syslog_format: a.syslog_format.map(|f| match f {
            crate::cli::SyslogFormatArg::Rfc5424 => SyslogFormat::Rfc5424,
            crate::cli::SyslogFormatArg::Rfc3164 => SyslogFormat::Rfc3164,
        }),
        syslog_facility: FACILITIES
            .iter()
            .position(|f| *f == a.syslog_facility)
            .map_or(16, |i| i as u8),
    }))
}

fn layout_of(f: crate::cli::EventsFormat) -> crate::events::Layout {
    use crate::cli::EventsFormat as F;
    use crate::events::Layout;
    match f {
        F::Native => Layout::Native,
        F::Ecs => Layout::Ecs,
        F::Zeek => Layout::Zeek,
        F::ZeekJson => Layout::ZeekJson,
        F::Ocsf => Layout::Ocsf,
    }
}

/// The Service Tag families of the chosen services (`Storage`, `Sql`...).
fn tag_families(rows: &[services::Service], chosen: &[usize]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for &i in chosen {
        for t in rows[i].service_tags {
            if !out.contains(t) {
                out.push(t);
            }
        }
    }
    if out.is_empty() {
        out.push("Storage");
    }
    out
}

/// Each chosen service's Service Tag prefixes, for the families (`Sql`,
/// `AzureKeyVault`...) only that service has: the `Storage` tags, shared by
/// every Storage row, name a service only when one Storage row is chosen.
fn prefixes_by_service(
    rows: &[services::Service],
    chosen: &[usize],
    families: &[&str],
    tagged: &[prefixes::TaggedPrefix],
) -> Vec<(usize, PrefixSet)> {
    let owner = |family: usize| {
        let mut owners = chosen
            .iter()
            .filter(|&&i| rows[i].service_tags.contains(&families[family]));
        match (owners.next(), owners.next()) {
            (Some(&i), None) => Some(i),
            _ => None,
        }
    };
    let owners: Vec<Option<usize>> = (0..families.len()).map(owner).collect();
    let mut out = Vec::new();
    for &svc in chosen {
        let mine = tagged
            .iter()
            .filter(|(f, _)| f.and_then(|f| owners[f]) == Some(svc))
            .map(|(_, p)| *p);
        let set = PrefixSet::from_prefixes(mine);
        if !set.is_empty() {
            out.push((svc, set));
        }
    }
    out
}

/// `--name-sources`, `--name-max-age`, `--max-host-names`.
fn name_settings(a: &CensusArgs) -> Result<NameSettings, SetupError> {
    let bad = |m: String| SetupError::Config(m);
    let mut sources = Vec::new();
    for s in a
        .name_sources
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let src = NameSource::parse(s).ok_or_else(|| {
            bad(format!(
                "--name-sources: {s:?} is not one of dhcp, dhcpv6, kerberos, dns_ptr, nbns, mdns, llmnr, rdns"
            ))
        })?;
        if sources.contains(&src) {
            return Err(bad(format!("--name-sources: {s} given twice")));
        }
        sources.push(src);
    }
    if a.name_max_age == 0 || a.name_max_age > 365 * 86_400 {
        return Err(bad(
            "--name-max-age must be between 1 second and 365 days".into()
        ));
    }
    if a.max_host_names == 0 {
        return Err(bad("--max-host-names must be at least 1".into()));
    }
    Ok(NameSettings {
        sources,
        max_age_ns: a.name_max_age * 1_000_000_000,
        max_addresses: a.max_host_names,
    })
}

/// `--resolve`, `--resolve-server`, `--resolve-rate`.
fn resolve_settings(a: &CensusArgs) -> Result<Option<ResolveSettings>, SetupError> {
    let bad = |m: String| SetupError::Config(m);
    if !a.resolve {
        if a.resolve_server.is_some() {
            return Err(bad("--resolve-server needs --resolve".into()));
        }
        return Ok(None);
    }
    if !(1..=1000).contains(&a.resolve_rate) {
        return Err(bad("--resolve-rate must be between 1 and 1000".into()));
    }
    let server = match &a.resolve_server {
        Some(s) => parse_server(s).ok_or_else(|| {
            bad(format!(
                "--resolve-server {s:?}: expected an address, ADDR:PORT or [ADDR]:PORT"
            ))
        })?,
        None => {
            let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            conf.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .find_map(|s| parse_server(s.trim()))
                .ok_or_else(|| {
                    bad(
                        "--resolve: no nameserver in /etc/resolv.conf; give --resolve-server"
                            .into(),
                    )
                })?
        }
    };
    Ok(Some(ResolveSettings {
        server,
        rate: a.resolve_rate,
    }))
}

/// `ADDR`, `ADDR:PORT` or `[ADDR]:PORT` (port 53 by default).
fn parse_server(s: &str) -> Option<std::net::SocketAddr> {
    if let Ok(sa) = s.parse() {
        return Some(sa);
    }
    let ip: std::net::IpAddr = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(std::net::SocketAddr::new(ip, 53))
}

impl ReadConfig {
    pub fn from_args(a: &ReadArgs, stderr_is_tty: bool) -> Result<ReadConfig, SetupError> {
        Ok(ReadConfig {
            census: Config::from_args(&a.census)?,
            inputs: a.inputs.clone(),
            format: a.format,
            by: a.by,
            metrics_file: a.metrics_file.clone(),
            fail_on_legacy: a.fail_on_legacy,
            progress: stderr_is_tty && !a.no_progress,
            filter: match &a.filter {
                Some(expr) => {
                    crate::capture::filter::Filter::new(expr, 1)
                        .map_err(|e| SetupError::Config(format!("--filter {expr:?}: {e}")))?;
                    Some(expr.clone())
                }
                None => None,
            },
        })
    }
}

/// Settings of `tlscensus live`.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub census: Config,
    pub interfaces: Vec<String>,
    pub capture: LiveOptions,
    pub listen: String,
    pub user: String,
    pub metrics_file: Option<PathBuf>,
    /// Seconds without a legacy flow after which a source's series go.
    pub legacy_source_ttl: u64,
    /// `--web.config.file`.
    pub web_config: Option<PathBuf>,
    /// `--state`: the saved inventory and readiness.
    pub state_file: Option<PathBuf>,
    /// `--max-inventory-mib`, in bytes.
    pub max_inventory_bytes: usize,
    /// `--capture-threads`.
    pub capture_threads: usize,
    /// `--kernel-skip-flows` (0: off).
    pub kernel_skip_flows: u32,
}

/// `--kernel-skip-flows` at most: two maps of this many entries, 112 bytes
/// an entry, are 940 MB of kernel memory.
pub const MAX_KERNEL_SKIP_FLOWS: u32 = 1 << 22;

impl LiveConfig {
    /// Checks the options and puts a `--services-file`'s table in use.
    pub fn from_args(a: &LiveArgs) -> Result<LiveConfig, SetupError> {
        let (config, table) = LiveConfig::prepare(a)?;
        if let Some(t) = &table {
            services::install(t);
        }
        Ok(config)
    }

    /// As [`Config::prepare`]: checks without changing anything in use.
    pub fn prepare(a: &LiveArgs) -> Result<(LiveConfig, Option<services::Candidate>), SetupError> {
        let bad = |m: String| SetupError::Config(m);
        let (mut census, table) = Config::prepare(&a.census)?;
        census.wall_clock = true;
        let mut interfaces: Vec<String> = Vec::new();
        for i in &a.interfaces {
            if i.is_empty() || i.len() > 15 || i.contains('/') || i.contains(char::is_whitespace) {
                return Err(bad(format!("-i {i:?}: not an interface name")));
            }
            if !interfaces.contains(i) {
                interfaces.push(i.clone());
            }
        }
        if !(64..=262_144).contains(&a.snaplen) {
            return Err(bad("--snaplen must be between 64 and 262144".into()));
        }
        if !(1..=2048).contains(&a.buffer_mib) {
            return Err(bad("--buffer-mib must be between 1 and 2048".into()));
        }
        let max_threads = crate::capture::fanout::MAX_THREADS;
        if !(1..=max_threads).contains(&a.capture_threads) {
            return Err(bad(format!(
                "--capture-threads must be between 1 and {max_threads}"
            )));
        }
        if a.capture_threads > 1 && !cfg!(target_os = "linux") {
            return Err(bad(
                "--capture-threads above 1 needs Linux (AF_PACKET fanout)".into(),
            ));
        }
        if a.kernel_skip_flows > MAX_KERNEL_SKIP_FLOWS {
            return Err(bad(format!(
                "--kernel-skip-flows must be at most {MAX_KERNEL_SKIP_FLOWS}"
            )));
        }
        // The ring per socket: the interface's buffer shared, at least 1 MiB.
        let buffer_bytes = ((a.buffer_mib as usize) << 20) / a.capture_threads;
        if a.legacy_source_ttl == 0 {
            return Err(bad("--legacy-source-ttl must be at least 1 second".into()));
        }
        if a.user.is_empty() {
            return Err(bad("--user must not be empty".into()));
        }
        let bpf = a
            .bpf
            .clone()
            .unwrap_or_else(|| default_bpf(&census.tunnels));
        let config = LiveConfig {
            census,
            interfaces,
            capture: LiveOptions {
                promisc: !a.no_promisc,
                snaplen: a.snaplen as i32,
                buffer_bytes: i32::try_from(buffer_bytes.max(1 << 20)).unwrap_or(i32::MAX),
                bpf,
            },
            listen: a.listen.clone(),
            user: a.user.clone(),
            state_file: a.state_file.clone(),
            max_inventory_bytes: (a.max_inventory_mib.max(1) as usize) << 20,
            capture_threads: a.capture_threads,
            kernel_skip_flows: a.kernel_skip_flows,
            metrics_file: a.metrics_file.clone(),
            legacy_source_ttl: a.legacy_source_ttl,
            web_config: a.web_config_file.clone(),
        };
        Ok((config, table))
    }
}

/// The configuration `tlscensus read` uses when no option is given (for
/// benchmarks, fuzzing and tests).
pub fn defaults() -> Config {
    use clap::Parser;
    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        census: CensusArgs,
    }
    let args = Defaults::parse_from(["tlscensus"]);
    // The defaults are valid by construction; `from_args` cannot fail on them.
    Config::from_args(&args.census).unwrap_or_else(|e| unreachable!("default config: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = defaults();
        assert_eq!(c.min_version, Version::TLS12);
        assert!(c.workers >= 1);
        assert!(c.table.max_flows >= 1);
    }
}
