//! A small ISO 9660 reader: the primary volume descriptor and directory
//! records, enough to find and copy files such as `casper/vmlinuz` out of an
//! installer ISO without mounting it. Names are matched on their ISO 9660
//! identifiers (case-insensitive, without the `;1` version suffix).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

const SECTOR: u64 = 2048;

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// One directory record: where its data lies and whether it is a directory.
#[derive(Debug, Clone, Copy)]
pub struct Extent {
    pub lba: u32,
    pub len: u32,
    pub is_dir: bool,
}

pub struct Iso {
    file: File,
    root: Extent,
}

impl Iso {
    /// Opens an ISO image and reads its primary volume descriptor.
    pub fn open(path: &Path) -> io::Result<Iso> {
        let mut file = File::open(path)?;
        // Volume descriptors start at sector 16; type 1 is the primary one, 255 ends the set.
        for sector in 16..64 {
            let mut vd = [0u8; 2048];
            file.seek(SeekFrom::Start(sector * SECTOR))?;
            file.read_exact(&mut vd)
                .map_err(|_| bad("too short for an ISO 9660 image"))?;
            if &vd[1..6] != b"CD001" {
                return Err(bad("no ISO 9660 volume descriptor (not an ISO image?)"));
            }
            match vd[0] {
                1 => {
                    // The root directory record sits at byte 156 of the descriptor.
                    let root = parse_record(&vd[156..190])
                        .ok_or_else(|| bad("bad root directory record"))?
                        .1;
                    return Ok(Iso { file, root });
                }
                255 => break,
                _ => {}
            }
        }
        Err(bad("no primary volume descriptor"))
    }

    /// Finds a file or directory by a `/`-separated path.
    pub fn find(&mut self, path: &str) -> io::Result<Option<Extent>> {
        let mut cur = self.root;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !cur.is_dir {
                return Ok(None);
            }
            match self.lookup(cur, part)? {
                Some(e) => cur = e,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    fn lookup(&mut self, dir: Extent, name: &str) -> io::Result<Option<Extent>> {
        let mut data = vec![0u8; dir.len as usize];
        self.file.seek(SeekFrom::Start(dir.lba as u64 * SECTOR))?;
        self.file.read_exact(&mut data)?;
        let mut off = 0usize;
        while off < data.len() {
            let len = data[off] as usize;
            if len == 0 {
                // Records never cross a sector boundary: the rest of this sector is padding.
                off = (off / SECTOR as usize + 1) * SECTOR as usize;
                continue;
            }
            let rec = data
                .get(off..off + len)
                .ok_or_else(|| bad("directory record runs past its directory"))?;
            if let Some((id, extent)) = parse_record(rec) {
                if identifier_matches(id, name) {
                    return Ok(Some(extent));
                }
            }
            off += len;
        }
        Ok(None)
    }

    /// Copies a file's bytes to `out`.
    pub fn copy(&mut self, extent: Extent, out: &mut impl io::Write) -> io::Result<u64> {
        self.file
            .seek(SeekFrom::Start(extent.lba as u64 * SECTOR))?;
        let n = io::copy(&mut (&mut self.file).take(extent.len as u64), out)?;
        if n != extent.len as u64 {
            return Err(bad("the image ends inside a file (truncated ISO?)"));
        }
        Ok(n)
    }
}

/// A directory record: identifier bytes and extent. Byte 0 is the record
/// length, 2..6 the extent's first sector and 10..14 its length (both
/// little-endian halves of the both-endian fields), 25 the flags (bit 1 =
/// directory), 32 the identifier length, and the identifier from 33.
fn parse_record(rec: &[u8]) -> Option<(&[u8], Extent)> {
    if rec.len() < 34 {
        return None;
    }
    let le = |at: usize| u32::from_le_bytes(rec[at..at + 4].try_into().expect("4 bytes"));
    let id_len = rec[32] as usize;
    let id = rec.get(33..33 + id_len)?;
    Some((
        id,
        Extent {
            lba: le(2),
            len: le(10),
            is_dir: rec[25] & 0x02 != 0,
        },
    ))
}

/// `VMLINUZ.;1` matches `vmlinuz`; `INITRD.;1` matches `initrd`.
fn identifier_matches(id: &[u8], name: &str) -> bool {
    let id = String::from_utf8_lossy(id);
    let id = id.split(';').next().unwrap_or("");
    let id = id.strip_suffix('.').unwrap_or(id);
    id.eq_ignore_ascii_case(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(identifier_matches(b"VMLINUZ.;1", "vmlinuz"));
        assert!(identifier_matches(b"CASPER", "casper"));
        assert!(identifier_matches(b"INITRD.;1", "initrd"));
        assert!(!identifier_matches(b"INITRD.GZ;1", "initrd"));
        assert!(!identifier_matches(b"\0", "initrd"));
    }
}
