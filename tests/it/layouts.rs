//! The event layouts against their published definitions: every ECS field
//! of every shipped capture's events exists in Elastic's field list at the
//! pinned version and holds a value of its type; every OCSF event follows the
//! pinned schema's Network Activity class; on Zeek's own test traces, every
//! ssl.log field tlscensus fills equals what Zeek logged (Zeek's test
//! baselines); and each layout's events of the shipped captures are reviewed
//! snapshots (`tests/snapshots/layouts/`).
//!
//! The pinned definitions live in `tests/data/`: `ecs/fields-9.4.0.csv`
//! (elastic/ecs `generated/csv/fields.csv` at tag v9.4.0: field, type,
//! normalization), `ocsf/network_activity-1.8.0.json`
//! (`scripts/ocsf-extract.py` over ocsf/ocsf-schema at tag 1.8.0), and
//! `zeek/` (traces of zeek/zeek `testing/btest/Traces/tls/` with the ssl.log
//! baselines of the tests that read them; `*.ext.ssl.log` are the
//! ssl-log-ext policy's).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

/// The backticked names of the first cells of the table under `### {head}`
/// in docs/reference.md's "Event layouts" (`a.b`, `.c` continuing `a.`).
fn documented(head: &str) -> std::collections::BTreeSet<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md"))
            .unwrap();
    let layouts = &text[text.find("\n## Event layouts\n").expect("section")..];
    let start = layouts
        .find(&format!("\n### {head}"))
        .unwrap_or_else(|| panic!("no {head}"));
    let part = &layouts[start + 5..];
    let part = &part[..part.find("\n### ").unwrap_or(part.len())];
    let mut names = std::collections::BTreeSet::new();
    for row in part.lines().filter(|l| l.starts_with("| `")) {
        let cell = row.split(" | ").next().unwrap();
        let mut base = String::new();
        for name in cell.split('`').skip(1).step_by(2) {
            if let Some(rest) = name.strip_prefix('.') {
                names.insert(format!("{base}{rest}"));
            } else {
                if let Some(dot) = name.rfind('.') {
                    base = name[..=dot].to_string();
                }
                names.insert(name.to_string());
            }
        }
    }
    names
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// One capture's event lines in `layout`, with the snapshots' tunnel ports.
fn lines(file: &Path, layout: &str) -> Vec<String> {
    event_lines(
        file,
        layout,
        &["--vxlan-port", "4789", "--vxlan-port", "8472"],
    )
}

fn json_events(layout: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for f in shipped_captures() {
        for l in lines(&f, layout) {
            let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l}: {e}"));
            all.push(v);
        }
    }
    assert!(all.len() > 100, "{}", all.len());
    all
}

/// ECS: a field's type and whether it holds an array.
fn ecs_fields() -> HashMap<String, (String, bool)> {
    let text = std::fs::read_to_string(data("ecs/fields-9.4.0.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (
                cells[0].to_string(),
                (cells[1].to_string(), cells[2].contains("array")),
            )
        })
        .collect()
}

fn ecs_scalar_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "keyword" | "constant_keyword" | "wildcard" | "match_only_text" | "text" => v.is_string(),
        "long" | "integer" => v.is_i64() || v.is_u64(),
        "float" | "double" | "scaled_float" => v.is_number(),
        "boolean" => v.is_boolean(),
        "ip" => v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        "date" => v.as_str().is_some_and(|s| {
            s.len() >= 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' && s.ends_with('Z')
        }),
        _ => false,
    }
}

/// Every leaf of an ECS document: its dotted name and value.
fn ecs_leaves<'a>(prefix: String, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                ecs_leaves(name, v, out);
            }
        }
        _ => out.push((prefix, v)),
    }
}

#[test]
fn ecs_fields_exist_with_their_types() {
    let fields = ecs_fields();
    assert!(fields.len() > 2000, "{}", fields.len());
    let mut seen = BTreeMap::new();
    for ev in json_events("ecs") {
        let mut leaves = Vec::new();
        ecs_leaves(String::new(), &ev, &mut leaves);
        for (name, v) in leaves {
            if name.starts_with("tlscensus.") {
                continue;
            }
            let (ty, array) = fields
                .get(&name)
                .unwrap_or_else(|| panic!("{name} is no ECS 9.4.0 field: {ev}"));
            if *array {
                let items = v
                    .as_array()
                    .unwrap_or_else(|| panic!("{name} is an array: {ev}"));
                assert!(!items.is_empty(), "{name}: {ev}");
                for i in items {
                    assert!(ecs_scalar_ok(ty, i), "{name} ({ty}) = {i}: {ev}");
                }
            } else {
                assert!(ecs_scalar_ok(ty, v), "{name} ({ty}) = {v}: {ev}");
            }
            *seen.entry(name).or_insert(0) += 1;
        }
        assert_eq!(ev["ecs"]["version"], "9.4.0");
    }
    // The fields the layout exists for were all exercised.
    for name in [
        "@timestamp",
        "event.outcome",
        "source.ip",
        "destination.port",
        "network.transport",
        "tls.version",
        "tls.version_protocol",
        "tls.established",
        "tls.cipher",
        "tls.curve",
        "tls.resumed",
        "tls.next_protocol",
        "tls.client.server_name",
        "tls.client.ja3",
        "tls.client.supported_ciphers",
        "related.hosts",
        "related.ip",
    ] {
        assert!(seen.contains_key(name), "{name} never written: {seen:?}");
    }
    let doc = documented("`ecs`");
    let written: std::collections::BTreeSet<String> = seen.keys().cloned().collect();
    assert_eq!(doc, written, "docs/reference.md's ECS fields");
}

/// The pinned OCSF schema extract.
struct Ocsf {
    class: serde_json::Map<String, Value>,
    objects: serde_json::Map<String, Value>,
}

impl Ocsf {
    fn load() -> Ocsf {
        let text = std::fs::read_to_string(data("ocsf/network_activity-1.8.0.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["ocsf_version"], "1.8.0");
        Ocsf {
            class: v["class"].as_object().unwrap().clone(),
            objects: v["objects"].as_object().unwrap().clone(),
        }
    }

    /// Checks `value` against the attributes `attrs`; `path` names it.
    fn check(&self, path: &str, attrs: &serde_json::Map<String, Value>, value: &Value) {
        let obj = value
            .as_object()
            .unwrap_or_else(|| panic!("{path} is an object"));
        for (name, a) in attrs {
            if a["requirement"] == "required" {
                assert!(obj.contains_key(name), "{path}.{name} is required");
            }
        }
        for (name, v) in obj {
            let a = attrs
                .get(name)
                .unwrap_or_else(|| panic!("{path}.{name} is no OCSF 1.8.0 attribute"));
            let at = format!("{path}.{name}");
            if a["array"] == true {
                let items = v.as_array().unwrap_or_else(|| panic!("{at} is an array"));
                for i in items {
                    self.check_value(&at, a, i);
                }
            } else {
                self.check_value(&at, a, v);
            }
        }
    }

    fn check_value(&self, at: &str, a: &Value, v: &Value) {
        let ok = match a["base"].as_str().unwrap() {
            "string" => v.is_string(),
            "integer" | "long" => v.is_i64() || v.is_u64(),
            "float" => v.is_number(),
            "boolean" => v.is_boolean(),
            "json" => true,
            "object" => {
                // (`object`: any object, such as `unmapped`)
                match a["object"].as_str().unwrap() {
                    "object" => assert!(v.is_object(), "{at} is an object"),
                    object => {
                        let attrs = self.objects[object].as_object().unwrap();
                        self.check(at, attrs, v);
                    }
                }
                true
            }
            other => panic!("{at}: base {other}"),
        };
        assert!(ok, "{at} ({}) = {v}", a["type"]);
        match a["type"].as_str().unwrap() {
            "ip_t" => assert!(v.as_str().unwrap().parse::<IpAddr>().is_ok(), "{at} = {v}"),
            "port_t" => assert!(v.as_u64().is_some_and(|p| p <= 65535), "{at} = {v}"),
            _ => {}
        }
        if let Some(values) = a.get("enum").and_then(Value::as_array) {
            assert!(values.contains(v), "{at} = {v}: not one of {values:?}");
        }
    }
}

#[test]
fn ocsf_events_follow_the_schema() {
    let schema = Ocsf::load();
    let mut tls = 0;
    let mut top = std::collections::BTreeSet::new();
    for ev in json_events("ocsf") {
        schema.check("event", &schema.class, &ev);
        assert_eq!(ev["class_uid"], 4001);
        assert_eq!(ev["category_uid"], 4);
        assert_eq!(
            ev["type_uid"].as_u64(),
            ev["activity_id"].as_u64().map(|a| 400_100 + a)
        );
        assert_eq!(ev["metadata"]["version"], "1.8.0");
        tls += usize::from(ev.get("tls").is_some());
        // Attribute names one level down (`tls.cipher`), as the page lists
        // them; `unmapped` and `connection_info` as one row each.
        for (k, v) in ev.as_object().unwrap() {
            match v.as_object() {
                Some(o) if k != "unmapped" && k != "connection_info" => {
                    top.extend(o.keys().map(|f| format!("{k}.{f}")));
                }
                _ => {
                    top.insert(k.clone());
                }
            }
        }
    }
    assert!(tls > 100, "{tls}");
    let (doc, written) = (documented("`ocsf`"), top);
    assert_eq!(doc, written, "docs/reference.md's OCSF attributes");
}

/// One ssl.log: each row's fields by name.
fn zeek_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut fields: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("#fields\t") {
            fields = f.split('\t').map(str::to_string).collect();
        } else if !line.starts_with('#') && !line.is_empty() {
            let cells = line.split('\t').map(str::to_string);
            rows.push(fields.iter().cloned().zip(cells).collect());
        }
    }
    rows
}

fn conn_id(r: &BTreeMap<String, String>) -> String {
    ["id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"]
        .iter()
        .map(|k| r[*k].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn zeek_fields_equal_zeeks_baselines() {
    let dir = data("zeek");
    let mut baselines: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".ssl.log"))
        .collect();
    baselines.sort();
    assert!(baselines.len() >= 20, "{}", baselines.len());
    let (mut compared, mut rows_matched) = (0, 0);
    for baseline in baselines {
        let name = baseline.file_name().unwrap().to_string_lossy().into_owned();
        let trace = name
            .trim_end_matches(".ssl.log")
            .trim_end_matches(".ext")
            .to_string();
        let pcap = ["pcap", "pcap.gz"]
            .iter()
            .map(|e| dir.join(format!("{trace}.{e}")))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no trace for {name}"));
        let zeek = zeek_rows(&std::fs::read_to_string(&baseline).unwrap());
        let ours = zeek_rows(&event_lines(&pcap, "zeek", &[]).join("\n"));
        // Every TLS-over-TCP flow Zeek logged is ours too (DTLS is not
        // TCP), and the other way round.
        let theirs: BTreeMap<String, &BTreeMap<String, String>> = zeek
            .iter()
            .filter(|r| !r["version"].starts_with("DTLS"))
            .map(|r| (conn_id(r), r))
            .collect();
        assert_eq!(
            ours.iter().map(conn_id).collect::<Vec<_>>().len(),
            theirs.len(),
            "{name}: flows\nours: {:?}\nzeek: {:?}",
            ours.iter().map(conn_id).collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>()
        );
        for r in &ours {
            let z = theirs
                .get(&conn_id(r))
                .unwrap_or_else(|| panic!("{name}: {} not in Zeek's log", conn_id(r)));
            rows_matched += 1;
            for (field, value) in r {
                // (ts and uid are masked or random in the baselines)
                if value == "-" || field == "ts" || field == "uid" {
                    continue;
                }
                if let Some(zv) = z.get(field) {
                    assert_eq!(value, zv, "{name} {}: {field}", conn_id(r));
                    compared += 1;
                }
            }
        }
    }
    assert!(rows_matched >= 26, "{rows_matched}");
    assert!(compared >= 220, "{compared}");
    eprintln!("{rows_matched} flows, {compared} fields equal to Zeek's");
}

#[test]
fn zeek_tsv_and_json_agree() {
    for f in shipped_captures().iter().step_by(7) {
        let tsv = lines(f, "zeek");
        assert_eq!(tsv.first().map(String::as_str), Some("#separator \\x09"));
        assert!(tsv.last().unwrap().starts_with("#close\t"), "{tsv:?}");
        let fields = tsv
            .iter()
            .find_map(|l| l.strip_prefix("#fields\t"))
            .unwrap();
        let fields: std::collections::BTreeSet<String> =
            fields.split('\t').map(str::to_string).collect();
        assert_eq!(
            fields,
            documented("`zeek`"),
            "docs/reference.md's ssl.log fields"
        );
        let rows = zeek_rows(&tsv.join("\n"));
        let json: Vec<Value> = lines(f, "zeek-json")
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), json.len(), "{}", f.display());
        for (r, j) in rows.iter().zip(&json) {
            for (field, value) in r {
                let jv = &j[field.as_str()];
                match value.as_str() {
                    "-" => assert!(jv.is_null(), "{field}: {jv}"),
                    "T" | "F" => assert_eq!(jv.as_bool(), Some(value == "T"), "{field}"),
                    _ if field == "ts" => {
                        assert_eq!(jv.as_f64(), value.parse::<f64>().ok(), "{field}");
                    }
                    _ => {
                        let as_text = match jv {
                            Value::String(s) => s.clone(),
                            Value::Array(a) => a
                                .iter()
                                .map(|x| x.to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                            other => other.to_string(),
                        };
                        assert_eq!(&as_text, value, "{field}");
                    }
                }
            }
        }
    }
}

#[test]
fn every_layout_of_the_shipped_captures_matches_its_snapshot() {
    let files = shipped_captures();
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/snapshots/layouts"
    ));
    settings.set_omit_expression(true);
    settings.bind(|| {
        for layout in ["ecs", "zeek", "zeek-json", "ocsf"] {
            let mut s = String::new();
            for f in &files {
                // Events in order (workers report in any order), Zeek's
                // header lines first and its #close last, as written.
                let (mut l, rows): (Vec<String>, Vec<String>) = lines(f, layout)
                    .into_iter()
                    .partition(|l| l.starts_with('#'));
                let close = l.pop_if(|c| c.starts_with("#close"));
                let mut rows = rows;
                rows.sort();
                l.extend(rows);
                l.extend(close);
                s.push_str(&format!("# {}\n", f.file_name().unwrap().to_string_lossy()));
                for line in l {
                    // (the wall-clock dates of Zeek's #open and #close lines)
                    match line.split_once('\t') {
                        Some((tag @ ("#open" | "#close"), _)) => {
                            s.push_str(tag);
                            s.push_str("\tXXXX-XX-XX-XX-XX-XX");
                        }
                        _ => s.push_str(&line),
                    }
                    s.push('\n');
                }
            }
            insta::assert_snapshot!(layout.replace('-', "_"), s);
        }
    });
}
