//! tlscensus command line: parse arguments, run, map the result to an exit status.
//! Exit status: 0 success (also after SIGINT/SIGTERM in live mode, and when
//! stdout is closed early, as by `| head`), 1 legacy TLS found with
//! --fail-on-legacy, 2 error.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use tlscensus::cli::{Cli, Command, Format};
use tlscensus::config::{LiveConfig, ReadConfig};
use tlscensus::error::SetupError;
use tlscensus::report;
use tlscensus::run::{live, read};

const EXIT_LEGACY: u8 = 1;
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tlscensus: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Runs the command; an error is a setup error (bad arguments, a device or
/// file that cannot be opened), said once by `main`.
fn run(cli: Cli) -> Result<ExitCode, SetupError> {
    match cli.command {
        Command::Read(args) => {
            let cfg = ReadConfig::from_args(&args, std::io::stderr().is_terminal())?;
            run_read(&cfg)
        }
        Command::Live(args) => run_live(&LiveConfig::from_args(&args)?),
        Command::Services(args) => {
            if let Some(path) = &args.services_file {
                tlscensus::target::services::install_file(path)
                    .map_err(|e| SetupError::Config(format!("--services-file {e}")))?;
            }
            print!("{}", tlscensus::report::services_table());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_live(cfg: &LiveConfig) -> Result<ExitCode, SetupError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while shutting down exits at once (status 130).
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
            .map_err(|e| SetupError::Config(format!("cannot handle signals: {e}")))?;
    }
    let say = |line: &str| eprintln!("tlscensus: {line}");
    let o = live::run(cfg, stop, &say)?;
    eprintln!(
        "tlscensus: stopped: {} packets, {} TLS flows, {} dropped by the kernel, {} segments dropped at full worker queues",
        o.packets, o.tls_flows, o.kernel_drops, o.queue_drops
    );
    Ok(if o.errored {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_read(cfg: &ReadConfig) -> Result<ExitCode, SetupError> {
    let mut say = |line: &str| eprintln!("tlscensus: {line}");
    let outcome = read::run(cfg, &mut say)?;
    let cx = report::Context {
        labels: &cfg.census.labels,
        names: &outcome.shared.names,
    };
    let destinations = outcome.shared.destinations.snapshot();
    // With the event log on stdout, the inventory goes to stderr. Written
    // as it is made: a large report is not held whole in memory.
    let mut out: Box<dyn Write> = if cfg.census.events.as_deref() == Some("-") {
        Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stderr().lock(),
        ))
    } else {
        Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout().lock(),
        ))
    };
    let written = report::render_to(
        cfg.by,
        cfg.format,
        &outcome.hosts,
        &destinations,
        &outcome.totals,
        cx,
        &mut out,
    )
    .and_then(|_| out.flush());
    drop(out);
    let code = match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tlscensus: writing the report: {e}");
            ExitCode::from(EXIT_ERROR)
        }
        Ok(()) => {
            if cfg.format == Format::Csv {
                eprintln!("{}", report::summary_line(&outcome.totals));
            }
            if outcome.errored {
                ExitCode::from(EXIT_ERROR)
            } else if cfg.fail_on_legacy && outcome.totals.legacy_flows > 0 {
                ExitCode::from(EXIT_LEGACY)
            } else {
                ExitCode::SUCCESS
            }
        }
    };
    // The process ends now. Freeing the inventory and the metric series
    // entry by entry would only delay that; the OS takes the memory back.
    std::mem::forget(outcome);
    Ok(code)
}
