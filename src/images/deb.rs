//! A small reader of Debian binary packages (`.deb`), enough to take one
//! file out of one: a `.deb` is an `ar` archive whose members are
//! `debian-binary` (`2.0`), `control.tar.*` and `data.tar.*`, the files the
//! package installs. The file is read out of `data.tar.xz` (or an
//! uncompressed `data.tar`) by its path.
//!
//! The `ar` format: the 8 bytes `!<arch>\n`, then per member a 60-byte ASCII
//! header (name 16, mtime 12, uid 6, gid 6, octal mode 8, decimal size 10,
//! and the 2 bytes `` `\n``), the data, and one `\n` after data of odd
//! length. Names are space-padded (GNU `ar` ends them with `/`).

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
const HEADER_LEN: u64 = 60;

/// One member of an `ar` archive: its name and where its data lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

/// The members of the `ar` archive `r` (`len` bytes long), in order. A
/// header or member that runs past the end is an error ("truncated"), not a
/// shorter list.
pub fn ar_members(r: &mut (impl Read + Seek), len: u64) -> Result<Vec<Member>> {
    let mut magic = [0u8; 8];
    r.seek(SeekFrom::Start(0))?;
    if len < 8 || r.read_exact(&mut magic).is_err() || &magic != AR_MAGIC {
        bail!("not an ar archive (no `!<arch>` signature)");
    }
    let mut out = Vec::new();
    let mut at = 8u64;
    while at < len {
        if len - at < HEADER_LEN {
            bail!("truncated: {} stray bytes after the last member", len - at);
        }
        let mut h = [0u8; HEADER_LEN as usize];
        r.seek(SeekFrom::Start(at))?;
        r.read_exact(&mut h)?;
        if &h[58..60] != b"`\n" {
            bail!("damaged: no member header at byte {at}");
        }
        let name = std::str::from_utf8(&h[..16])
            .ok()
            .map(|n| n.trim_end_matches(' ').trim_end_matches('/').to_string())
            .filter(|n| !n.is_empty())
            .with_context(|| format!("damaged: the member at byte {at} has no readable name"))?;
        let size: u64 = std::str::from_utf8(&h[48..58])
            .ok()
            .map(|s| s.trim_end_matches(' '))
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("damaged: member {name} has no decimal size"))?;
        let offset = at + HEADER_LEN;
        if size > len - offset {
            bail!(
                "truncated: member {name} holds {size} bytes, only {} follow",
                len - offset
            );
        }
        out.push(Member { name, offset, size });
        // Data of odd length is followed by one `\n`.
        at = offset + size + size % 2;
    }
    Ok(out)
}

/// Reads the file `inside` (e.g. `bin/busybox`, as the package installs it
/// at `/bin/busybox`) out of the package `deb`: a regular file of at most
/// `max` bytes.
pub fn read_file(deb: &Path, inside: &str, max: u64) -> Result<Vec<u8>> {
    let what = deb.display();
    let mut f = File::open(deb).with_context(|| format!("cannot open {what}"))?;
    let len = f.metadata()?.len();
    let members = ar_members(&mut f, len).with_context(|| format!("{what} is not a .deb"))?;
    match members.first() {
        Some(m) if m.name == "debian-binary" => {}
        _ => bail!("{what} is not a .deb: its first member is not debian-binary"),
    }
    let data = members
        .iter()
        .find(|m| m.name.starts_with("data.tar"))
        .with_context(|| format!("{what} has no data.tar member"))?;
    f.seek(SeekFrom::Start(data.offset))?;
    let body = BufReader::new(f).take(data.size);
    let tar: Box<dyn Read> = match data.name.as_str() {
        "data.tar.xz" => Box::new(xz2::read::XzDecoder::new_multi_decoder(body)),
        "data.tar" => Box::new(body),
        other => bail!("{what}: its {other} is not xz-compressed, which is all bootherd reads"),
    };
    let damaged = |e: io::Error| {
        anyhow::anyhow!(
            "{what}: cannot read its {} (truncated or damaged): {e}",
            data.name
        )
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(damaged)? {
        let entry = entry.map_err(damaged)?;
        let path = entry.path().map_err(damaged)?.into_owned();
        // dpkg-deb writes `./bin/busybox`.
        let path = path.strip_prefix(".").unwrap_or(&path);
        if path != Path::new(inside) {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            bail!("{what}: its {inside} is not a regular file (a link?)");
        }
        let size = entry.size();
        if size > max {
            bail!("{what}: its {inside} is {size} bytes, more than the {max} expected");
        }
        let mut out = Vec::with_capacity(size as usize);
        entry.take(max).read_to_end(&mut out).map_err(damaged)?;
        if out.len() as u64 != size {
            bail!(
                "{what}: its {inside} ends after {} of {size} bytes (truncated)",
                out.len()
            );
        }
        return Ok(out);
    }
    bail!("{what} has no {inside} in its {}", data.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn member(name: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            "100644",
            data.len()
        )
        .into_bytes();
        h.extend_from_slice(data);
        if data.len() % 2 == 1 {
            h.push(b'\n');
        }
        h
    }

    fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = AR_MAGIC.to_vec();
        for (n, d) in members {
            out.extend(member(n, d));
        }
        out
    }

    #[test]
    fn members_with_odd_sizes_and_gnu_names() {
        let bytes = ar(&[("debian-binary", b"2.0\n"), ("odd/", b"abc"), ("x", b"")]);
        let members = ar_members(&mut Cursor::new(&bytes), bytes.len() as u64).unwrap();
        let names: Vec<_> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["debian-binary", "odd", "x"]);
        let odd = &members[1];
        assert_eq!(
            &bytes[odd.offset as usize..(odd.offset + odd.size) as usize],
            b"abc"
        );
    }

    #[test]
    fn truncated_and_damaged_archives_are_errors() {
        let bytes = ar(&[("debian-binary", b"2.0\n"), ("data.tar", &[7u8; 100])]);
        for cut in [bytes.len() - 1, bytes.len() - 100, 8 + 30] {
            let err = ar_members(&mut Cursor::new(&bytes[..cut]), cut as u64).unwrap_err();
            assert!(err.to_string().contains("truncated"), "{cut}: {err}");
        }
        let mut bad = bytes.clone();
        bad[8 + 58] = b'x';
        assert!(ar_members(&mut Cursor::new(&bad), bad.len() as u64).is_err());
        let mut bad_size = bytes.clone();
        bad_size[8 + 48] = b'z';
        assert!(ar_members(&mut Cursor::new(&bad_size), bad.len() as u64).is_err());
        assert!(ar_members(&mut Cursor::new(b"not an ar"), 9).is_err());
    }
}
