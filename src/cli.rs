//! Command-line flags, as clap derive structs. Raw values only: validation and
//! defaults that depend on the machine live in `config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tlscensus",
    version,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Capture files (.pcap or .pcapng) or directories; a directory's capture files are read in name order.
    #[arg(required = true, value_name = "FILE")]
    pub inputs: Vec<PathBuf>,

    /// Inventory output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Write the Prometheus metrics (text format) to FILE at the end (atomically, for node_exporter's textfile collector).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,

    /// Exit with status 1 when a legacy TLS flow was found.
    #[arg(long)]
    pub fail_on_legacy: bool,

    /// Never show progress, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,

    #[command(flatten)]
    pub census: CensusArgs,
}

/// Options shared by every mode that runs the census pipeline.
#[derive(Debug, Args, Clone)]
pub struct CensusArgs {
    /// Write one JSON object per TLS flow (newline-delimited) to FILE, or '-' for stdout.
    #[arg(long, value_name = "FILE")]
    pub events: Option<String>,

    /// Inventory every TLS flow, not only flows to the target servers.
    #[arg(long)]
    pub all: bool,

    /// Target server-name pattern (repeatable; replaces the Azure Blob Storage defaults). A leading '*.' matches one or more labels.
    #[arg(long = "target", value_name = "PATTERN")]
    pub targets: Vec<String>,

    /// Versions below this are legacy (SSLv3, TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3).
    #[arg(long, default_value = "TLSv1.2", value_name = "VERSION")]
    pub min_version: String,

    /// Parser worker threads [default: available cores].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Most flows tracked at once (all workers together); the oldest is evicted beyond it.
    #[arg(long, default_value_t = 262_144, value_name = "N")]
    pub max_flows: usize,

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

    /// Most distinct source hosts labelled on tlscensus_legacy_flows_total; others go to source="other".
    #[arg(long, default_value_t = 5_000, value_name = "N")]
    pub max_legacy_sources: usize,

    /// Most IP datagrams in reassembly at once.
    #[arg(long, default_value_t = 4_096, value_name = "N")]
    pub max_fragments: usize,
}
