//! Compressed captures: gzip (concatenated members too, as `tcpdump -z
//! gzip` and pigz write), zstd, xz and lz4 frames, recognised by their magic
//! numbers, not their names.
//!
//! Input: a byte stream. Output: a reader of the inflated bytes. The
//! decoder runs on a thread of its own and hands 1 MiB blocks over a
//! channel of [`BLOCKS`] slots, so the capture thread parses one block
//! while the next is inflated; the blocks are recycled. Invariants: memory
//! is at most `BLOCKS + 2` blocks whatever the ratio (a bomb only yields
//! many bytes, parsed as they come); a damaged stream is an error after
//! every byte before the damage, naming the format; dropping the reader
//! stops the thread at its next block.

use std::io::{ErrorKind, Read};

use crossbeam_channel::{Receiver, Sender, bounded};

const BLOCK: usize = 1 << 20;
/// Inflated blocks in flight between the decoder thread and the reader.
pub const BLOCKS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    Xz,
    Lz4,
}

impl Compression {
    /// The format whose magic number `head` starts with.
    pub fn of(head: &[u8]) -> Option<Compression> {
        match head {
            [0x1f, 0x8b, ..] => Some(Compression::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Some(Compression::Xz),
            [0x04, 0x22, 0x4d, 0x18, ..] => Some(Compression::Lz4),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Lz4 => "lz4",
        }
    }

    fn decoder(self, inner: Box<dyn Read + Send>) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(inner)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(inner)?),
            Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(inner)),
            Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(inner)),
        })
    }
}

/// Counts the compressed bytes a decoder has read (for the progress line).
struct Counting {
    inner: Box<dyn Read + Send>,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// At most the first `limit` inflated bytes of `inner`, decoded on the
/// caller's thread as they are read: a look at a file's start that starts
/// no thread and inflates no more than it is asked for.
pub fn head(
    kind: Compression,
    inner: Box<dyn Read + Send>,
    limit: u64,
) -> std::io::Result<Box<dyn Read + Send>> {
    Ok(Box::new(kind.decoder(inner)?.take(limit)))
}

/// The inflated bytes of `inner`, decoded on a thread of its own.
pub fn inflate(kind: Compression, inner: Box<dyn Read + Send>) -> std::io::Result<Inflated> {
    let (tx, rx) = bounded::<std::io::Result<Vec<u8>>>(BLOCKS);
    let (back_tx, back_rx) = bounded::<Vec<u8>>(BLOCKS + 2);
    let compressed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let inner = Box::new(Counting {
        inner,
        read: std::sync::Arc::clone(&compressed),
    });
    let mut decoder = kind.decoder(inner)?;
    std::thread::Builder::new()
        .name("inflate".into())
        .spawn(move || decode(kind, &mut *decoder, &tx, &back_rx))?;
    Ok(Inflated {
        rx,
        back: back_tx,
        block: Vec::new(),
        at: 0,
        compressed,
    })
}

/// The decoder thread: fills blocks until the stream ends, fails, or the
/// reader is gone.
fn decode(
    kind: Compression,
    decoder: &mut dyn Read,
    tx: &Sender<std::io::Result<Vec<u8>>>,
    back: &Receiver<Vec<u8>>,
) {
    loop {
        let mut block = back.try_recv().unwrap_or_default();
        block.resize(BLOCK, 0);
        let mut filled = 0;
        let mut failed = None;
        while filled < BLOCK {
            match decoder.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(std::io::Error::new(
                        e.kind(),
                        format!("{} stream damaged: {e}", kind.as_str()),
                    ));
                    break;
                }
            }
        }
        block.truncate(filled);
        let end = filled < BLOCK;
        if filled > 0 && tx.send(Ok(block)).is_err() {
            return;
        }
        if let Some(e) = failed {
            let _ = tx.send(Err(e));
            return;
        }
        if end {
            return;
        }
    }
}

/// A reader of the blocks the decoder thread inflates.
pub struct Inflated {
    rx: Receiver<std::io::Result<Vec<u8>>>,
    back: Sender<Vec<u8>>,
    block: Vec<u8>,
    at: usize,
    /// Compressed bytes the decoder has read so far.
    pub compressed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Read for Inflated {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.block.len() {
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    let used = std::mem::replace(&mut self.block, next);
                    let _ = self.back.try_send(used);
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn all(kind: Compression, data: Vec<u8>) -> std::io::Result<Vec<u8>> {
        let mut r = inflate(kind, Box::new(std::io::Cursor::new(data)))?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn payload() -> Vec<u8> {
        (0..3_000_000u32).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn every_format_round_trips() {
        let data = payload();
        let zst = zstd::stream::encode_all(&data[..], 1).unwrap();
        let mut xz = Vec::new();
        {
            let mut e = liblzma::write::XzEncoder::new(&mut xz, 1);
            e.write_all(&data).unwrap();
            e.finish().unwrap();
        }
        let mut lz4 = Vec::new();
        {
            let mut e = lz4_flex::frame::FrameEncoder::new(&mut lz4);
            e.write_all(&data).unwrap();
            e.finish().unwrap();
        }
        for (kind, packed) in [
            (Compression::Gzip, gzip(&data)),
            (Compression::Zstd, zst),
            (Compression::Xz, xz),
            (Compression::Lz4, lz4),
        ] {
            assert_eq!(Compression::of(&packed), Some(kind));
            assert_eq!(all(kind, packed).unwrap(), data, "{kind:?}");
        }
        assert_eq!(Compression::of(&[0xd4, 0xc3, 0xb2, 0xa1]), None);
    }

    /// Concatenated gzip members are one stream; garbage after them, a
    /// cut member or a corrupted block is an error after the bytes before.
    #[test]
    fn gzip_members_and_damage() {
        let data = payload();
        let (a, b) = data.split_at(1_234_567);
        let mut two = gzip(a);
        two.extend(gzip(b));
        assert_eq!(all(Compression::Gzip, two.clone()).unwrap(), data);

        let mut r = inflate(
            Compression::Gzip,
            Box::new(std::io::Cursor::new(two[..two.len() / 2].to_vec())),
        )
        .unwrap();
        let mut got = Vec::new();
        let e = r.read_to_end(&mut got).unwrap_err();
        assert!(e.to_string().contains("gzip"), "{e}");
        assert!(!got.is_empty() && data.starts_with(&got));

        let mut junk = two.clone();
        junk.extend(b"trailing garbage, not a member");
        assert!(all(Compression::Gzip, junk).is_err());

        let mut bad = gzip(&data);
        let n = bad.len();
        for b in &mut bad[n / 2..n / 2 + 64] {
            *b ^= 0x5a;
        }
        assert!(all(Compression::Gzip, bad).is_err());
    }

    /// A bomb: 1 GiB of zeros from a few megabytes, read and dropped
    /// partway; memory stays at a few blocks (the decoder stops).
    #[test]
    fn bombs_stream_in_blocks() {
        // 1,024 members of 1 MiB of zeros each.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 1 << 20]).unwrap();
        let member = e.finish().unwrap();
        let bomb = member.repeat(1024);
        assert!(bomb.len() < 8 << 20, "{}", bomb.len());
        let mut r = inflate(Compression::Gzip, Box::new(std::io::Cursor::new(bomb))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while total < 16 << 20 {
            let n = r.read(&mut buf).unwrap();
            assert!(n > 0);
            total += n;
        }
        // A decoder that ran ahead unbounded would have read the whole bomb
        // by now; one bounded by its blocks in flight has read about 21 of
        // its 1,024 members (each 1 MiB inflated), plus its input buffer.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let read = r.compressed.load(std::sync::atomic::Ordering::Relaxed) as usize;
        assert!(
            read < 64 * member.len() + (64 << 10),
            "{read} of {} compressed bytes read for {total} inflated",
            member.len() * 1024
        );
        drop(r);
    }
}
