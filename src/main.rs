//! tlscensus command line: parse arguments, run, map the result to an exit status.
//! Exit status: 0 success (also after SIGINT/SIGTERM in live mode, and when
//! stdout is closed early, as by `| head`), 1 legacy TLS found with
//! --fail-on-legacy, 2 error.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tlscensus::cli::{Cli, Command, ConfigCommand, ConfigFor, Format, GenerateCommand};
use tlscensus::config::file::{self, ConfigFile, ParseError};
use tlscensus::config::{LiveConfig, ReadConfig};
use tlscensus::error::SetupError;
use tlscensus::report;
use tlscensus::run::{live, read};

const EXIT_LEGACY: u8 = 1;
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let (cli, file) = match file::parse_command_line(argv.clone()) {
        Ok(parsed) => parsed,
        // clap prints its own errors, with usage, and exits 2 (0 for --help).
        Err(ParseError::Clap(e)) => e.exit(),
        Err(ParseError::Setup(e)) => {
            eprintln!("tlscensus: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match run(cli, argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tlscensus: {}", placed(&e, file.as_ref()));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// An error about an option, with the line of the configuration file that
/// set it (`FILE:LINE: --max-flows must be at least 1`).
fn placed(e: &SetupError, file: Option<&ConfigFile>) -> String {
    let msg = e.to_string();
    match file.and_then(|f| f.locate(&msg)) {
        Some(place) => format!("{place}: {msg}"),
        None => msg,
    }
}

/// Runs the command; an error is a setup error (bad arguments, a device or
/// file that cannot be opened), said once by `main`.
fn run(cli: Cli, argv: Vec<OsString>) -> Result<ExitCode, SetupError> {
    match cli.command {
        Command::Read(args) => {
            let cfg = ReadConfig::from_args(&args, std::io::stderr().is_terminal())?;
            run_read(&cfg)
        }
        Command::Live(args) => {
            let cfg = LiveConfig::from_args(&args)?;
            if cfg.interfaces.is_empty() {
                return Err(SetupError::Config(
                    "no interface to capture on: give -i IFACE, or interface = [\"IFACE\"] in the configuration file".into(),
                ));
            }
            run_live(&cfg, Some(live_reload(argv)?))
        }
        Command::Config(ConfigCommand::Check { file, for_ }) => config_check(&file, for_),
        Command::Config(ConfigCommand::Example { for_ }) => {
            let cmd = subcommand(for_.name());
            print!("{}", file::example(&cmd));
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(GenerateCommand::Man { dir }) => {
            tlscensus::manual::write_man_pages(&dir).map_err(|source| SetupError::Write {
                what: "manual page",
                path: dir.display().to_string(),
                source,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(GenerateCommand::Reference) => {
            print!("{}", tlscensus::manual::options_reference());
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(GenerateCommand::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "tlscensus", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Policies(args) => {
            let text = match &args.policy {
                None => tlscensus::report::policies_list(),
                Some(name) => match tlscensus::policy::presets::text(name) {
                    Some(text) => text.to_string(),
                    None => {
                        let p = tlscensus::policy::resolve(name).map_err(SetupError::ConfigFile)?;
                        tlscensus::policy::file::to_toml(&p)
                    }
                },
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Services(args) => {
            if let Some(path) = &args.services_file {
                tlscensus::targets::services::install_file(path)
                    .map_err(|e| SetupError::Config(format!("--services-file {e}")))?;
            }
            print!("{}", tlscensus::report::services_table());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A subcommand's clap definition.
fn subcommand(name: &str) -> clap::Command {
    <Cli as clap::CommandFactory>::command()
        .find_subcommand(name)
        .cloned()
        .unwrap_or_else(|| clap::Command::new(name.to_string()))
}

/// `tlscensus config check`: loads the file as `live` (or `read`) would,
/// with every file it names, and says what it sets.
fn config_check(path: &std::path::Path, for_: ConfigFor) -> Result<ExitCode, SetupError> {
    let name = for_.name();
    let mut argv: Vec<std::ffi::OsString> = vec!["tlscensus".into(), name.into()];
    argv.extend(["--config".into(), path.as_os_str().to_owned()]);
    if for_ == ConfigFor::Read {
        // `read` needs an input; none is read here.
        argv.push("-".into());
    }
    let (cli, file) = match file::parse_command_line(argv) {
        Ok(parsed) => parsed,
        Err(ParseError::Setup(e)) => return Err(e),
        Err(ParseError::Clap(e)) => {
            return Err(SetupError::ConfigFile(format!(
                "{}: {}",
                path.display(),
                file::first_line(&e)
            )));
        }
    };
    let settings = file.as_ref().map_or(0, |f| f.settings.len());
    let checked = match cli.command {
        Command::Live(args) => {
            let no_interface = args.interfaces.is_empty();
            LiveConfig::from_args(&args).map(|cfg| {
                if no_interface {
                    "no interface (the command line gives it, as tlscensus@IFACE does)".to_string()
                } else {
                    format!("interfaces {}", cfg.interfaces.join(", "))
                }
            })
        }
        Command::Read(args) => ReadConfig::from_args(&args, false).map(|_| "for read".into()),
        _ => Ok(String::new()),
    };
    match checked {
        Ok(what) => {
            println!("{}: ok: {settings} settings, {what}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let msg = placed(&e, file.as_ref());
            let shown = path.display().to_string();
            Err(SetupError::ConfigFile(if msg.starts_with(&shown) {
                msg
            } else {
                format!("{shown}: {msg}")
            }))
        }
    }
}

/// SIGHUP in live mode: the command line is parsed again, with its
/// configuration file read anew, and checked as at the start; its rules go
/// in use, and the options that only a restart applies are named.
fn live_reload(argv: Vec<OsString>) -> Result<live::Reload, SetupError> {
    use clap::FromArgMatches;
    let requested = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&requested))
        .map_err(|e| SetupError::Config(format!("cannot handle SIGHUP: {e}")))?;
    let cmd = subcommand("live");
    let said = |e: ParseError| match e {
        ParseError::Setup(e) => e.to_string(),
        ParseError::Clap(e) => file::first_line(&e),
    };
    let values = move |m: &clap::ArgMatches| {
        m.subcommand_matches("live")
            .map(|sub| file::values_of(&cmd, sub))
            .unwrap_or_default()
    };
    let before = file::parse_matches(argv.clone())
        .map(|(m, _)| values(&m))
        .unwrap_or_default();
    let reread = move || -> Result<live::Reread, String> {
        let (m, file) = file::parse_matches(argv.clone()).map_err(said)?;
        let sub = m
            .subcommand_matches("live")
            .ok_or_else(|| "not a live command line".to_string())?;
        let args = tlscensus::cli::LiveArgs::from_arg_matches(sub).map_err(|e| e.to_string())?;
        let (cfg, table) = LiveConfig::prepare(&args).map_err(|e| placed(&e, file.as_ref()))?;
        Ok(live::Reread {
            census: cfg.census,
            table,
            restart: file::needs_restart(&before, &values(&m)),
            source: file.map_or_else(
                || "the files the command line names".to_string(),
                |f| f.path.display().to_string(),
            ),
        })
    };
    Ok(live::Reload {
        requested,
        reread: Box::new(reread),
    })
}

fn run_live(cfg: &LiveConfig, reload: Option<live::Reload>) -> Result<ExitCode, SetupError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while shutting down exits at once (status 130).
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
            .map_err(|e| SetupError::Config(format!("cannot handle signals: {e}")))?;
    }
    let say = |line: &str| eprintln!("tlscensus: {line}");
    let o = live::run(cfg, stop, reload, &say)?;
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
        policies: &cfg.census.policies,
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
