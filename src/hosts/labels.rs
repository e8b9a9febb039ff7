//! Client labels: a catalogue that maps JA4 fingerprints to the software
//! that sends such hellos (`openssl 3.0 s_client -tls1`, `Java 17 JSSE`).
//!
//! Input: the built-in catalogue (`fingerprints/catalogue.csv`, made by
//! `scripts/make-fingerprint-catalogue.sh` from the stacks installed where
//! it runs) and the files of `--fingerprints`, in tlscensus' layout
//! (`ja4,label[,made_by]`) or FoxIO's mapping layout
//! (`Application,Library,Device,OS,ja4,...`, recognised by its header).
//! Output: a label per JA4, when known. Invariants: a label is only ever
//! shown beside the fingerprint, never used to judge a flow; a user file's
//! label for a JA4 replaces the built-in one; several labels of one file for
//! one JA4 (stacks that send identical hellos) are joined with ` | `; a
//! label is at most [`MAX_LABEL`] bytes of printable text, a file at most
//! [`MAX_ENTRIES`] fingerprints.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The catalogue built into the binary.
pub const BUILT_IN: &str = include_str!("../../fingerprints/catalogue.csv");

/// Longest label kept (bytes); longer ones are cut at a character boundary.
pub const MAX_LABEL: usize = 256;
/// Most fingerprints one catalogue file may hold.
pub const MAX_ENTRIES: usize = 200_000;

/// JA4 → label.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    /// By the JA4's bytes (a flow's fingerprint holds bytes: no UTF-8
    /// check per lookup).
    by_ja4: HashMap<Box<[u8]>, Arc<str>, ahash::RandomState>,
}

/// The layout of a catalogue file, from its header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `ja4,label[,made_by]`.
    Own,
    /// FoxIO's ja4plus-mapping.csv: the label is made of the named columns.
    FoxIo {
        ja4: usize,
        parts: [Option<usize>; 4],
    },
}

impl Labels {
    /// The built-in catalogue only.
    pub fn built_in() -> Labels {
        let mut l = Labels::default();
        // The built-in file is checked by a unit test: it parses.
        let _ = l.add_text(BUILT_IN, "built-in catalogue");
        l
    }

    /// The built-in catalogue, then each user file in order (later files win).
    pub fn load(files: &[impl AsRef<Path>]) -> Result<Labels, String> {
        let mut l = Labels::built_in();
        for f in files {
            let f = f.as_ref();
            let text = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
            let text = String::from_utf8_lossy(&text);
            l.add_text(&text, &f.display().to_string())?;
        }
        Ok(l)
    }

    pub fn len(&self) -> usize {
        self.by_ja4.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ja4.is_empty()
    }

    /// The label of a JA4 (its text's bytes), if the catalogue knows it.
    pub fn get(&self, ja4: &[u8]) -> Option<&Arc<str>> {
        self.by_ja4.get(ja4)
    }

    /// Adds one file's entries; its labels replace earlier ones for the
    /// same JA4. `name` names the file in errors.
    fn add_text(&mut self, text: &str, name: &str) -> Result<(), String> {
        let mut layout = None;
        let mut file: HashMap<String, String> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let cells = split_csv(line);
            let Some(layout) = layout else {
                layout = Some(header(&cells).ok_or_else(|| {
                    format!(
                        "{name}:{}: expected a header line `ja4,label` or FoxIO's \
                         `Application,Library,Device,OS,ja4,...`",
                        n + 1
                    )
                })?);
                continue;
            };
            let (ja4, label) = match layout {
                Layout::Own => (
                    cells.first().map(String::as_str).unwrap_or(""),
                    cells.get(1).cloned().unwrap_or_default(),
                ),
                Layout::FoxIo { ja4, parts } => {
                    let label: Vec<&str> = parts
                        .iter()
                        .flatten()
                        .filter_map(|i| cells.get(*i))
                        .map(|s| s.trim())
                        .filter(|s| !s.is_empty())
                        .collect();
                    (
                        cells.get(ja4).map(String::as_str).unwrap_or(""),
                        label.join(" / "),
                    )
                }
            };
            let ja4 = ja4.trim();
            if ja4.is_empty() {
                continue; // FoxIO rows for other methods (JA4S, JA4H...)
            }
            if !is_ja4(ja4) {
                return Err(format!(
                    "{name}:{}: {ja4:?} is not a JA4 fingerprint",
                    n + 1
                ));
            }
            let label = clean(&label);
            if label.is_empty() {
                return Err(format!("{name}:{}: no label for {ja4}", n + 1));
            }
            let slot = file.entry(ja4.to_string()).or_default();
            if slot.split(" | ").all(|l| l != label) {
                if !slot.is_empty() {
                    slot.push_str(" | ");
                }
                slot.push_str(&label);
            }
            if file.len() > MAX_ENTRIES {
                return Err(format!("{name}: more than {MAX_ENTRIES} fingerprints"));
            }
        }
        for (ja4, label) in file {
            let label = clean(&label);
            self.by_ja4.insert(ja4.into_bytes().into(), label.into());
        }
        Ok(())
    }
}

/// The layout a header line names.
fn header(cells: &[String]) -> Option<Layout> {
    let col = |name: &str| {
        cells
            .iter()
            .position(|c| c.trim().eq_ignore_ascii_case(name))
    };
    let ja4 = col("ja4")?;
    if let Some(label) = col("label") {
        return (ja4 == 0 && label == 1).then_some(Layout::Own);
    }
    let parts = ["Application", "Library", "Device", "OS"].map(col);
    parts
        .iter()
        .any(Option::is_some)
        .then_some(Layout::FoxIo { ja4, parts })
}

/// `t13d1516h2_8daaf6152771_b186095e22b6`: a/b/c parts of the right sizes.
pub fn is_ja4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b[10] == b'_'
        && b[23] == b'_'
        && b[..10].iter().all(u8::is_ascii_alphanumeric)
        && (b[11..23].iter().chain(&b[24..])).all(|c| c.is_ascii_hexdigit())
}

/// Printable text, whitespace collapsed, at most [`MAX_LABEL`] bytes.
fn clean(s: &str) -> String {
    let mut out = String::new();
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.len() > MAX_LABEL {
        let mut end = MAX_LABEL;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// One CSV line's cells (RFC 4180 quoting; a quoted cell may hold commas).
fn split_csv(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cell.is_empty() => quoted = true,
            (',', false) => cells.push(std::mem::take(&mut cell)),
            (c, _) => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "t13d1516h2_8daaf6152771_b186095e22b6";
    const B: &str = "t10i100100_ea8a5e5f6bf9_0f2cb44170f4";

    #[test]
    fn built_in_catalogue_parses() {
        let mut l = Labels::default();
        l.add_text(BUILT_IN, "built-in")
            .expect("the shipped catalogue parses");
        assert!(!l.is_empty());
    }

    #[test]
    fn own_layout_joins_and_overrides() {
        let mut l = Labels::default();
        let text = format!(
            "# comment\nja4,label,made_by\n{A},curl 7.88 / OpenSSL,\"curl -k, https\"\n{A},wget\n{A},wget\n\n{B},\"Java 7, \"\"JSSE\"\"\"\n"
        );
        l.add_text(&text, "f").unwrap();
        assert_eq!(
            l.get(A.as_bytes()).map(|s| &**s),
            Some("curl 7.88 / OpenSSL | wget")
        );
        assert_eq!(l.get(B.as_bytes()).map(|s| &**s), Some("Java 7, \"JSSE\""));
        l.add_text(&format!("ja4,label\n{A},mine\n"), "g").unwrap();
        assert_eq!(l.get(A.as_bytes()).map(|s| &**s), Some("mine"));
    }

    #[test]
    fn foxio_layout() {
        let text = format!(
            "Application,Library,Device,OS,ja4,ja4s,ja4h,ja4x,ja4t,ja4tscan,Notes\n\
             ,Python,,,{A},,,,,,\n\
             Chromium Browser,,,Windows,{B},,,,,,\n\
             Sliver Agent,,,,,,,,,1460_2-4-8-1-3_65535_7,\n"
        );
        let mut l = Labels::default();
        l.add_text(&text, "mapping.csv").unwrap();
        assert_eq!(l.get(A.as_bytes()).map(|s| &**s), Some("Python"));
        assert_eq!(
            l.get(B.as_bytes()).map(|s| &**s),
            Some("Chromium Browser / Windows")
        );
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn bad_files_say_where() {
        let mut l = Labels::default();
        let e = l.add_text("ja4,label\nnot-a-ja4,x\n", "f").unwrap_err();
        assert!(e.starts_with("f:2:"), "{e}");
        let e = l.add_text("host,name\n", "f").unwrap_err();
        assert!(e.contains("header"), "{e}");
        let e = l.add_text(&format!("ja4,label\n{A},\n"), "f").unwrap_err();
        assert!(e.contains("no label"), "{e}");
        // Controls and long labels are cleaned.
        l.add_text(
            &format!("ja4,label\n{A},a\u{1b}[31m  b{}\n", "x".repeat(400)),
            "f",
        )
        .unwrap();
        let got = l.get(A.as_bytes()).unwrap();
        assert!(
            got.starts_with("a [31m b") && got.len() == MAX_LABEL,
            "{got}"
        );
    }
}
