//! The three views in the three formats, on small inventories.

use super::*;

#[test]
fn csv_defuses_formulas_and_quotes() {
    assert_eq!(csv_cell("=cmd|x"), "'=cmd|x");
    assert_eq!(csv_cell("a,b"), "\"a,b\"");
    assert_eq!(csv_cell("a\"b"), "\"a\"\"b\"");
    assert_eq!(csv_cell("plain.example"), "plain.example");
}

#[test]
fn table_is_printable() {
    let mut r = HostRecord {
        flows: 1,
        ..Default::default()
    };
    r.server_names.push("evil\u{1b}[31m.example".into());
    let labels = crate::hosts::labels::Labels::default();
    let names = crate::hosts::names::HostNames::new(&Default::default());
    let policies = crate::policy::PolicySet::default();
    let cx = Who {
        labels: &labels,
        names: &names,
        policies: &policies,
    };
    let out = table(
        &[(IpAddr::from([10, 0, 0, 1]), r)],
        &RunTotals::default(),
        cx,
    );
    assert!(!out.contains('\u{1b}'));
    assert!(out.contains("evil?[31m.example"));
}
