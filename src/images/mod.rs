//! Where the boot flows read OS installer files, what is missing, and how
//! the cache is filled: the catalog, downloads, verification, import from
//! local media, and extraction.
//!
//! Layout under `<data_dir>/images/`: `<os>-<arch>/{vmlinuz,initrd,live-server.iso}`
//! for the Ubuntu live-server installers; `ubuntu-24.04-raspi/` for the Pi image
//! and its extracted `boot/` partition; `busybox-arm64/` for Debian's
//! `busybox-static` package and the `busybox` extracted from it, which the Pi
//! installer's archive carries; `ipxe/` for iPXE builds and `grub/` for
//! the arm64 GRUB (see `bootfiles`).
//! Each downloaded file has a `<file>.sha256` record beside it.
//!
//! - `catalog`  — `images/catalog.toml`, compiled in, parsed into checked entries.
//! - `fetch`    — resumable, verified downloads.
//! - `verify`   — digests, `SHA256SUMS`, the per-file records.
//! - `import`   — filling the cache from a directory or mounted media.
//! - `iso9660`  — a small ISO 9660 reader.
//! - `deb`      — a small Debian package (`ar` + `data.tar.xz`) reader.
//! - `extract`  — kernel/initrd from ISOs, the boot partition from Pi images,
//!   busybox from its Debian package.
//! - `cache`    — the operations behind `bootherd images`: status, fetch, verify.

pub mod cache;
pub mod catalog;
pub mod deb;
pub mod extract;
pub mod fetch;
pub mod import;
pub mod iso9660;
pub mod verify;

use crate::boot::BootProgram;
use crate::bootfiles;
use crate::config::{Config, Os};
use std::path::PathBuf;

/// The files of the Ubuntu live-server netboot installer.
pub const INSTALLER_FILES: [&str; 3] = ["vmlinuz", "initrd", "live-server.iso"];

/// The root of the image cache.
pub fn images_dir(config: &Config) -> PathBuf {
    config.server.data_dir.join("images")
}

/// The directory holding the installer of `os` for `arch` (`amd64`, `arm64`).
pub fn installer_dir(config: &Config, os: Os, arch: &str) -> PathBuf {
    config
        .server
        .data_dir
        .join("images")
        .join(format!("{}-{arch}", os.name()))
}

/// The directory of the Pi image and its extracted `boot/` (the catalog's `dest`).
pub const RASPI_SET: &str = "ubuntu-24.04-raspi";
/// The preinstalled raspi image the Pi installer streams to the disk.
pub const RASPI_IMAGE: &str = "preinstalled-server.img.xz";

/// Where the preinstalled raspi image is cached.
pub fn raspi_image(config: &Config) -> PathBuf {
    images_dir(config).join(RASPI_SET).join(RASPI_IMAGE)
}

/// The catalog entry of the busybox the Pi installer runs its tools from.
pub const BUSYBOX_ENTRY: &str = "busybox-static-arm64";
/// Its directory under the cache (the entry's `dest`).
pub const BUSYBOX_SET: &str = "busybox-arm64";

/// Where the Pi installer's arm64 busybox is cached, extracted from Debian's
/// `busybox-static` package (`bootherd images fetch busybox-static-arm64`).
pub fn pi_busybox(config: &Config) -> PathBuf {
    images_dir(config).join(BUSYBOX_SET).join(extract::BUSYBOX)
}

/// Resolves `/assets/<os>-<arch>/<file>` to a path, for the installer files
/// only; and `/assets/ubuntu-24.04-raspi/preinstalled-server.img.xz`, the
/// image the Pi installer streams.
pub fn installer_file(config: &Config, set: &str, file: &str) -> Option<PathBuf> {
    if set == RASPI_SET {
        return (file == RASPI_IMAGE).then(|| raspi_image(config));
    }
    if !INSTALLER_FILES.contains(&file) {
        return None;
    }
    let (os, arch) = Os::ALL.iter().find_map(|os| {
        let arch = set.strip_prefix(os.name())?.strip_prefix('-')?;
        ["amd64", "arm64"].contains(&arch).then_some((*os, arch))
    })?;
    Some(installer_dir(config, os, arch).join(file))
}

/// A file the configured inventory needs and that is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub what: String,
    pub looked_in: Vec<PathBuf>,
    pub needed_by: Vec<String>,
}

/// Lists what the configured machines need and cannot be found.
pub fn missing(config: &Config) -> Vec<Missing> {
    let mut out: Vec<Missing> = Vec::new();
    let mut need = |what: String, looked_in: Vec<PathBuf>, host: &str| {
        if looked_in.iter().any(|p| p.is_file()) {
            return;
        }
        match out.iter_mut().find(|m| m.what == what) {
            Some(m) => m.needed_by.push(host.to_string()),
            None => out.push(Missing {
                what,
                looked_in,
                needed_by: vec![host.to_string()],
            }),
        }
    };
    for m in &config.machines {
        if let Some(model) = crate::boot::PiModel::of(m.platform) {
            // What a Pi's install boot reads from the raspi image's boot partition.
            let Some(boot) = crate::pi::boot_files::raspi_boot_dir(config, m.os) else {
                need(
                    format!("a Raspberry Pi image of {}", m.os),
                    Vec::new(),
                    &m.hostname,
                );
                continue;
            };
            for f in crate::pi::boot_files::required_files(model) {
                let path = boot.join(f);
                need(path.display().to_string(), vec![path], &m.hostname);
            }
            // The image the Pi installer streams onto the disk.
            let image = raspi_image(config);
            need(image.display().to_string(), vec![image], &m.hostname);
            // The busybox the installer runs its tools from.
            let busybox = pi_busybox(config);
            need(busybox.display().to_string(), vec![busybox], &m.hostname);
            continue;
        }
        for p in BootProgram::for_platform(m.platform) {
            need(
                p.file_name().to_string(),
                bootfiles::program_candidates(config, *p),
                &m.hostname,
            );
        }
        let dir = installer_dir(config, m.os, m.platform.arch());
        for f in INSTALLER_FILES {
            let path = dir.join(f);
            need(path.display().to_string(), vec![path], &m.hostname);
        }
    }
    out
}
