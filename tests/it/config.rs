//! The configuration file end to end through the binary: a file that sets
//! every option of `read` gives exactly what the same flags give; flags
//! override the file; a refused file names the file, the line and the key;
//! the shipped configuration and the generated examples pass `config check`.

use std::path::Path;

use crate::common::*;

/// Every `read` setting, each with a value that is not its default. Inputs
/// are written into `inputs`; outputs go into `out`.
fn every_read_setting(inputs: &Path, out: &Path) -> Vec<(&'static str, Val)> {
    let one = |v: &str| Val::One(v.to_string());
    let o = |name: &str| out.join(name).display().to_string();
    let mut all = vec![
        ("format", one("json")),
        ("by", one("fingerprint")),
        ("metrics-file", Val::One(o("metrics.prom"))),
        ("fail-on-legacy", Val::Switch),
        ("no-progress", Val::Switch),
        ("filter", one("tcp or udp")),
    ];
    all.extend(census_settings(inputs, out));
    all
}

const INPUTS: &[&str] = &[
    "demo.pcapng",
    "services.pcap",
    "dns-cname-custom-domain.pcap",
    "dns-tunnel-vxlan.pcap",
    "ipv4-fragments.pcap",
];

/// What one run left: status, stdout, the event log and the metrics file
/// (without the lines that time the run).
fn run_read(extra: &[String], out: &Path) -> (Option<i32>, String, String, String) {
    let mut args: Vec<String> = vec!["read".into()];
    args.extend(extra.iter().cloned());
    args.extend(INPUTS.iter().map(|f| capture(f).display().to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = tlscensus(&argv);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    let metrics: String = read("metrics.prom")
        .lines()
        .filter(|l| !l.contains("seconds"))
        .map(|l| format!("{l}\n"))
        .collect();
    (
        o.status.code(),
        text(&o.stdout),
        read("events.ndjson"),
        metrics,
    )
}

/// A file that sets every `read` option gives what the same flags give:
/// the report, every event and every metric.
#[test]
fn config_file_sets_every_read_option() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("file"), dir.path().join("flags"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap();
    }
    let from_file = every_read_setting(dir.path(), &a);
    let from_flags = every_read_setting(dir.path(), &b);

    let mut keys: Vec<&str> = from_file.iter().map(|(k, _)| *k).collect();
    let mut listed = example_keys("read");
    keys.sort_unstable();
    listed.sort_unstable();
    assert_eq!(keys, listed, "every read option has a value in this test");

    let config = dir.path().join("read.toml");
    std::fs::write(&config, toml_of(&from_file)).unwrap();
    let check = tlscensus(&["config", "check", "--for", "read", config.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check.stderr));

    let with_file = run_read(&[format!("--config={}", config.display())], &a);
    let with_flags = run_read(&flags_of(&from_flags), &b);
    assert_eq!(with_file.0, Some(1), "--fail-on-legacy from the file");
    assert!(with_file.1.starts_with('{') || with_file.1.starts_with('['));
    assert!(with_file.2.lines().count() > 5, "{}", with_file.2);
    assert!(with_file.2.contains("\"ja4_r\""), "raw fingerprints on");
    assert!(with_file.3.contains("tlscensus_flows_total"));
    assert_eq!(with_file, with_flags);
}

/// Flags override the file: a single value, a switch's file value alone,
/// and a list, which the command line replaces whole.
#[test]
fn config_file_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("read.toml");
    std::fs::write(
        &config,
        "min-version = \"TLSv1.3\"\nall = true\ntarget = [\"*.nowhere.example\"]\nformat = \"json\"\n",
    )
    .unwrap();
    let demo = capture("demo.pcapng");
    let c = format!("--config={}", config.display());
    let run = |args: &[&str]| {
        let mut argv = vec!["read", "--format", "csv"];
        argv.extend(args);
        argv.push(demo.to_str().unwrap());
        let o = tlscensus(&argv);
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    assert_eq!(
        run(&[
            &c,
            "--min-version",
            "TLSv1.2",
            "--target",
            "*.blob.core.windows.net"
        ]),
        run(&["--all", "--target", "*.blob.core.windows.net"])
    );
    assert_ne!(
        run(&[&c]),
        run(&["--all", "--target", "*.blob.core.windows.net"])
    );
}

fn refused(config_text: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sensor.toml");
    std::fs::write(&config, config_text).unwrap();
    let mut argv = args.to_vec();
    let c = format!("--config={}", config.display());
    argv.push(&c);
    let o = tlscensus(&argv);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty());
    text(&o.stderr).replace(&config.display().to_string(), "FILE")
}

/// A refused file is said once, with the file, the line and the key, and
/// nothing runs.
#[test]
fn config_file_errors_name_the_place() {
    let demo = capture("demo.pcapng");
    let read = ["read", demo.to_str().unwrap()];
    assert_eq!(
        refused("all = true\n\nmax_hosts = 5\n", &read),
        "tlscensus: FILE:3: unknown key \"max_hosts\": not a setting of `tlscensus read` (did you mean \"max-hosts\"?)\n"
    );
    assert_eq!(
        refused("# sensor\nmax-hosts = 0\n", &read),
        "tlscensus: FILE:2: invalid option: --max-hosts must be at least 1\n"
    );
    let e = refused("min-version = \"TLSv1.0\"\nformat = \"xml\"\n", &read);
    assert_eq!(
        e,
        "tlscensus: FILE:2: format: \"xml\" is not one of table, json, csv\n"
    );
    let e = refused("flow-timeout = -3\n", &read);
    assert!(
        e.starts_with("tlscensus: FILE:1: flow-timeout: \"-3\": "),
        "{e}"
    );
    let e = refused("target = \"*.a.example\"\nall = \"yes\"\n", &read);
    assert_eq!(e, "tlscensus: FILE:2: all: expected true or false\n");
    let e = refused("[web\n", &read);
    assert!(e.starts_with("tlscensus: FILE:1: "), "{e}");
    let e = refused("interface = [\"ens5\"]\n", &read);
    assert!(e.contains("FILE:1: unknown key \"interface\""), "{e}");
    let e = refused(
        "listen = \"127.0.0.1:0\"\n",
        &["live", "--kernel-skip-flows", "0"],
    );
    assert!(e.contains("no interface to capture on"), "{e}");

    let o = tlscensus(&["read", "--config", "/nonexistent/tlscensus.toml", "x.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains(
            "/nonexistent/tlscensus.toml: no such file (`tlscensus config example > FILE`"
        ),
        "{}",
        text(&o.stderr)
    );
}

/// The packaged configuration and the generated examples pass the check;
/// a broken one does not, and says where.
#[test]
fn config_check_shipped_files() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tlscensus.toml");
    let o = tlscensus(&["config", "check", shipped.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(": ok: "));

    let dir = tempfile::tempdir().unwrap();
    for for_ in ["live", "read"] {
        let ex = tlscensus(&["config", "example", "--for", for_]);
        let path = dir.path().join(format!("{for_}.toml"));
        std::fs::write(&path, &ex.stdout).unwrap();
        let o = tlscensus(&["config", "check", "--for", for_, path.to_str().unwrap()]);
        assert!(o.status.success(), "{for_}: {}", text(&o.stderr));
        assert!(
            text(&o.stdout).contains("ok: 0 settings"),
            "{}",
            text(&o.stdout)
        );
    }
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "interface = [\"ens5\"]\nmax-flows = 0\n").unwrap();
    let o = tlscensus(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        format!(
            "tlscensus: {}:2: invalid option: --max-flows must be at least 1\n",
            bad.display()
        )
    );
}
