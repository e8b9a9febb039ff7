//! The metrics file (`--metrics-file`) and other output files, written
//! whole or not at all: a temporary file beside the target, then a rename.

use std::path::Path;

use crate::error::SetupError;

/// Writes via a temporary file and rename, so a reader never sees half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), SetupError> {
    write_atomic_with(path, |w| w.write_all(data))
}

/// As [`write_atomic`], the content written by `fill` as it is made (a
/// large file is never held whole in memory).
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), SetupError> {
    use std::io::Write;
    let err = |source| SetupError::Write {
        what: "metrics file",
        path: path.display().to_string(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics".into());
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
        fill(&mut w)?;
        w.flush()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}
