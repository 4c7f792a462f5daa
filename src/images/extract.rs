//! Extraction of what the boot flows read from verified images:
//! `casper/vmlinuz` and `casper/initrd` from a live-server ISO, the whole
//! FAT boot partition (kernel, initrd, DTBs, overlays, Pi firmware) from an
//! xz-compressed preinstalled Pi image, and `bin/busybox` from Debian's
//! `busybox-static` package. Each output is written under a temporary name
//! and renamed when complete, so a crash never leaves a half-written file
//! under a name the boot flows read.

use super::iso9660::Iso;
use super::{deb, verify};
use anyhow::{bail, Context, Result};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The ISO paths of the live-server netboot kernel and initrd, and their names in the cache.
pub const CASPER_FILES: [(&str, &str); 2] =
    [("casper/vmlinuz", "vmlinuz"), ("casper/initrd", "initrd")];

/// Extracts `casper/vmlinuz` and `casper/initrd` from `iso` into `dir`.
pub fn live_server(iso: &Path, dir: &Path) -> Result<()> {
    let mut reader =
        Iso::open(iso).with_context(|| format!("{}: cannot read the ISO", iso.display()))?;
    for (inside, name) in CASPER_FILES {
        let extent = reader
            .find(inside)
            .with_context(|| format!("{}: cannot read the ISO", iso.display()))?
            .filter(|e| !e.is_dir)
            .with_context(|| {
                format!(
                    "{} has no {inside}: is it an Ubuntu live-server ISO?",
                    iso.display()
                )
            })?;
        let path = dir.join(name);
        write_atomically(&path, 0o644, |out| reader.copy(extent, out).map(drop))?;
        // Recorded so that `images verify` can re-check what the boot flows read.
        verify::write_record(&path, &verify::sha256_file(&path)?)?;
    }
    Ok(())
}

/// Where the boot partition of a Pi image is extracted: `boot/` beside it.
pub fn raspi_boot_dir(image: &Path) -> PathBuf {
    image.with_file_name("boot")
}

/// The digests of the extracted boot partition (`sha256sum` format, paths
/// relative to `boot/`), beside the image.
pub fn boot_manifest(image: &Path) -> PathBuf {
    image.with_file_name("boot.sha256")
}

fn write_manifest(dir: &Path, manifest: &Path) -> Result<()> {
    fn walk(base: &Path, dir: &Path, out: &mut String) -> Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            if e.file_type()?.is_dir() {
                walk(base, &p, out)?;
            } else {
                let rel = p.strip_prefix(base).unwrap_or(&p);
                out.push_str(&format!(
                    "{}  {}\n",
                    verify::sha256_file(&p)?,
                    rel.display()
                ));
            }
        }
        Ok(())
    }
    let mut text = String::new();
    walk(dir, dir, &mut text)?;
    fs::write(manifest, text).with_context(|| format!("cannot write {}", manifest.display()))?;
    Ok(())
}

/// Decompresses a `.img.xz`, finds the FAT boot partition in its MBR, and
/// copies every file of it into `boot/` beside the image.
pub fn raspi(image_xz: &Path) -> Result<PathBuf> {
    let dir = image_xz.parent().unwrap_or(Path::new("."));
    let raw = dir.join(".raspi.img.tmp");
    let result = (|| {
        let input =
            File::open(image_xz).with_context(|| format!("cannot open {}", image_xz.display()))?;
        // Ubuntu's images are single xz streams; the multi decoder also takes concatenated ones.
        let mut xz = xz2::read::XzDecoder::new_multi_decoder(io::BufReader::new(input));
        let mut out = BufWriter::new(
            File::create(&raw).with_context(|| format!("cannot write {}", raw.display()))?,
        );
        io::copy(&mut xz, &mut out).with_context(|| {
            format!(
                "{}: xz decompression failed (corrupt or not xz?)",
                image_xz.display()
            )
        })?;
        out.flush()?;
        drop(out);
        let mut disk = File::open(&raw)?;
        let (start, len) = boot_partition(&mut disk)
            .with_context(|| format!("{}: no usable partition table", image_xz.display()))?;
        let part = Slice::new(disk, start, len);
        let fs = fatfs::FileSystem::new(part, fatfs::FsOptions::new()).with_context(|| {
            format!(
                "{}: the boot partition is not a FAT file system",
                image_xz.display()
            )
        })?;
        let target = raspi_boot_dir(image_xz);
        let staging = dir.join(".boot.tmp");
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)?;
        copy_tree(&fs.root_dir(), &staging)?;
        write_manifest(&staging, &boot_manifest(image_xz))?;
        let _ = fs::remove_dir_all(&target);
        fs::rename(&staging, &target)?;
        Ok(target)
    })();
    let _ = fs::remove_file(&raw);
    result
}

/// The byte offset and length of the first FAT partition in an MBR. The
/// table is 4 entries of 16 bytes at offset 446, signed 0x55 0xAA at 510;
/// each entry has its type at byte 4, first LBA at 8 and sector count at 12
/// (little-endian, 512-byte sectors).
pub fn boot_partition(disk: &mut (impl Read + Seek)) -> Result<(u64, u64)> {
    let mut mbr = [0u8; 512];
    disk.seek(SeekFrom::Start(0))?;
    disk.read_exact(&mut mbr)
        .context("shorter than one sector")?;
    if mbr[510..512] != [0x55, 0xAA] {
        bail!("no MBR signature");
    }
    const FAT_TYPES: [u8; 6] = [0x01, 0x04, 0x06, 0x0b, 0x0c, 0x0e];
    for i in 0..4 {
        let e = &mbr[446 + i * 16..446 + (i + 1) * 16];
        let le = |at: usize| u32::from_le_bytes(e[at..at + 4].try_into().expect("4 bytes")) as u64;
        if FAT_TYPES.contains(&e[4]) && le(12) > 0 {
            return Ok((le(8) * 512, le(12) * 512));
        }
    }
    bail!("no FAT partition in the MBR (types 0x0b/0x0c/0x0e/0x06/0x04/0x01)")
}

fn copy_tree<T: fatfs::ReadWriteSeek>(dir: &fatfs::Dir<T>, to: &Path) -> Result<()> {
    for entry in dir.iter() {
        let entry = entry.context("cannot read a FAT directory")?;
        let name = entry.file_name();
        if name == "." || name == ".." {
            continue;
        }
        if name.contains('/') || name.contains('\\') {
            bail!("refusing FAT entry {name:?}");
        }
        let path = to.join(&name);
        if entry.is_dir() {
            fs::create_dir_all(&path)?;
            copy_tree(&entry.to_dir(), &path)?;
        } else {
            let mut f = entry.to_file();
            let mut out = BufWriter::new(File::create(&path)?);
            io::copy(&mut f, &mut out)
                .with_context(|| format!("cannot copy {name} out of the FAT partition"))?;
            out.flush()?;
        }
    }
    Ok(())
}

/// A window of a file, read-only: the partition that fatfs mounts.
struct Slice {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Slice {
    fn new(file: File, start: u64, len: u64) -> Slice {
        Slice {
            file,
            start,
            len,
            pos: 0,
        }
    }
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.file.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Slice {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        // Extraction only reads; fatfs writes only when something was changed.
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the partition is opened read-only",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Slice {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if new < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the partition",
            ));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

/// The file of Debian's `busybox-static` package that is extracted.
pub const BUSYBOX_IN_DEB: &str = "bin/busybox";
/// Its name in the cache, beside the package.
pub const BUSYBOX: &str = "busybox";
/// A static busybox is about 2 MiB; anything far larger is not one.
const BUSYBOX_MAX: u64 = 64 << 20;

/// Where the busybox of a `busybox-static` package is extracted: beside it.
pub fn busybox_path(deb: &Path) -> PathBuf {
    deb.with_file_name(BUSYBOX)
}

/// Extracts `bin/busybox` from the verified package `deb` into
/// [`busybox_path`] (mode 0755) with its digest recorded, after checking
/// that it is an ELF program for `arch` (`arm64` or `amd64`). On any error
/// nothing is written.
pub fn busybox(deb: &Path, arch: &str) -> Result<PathBuf> {
    let bytes = deb::read_file(deb, BUSYBOX_IN_DEB, BUSYBOX_MAX)?;
    check_elf(&bytes, arch).with_context(|| {
        format!(
            "{}: its {BUSYBOX_IN_DEB} is not a busybox for {arch}",
            deb.display()
        )
    })?;
    let path = busybox_path(deb);
    write_atomically(&path, 0o755, |out| out.write_all(&bytes))?;
    // Recorded so that `images verify` can re-check what the Pi is sent.
    verify::write_record(&path, &verify::sha256_bytes(&bytes))?;
    Ok(path)
}

/// Whether `bytes` start like a 64-bit little-endian ELF program for `arch`
/// (`e_machine` at byte 18: 183 for AArch64, 62 for x86-64). A busybox
/// for the wrong machine would only fail on the Pi, as "exec format error".
fn check_elf(bytes: &[u8], arch: &str) -> Result<()> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        bail!("not an ELF program");
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        bail!("not a 64-bit little-endian ELF program");
    }
    let want: u16 = match arch {
        "arm64" => 183,
        "amd64" => 62,
        other => bail!("unknown arch {other:?}"),
    };
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if machine != want {
        bail!("ELF machine {machine}, expected {want} ({arch})");
    }
    Ok(())
}

/// Writes `path` via `<path>.part` with mode `mode`: flushed to disk, then
/// renamed once complete. On an error the part is removed.
fn write_atomically(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let part = super::fetch::part_path(path);
    let result = (|| -> io::Result<()> {
        let mut out = BufWriter::new(File::create(&part)?);
        fill(&mut out)?;
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&part);
        return Err(e).with_context(|| format!("cannot write {}", part.display()));
    }
    fs::rename(&part, path)
        .with_context(|| format!("cannot rename {} to {}", part.display(), path.display()))?;
    // The rename itself is durable once the directory is.
    File::open(dir).and_then(|d| d.sync_all()).ok();
    Ok(())
}
