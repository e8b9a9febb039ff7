//! Issue 17, end to end through the binary: every capture a user has. Each
//! shipped capture is converted to pcapng by editcap, compressed with gzip
//! (two members, as `tcpdump -z gzip` rotations concatenated), zstd, xz and
//! lz4, and piped through standard input; each gives the events of the
//! original.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;
use serde_json::Value;

/// Events as sorted JSON lines (order-free: workers interleave).
fn lines(out: &std::process::Output, what: &str) -> Vec<String> {
    // 2: a damaged capture (truncated.pcap), after every event before it.
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "{what}: status {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
    let mut v: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| {
            let e: Value = serde_json::from_str(l).expect("event line is JSON");
            e.to_string()
        })
        .collect();
    v.sort();
    v
}

/// `read --all --events -` of one input; under `timeout`, so a reader that
/// waits forever (a FIFO opened twice) fails the test instead of hanging it.
fn read_events(arg: &str, stdin: Option<&Path>) -> std::process::Output {
    read_events_with(&[], arg, stdin)
}

/// [`read_events`] with more options before the input.
fn read_events_with(extra: &[&str], arg: &str, stdin: Option<&Path>) -> std::process::Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["120", env!("CARGO_BIN_EXE_tlscensus")]);
    cmd.args([
        "read",
        "--all",
        "--no-progress",
        "--format",
        "csv",
        "--events",
        "-",
    ]);
    cmd.args(extra).arg(arg);
    cmd.stdin(match stdin {
        Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
        None => Stdio::null(),
    });
    cmd.output().unwrap()
}

fn editcap_available(test: &str) -> bool {
    require_tools(test, &["editcap"])
}

/// `bytes` in every compressed format tlscensus reads: (extension, bytes).
fn compressed(bytes: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let gz = |part: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(part).unwrap();
        e.finish().unwrap()
    };
    let (a, b) = bytes.split_at(bytes.len() / 3);
    let mut two_members = gz(a);
    two_members.extend(gz(b));
    let mut xz = Vec::new();
    {
        let mut e = liblzma::write::XzEncoder::new(&mut xz, 1);
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
    }
    let mut lz4 = Vec::new();
    {
        let mut e = lz4_flex::frame::FrameEncoder::new(&mut lz4);
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
    }
    vec![
        ("gz", two_members),
        ("zst", zstd::stream::encode_all(bytes, 3).unwrap()),
        ("xz", xz),
        ("lz4", lz4),
    ]
}

#[test]
fn every_capture_as_pcapng_compressed_and_through_stdin() {
    if !editcap_available("every_capture_as_pcapng_compressed_and_through_stdin") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut files: Vec<_> = std::fs::read_dir(captures())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let original = lines(&read_events(f.to_str().unwrap(), None), &name);
        let ng = dir.path().join(format!("{name}.pcapng"));
        let piped = lines(&read_events("-", Some(f)), &name);
        assert_eq!(piped, original, "{name} through standard input");
        let bytes = std::fs::read(f).unwrap();
        for (ext, packed) in compressed(&bytes) {
            let c = dir.path().join(format!("{name}.{ext}"));
            std::fs::write(&c, &packed).unwrap();
            let got = lines(&read_events(c.to_str().unwrap(), None), &name);
            assert_eq!(got, original, "{name} as {ext}");
        }
        let conv = Command::new("editcap")
            .args(["-F", "pcapng"])
            .arg(f)
            .arg(&ng)
            .output()
            .unwrap();
        if !conv.status.success() {
            // editcap refuses a damaged file (truncated.pcap).
            assert!(
                name.contains("truncated"),
                "editcap {name}: {}",
                text(&conv.stderr)
            );
            continue;
        }
        let as_ng = lines(&read_events(ng.to_str().unwrap(), None), &name);
        assert_eq!(as_ng, original, "{name} as pcapng");
        let ng_piped = lines(&read_events("-", Some(&ng)), &name);
        assert_eq!(
            ng_piped, original,
            "{name} as pcapng through standard input"
        );
        checked += 1;
    }
    assert!(checked >= 100, "{checked} captures");
}

/// A FIFO is read as a stream, in both formats; what is not a capture is
/// said, naming standard input.
#[test]
fn fifos_and_bad_streams() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("cap.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let src = capture("demo.pcapng");
    let writer = {
        let (src, fifo) = (src.clone(), fifo.clone());
        std::thread::spawn(move || std::fs::copy(&src, &fifo).unwrap())
    };
    let from_fifo = lines(&read_events(fifo.to_str().unwrap(), None), "fifo");
    // A writer left waiting for a reader is let go before joining it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !writer.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if !writer.is_finished() {
        let _ = std::fs::File::open(&fifo);
    }
    assert!(writer.join().is_ok());
    let from_file = lines(&read_events(src.to_str().unwrap(), None), "file");
    assert_eq!(from_fifo, from_file);
    assert!(!from_file.is_empty());

    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let out = read_events("-", Some(&junk));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("standard input") && err.contains("not a pcap or pcapng"),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let out = read_events("-", Some(&empty));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("standard input"),
        "{}",
        text(&out.stderr)
    );
}

/// Damaged compressed captures: a clear error naming the file and the
/// format (status 2), the flows before the damage still reported.
#[test]
fn damaged_compressed_captures() {
    let dir = tempfile::tempdir().unwrap();
    let src = capture("client-stacks.pcap");
    // Flows by their addresses: a flow the cut ends early may say less.
    let flows = |events: Vec<String>| -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let v: Value = serde_json::from_str(e).unwrap();
                format!(
                    "{} {} {} {}",
                    v["src_ip"], v["src_port"], v["dst_ip"], v["dst_port"]
                )
            })
            .collect()
    };
    let original = flows(lines(
        &read_events(src.to_str().unwrap(), None),
        "client-stacks",
    ));
    let bytes = std::fs::read(&src).unwrap();
    for (ext, packed) in compressed(&bytes) {
        // Cut at 90%: every format fails there, after most of the flows.
        let cut = dir.path().join(format!("cut.pcap.{ext}"));
        std::fs::write(&cut, &packed[..packed.len() * 9 / 10]).unwrap();
        let out = read_events(cut.to_str().unwrap(), None);
        assert_eq!(out.status.code(), Some(2), "{ext}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains("cut.pcap"), "{ext}: {err}");
        let got = flows(lines(&out, ext));
        // zstd and lz4 decode blocks whole (128 KiB; lz4_flex writes one
        // block for this 143 KB capture): a cut inside the first leaves
        // nothing before it; gzip and xz stream within blocks.
        assert!(
            !matches!(ext, "gz" | "xz") || !got.is_empty(),
            "{ext}: the flows before the cut"
        );
        assert!(
            got.iter().all(|e| original.contains(e)),
            "{ext}: only real flows"
        );
        // Garbage after a whole stream.
        let mut junk = packed.clone();
        junk.extend(b"\x00garbage after the end of the stream......");
        let j = dir.path().join(format!("junk.pcap.{ext}"));
        std::fs::write(&j, &junk).unwrap();
        let out = read_events(j.to_str().unwrap(), None);
        // gzip and xz read on past a stream (members) and fail on the
        // junk; zstd and lz4 too; none may invent flows.
        let got = flows(lines(&out, ext));
        assert!(
            got.iter().all(|e| original.contains(e)),
            "{ext}: only real flows"
        );
    }
    // Compressed bytes that are not a capture.
    let gz = dir.path().join("text.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b"hello, not a capture at all").unwrap();
    std::fs::write(&gz, e.finish().unwrap()).unwrap();
    let out = read_events(gz.to_str().unwrap(), None);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("inside gzip") && err.contains("not a pcap or pcapng"),
        "{err}"
    );
}

/// A rotated set (`tcpdump -C`: cap.pcap, cap.pcap1 ... cap.pcap27) is
/// read in capture order, not string order (1, 10, 11, ..., 2), so every
/// handshake that straddles two files is seen whole: the events equal the
/// unsplit capture's. Files named against their times are still read by
/// time; overlapping files are noted.
#[test]
fn rotated_sets_in_capture_order() {
    if !editcap_available("rotated_sets_in_capture_order") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = capture("services.pcap");
    let original = lines(&read_events(src.to_str().unwrap(), None), "services");
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    let split = Command::new("editcap")
        .args(["-c", "7"])
        .arg(&src)
        .arg(parts.join("p.pcap"))
        .output()
        .unwrap();
    assert!(split.status.success(), "{}", text(&split.stderr));
    let mut pieces: Vec<_> = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pieces.sort(); // editcap numbers them in time order
    assert!(pieces.len() > 20, "{}", pieces.len());
    let rotated = dir.path().join("rotated");
    let backwards = dir.path().join("backwards");
    std::fs::create_dir(&rotated).unwrap();
    std::fs::create_dir(&backwards).unwrap();
    for (i, p) in pieces.iter().enumerate() {
        let name = if i == 0 {
            "cap.pcap".to_string()
        } else {
            format!("cap.pcap{i}")
        };
        std::fs::copy(p, rotated.join(name)).unwrap();
        // Names that sort against time.
        std::fs::copy(p, backwards.join(format!("{:03}.pcap", 999 - i))).unwrap();
    }
    for d in [&rotated, &backwards] {
        let out = read_events(d.to_str().unwrap(), None);
        // Read in string or name order, time would go backwards (and be said).
        let err = text(&out.stderr);
        assert!(
            !err.contains("time goes backwards"),
            "{}: {err}",
            d.display()
        );
        assert_eq!(lines(&out, "rotated"), original, "{}", d.display());
    }
    // Two copies of one capture overlap in time: said.
    let twice = dir.path().join("twice");
    std::fs::create_dir(&twice).unwrap();
    std::fs::copy(&src, twice.join("a.pcap")).unwrap();
    std::fs::copy(&src, twice.join("b.pcap")).unwrap();
    let out = read_events(twice.to_str().unwrap(), None);
    let err = text(&out.stderr);
    assert!(err.contains("time goes backwards"), "{err}");
}

/// `--filter`: only the packets the BPF expression keeps are read; a bad
/// expression is a clear error before reading; one that does not apply to
/// a file's link type is an error naming the file.
#[test]
fn offline_filter() {
    let src = capture("services.pcap");
    let all = lines(&read_events(src.to_str().unwrap(), None), "all");
    let run = |extra: &[&str], file: &Path| read_events_with(extra, file.to_str().unwrap(), None);
    let out = run(&["--filter", "host 192.0.2.11"], &src);
    let kept = lines(&out, "filtered");
    assert!(
        !kept.is_empty() && kept.len() < all.len(),
        "{} of {}",
        kept.len(),
        all.len()
    );
    for e in &kept {
        assert!(e.contains("\"src_ip\":\"192.0.2.11\""), "{e}");
        assert!(all.contains(e), "{e}");
    }
    let none = lines(&run(&["--filter", "udp"], &src), "udp");
    assert!(none.is_empty());
    let out = run(&["--filter", "tcp port"], &src);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--filter"),
        "{}",
        text(&out.stderr)
    );
    // `greater` measures the length on the wire, as tcpdump does: a copy
    // cut to 96 bytes a packet keeps the same packets as the original.
    if editcap_available("offline_filter") {
        let dir = tempfile::tempdir().unwrap();
        let snapped = dir.path().join("snapped.pcap");
        let ok = Command::new("editcap")
            .args(["-s", "96"])
            .arg(capture("client-stacks.pcap"))
            .arg(&snapped)
            .status()
            .unwrap();
        assert!(ok.success());
        let packets = |file: &Path| {
            let out = run(&["--filter", "greater 500"], file);
            let err = text(&out.stderr);
            let n = err
                .split(" packets in ")
                .next()
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok());
            n.unwrap_or_else(|| panic!("no packet count in {err}"))
        };
        let whole = packets(&capture("client-stacks.pcap"));
        assert!(whole > 10, "{whole}");
        assert_eq!(packets(&snapped), whole);
    }
    // mixed-linktypes.pcapng has raw IP and Ethernet interfaces.
    let mixed = capture("mixed-linktypes.pcapng");
    let out = run(&["--filter", "ether broadcast or tcp"], &mixed);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("mixed-linktypes") && err.contains("link type"),
        "{err}"
    );
}
