//! The Pi installer: a cpio archive appended to Ubuntu's raspi initrd whose
//! initramfs hook streams the preinstalled image onto the Pi's disk, checks
//! it, seeds cloud-init's NoCloud and reports to bootherd.
//!
//! The hook is two compiled-in shell files (checked by shellcheck):
//! `boot-script.sh` becomes `/scripts/bootherd`, an initramfs-tools boot
//! script selected by `boot=bootherd` (why that hook point: see its header);
//! `install.sh` becomes `/bootherd/install`, the installer it runs. With
//! them goes `/bootherd/busybox`, Debian's static arm64 busybox from the
//! image cache (`bootherd images fetch busybox-static-arm64`): Ubuntu's raspi
//! initrd carries a reduced busybox, or only klibc's tools, so the installer
//! runs under this shell and every tool it needs is one of its applets (see
//! `install.sh`). The initramfs's own tools stay as they are for the rest of
//! the boot. The archive is the same for every Pi: everything per machine is
//! on the kernel command line, so no secret is baked into a file.
//!
//! - `cpio` — the newc archive writer.
//! - `seed` — the NoCloud seed a Pi gets: cloud-config user-data with the
//!   role's first boot, and netplan `network-config`.

pub mod cpio;
pub mod seed;

use crate::app::App;
use crate::config::{is_plain_device_path, Config, Machine, Platform};
use crate::images::{self, verify};
use anyhow::{bail, Context as _, Result};

/// The initramfs-tools boot script (`/scripts/bootherd`).
pub const BOOT_SCRIPT: &str = include_str!("installer/boot-script.sh");
/// The installer it runs (`/bootherd/install`).
pub const INSTALL_SCRIPT: &str = include_str!("installer/install.sh");
/// Where the appended archive puts them in the initramfs.
pub const BOOT_SCRIPT_PATH: &str = "scripts/bootherd";
pub const INSTALL_SCRIPT_PATH: &str = "bootherd/install";
/// The busybox the installer runs under (the scripts name it there).
pub const BUSYBOX_PATH: &str = "bootherd/busybox";

/// Both Pi consoles: the UART on the GPIO header and the screen.
const PI_CONSOLE: &str = "console=serial0,115200 console=tty1";

/// The kernel command line (`cmdline.txt`) for a Pi whose install is due:
/// the console and network words plus the `bootherd.*` words the hook reads.
/// Mints the install token the hook's callbacks carry.
pub fn cmdline(app: &App, config: &Config, machine: &Machine) -> Result<String> {
    require_pi(machine)?;
    let disk = target_disk(machine)?;
    let image = images::raspi_image(config);
    let size = std::fs::metadata(&image)
        .with_context(|| {
            format!(
                "{} is missing: the Pi installer streams it (bootherd images fetch ubuntu-24.04-preinstalled-raspi)",
                image.display()
            )
        })?
        .len();
    let sha256 = verify::read_record(&image).with_context(|| {
        format!(
            "{} has no recorded sha256 ({}): fetch or import it with `bootherd images`, which records the digest it was verified against",
            image.display(),
            verify::record_path(&image).display()
        )
    })?;
    let token = app.store.install_token(machine.mac)?;
    let words = [
        PI_CONSOLE.to_string(),
        // initramfs-tools' configure_networking brings the NIC up by DHCP,
        // on the NIC with this MAC (BOOTIF, as pxelinux passes it) when a
        // USB adapter is plugged in too.
        "ip=dhcp".into(),
        format!("BOOTIF=01-{}", machine.mac.hyphenated()),
        "boot=bootherd".into(),
        format!("bootherd.url={}", config.http_base()),
        format!("bootherd.mac={}", machine.mac.hyphenated()),
        format!("bootherd.token={token}"),
        format!(
            "bootherd.image=/assets/{}/{}",
            images::RASPI_SET,
            images::RASPI_IMAGE
        ),
        format!("bootherd.sha256={sha256}"),
        format!("bootherd.size={size}"),
        format!("bootherd.disk={disk}"),
    ];
    Ok(words.join(" ") + "\n")
}

/// The newc cpio archive appended to Ubuntu's raspi initrd (Linux unpacks
/// concatenated archives), carrying the installer hook and its busybox.
pub fn initrd_appendix(_app: &App, config: &Config, machine: &Machine) -> Result<Vec<u8>> {
    require_pi(machine)?;
    let busybox_path = images::pi_busybox(config);
    let busybox = std::fs::read(&busybox_path).with_context(|| {
        format!(
            "{} is missing: the Pi installer runs its tools from it (bootherd images fetch {})",
            busybox_path.display(),
            images::BUSYBOX_ENTRY
        )
    })?;
    let mut a = cpio::Archive::new();
    // `scripts` exists in Ubuntu's initrd; the entry keeps it (the kernel
    // leaves an existing directory alone) and makes the archive unpack on its own.
    a.dir("scripts", 0o755)?;
    a.file(BOOT_SCRIPT_PATH, 0o644, BOOT_SCRIPT.as_bytes())?;
    a.dir("bootherd", 0o755)?;
    a.file(INSTALL_SCRIPT_PATH, 0o755, INSTALL_SCRIPT.as_bytes())?;
    a.file(BUSYBOX_PATH, 0o755, &busybox)?;
    Ok(a.finish())
}

/// How many NUL bytes must sit between Ubuntu's initrd (`base_len` bytes)
/// and the appendix. After a compressed archive the kernel skips NUL bytes
/// and takes a cpio header only where one starts on a 4-byte boundary;
/// anything else it reads as another compressed archive and stops with
/// "invalid magic". Without the padding the hook silently never arrives
/// (seen in tests/pi_installer.rs before this existed).
pub fn appendix_padding(base_len: u64) -> usize {
    ((4 - base_len % 4) % 4) as usize
}

/// Ubuntu's initrd followed by the appendix, as the Pi must receive it.
/// (A server that streams the two uses [`appendix_padding`] between them.)
pub fn concatenate(base: &[u8], appendix: &[u8]) -> Vec<u8> {
    let pad = appendix_padding(base.len() as u64);
    let mut out = Vec::with_capacity(base.len() + pad + appendix.len());
    out.extend_from_slice(base);
    out.resize(base.len() + pad, 0);
    out.extend_from_slice(appendix);
    out
}

fn require_pi(machine: &Machine) -> Result<()> {
    if !matches!(machine.platform, Platform::Rpi4 | Platform::Rpi5) {
        bail!(
            "{} is platform {}: the Pi installer is only for platform \"rpi4\" or \"rpi5\"",
            machine.hostname,
            machine.platform
        );
    }
    Ok(())
}

/// The `bootherd.disk=` word: the configured disk, or `auto` (the first of
/// NVMe, USB, SD, which the hook finds). The value is one word of the kernel
/// command line, so it must be a plain `/dev/` path.
fn target_disk(machine: &Machine) -> Result<String> {
    let Some(disk) = &machine.disk else {
        return Ok("auto".into());
    };
    // Validation refuses such a config; this guards configs built otherwise.
    if !is_plain_device_path(disk) {
        bail!(
            "{}: disk = {disk:?} is not a plain /dev/ path (e.g. \"/dev/mmcblk0\", \"/dev/sda\", \"/dev/nvme0n1\"); fix `disk` in the config",
            machine.hostname
        );
    }
    Ok(disk.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Os, Role};

    fn pi(disk: Option<&str>) -> Machine {
        Machine {
            mac: "dc:a6:32:01:02:03".parse().unwrap(),
            hostname: "pi1".into(),
            role: Role::Worker,
            ip: "10.0.0.31".parse().unwrap(),
            platform: Platform::Rpi4,
            os: Os::Ubuntu2404,
            disk: disk.map(str::to_string),
            serial: None,
        }
    }

    #[test]
    fn the_disk_word_is_auto_or_a_plain_device_path() {
        assert_eq!(target_disk(&pi(None)).unwrap(), "auto");
        for ok in [
            "/dev/mmcblk0",
            "/dev/sda",
            "/dev/nvme0n1",
            "/dev/disk/by-id/usb-X_1.0:0",
        ] {
            assert_eq!(target_disk(&pi(Some(ok))).unwrap(), ok);
        }
        for bad in [
            "sda",
            "/dev/",
            "/dev/sda bootherd.url=x",
            "/dev/../etc",
            "/dev/sd\"a",
        ] {
            let err = target_disk(&pi(Some(bad))).unwrap_err().to_string();
            assert!(err.contains("fix `disk`"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_appendix_starts_on_a_four_byte_boundary() {
        for len in 0..9usize {
            let base = vec![0x1f; len];
            let both = concatenate(&base, b"070701");
            let at = both.len() - 6;
            assert_eq!(at % 4, 0, "base of {len} bytes");
            assert!(both[len..at].iter().all(|&b| b == 0));
            assert_eq!(&both[..len], &base[..]);
        }
    }

    #[test]
    fn only_pis_get_the_pi_installer() {
        let x86 = Machine {
            platform: Platform::Amd64,
            ..pi(None)
        };
        assert!(require_pi(&x86).is_err());
        assert!(require_pi(&pi(None)).is_ok());
    }
}
