//! The configuration file (`--config FILE`): TOML whose keys are the long
//! options of the subcommand it is given to, without the dashes
//! (`max-flows = 262144`, `interface = ["ens5"]`, `all = true`).
//!
//! Input: the file's text and the subcommand's clap definition. Output: the
//! arguments the file stands for, which go through the same clap parser and
//! the same checks as the command line, so a setting means exactly what its
//! flag means. Flags on the command line override the file: a key whose
//! option the command line gives is left out (for a repeatable option, the
//! command line's list replaces the file's).
//!
//! Invariants: every key is an option of that subcommand and every value is
//! checked by the option's own value parser before anything runs; an error
//! names the file, the line and the key, and suggests a close key for an
//! unknown one. Nested tables stand for dotted names (`[web.config]` with
//! `file = "..."` is `web.config.file`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};
use toml::de::{DeTable, DeValue};

use crate::error::SetupError;

/// Largest configuration file read (a configuration is a few KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Keys that are options of the program but not settings of a file.
const NOT_SETTINGS: &[&str] = &["help", "version", "config"];

/// One key of the file: its dotted name, the line it is on and its values
/// as the command line would spell them (a flag has none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub line: usize,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    /// A string or number.
    One(String),
    List(Vec<String>),
}

/// A parsed configuration file, not yet checked against a subcommand.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub settings: Vec<Setting>,
}

/// `FILE:LINE: message`.
fn at(path: &Path, line: usize, msg: impl std::fmt::Display) -> SetupError {
    SetupError::ConfigFile(format!("{}:{line}: {msg}", path.display()))
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl ConfigFile {
    /// Reads and parses `path` (at most [`MAX_FILE_BYTES`]).
    pub fn load(path: &Path) -> Result<ConfigFile, SetupError> {
        use std::io::Read;
        let open = |source| SetupError::Open {
            path: path.display().to_string(),
            source,
        };
        let f = std::fs::File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SetupError::ConfigFile(format!(
                    "{}: no such file (`tlscensus config example > FILE` writes one that lists every setting)",
                    path.display()
                ))
            } else {
                open(e)
            }
        })?;
        let mut text = String::new();
        f.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    SetupError::ConfigFile(format!("{}: not UTF-8 text", path.display()))
                } else {
                    open(e)
                }
            })?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(SetupError::ConfigFile(format!(
                "{}: larger than {} bytes: not a configuration file",
                path.display(),
                MAX_FILE_BYTES
            )));
        }
        ConfigFile::parse(path, &text)
    }

    /// Parses a file's text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, SetupError> {
        let table = DeTable::parse(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            at(path, line, e.message().trim_end())
        })?;
        let mut settings = Vec::new();
        flatten(path, text, "", table.get_ref(), &mut settings)?;
        settings.sort_by_key(|s| s.line);
        Ok(ConfigFile {
            path: path.to_path_buf(),
            settings,
        })
    }

    /// The arguments the file gives subcommand `cmd`, leaving out the
    /// options for which `on_command_line` (an arg id) is true. Each key
    /// must be an option of `cmd`, and each value pass its parser.
    pub fn to_args(
        &self,
        cmd: &Command,
        on_command_line: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<OsString>, SetupError> {
        let mut args = Vec::new();
        for s in &self.settings {
            let arg = find_option(cmd, &s.key).ok_or_else(|| self.unknown(cmd, s))?;
            let flag = format!("--{}", s.key);
            let bad = |msg: String| at(&self.path, s.line, format!("{}: {msg}", s.key));
            let values = match (&s.value, arg.get_action()) {
                (Value::Bool(b), ArgAction::SetTrue) => {
                    if *b && !on_command_line(arg.get_id().as_str()) {
                        args.push(OsString::from(&flag));
                    }
                    continue;
                }
                (_, ArgAction::SetTrue) => {
                    return Err(bad("expected true or false".into()));
                }
                (Value::Bool(_), _) => {
                    return Err(bad(format!("expected {}", expected(arg))));
                }
                (Value::One(v), _) => vec![v.clone()],
                (Value::List(vs), ArgAction::Append) => vs.clone(),
                (Value::List(_), _) => {
                    return Err(bad(format!(
                        "takes one value, not a list: {}",
                        expected(arg)
                    )));
                }
            };
            for v in &values {
                check_value(arg, v).map_err(&bad)?;
            }
            if on_command_line(arg.get_id().as_str()) {
                continue;
            }
            for v in values {
                // `--key=value`: a value that starts with '-' stays a value.
                args.push(OsString::from(format!("{flag}={v}")));
            }
        }
        Ok(args)
    }

    /// Where the setting of `--key` is, for an error that names the flag:
    /// `FILE:LINE`, when the message names an option this file set.
    pub fn locate(&self, message: &str) -> Option<String> {
        self.settings.iter().find_map(|s| {
            let flag = format!("--{}", s.key);
            let named = message.match_indices(&flag).any(|(i, _)| {
                let next = message[i + flag.len()..].chars().next();
                !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            });
            named.then(|| format!("{}:{}", self.path.display(), s.line))
        })
    }

    fn unknown(&self, cmd: &Command, s: &Setting) -> SetupError {
        let known: Vec<String> = settings_of(cmd)
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        let close = known
            .iter()
            .map(|k| (strsim::jaro_winkler(k, &s.key.replace('_', "-")), k))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, k)| k.clone());
        let name = cmd.get_name();
        let hint = match close {
            Some(k) => format!(" (did you mean {k:?}?)"),
            None => format!(" (`tlscensus config example --for {name}` lists every setting)"),
        };
        at(
            &self.path,
            s.line,
            format!(
                "unknown key {:?}: not a setting of `tlscensus {name}`{hint}",
                s.key
            ),
        )
    }
}

/// clap's message in one line, without its "error: " and its usage.
pub fn first_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Why the command line was refused: clap's own error (printed by clap,
/// with usage) or a configuration file's.
#[derive(Debug)]
pub enum ParseError {
    Clap(clap::Error),
    Setup(SetupError),
}

/// Parses the command line; for `live` and `read` with `--config FILE`, the
/// file's settings go beneath the command line's. Returns the file too, to
/// place later errors ([`ConfigFile::locate`]) and to read it again.
pub fn parse_command_line(
    argv: Vec<OsString>,
) -> Result<(crate::cli::Cli, Option<ConfigFile>), ParseError> {
    use clap::FromArgMatches;
    let (m, file) = parse_matches(argv)?;
    let cli = crate::cli::Cli::from_arg_matches(&m).map_err(ParseError::Clap)?;
    Ok((cli, file))
}

/// [`parse_command_line`], as clap's matches (what each option was set
/// to, and from where).
pub fn parse_matches(
    argv: Vec<OsString>,
) -> Result<(clap::ArgMatches, Option<ConfigFile>), ParseError> {
    use clap::{CommandFactory, parser::ValueSource};
    let cmd = crate::cli::Cli::command();
    let m = cmd
        .clone()
        .try_get_matches_from(&argv)
        .map_err(ParseError::Clap)?;
    let file = match m.subcommand() {
        Some((name @ ("live" | "read"), sub)) => match sub.get_one::<PathBuf>("config") {
            Some(path) => Some((
                name,
                sub,
                ConfigFile::load(path).map_err(ParseError::Setup)?,
            )),
            None => None,
        },
        _ => None,
    };
    let Some((name, sub, file)) = file else {
        return Ok((m, None));
    };
    let sub_cmd = cmd
        .find_subcommand(name)
        .ok_or_else(|| ParseError::Setup(SetupError::Config(format!("no subcommand {name}"))))?;
    let given = |id: &str| sub.value_source(id) == Some(ValueSource::CommandLine);
    let from_file = file.to_args(sub_cmd, &given).map_err(ParseError::Setup)?;
    // The subcommand is the first argument (the program has no options of
    // its own before it): the file's settings go right after it.
    let mut merged: Vec<OsString> = argv.iter().take(2).cloned().collect();
    merged.extend(from_file);
    merged.extend(argv.iter().skip(2).cloned());
    let m = cmd.try_get_matches_from(merged).map_err(ParseError::Clap)?;
    Ok((m, Some(file)))
}

/// Options of `live` a reload applies: the rules (targets, services,
/// Service Tags, proxies, client labels) and `--resolve`. The files they
/// name are read again at every reload, changed or not. Every other option
/// takes effect at the next start.
pub const RELOADABLE: &[&str] = &[
    "config",
    "target",
    "target-cidr",
    "services",
    "services-file",
    "azure-service-tags",
    "service-tag",
    "fingerprints",
    "proxy",
    "resolve",
    "resolve-server",
    "resolve-rate",
];

/// Each option of subcommand `cmd` (by its long name) with its values as
/// given, defaults included.
pub fn values_of(
    cmd: &Command,
    m: &clap::ArgMatches,
) -> std::collections::BTreeMap<String, Vec<String>> {
    cmd.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            let values = m
                .try_get_raw(a.get_id().as_str())
                .ok()
                .flatten()
                .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            Some((long.to_string(), values))
        })
        .collect()
}

/// The options, other than [`RELOADABLE`] ones, whose values differ
/// (`--max-flows`): a reload cannot apply them.
pub fn needs_restart(
    before: &std::collections::BTreeMap<String, Vec<String>>,
    after: &std::collections::BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| !RELOADABLE.contains(&k.as_str()) && before.get(*k) != after.get(*k))
        .map(|k| format!("--{k}"))
        .collect()
}

/// The options of `cmd` a file may set.
pub fn settings_of(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments()
        .filter(|a| !a.is_positional() && a.get_long().is_some_and(|l| !NOT_SETTINGS.contains(&l)))
}

fn find_option<'c>(cmd: &'c Command, key: &str) -> Option<&'c Arg> {
    settings_of(cmd).find(|a| a.get_long() == Some(key))
}

/// What an option takes, for an error message.
fn expected(arg: &Arg) -> String {
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|p| p.get_name().to_string())
        .collect();
    if !possible.is_empty() {
        return format!("one of {}", possible.join(", "));
    }
    match arg.get_value_names() {
        Some(names) if !names.is_empty() => format!("a value ({})", names[0]),
        _ => "a value".into(),
    }
}

/// Runs the option's own value parser on `v` (a command of that one
/// option parses `--key=v`).
fn check_value(arg: &Arg, v: &str) -> Result<(), String> {
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    let one = Command::new("check")
        .no_binary_name(true)
        .disable_help_flag(true)
        .arg(arg.clone().required(false));
    match one.try_get_matches_from([format!("--{long}={v}")]) {
        Ok(_) => Ok(()),
        Err(_) if !arg.get_possible_values().is_empty() => {
            Err(format!("{v:?} is not {}", expected(arg)))
        }
        Err(e) => {
            // Without the flag clap names: the file's key is said already.
            let line = first_line(&e);
            let why = line
                .rsplit_once("': ")
                .map_or(line.as_str(), |(_, why)| why);
            Err(format!("{v:?}: {why}"))
        }
    }
}

/// Flattens nested tables into dotted keys, in file order.
fn flatten(
    path: &Path,
    text: &str,
    prefix: &str,
    table: &DeTable<'_>,
    out: &mut Vec<Setting>,
) -> Result<(), SetupError> {
    for (key, value) in table.iter() {
        let name = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        let line = line_of(text, key.span().start);
        let scalar = |v: &DeValue<'_>| -> Option<String> {
            match v {
                DeValue::String(s) => Some(s.to_string()),
                DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
                    .ok()
                    .map(|n| n.to_string()),
                DeValue::Float(f) => Some(f.as_str().to_string()),
                DeValue::Datetime(d) => Some(d.to_string()),
                _ => None,
            }
        };
        let value = match value.get_ref() {
            DeValue::Table(t) => {
                flatten(path, text, &name, t, out)?;
                continue;
            }
            DeValue::Boolean(b) => Value::Bool(*b),
            DeValue::Array(items) => {
                let mut list = Vec::with_capacity(items.len());
                for item in items.iter() {
                    list.push(scalar(item.get_ref()).ok_or_else(|| {
                        at(
                            path,
                            line_of(text, item.span().start),
                            format!(
                                "{name}: a list of strings or numbers, not of {}",
                                item.get_ref().type_str()
                            ),
                        )
                    })?);
                }
                Value::List(list)
            }
            v => Value::One(scalar(v).unwrap_or_default()),
        };
        out.push(Setting {
            key: name,
            line,
            value,
        });
    }
    Ok(())
}

/// An annotated configuration file for `cmd` that sets nothing: every
/// setting commented out, with its help text and default. Made from the
/// same definitions as the command line, so it cannot drift from them.
pub fn example(cmd: &Command) -> String {
    let name = cmd.get_name();
    let mut out = format!(
        "# tlscensus {name}: configuration file (TOML).\n\
         #\n\
         # Each key is a long option of `tlscensus {name}` without its dashes;\n\
         # options given on the command line override this file. Lists take\n\
         # [\"a\", \"b\"]; switches take true or false. Check a file with\n\
         # `tlscensus config check --for {name} FILE`.\n"
    );
    for arg in settings_of(cmd) {
        if arg.is_hide_set() {
            continue;
        }
        let Some(long) = arg.get_long() else { continue };
        out.push('\n');
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        for line in wrap(&help, 76) {
            out.push_str(&format!("# {line}\n"));
        }
        let mut defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if defaults.is_empty() {
            // (an option of a closed set without a default: its first value)
            defaults.extend(
                arg.get_possible_values()
                    .first()
                    .map(|p| p.get_name().to_string()),
            );
        }
        let value_name = arg
            .get_value_names()
            .and_then(|n| n.first())
            .map_or("VALUE".to_string(), |n| n.to_string());
        let sample = match arg.get_action() {
            ArgAction::SetTrue => "false".to_string(),
            ArgAction::Append if defaults.is_empty() => "[]".to_string(),
            ArgAction::Append => format!("[{}]", quoted(&value_name, &defaults)),
            _ => quoted(&value_name, &defaults),
        };
        let key = if long.contains('.') {
            format!("{long:?}")
        } else {
            long.to_string()
        };
        out.push_str(&format!("#{key} = {sample}\n"));
    }
    out
}

/// A sample value as TOML: the default when there is one, numbers bare.
fn quoted(value_name: &str, defaults: &[String]) -> String {
    let numeric = matches!(
        value_name,
        "N" | "BYTES" | "MIB" | "SECONDS" | "FLOWS" | "PORT"
    );
    match defaults.first() {
        Some(d) if numeric && d.parse::<i128>().is_ok() => d.clone(),
        Some(d) => format!("{d:?}"),
        None if numeric => "1".into(),
        None => format!("\"{value_name}\""),
    }
}

/// Words of `text` in lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn live() -> Command {
        crate::cli::Cli::command()
            .find_subcommand("live")
            .cloned()
            .unwrap_or_else(|| unreachable!("live is a subcommand"))
    }

    fn parse(text: &str) -> Result<ConfigFile, String> {
        ConfigFile::parse(Path::new("/etc/tlscensus/ens5.toml"), text).map_err(|e| e.to_string())
    }

    fn args(text: &str) -> Result<Vec<String>, String> {
        let f = parse(text)?;
        f.to_args(&live(), &|_| false)
            .map(|a| a.into_iter().map(|s| s.into_string().unwrap()).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn config_file_settings_become_flags() {
        assert_eq!(args("interface = []\n").unwrap(), Vec::<String>::new());
        let got = args(
            "interface = [\"ens5\", \"ens6\"]\nmax-flows = 1_000\nall = true\nraw-fingerprints = false\n\
             target = [\"*.example.com\"]\nmin-version = \"TLSv1.2\"\n[web.config]\nfile = \"/etc/w.yml\"\n",
        )
        .unwrap();
        assert_eq!(
            got,
            [
                "--interface=ens5",
                "--interface=ens6",
                "--max-flows=1000",
                "--all",
                "--target=*.example.com",
                "--min-version=TLSv1.2",
                "--web.config.file=/etc/w.yml",
            ]
        );
    }

    #[test]
    fn config_file_command_line_wins() {
        let f = parse("max-flows = 10\nlisten = \"0.0.0.0:9814\"\n").unwrap();
        let got = f.to_args(&live(), &|id| id == "max_flows").unwrap();
        assert_eq!(got, [OsString::from("--listen=0.0.0.0:9814")]);
    }

    #[test]
    fn config_file_errors_name_file_line_key() {
        let e = args("\n\nmax_flows = 10\n").unwrap_err();
        assert_eq!(
            e,
            "/etc/tlscensus/ens5.toml:3: unknown key \"max_flows\": not a setting of `tlscensus live` (did you mean \"max-flows\"?)"
        );
        let e = args("all = true\nmax-flows = \"many\"\n").unwrap_err();
        assert!(
            e.starts_with("/etc/tlscensus/ens5.toml:2: max-flows: \"many\": "),
            "{e}"
        );
        let e = args("all = 1\n").unwrap_err();
        assert_eq!(e, "/etc/tlscensus/ens5.toml:1: all: expected true or false");
        let e = args("listen = [\"a\", \"b\"]\n").unwrap_err();
        assert!(e.contains(":1: listen: takes one value, not a list"), "{e}");
        let e = args("zzz = 1\n").unwrap_err();
        assert!(e.contains("config example --for live"), "{e}");
        let e = args("format = \"json\"\n").unwrap_err();
        assert!(e.contains("unknown key \"format\""), "{e}");
        let e = args("config = \"x\"\n").unwrap_err();
        assert!(e.contains("unknown key \"config\""), "{e}");
        let e = args("target = [[1]]\n").unwrap_err();
        assert!(
            e.contains(":1: target: a list of strings or numbers"),
            "{e}"
        );
        let e = parse("a = 1\nb = \n").unwrap_err();
        assert!(e.starts_with("/etc/tlscensus/ens5.toml:2: "), "{e}");
        let e = parse("a = 1\na = 2\n").unwrap_err();
        assert!(e.starts_with("/etc/tlscensus/ens5.toml:2: "), "{e}");
    }

    #[test]
    fn config_file_locates_flag_errors() {
        let f = parse("max-flows = 0\nmax-flows-x = 1\n").unwrap();
        assert_eq!(
            f.locate("--max-flows must be at least 1").as_deref(),
            Some("/etc/tlscensus/ens5.toml:1")
        );
        assert_eq!(f.locate("--max-hosts must be at least 1"), None);
    }

    /// The example sets nothing, parses, and names every setting.
    #[test]
    fn config_example_lists_every_setting() {
        let cmd = live();
        let text = example(&cmd);
        let f = parse(&text).unwrap();
        assert!(f.settings.is_empty());
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.starts_with(' ') => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let all = parse(&uncommented).unwrap();
        let keys: Vec<&str> = all.settings.iter().map(|s| s.key.as_str()).collect();
        for a in settings_of(&cmd) {
            assert!(keys.contains(&a.get_long().unwrap()), "{:?}", a.get_long());
        }
        // Every sample value passes its option's parser.
        all.to_args(&cmd, &|_| false).unwrap();
    }
}
