//! The inputs of `tlscensus read`: file and directory arguments expanded
//! into the capture files to read, with what was passed over and why.
//!
//! Invariant: a directory is walked at most [`MAX_DIR_DEPTH`] deep and never
//! twice (links that loop are named, not followed).

use std::path::{Path, PathBuf};

use crate::error::SetupError;

/// One input as the run will read it: a file, or an error about an argument.
pub enum Input {
    File(PathBuf),
    /// A directory was read; what in it was not read, and why.
    DirNote {
        dir: PathBuf,
        /// Files that are not pcap/pcapng captures (by their first bytes).
        not_captures: usize,
        /// Entries that are not files to read: (path, why), e.g. a FIFO, a
        /// dangling link, a directory loop.
        special: Vec<(PathBuf, &'static str)>,
    },
    Error(SetupError),
}

/// How deep `read DIR` descends into subdirectories.
pub const MAX_DIR_DEPTH: usize = 32;

/// Expands directory arguments into their capture files, recursively (files
/// of a directory sorted by name before its subdirectories, also sorted), so
/// rotated captures are read in order. A file in a directory that cannot be
/// opened is an error naming it; files that are not captures, and entries that
/// are not regular files (FIFOs, sockets, devices, dangling links, directory
/// loops), are named in one note per directory argument.
pub fn expand_inputs(args: &[PathBuf]) -> Vec<Input> {
    let mut out = Vec::new();
    for arg in args {
        if !arg.is_dir() {
            out.push(Input::File(arg.clone()));
            continue;
        }
        let mut note = (0usize, Vec::new());
        let mut seen = Vec::new();
        walk(arg, 0, &mut seen, &mut out, &mut note);
        if note.0 > 0 || !note.1.is_empty() {
            out.push(Input::DirNote {
                dir: arg.clone(),
                not_captures: note.0,
                special: note.1,
            });
        }
    }
    out
}

/// (device, inode) of a directory, to notice loops through symbolic links.
fn dir_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

type DirNoteParts = (usize, Vec<(PathBuf, &'static str)>);

fn walk(
    dir: &Path,
    depth: usize,
    seen: &mut Vec<(u64, u64)>,
    out: &mut Vec<Input>,
    note: &mut DirNoteParts,
) {
    use std::os::unix::fs::FileTypeExt;
    let id = dir_id(dir);
    if let Some(id) = id {
        if seen.contains(&id) {
            note.1.push((dir.to_path_buf(), "directory loop"));
            return;
        }
        seen.push(id);
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            out.push(Input::Error(SetupError::ListDir {
                path: dir.display().to_string(),
                source,
            }));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    let mut subdirs = Vec::new();
    for p in paths {
        // Follows symbolic links; a link to nothing fails here.
        let meta = match std::fs::metadata(&p) {
            Ok(m) => m,
            Err(_) if std::fs::symlink_metadata(&p).is_ok() => {
                note.1.push((p, "dangling link"));
                continue;
            }
            Err(source) => {
                out.push(Input::Error(SetupError::Open {
                    path: p.display().to_string(),
                    source,
                }));
                continue;
            }
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            subdirs.push(p);
        } else if ft.is_file() {
            match capture_magic(&p) {
                Ok(true) => out.push(Input::File(p)),
                Ok(false) => note.0 += 1,
                Err(source) => out.push(Input::Error(SetupError::Open {
                    path: p.display().to_string(),
                    source,
                })),
            }
        } else if ft.is_fifo() {
            note.1.push((p, "FIFO"));
        } else if ft.is_socket() {
            note.1.push((p, "socket"));
        } else {
            note.1.push((p, "device"));
        }
    }
    for sub in subdirs {
        if depth + 1 >= MAX_DIR_DEPTH {
            note.1.push((sub, "too deep"));
            continue;
        }
        walk(&sub, depth + 1, seen, out, note);
    }
    if id.is_some() {
        seen.pop();
    }
}

/// Whether a regular file starts like a capture; an error when it cannot be
/// opened or read (a file too short for a magic number is no capture).
fn capture_magic(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match f.read(&mut head[got..])? {
            0 => return Ok(false),
            n => got += n,
        }
    }
    if crate::capture::CAPTURE_MAGICS.contains(&head) {
        return Ok(true);
    }
    let mut more = [0u8; 2];
    let n = f.read(&mut more).unwrap_or(0);
    let mut six = head.to_vec();
    six.extend_from_slice(&more[..n]);
    // A compressed file is a capture when what it inflates to starts like one.
    Ok(crate::capture::compressed::Compression::of(&six).is_some()
        && crate::capture::offline::OfflineSource::probe(path).is_ok())
}
