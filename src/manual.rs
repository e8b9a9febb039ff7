//! The manual generated from the command-line definitions (`cli`): the
//! manual pages, and the options tables of `docs/reference.md`. Nothing
//! here is written by hand, so none of it can drift from the flags.

use crate::cli::Cli;

/// Writes `tlscensus.1` and `tlscensus-SUBCOMMAND.1` for each visible
/// subcommand (and each of theirs) into `dir`, from these definitions.
pub fn write_man_pages(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command().version(env!("CARGO_PKG_VERSION"));
    write_pages(dir, cmd, "tlscensus", "tlscensus")
}

/// One page, `name.1`, for `cmd` as typed (`bin`: "tlscensus config check").
fn write_pages(
    dir: &std::path::Path,
    cmd: clap::Command,
    name: &str,
    bin: &str,
) -> std::io::Result<()> {
    let cmd = cmd.display_name(name.to_string()).bin_name(bin.to_string());
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    std::fs::write(dir.join(format!("{name}.1")), out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_name = format!("{name}-{}", sub.get_name());
        let sub_bin = format!("{bin} {}", sub.get_name());
        write_pages(dir, sub.clone(), &sub_name, &sub_bin)?;
    }
    Ok(())
}

/// The options of every command as Markdown tables (option, default,
/// meaning), from these definitions: the part of `docs/reference.md` a test
/// keeps equal to them.
pub fn options_reference() -> String {
    use clap::CommandFactory;
    let mut out = String::new();
    let cmd = Cli::command();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        reference_of(&mut out, sub, &format!("tlscensus {}", sub.get_name()));
    }
    out
}

fn reference_of(out: &mut String, cmd: &clap::Command, bin: &str) {
    use std::fmt::Write;
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    if !subs.is_empty() {
        for sub in subs {
            reference_of(out, sub, &format!("{bin} {}", sub.get_name()));
        }
        return;
    }
    let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
    let _ = writeln!(out, "### `{bin}`\n\n{about}\n");
    let args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"))
        .collect();
    if args.is_empty() {
        return;
    }
    let _ = writeln!(out, "| option | default | meaning |\n| --- | --- | --- |");
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    for a in args {
        let value = a
            .get_value_names()
            .and_then(|n| n.first())
            .map(|n| n.to_string());
        let takes_value = !matches!(a.get_action(), clap::ArgAction::SetTrue);
        let name = match (a.get_short(), a.get_long()) {
            _ if a.is_positional() => value.clone().unwrap_or_else(|| a.get_id().to_string()),
            (Some(s), Some(l)) => format!("-{s}, --{l}"),
            (None, Some(l)) => format!("--{l}"),
            (Some(s), None) => format!("-{s}"),
            (None, None) => a.get_id().to_string(),
        };
        let name = match (&value, takes_value && !a.is_positional()) {
            (Some(v), true) => format!("{name} {v}"),
            _ => name,
        };
        let possible: Vec<String> = a
            .get_possible_values()
            .iter()
            .filter(|p| !p.is_hide_set())
            .map(|p| p.get_name().to_string())
            .collect();
        let mut help = a
            .get_long_help()
            .or_else(|| a.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        // A default the help text gives itself ("[default: ...]") goes to its column.
        let mut default: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let mut prose_default = None;
        if let Some(i) = help.find(" [default: ") {
            prose_default = Some(help[i + 11..].trim_end_matches(']').to_string());
            default.clear();
            help.truncate(i);
        }
        if takes_value && !possible.is_empty() {
            help = format!("{help} ({})", possible.join(", "));
        }
        let default = if matches!(a.get_action(), clap::ArgAction::SetTrue) {
            "off".to_string()
        } else if let Some(d) = prose_default {
            d
        } else if default.is_empty() {
            "–".to_string()
        } else {
            format!("`{}`", default.join(","))
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            cell(&name),
            cell(&default),
            cell(&help)
        );
    }
    out.push('\n');
}
