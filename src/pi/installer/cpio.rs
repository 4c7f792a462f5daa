//! A writer for the `newc` cpio format, the one format the kernel unpacks
//! into its initramfs (and initramfs-tools reads). Each entry is a 110-byte
//! ASCII header (`070701` and thirteen 8-digit hex fields), the NUL-terminated
//! name padded to 4 bytes, then the data padded to 4 bytes; the archive ends
//! with the entry `TRAILER!!!`.

use anyhow::{bail, Result};

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

/// An archive being built. Entries are written in the order added.
#[derive(Default)]
pub struct Archive {
    out: Vec<u8>,
    next_ino: u32,
}

impl Archive {
    pub fn new() -> Archive {
        Archive::default()
    }

    /// A directory. Unpacking over an existing one (Ubuntu's `/scripts`) keeps it.
    pub fn dir(&mut self, path: &str, perm: u32) -> Result<()> {
        self.entry(path, S_IFDIR | (perm & 0o7777), 2, &[])
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.entry(path, S_IFREG | (perm & 0o7777), 1, data)
    }

    /// Appends the trailer and returns the archive bytes.
    pub fn finish(mut self) -> Vec<u8> {
        // The trailer is a fixed, valid name: it cannot fail.
        self.raw_entry(TRAILER, 0, 1, &[]);
        self.out
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, data: &[u8]) -> Result<()> {
        // Names are relative to the initramfs root, like `cpio -o` writes them;
        // `..` would let an archive write outside the directory it unpacks into.
        if path.is_empty()
            || path.starts_with('/')
            || path.contains('\0')
            || path.split('/').any(|c| c.is_empty() || c == "..")
            || path == TRAILER
        {
            bail!("cpio entry name {path:?} is not a relative path");
        }
        if u32::try_from(data.len()).is_err() {
            bail!("cpio entry {path} is over 4 GiB, which newc cannot describe");
        }
        self.raw_entry(path, mode, nlink, data);
        Ok(())
    }

    fn raw_entry(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) {
        // Inode numbers only need to differ between entries (equal numbers
        // with nlink > 1 mean hard links); they start at 1 for determinism.
        let ino = if name == TRAILER {
            0
        } else {
            self.next_ino += 1;
            self.next_ino
        };
        let fields = [
            ino,
            mode,
            0, // uid: root
            0, // gid: root
            nlink,
            0, // mtime: fixed, so the same input gives the same bytes
            data.len() as u32,
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            name.len() as u32 + 1,
            0, // check: unused by newc
        ];
        self.out.extend_from_slice(MAGIC.as_bytes());
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> u32 {
        u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap()
    }

    #[test]
    fn header_fields_names_and_padding_follow_newc() {
        let mut a = Archive::new();
        a.dir("scripts", 0o755).unwrap();
        a.file("scripts/x", 0o644, b"hello").unwrap();
        let bytes = a.finish();
        // First entry: header, "scripts\0" (8 bytes) -> 118, already aligned? 110+8=118 -> pad to 120.
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(hex(&bytes[14..22]), 0o040755);
        assert_eq!(hex(&bytes[94..102]), 8);
        assert_eq!(&bytes[110..118], b"scripts\0");
        let second = 120;
        assert_eq!(&bytes[second..second + 6], b"070701");
        assert_eq!(hex(&bytes[second + 14..second + 22]), 0o100644);
        assert_eq!(hex(&bytes[second + 54..second + 62]), 5);
        // Name "scripts/x\0" is 10 bytes: 110 + 10 = 120, aligned.
        let data = second + 120;
        assert_eq!(&bytes[data..data + 5], b"hello");
        let trailer = data + 8;
        assert_eq!(&bytes[trailer + 110..trailer + 120], b"TRAILER!!!");
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn names_that_escape_the_root_are_refused() {
        let mut a = Archive::new();
        for bad in ["", "/init", "a/../../etc", "a//b", "TRAILER!!!", "a\0b"] {
            assert!(a.file(bad, 0o644, b"").is_err(), "{bad:?} was accepted");
        }
    }
}
