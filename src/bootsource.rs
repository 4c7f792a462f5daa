//! What a request for a boot file is answered with, and the hook that
//! generates one. A [`Source`] is a file, bytes made for this request (a
//! rendered `config.txt`), or a file followed by bytes (Ubuntu's initrd with
//! an installer archive appended: the file is streamed, never copied into
//! memory). Its length is known before the first byte is sent (TFTP's
//! `tsize`, HTTP's `Content-Length`).
//!
//! [`generated`] is the one place a requested name and the asking client's
//! address are mapped onto generated content; each generator (today the Pi
//! boot files) either claims the name or leaves it to the static boot-file
//! namespace (`crate::bootfiles`).

use crate::app::App;
use crate::bootfiles::BootFileError;
use crate::config::Config;
use std::fs::File;
use std::io::{self, Read};
use std::net::Ipv4Addr;

/// A boot file's content as one stream of a known length.
#[derive(Debug)]
pub struct Source {
    file: Option<File>,
    /// Bytes of `file` served (its length when opened).
    file_len: u64,
    tail: Vec<u8>,
    /// Stream position.
    pos: u64,
}

impl Source {
    /// A whole file of `len` bytes.
    pub fn file(file: File, len: u64) -> Source {
        Source::file_then_bytes(file, len, Vec::new())
    }

    /// Bytes generated for this request.
    pub fn bytes(bytes: Vec<u8>) -> Source {
        Source {
            file: None,
            file_len: 0,
            tail: bytes,
            pos: 0,
        }
    }

    /// The first `len` bytes of `file`, then `tail`.
    pub fn file_then_bytes(file: File, len: u64, tail: Vec<u8>) -> Source {
        Source {
            file: Some(file),
            file_len: len,
            tail,
            pos: 0,
        }
    }

    /// Opens `path` as a whole-file source.
    pub fn open(path: &std::path::Path) -> io::Result<Source> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Source::file(file, len))
    }

    /// This source followed by `bytes`.
    pub fn followed_by(mut self, bytes: Vec<u8>) -> Source {
        self.tail.extend_from_slice(&bytes);
        self
    }

    /// The stream's length.
    pub fn len(&self) -> u64 {
        self.file_len + self.tail.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Read for Source {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos < self.file_len {
            let file = self
                .file
                .as_mut()
                .expect("a source with file bytes has a file");
            let want = usize::try_from(self.file_len - self.pos)
                .unwrap_or(usize::MAX)
                .min(out.len());
            let n = file.read(&mut out[..want])?;
            if n == 0 {
                // The file shrank since it was opened: the length already
                // promised to the client cannot be kept, so fail the
                // transfer rather than send a short file as if whole.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the file ended at byte {} of the {} it had when opened",
                        self.pos, self.file_len
                    ),
                ));
            }
            self.pos += n as u64;
            return Ok(n);
        }
        let at = (self.pos - self.file_len) as usize;
        let n = self.tail.len().saturating_sub(at).min(out.len());
        out[..n].copy_from_slice(&self.tail[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// A generator's answer for one requested name.
#[derive(Debug)]
pub enum Claim {
    /// The name is this generator's: serve this.
    Served(Source),
    /// The name is this generator's and is refused (or does not exist for
    /// this client): answer with the error, do not look further.
    Refused(BootFileError),
    /// Not this generator's: the static boot-file namespace answers.
    NotMine,
}

/// A generator: claims the names it makes for this client, or passes.
pub type Generator = fn(&App, &Config, Ipv4Addr, &str) -> Claim;

/// Every generator, asked in order; the first that claims a name answers it.
const GENERATORS: &[Generator] = &[
    crate::pi::boot_files::claim,
    crate::artifacts::claim_grub_cfg,
];

/// Maps a requested name from the client at `client` onto generated
/// content. `config` is the config in force for this request.
pub fn generated(app: &App, config: &Config, client: Ipv4Addr, name: &str) -> Claim {
    for generate in GENERATORS {
        match generate(app, config, client, name) {
            Claim::NotMine => continue,
            claimed => return claimed,
        }
    }
    Claim::NotMine
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(mut s: Source, chunk: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn a_file_then_bytes_is_one_stream_of_the_promised_length() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"0123456789").unwrap();
        let s = Source::file_then_bytes(File::open(f.path()).unwrap(), 10, b"abc".to_vec());
        assert_eq!(s.len(), 13);
        assert_eq!(read_all(s, 4).unwrap(), b"0123456789abc");
        // Only the length known at open is served, even if the file grew.
        let s = Source::file_then_bytes(File::open(f.path()).unwrap(), 6, b"XY".to_vec());
        assert_eq!(read_all(s, 7).unwrap(), b"012345XY");
        assert_eq!(read_all(Source::bytes(b"hi".to_vec()), 1).unwrap(), b"hi");
        assert!(Source::bytes(Vec::new()).is_empty());
    }

    #[test]
    fn a_file_that_shrank_is_an_error_not_a_short_file() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"0123").unwrap();
        let s = Source::file_then_bytes(File::open(f.path()).unwrap(), 10, b"abc".to_vec());
        let e = read_all(s, 64).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
