//! The blocks of one transfer, read from its source (a boot file, generated
//! bytes, or both) ahead in large chunks.
//!
//! A transfer asks for one block (512–1468 bytes typically) at a time, and
//! must be able to send the blocks of its current window again. Reading the
//! file per block would cost a syscall each; going to a thread pool for each
//! would cost more than the transfer itself. So the file is read here in big
//! chunks, directly (boot files are local and almost always in the page
//! cache), into one buffer that is allocated once per transfer and keeps
//! every block from the oldest unacknowledged one on.
//!
//! In netascii mode the stream is the file converted on the fly (LF → CR LF,
//! CR → CR NUL, RFC 764); block boundaries are counted in that stream.

use super::packet::Mode;
use crate::bootsource::Source;
use std::io::{self, Read};

/// Bytes read from the file at once, at most. Big enough that reads cost
/// nothing per block; small enough that the buffers of tens of concurrent
/// transfers stay in the CPU cache between the read and the sends.
const CHUNK: usize = 64 * 1024;

pub struct BlockReader {
    source: Source,
    mode: Mode,
    blksize: usize,
    buf: Box<[u8]>,
    /// Stream offset of `buf[0]`.
    start: u64,
    /// Bytes of `buf` that hold stream data.
    filled: usize,
    eof: bool,
    /// netascii only: the raw bytes of one read, before conversion.
    raw: Vec<u8>,
}

impl BlockReader {
    /// `window` is the most blocks the transfer keeps unacknowledged.
    pub fn new(source: Source, mode: Mode, blksize: u16, window: u16) -> BlockReader {
        let size = source.len();
        let blksize = usize::from(blksize);
        // Enough for a window plus the block being read and one more, so a
        // refill always has room after dropping acknowledged data.
        let window_bytes = (usize::from(window) + 2) * blksize;
        let stream_len = match mode {
            Mode::Octet => size,
            // Every byte may double.
            Mode::Netascii => size.saturating_mul(2),
        };
        // Small files get a buffer of their own size (+1 so the read that
        // sees the end of the file has room), not a whole chunk.
        let whole_file = usize::try_from(stream_len.saturating_add(1)).unwrap_or(usize::MAX);
        let capacity = window_bytes.max(whole_file.min(CHUNK));
        let raw = match mode {
            Mode::Octet => Vec::new(),
            Mode::Netascii => vec![0; capacity / 2],
        };
        BlockReader {
            source,
            mode,
            blksize,
            buf: vec![0; capacity].into_boxed_slice(),
            start: 0,
            filled: 0,
            eof: false,
            raw,
        }
    }

    /// The payload of `block` (1 = the first), shorter than blksize only for
    /// the last block. Data before block `keep_from` may be dropped.
    pub fn block(&mut self, block: u64, keep_from: u64) -> io::Result<&[u8]> {
        let blksize = self.blksize as u64;
        let offset = (block - 1) * blksize;
        let end = offset + blksize;
        while self.start + (self.filled as u64) < end && !self.eof {
            self.refill((keep_from.min(block) - 1) * blksize)?;
        }
        if offset < self.start {
            return Err(io::Error::other(format!(
                "block {block} was dropped from the read-ahead buffer"
            )));
        }
        let have_end = self.start + self.filled as u64;
        let from = (offset.min(have_end) - self.start) as usize;
        let to = (end.min(have_end) - self.start) as usize;
        Ok(&self.buf[from..to])
    }

    /// Drops the data before stream offset `keep`, then reads more.
    fn refill(&mut self, keep: u64) -> io::Result<()> {
        if keep > self.start {
            let drop = ((keep - self.start) as usize).min(self.filled);
            self.buf.copy_within(drop..self.filled, 0);
            self.filled -= drop;
            self.start += drop as u64;
        }
        let room = self.buf.len() - self.filled;
        if room < 2 {
            // The buffer holds a window and two blocks more; only a caller
            // keeping more than its window could get here.
            return Err(io::Error::other(
                "read-ahead buffer full of unacknowledged blocks",
            ));
        }
        match self.mode {
            Mode::Octet => {
                let n = read_retrying(&mut self.source, &mut self.buf[self.filled..])?;
                self.filled += n;
                self.eof = n == 0;
            }
            Mode::Netascii => {
                // Conversion at most doubles the bytes: read half the room.
                let want = (room / 2).min(self.raw.len());
                let n = read_retrying(&mut self.source, &mut self.raw[..want])?;
                self.eof = n == 0;
                let out = &mut self.buf[self.filled..];
                let mut w = 0;
                for &b in &self.raw[..n] {
                    match b {
                        b'\n' => {
                            out[w] = b'\r';
                            out[w + 1] = b'\n';
                            w += 2;
                        }
                        b'\r' => {
                            out[w] = b'\r';
                            out[w + 1] = 0;
                            w += 2;
                        }
                        _ => {
                            out[w] = b;
                            w += 1;
                        }
                    }
                }
                self.filled += w;
            }
        }
        Ok(())
    }
}

fn read_retrying(source: &mut Source, out: &mut [u8]) -> io::Result<usize> {
    loop {
        match source.read(out) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    fn file_with(content: &[u8]) -> (tempfile::NamedTempFile, Source) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        let reopened = Source::open(f.path()).unwrap();
        (f, reopened)
    }

    /// Reads every block in order, as a lock-step transfer would.
    fn all_blocks(r: &mut BlockReader, blksize: usize) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        let mut block = 1;
        loop {
            let data = r.block(block, block).unwrap().to_vec();
            out.extend_from_slice(&data);
            if data.len() < blksize {
                return (out, block);
            }
            block += 1;
        }
    }

    #[test]
    fn octet_blocks_cover_the_file_and_end_short() {
        let content: Vec<u8> = (0..1_000_003u32).map(|i| (i * 7 % 251) as u8).collect();
        let (_keep, f) = file_with(&content);
        let mut r = BlockReader::new(f, Mode::Octet, 1468, 1);
        let (got, last) = all_blocks(&mut r, 1468);
        assert_eq!(got, content);
        assert_eq!(last, content.len() as u64 / 1468 + 1);
    }

    #[test]
    fn a_file_of_whole_blocks_ends_with_an_empty_block() {
        let content = vec![9u8; 4 * 512];
        let (_keep, f) = file_with(&content);
        let mut r = BlockReader::new(f, Mode::Octet, 512, 4);
        let (got, last) = all_blocks(&mut r, 512);
        assert_eq!(got, content);
        assert_eq!(last, 5);
        assert!(r.block(5, 5).unwrap().is_empty());
    }

    #[test]
    fn blocks_of_the_window_can_be_read_again() {
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let (_keep, f) = file_with(&content);
        let mut r = BlockReader::new(f, Mode::Octet, 1024, 16);
        // Read far ahead with block 100 still unacknowledged, then go back to it.
        for b in 100..116 {
            r.block(b, 100).unwrap();
        }
        for b in [100u64, 105, 115, 2000, 2001] {
            let keep = if b >= 2000 { 2000 } else { 100 };
            let at = (b as usize - 1) * 1024;
            assert_eq!(
                r.block(b, keep).unwrap(),
                &content[at..at + 1024],
                "block {b}"
            );
        }
        // Dropped data is an error, not wrong data.
        assert!(r.block(100, 100).is_err());
    }

    #[test]
    fn a_file_followed_by_bytes_is_served_as_one_file() {
        // The seam falls inside a block, and the stream crosses 65536 blocks
        // of 8 bytes, so block numbers past the u16 range are read too.
        let head: Vec<u8> = (0..300_001u32).map(|i| (i % 249) as u8).collect();
        let tail: Vec<u8> = (0..240_003u32).map(|i| (i % 241) as u8 ^ 0x5a).collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&head).unwrap();
        let source = Source::file_then_bytes(
            File::open(f.path()).unwrap(),
            head.len() as u64,
            tail.clone(),
        );
        let mut r = BlockReader::new(source, Mode::Octet, 8, 4);
        let (got, last) = all_blocks(&mut r, 8);
        let mut want = head;
        want.extend_from_slice(&tail);
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the concatenation differs");
        assert_eq!(last, want.len() as u64 / 8 + 1);
        assert!(last > 65_536);
    }

    #[test]
    fn netascii_converts_line_ends() {
        let content = b"line one\nline\rtwo\r\n".repeat(100);
        let (_keep, f) = file_with(&content);
        let mut r = BlockReader::new(f, Mode::Netascii, 512, 1);
        let (got, _) = all_blocks(&mut r, 512);
        let want = b"line one\r\nline\r\0two\r\0\r\n".repeat(100);
        assert_eq!(got, want);
    }
}
