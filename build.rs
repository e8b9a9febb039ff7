//! Build script: names the commit the binary is built from, for
//! `tlscensus --version` (TLSCENSUS_COMMIT in the environment wins, for
//! builds outside a git checkout, such as from a source package).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TLSCENSUS_COMMIT");
    for path in [".git/HEAD", ".git/index"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("TLSCENSUS_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            let id = String::from_utf8(out.stdout).ok()?.trim().to_string();
            if !out.status.success() || id.is_empty() {
                return None;
            }
            Some(id)
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TLSCENSUS_COMMIT={commit}");
}
