//! tlscensus command line: parse arguments, run, map the result to an exit status.
//! Exit status: 0 success (also after SIGINT/SIGTERM in live mode), 1 legacy TLS
//! found with --fail-on-legacy, 2 error.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tlscensus::cli::{Cli, Command, Format};

use tlscensus::config::{LiveConfig, ReadConfig};
use tlscensus::report;
use tlscensus::run::{live, read};

const EXIT_LEGACY: u8 = 1;
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Read(args) => {
            let cfg = match ReadConfig::from_args(&args, std::io::stderr().is_terminal()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("tlscensus: {e}");
                    return ExitCode::from(EXIT_ERROR);
                }
            };
            run_read(&cfg)
        }
        Command::Live(args) => match LiveConfig::from_args(&args) {
            Ok(cfg) => run_live(&cfg),
            Err(e) => {
                eprintln!("tlscensus: {e}");
                ExitCode::from(EXIT_ERROR)
            }
        },
    }
}

fn run_live(cfg: &LiveConfig) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while shutting down exits at once (status 130).
        let registered =
            signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
                .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)));
        if let Err(e) = registered {
            eprintln!("tlscensus: cannot handle signals: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    }
    let say = |line: &str| eprintln!("tlscensus: {line}");
    match live::run(cfg, stop, &say) {
        Ok(o) => {
            eprintln!(
                "tlscensus: stopped: {} packets, {} TLS flows, {} dropped by the kernel, {} segments dropped at full worker queues",
                o.packets, o.tls_flows, o.kernel_drops, o.queue_drops
            );
            if o.errored {
                ExitCode::from(EXIT_ERROR)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("tlscensus: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run_read(cfg: &ReadConfig) -> ExitCode {
    let mut say = |line: &str| eprintln!("tlscensus: {line}");
    let outcome = match read::run(cfg, &mut say) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tlscensus: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let text = match cfg.format {
        Format::Table => report::table(&outcome.hosts, &outcome.totals),
        Format::Json => report::json(&outcome.hosts, &outcome.totals),
        Format::Csv => report::csv(&outcome.hosts),
    };
    // With the event log on stdout, the inventory goes to stderr.
    let written = if cfg.census.events.as_deref() == Some("-") {
        std::io::stderr().write_all(text.as_bytes())
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).and_then(|_| out.flush())
    };
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tlscensus: writing the report: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
        Ok(()) => {}
    }
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
