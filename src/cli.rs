//! Command-line flags, as clap derive structs. Raw values only: validation and
//! defaults that depend on the machine live in `config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tlscensus",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TLSCENSUS_COMMIT"), ")"),
    disable_help_subcommand = true,
    about = "Passive census of TLS versions per host; finds clients still using TLS 1.0/1.1 with Azure Blob Storage.",
    after_help = "Exit status: 0 success; 1 legacy TLS found (with --fail-on-legacy); 2 error (bad arguments, or an input could not be read completely)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read .pcap/.pcapng files (or directories of them) and print the inventory.
    Read(ReadArgs),
    /// Capture live from network interfaces (a SPAN/mirror port) and serve /metrics to Prometheus.
    Live(LiveArgs),
    /// Print the table of Microsoft services (--services): endpoints, Service Tags, the day TLS 1.0/1.1 ends, sources.
    Services(ServicesArgs),
    /// Check a configuration file, or print an annotated one that lists every setting.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List the built-in server TLS policies (--policy), show one, or check a policy file.
    Policies(PoliciesArgs),
    /// Write the manual pages or a shell's completions (for packaging).
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
}

/// Which subcommand a configuration file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConfigFor {
    Live,
    Read,
}

impl ConfigFor {
    pub fn name(self) -> &'static str {
        match self {
            ConfigFor::Live => "live",
            ConfigFor::Read => "read",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check FILE as `live` (or `read`) would load it, reading every file it names, without capturing; exit status 2 when it is refused.
    Check {
        /// The configuration file (TOML).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The subcommand the file is for.
        #[arg(long = "for", value_enum, default_value_t = ConfigFor::Live)]
        for_: ConfigFor,
    },
    /// Print a configuration file that lists every setting, commented out, with its meaning and default.
    Example {
        /// The subcommand the file is for.
        #[arg(long = "for", value_enum, default_value_t = ConfigFor::Live)]
        for_: ConfigFor,
    },
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Manual pages, tlscensus.1 and one per subcommand, into DIR.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The options reference (Markdown), on standard output.
    Reference,
    /// A shell's completion script, on standard output.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct PoliciesArgs {
    /// A preset's name or a policy file (TOML or JSON): print it in full, as a policy file (a file is checked first; exit status 2 when it is refused). Without one, list the presets.
    #[arg(value_name = "NAME|FILE")]
    pub policy: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Show the table with this services file's rows (as --services-file).
    #[arg(long, value_name = "FILE")]
    pub services_file: Option<PathBuf>,
}

/// The formats of `--syslog-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyslogFormatArg {
    Rfc5424,
    Rfc3164,
}

/// The layouts of `--events-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    Native,
    Ecs,
    Zeek,
    ZeekJson,
    Ocsf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// What the inventory report is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// One row per client host.
    Host,
    /// One row per client fingerprint (JA4): which software, on which hosts.
    Fingerprint,
    /// One row per destination (storage account, SQL server, namespace, vault): legacy and modern flows, legacy hosts, first and last legacy flow: "can I enforce TLS 1.2 here?".
    Destination,
    /// One row per server policy (--policy): flows that pass and fail it and why, and the hosts, fingerprints and destinations that would fail.
    Policy,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Capture files (pcap or pcapng, also gzip, zstd, xz or lz4 compressed), directories, or - for standard input; files are read in capture order (each file's first packet time, then natural name order).
    #[arg(required = true, value_name = "FILE")]
    pub inputs: Vec<PathBuf>,

    /// Read settings from this TOML file (keys are the long options without dashes; options given here override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Inventory output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Group the inventory by client host, or by client fingerprint (which software is legacy, and where).
    #[arg(long, value_enum, default_value_t = By::Host)]
    pub by: By,

    /// Write the Prometheus metrics (text format) to FILE at the end (atomically, for node_exporter's textfile collector).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,

    /// Exit with status 1 when a legacy TLS flow was found.
    #[arg(long)]
    pub fail_on_legacy: bool,

    /// Never show progress, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,

    /// Read only the packets this filter (BPF syntax, as tcpdump takes it) keeps, e.g. 'vlan 10' or 'net 10.20.0.0/16'; compiled by libpcap for each file's link type and applied before decoding.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,

    #[command(flatten)]
    pub census: CensusArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Capturing needs root or CAP_NET_RAW. Started as root, tlscensus drops to --user after opening the interfaces and the listener, keeping only CAP_NET_RAW. SIGINT/SIGTERM stop it cleanly (exit 0). SIGHUP reloads the configuration (see --config)."
)]
pub struct LiveArgs {
    /// Interface to capture on (repeatable; at least one, here or in the configuration file).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interfaces: Vec<String>,

    /// Read settings from this TOML file (keys are the long options without dashes; options given here override it). SIGHUP reads it again, with the files it names: the targets, services, Service Tags, proxies, client labels and --resolve change without losing counters or flows; other options wait for a restart (named in the log); a broken file is refused and the running configuration kept.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Capture filter (BPF syntax) replacing the default, which keeps every TCP packet, IPv6 extension headers and fragments, inside VLAN tags too. An empty string captures everything.
    #[arg(long, value_name = "FILTER")]
    pub bpf: Option<String>,

    /// Do not put the interfaces in promiscuous mode.
    #[arg(long)]
    pub no_promisc: bool,

    /// Bytes captured per packet (must hold a whole segment, including GRO/TSO super-frames).
    #[arg(long, default_value_t = 262_144, value_name = "BYTES")]
    pub snaplen: u32,

    /// Kernel capture buffer (the TPACKET_V3 ring) per interface, in MiB; with several capture threads, each socket gets its share.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub buffer_mib: u32,

    /// Capture threads. Above 1 (Linux only), each thread opens its own AF_PACKET socket on every interface, and the kernel spreads each interface's packets over them by flow (PACKET_FANOUT, symmetric hash, fragments joined first), so decoding runs on several cores. Every thread feeds the same workers.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub capture_threads: usize,

    /// Settled flows the kernel remembers, to drop their data segments before they are copied to the capture ring (Linux 6.1 or later; an eBPF socket filter loaded at start, which needs CAP_BPF or root, replaces the capture filter and runs it too). 224 bytes of kernel memory each (15 MB at the default); the least recently used is forgotten first. 0 turns it off; without CAP_BPF it is off, said once.
    #[arg(long, default_value_t = 65_536, value_name = "FLOWS")]
    pub kernel_skip_flows: u32,

    /// Address the HTTP exporter (/metrics, /healthz) listens on. Use 0.0.0.0:9814 or [::]:9814 to let a remote Prometheus scrape it.
    #[arg(long, default_value = "127.0.0.1:9814", value_name = "ADDR:PORT")]
    pub listen: String,

    /// Also write the metrics (text format) to FILE every 15 s and at exit, atomically (node_exporter textfile collector). Its directory must be writable after privileges are dropped.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,

    /// Keep the inventory and the per-destination readiness in FILE: written atomically every minute and at exit, reloaded at start (a damaged file is said and set aside as FILE.damaged-<time>, never fatal), so "no legacy client for 30 days" survives restarts and upgrades. Its directory must be writable after privileges are dropped.
    #[arg(long = "state", value_name = "FILE")]
    pub state_file: Option<PathBuf>,

    /// Largest /inventory page, in MiB: a view that would be larger is refused (503, with what to ask for instead) and counted as bound="inventory_page", so a huge inventory cannot make the sensor hold gigabytes of text.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub max_inventory_mib: u32,

    /// Remove a source's series from tlscensus_legacy_flows_total after this long without a legacy flow (its counts move to source="other").
    #[arg(long, default_value_t = 86_400, value_name = "SECONDS")]
    pub legacy_source_ttl: u64,

    /// HTTPS and basic authentication for the exporter, in the Prometheus exporter-toolkit format (tls_server_config, basic_auth_users, http_server_config).
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// When started as root, the user to run as after opening the interfaces ('root' keeps root).
    #[arg(long, default_value = "nobody", value_name = "USER")]
    pub user: String,

    #[command(flatten)]
    pub census: CensusArgs,
}

/// Options shared by every mode that runs the census pipeline.
#[derive(Debug, Args, Clone)]
pub struct CensusArgs {
    /// Write one event per TLS flow to FILE (newline-delimited), '-' for stdout, or a syslog receiver: 'syslog' (/dev/log), 'syslog:unix:PATH', 'syslog:udp:HOST:PORT', 'syslog:tcp:HOST:PORT' (octet-counted framing).
    #[arg(long, value_name = "FILE")]
    pub events: Option<String>,

    /// The events' layout: native (tlscensus' own fields), ecs (Elastic Common Schema), zeek (Zeek's ssl.log: tab-separated, with its header lines), zeek-json (Zeek's ssl.log as JSON lines) or ocsf (OCSF Network Activity).
    #[arg(long, value_enum, value_name = "LAYOUT", default_value_t = EventsFormat::Native)]
    pub events_format: EventsFormat,

    /// Rotate the event file when it reaches BYTES: it becomes FILE.1 (the older ones FILE.2 and on) and a new FILE starts.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub events_rotate_size: Option<u64>,

    /// Rotate the event file every SECONDS, as --events-rotate-size does.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub events_rotate_interval: Option<u64>,

    /// Rotated event files kept (FILE.1 to FILE.N; 0 keeps none).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub events_keep: usize,

    /// Syslog message format: rfc5424 or rfc3164 (default: rfc3164 on a Unix socket, as syslog(3) writes; rfc5424 over UDP and TCP).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub syslog_format: Option<SyslogFormatArg>,

    /// Syslog facility of the event messages (kern, user, daemon, ..., local0 to local7). Legacy flows are sent at severity warning, others at info.
    #[arg(long, value_name = "NAME", default_value = "local0", value_parser = clap::builder::PossibleValuesParser::new(crate::events::sink::FACILITIES))]
    pub syslog_facility: String,

    /// Inventory every TLS flow, not only flows to the target servers.
    #[arg(long)]
    pub all: bool,

    /// Judge every inventoried ClientHello by a server TLS policy (repeatable, at most 8): a preset's name (`tlscensus policies` lists them) or a policy file (TOML or JSON). Each flow's verdicts go in events, tlscensus_policy_flows_total, the inventory views and `read --by policy`.
    #[arg(long = "policy", value_name = "NAME|FILE")]
    pub policies: Vec<String>,

    /// A client-label catalogue that extends the built-in one (repeatable; later files win): CSV with a header `ja4,label[,made_by]`, or FoxIO's mapping layout `Application,Library,Device,OS,ja4,...`.
    #[arg(long = "fingerprints", value_name = "FILE")]
    pub fingerprint_files: Vec<PathBuf>,

    /// Also write each ClientHello's raw fingerprint strings in events (ja4_r: the sorted lists JA4 hashes; ja3: the JA3 string). Held while a flow waits for its answer, at most 4 MiB per worker (beyond, counted as bound="raw_fingerprints" and left out).
    #[arg(long)]
    pub raw_fingerprints: bool,

    /// Microsoft services whose endpoints are targets, comma-separated (names from `tlscensus services`; `storage` for every Storage service, `microsoft` for all) [default: storage-blob, unless --target is given].
    #[arg(long, value_name = "LIST")]
    pub services: Option<String>,

    /// Service rows (TOML [[service]] tables, or a JSON list) that replace (same name) or add to the built-in table, e.g. an on-premises endpoint with its own deadline: [{"name": "onprem-files", "suffixes": ["files.corp.example"], "tls_end": "2026-06-30", "source": "change CHG-1234"}]. Select them with --services.
    #[arg(long, value_name = "FILE")]
    pub services_file: Option<PathBuf>,

    /// Target server-name pattern (repeatable; without --services it replaces the Azure Blob Storage defaults, with it adds to them). A leading '*.' matches one or more labels.
    #[arg(long = "target", value_name = "PATTERN")]
    pub targets: Vec<String>,

    /// Server address prefix whose flows without SNI are target flows (repeatable), e.g. 20.60.0.0/16.
    #[arg(long = "target-cidr", value_name = "CIDR")]
    pub target_cidrs: Vec<String>,

    /// Address (or CIDR) of a web or SOCKS proxy on the mirrored network (repeatable). Its own outbound flows relay its clients' handshakes: they are marked relayed in events and counted in tlscensus_relayed_flows_total, not under the proxy's address in the legacy-source series or the inventory (the clients are counted on their side of the proxy).
    #[arg(long = "proxy", value_name = "CIDR")]
    pub proxies: Vec<String>,

    /// Microsoft's Azure Service Tags JSON (ServiceTags_Public_*.json): the addresses of the Storage tags are targets for flows without SNI.
    #[arg(long, value_name = "FILE")]
    pub azure_service_tags: Option<PathBuf>,

    /// Use only this tag of --azure-service-tags (repeatable), e.g. Storage.WestEurope [default: Storage and every Storage.<region>].
    #[arg(long = "service-tag", value_name = "NAME")]
    pub service_tags: Vec<String>,

    /// Most names and addresses passive DNS holds (learned from DNS responses on port 53).
    #[arg(long, default_value_t = 32_768, value_name = "N")]
    pub max_dns_entries: usize,

    /// Keep DNS answers this long past their TTL (clients that cache longer, e.g. old Java).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub dns_grace: u64,

    /// Keep a DNS answer at most this long, whatever TTL it claims (junk answers must not pin passive DNS).
    #[arg(long, default_value_t = 86_400, value_name = "SECONDS")]
    pub max_dns_ttl: u32,

    /// Sources of host names, best first (comma-separated; leave one out to ignore it): dhcp, dhcpv6, kerberos, dns_ptr, nbns, mdns, llmnr, rdns (--resolve).
    #[arg(
        long,
        default_value = "dhcp,dhcpv6,kerberos,dns_ptr,nbns,mdns,llmnr,rdns",
        value_name = "LIST"
    )]
    pub name_sources: String,

    /// Ask a DNS server for the PTR name of each legacy source that has no passive name (active: off by default; one thread, never on the packet path; each address at most once an hour).
    #[arg(long)]
    pub resolve: bool,

    /// The DNS server --resolve asks [default: the first nameserver of /etc/resolv.conf].
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub resolve_server: Option<String>,

    /// Most --resolve queries a second.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub resolve_rate: u32,

    /// A host name from a source without a lease (all but DHCP) stays valid this long after it was last seen.
    #[arg(long, default_value_t = 86_400, value_name = "SECONDS")]
    pub name_max_age: u64,

    /// Most addresses passive host names holds (each with up to 4 names).
    #[arg(long, default_value_t = 16_384, value_name = "N")]
    pub max_host_names: usize,

    /// Versions below this are legacy (SSLv3, TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3).
    #[arg(long, default_value = "TLSv1.2", value_name = "VERSION")]
    pub min_version: String,

    /// Parser worker threads [default: available cores - 1, at least 1].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Most flows tracked at once (all workers together); the oldest is evicted beyond it.
    #[arg(long, default_value_t = 262_144, value_name = "N")]
    pub max_flows: usize,

    /// Most of those flows in their handshake at once (each holds its reassembly and parsing state, a few hundred bytes; a settled flow under a hundred); the oldest is evicted beyond it, counted as bound="handshakes".
    #[arg(long, default_value_t = 65_536, value_name = "N")]
    pub max_handshakes: usize,

    /// Most bytes reassembled per flow direction (the handshake start).
    #[arg(long, default_value_t = 16_384, value_name = "BYTES")]
    pub max_stream_bytes: usize,

    /// Most stream bytes buffered over all flows (all workers together).
    #[arg(long, default_value_t = 32 << 20, value_name = "BYTES")]
    pub max_buffer_bytes: usize,

    /// A flow idle this long (capture time) is evicted.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub flow_timeout: u64,

    /// Most hosts kept in the inventory.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub max_hosts: usize,

    /// Most bytes of server names the inventory holds (each distinct name once, charged its length plus 64); a new name beyond is counted as bound="server_names".
    #[arg(long, default_value_t = 32 << 20, value_name = "BYTES")]
    pub max_server_name_bytes: usize,

    /// Most distinct source hosts labelled on tlscensus_legacy_flows_total; others go to source="other".
    #[arg(long, default_value_t = 3_000, value_name = "N")]
    pub max_legacy_sources: usize,

    /// Most IP datagrams in reassembly at once.
    #[arg(long, default_value_t = 4_096, value_name = "N")]
    pub max_fragments: usize,

    /// Most bytes held by IP datagrams in reassembly (fragment payloads plus a fixed charge each).
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    pub max_fragment_bytes: usize,

    /// UDP destination port of VXLAN (repeatable; replaces the default 4789).
    #[arg(long = "vxlan-port", value_name = "PORT")]
    pub vxlan_ports: Vec<u16>,

    /// UDP destination port of Geneve (repeatable; replaces the default 6081).
    #[arg(long = "geneve-port", value_name = "PORT")]
    pub geneve_ports: Vec<u16>,
}
