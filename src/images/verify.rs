//! Digests: hashing files, reading `SHA256SUMS`, and the `<file>.sha256`
//! record kept beside each cached image so that `images verify` works offline.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The SHA-256 of bytes in memory, as lowercase hex.
pub fn sha256_bytes(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The `(sha256, file name)` lines of a `SHA256SUMS` file (`sha256sum` output:
/// digest, space, then a space or `*` for binary mode, then the name).
pub fn parse_sums(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (digest, rest) = line.trim_end().split_once(char::is_whitespace)?;
            // `*` marks binary mode; some archives (Ubuntu's uefi/ directories)
            // write names as `./name`.
            let name = rest.trim_start_matches([' ', '*']);
            let name = name.strip_prefix("./").unwrap_or(name);
            (digest.len() == 64
                && digest.bytes().all(|b| b.is_ascii_hexdigit())
                && !name.is_empty())
            .then(|| (digest.to_ascii_lowercase(), name.to_string()))
        })
        .collect()
}

/// Where the expected digest of a cached file is recorded.
pub fn record_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Records the digest a cached file was verified against, in `sha256sum` format.
pub fn write_record(file: &Path, sha256: &str) -> io::Result<()> {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    std::fs::write(record_path(file), format!("{sha256}  {name}\n"))
}

/// The digest recorded for a cached file, if any.
pub fn read_record(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(record_path(file)).ok()?;
    parse_sums(&text).into_iter().next().map(|(d, _)| d)
}

/// The outcome of re-checking one cached file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ok,
    Missing,
    /// Present, but with no recorded digest (placed by hand).
    Unrecorded,
    Mismatch {
        expected: String,
        actual: String,
    },
}

/// Re-hashes a cached file against its record.
pub fn check(file: &Path) -> io::Result<Check> {
    if !file.is_file() {
        return Ok(Check::Missing);
    }
    let Some(expected) = read_record(file) else {
        return Ok(Check::Unrecorded);
    };
    let actual = sha256_file(file)?;
    Ok(if actual == expected {
        Check::Ok
    } else {
        Check::Mismatch { expected, actual }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_lines() {
        let d = "a".repeat(64);
        let text = format!(
            "{d} *ubuntu.iso\n{d}  other.img.xz\nnot a line\n{d}  ./grubnetaa64.efi.signed\n"
        );
        assert_eq!(
            parse_sums(&text),
            vec![
                (d.clone(), "ubuntu.iso".to_string()),
                (d.clone(), "other.img.xz".to_string()),
                (d, "grubnetaa64.efi.signed".to_string())
            ]
        );
    }
}
