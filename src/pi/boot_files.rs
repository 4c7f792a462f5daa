//! What a Pi's bootloader is served over TFTP, and which Pi is asking.
//!
//! Which Pi: a request under `<serial>/` belongs to the Pi with that serial
//! (`serial = "…"` in the config, or learned from its option 97 by DHCP).
//! A serial that is not ours is left to the static boot directory, where it
//! is normally missing, so the Pi falls back to the root as its bootloader
//! does. A request at the root belongs to the Pi at the client's address
//! (the address DHCP gave it, or its reservation).
//!
//! What: while the boot decision says its install is due, the Pi gets
//! `config.txt` rendered for it, `cmdline.txt` and the initrd appendix from
//! the installer, Ubuntu's raspi kernel, and its initrd followed by the
//! appendix; every other name comes from the extracted boot partition of
//! Ubuntu's raspi image (firmware, DTBs, overlays). A Pi whose install is
//! not due gets "file not found" for everything, fast, so its bootloader
//! moves on to the next mode of its BOOT_ORDER.

use super::installer;
use super::Serial;
use crate::app::App;
use crate::boot::{self, BootAction, PiModel};
use crate::bootfiles::{self, BootFileError};
use crate::bootsource::{Claim, Source};
use crate::config::{Config, Machine, Os};
use crate::images::{catalog, extract};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The kernel and initrd names the rendered `config.txt` asks for.
pub const KERNEL: &str = "vmlinuz";
pub const INITRD: &str = "initrd.img";
/// The Pi 5 firmware's default kernel name: served too, so a Pi 5 still
/// gets Ubuntu's kernel when an overridden `config.txt` names no kernel.
pub const PI5_DEFAULT_KERNEL: &str = "kernel_2712.img";

/// Where Ubuntu keeps the kernel and initrd on its raspi boot partition:
/// at the top, or (from 25.10, with tryboot) under `current/`.
const KERNEL_PATHS: [&str; 2] = ["vmlinuz", "current/vmlinuz"];
const INITRD_PATHS: [&str; 2] = ["initrd.img", "current/initrd.img"];

/// The files of the extracted boot partition a Pi's install boot cannot
/// do without (DTBs and overlays vary by board and are optional).
pub fn required_files(model: PiModel) -> &'static [&'static str] {
    match model {
        PiModel::Pi4 => &["start4.elf", "fixup4.dat", KERNEL, INITRD],
        PiModel::Pi5 => &[KERNEL, INITRD],
    }
}

/// The extracted boot partition of the raspi image for `os`, if the
/// catalog has one (`<data_dir>/images/ubuntu-24.04-raspi/boot/`).
pub fn raspi_boot_dir(config: &Config, os: Os) -> Option<PathBuf> {
    let images = crate::images::images_dir(config);
    catalog::builtin()
        .iter()
        .find(|e| e.kind == catalog::Kind::RaspiImage && e.os == Some(os))
        .map(|e| extract::raspi_boot_dir(&e.path(&images)))
}

/// The generator for Pi boot files (see the module doc).
pub fn claim(app: &App, config: &Config, client: Ipv4Addr, name: &str) -> Claim {
    let clean = match bootfiles::sanitize(name) {
        Ok(clean) => clean,
        // Hostile names are refused by the static namespace, with one message.
        Err(_) => return Claim::NotMine,
    };
    let Some(clean) = clean.to_str() else {
        return Claim::NotMine;
    };
    let (machine, inner) = match split_serial(clean) {
        Some((serial, rest)) => match machine_by_serial(app, config, serial) {
            Some(m) => (m, rest),
            None => return Claim::NotMine,
        },
        None => match machine_by_address(app, config, client) {
            Some(m) => (m, clean),
            None => return Claim::NotMine,
        },
    };
    let Some(model) = PiModel::of(machine.platform) else {
        return Claim::NotMine;
    };
    let state = match app.state_of(config, machine.mac) {
        Ok(state) => state,
        Err(e) => {
            tracing::warn!(host = %machine.hostname, "TFTP: cannot read the machine's state: {e:#}");
            return Claim::Refused(BootFileError::NotFound(name.to_string()));
        }
    };
    match boot::decide(Some((&machine, state)), &model.bootloader()) {
        BootAction::PiInstall(model) => match serve(app, config, &machine, model, inner) {
            Ok(source) => Claim::Served(source),
            Err(e) => Claim::Refused(e),
        },
        other => {
            tracing::debug!(host = %machine.hostname, file = name, action = ?other,
                "TFTP: no Pi boot files for this Pi now");
            Claim::Refused(BootFileError::NotFound(name.to_string()))
        }
    }
}

/// `9ffefdef/start4.elf` → (serial, `start4.elf`).
fn split_serial(name: &str) -> Option<(Serial, &str)> {
    let (first, rest) = name.split_once('/')?;
    let serial = first.parse().ok()?;
    (!rest.is_empty()).then_some((serial, rest))
}

fn machine_by_serial(app: &App, config: &Config, serial: Serial) -> Option<Machine> {
    config
        .machine_by_serial(serial)
        .or_else(|| {
            app.pis
                .mac_by_serial(serial)
                .and_then(|mac| config.machine_by_mac(mac))
        })
        .filter(|m| m.platform.is_pi())
        .cloned()
}

fn machine_by_address(app: &App, config: &Config, client: Ipv4Addr) -> Option<Machine> {
    app.pis
        .mac_by_ip(client)
        .and_then(|mac| config.machine_by_mac(mac))
        .or_else(|| config.machine_by_ip(client))
        .filter(|m| m.platform.is_pi())
        .cloned()
}

/// One file of a Pi's install boot.
fn serve(
    app: &App,
    config: &Config,
    machine: &Machine,
    model: PiModel,
    name: &str,
) -> Result<Source, BootFileError> {
    let not_found = || BootFileError::NotFound(name.to_string());
    let failed = |what: &str, e: anyhow::Error| {
        tracing::warn!(host = %machine.hostname, "TFTP: cannot make {what}: {e:#}");
        not_found()
    };
    let boot_dir = raspi_boot_dir(config, machine.os).ok_or_else(|| {
        tracing::warn!(host = %machine.hostname, os = %machine.os,
            "TFTP: no Raspberry Pi image in the catalog for this os");
        not_found()
    })?;
    match name {
        "config.txt" => render_config(app, machine, model)
            .map(|text| Source::bytes(text.into_bytes()))
            .map_err(|e| failed("config.txt", e)),
        "cmdline.txt" => installer::cmdline(app, config, machine)
            .map(|text| Source::bytes(text.into_bytes()))
            .map_err(|e| failed("cmdline.txt", e)),
        KERNEL => open_first(&boot_dir, &KERNEL_PATHS, name),
        PI5_DEFAULT_KERNEL if model == PiModel::Pi5 => open_first(&boot_dir, &KERNEL_PATHS, name),
        INITRD => {
            let initrd = open_first(&boot_dir, &INITRD_PATHS, name)?;
            let appendix = installer::initrd_appendix(app, config, machine)
                .map_err(|e| failed("the installer initrd appendix", e))?;
            // NUL padding first: the kernel only unpacks an appended archive
            // that starts on a 4-byte boundary.
            let mut tail = vec![0; installer::appendix_padding(initrd.len())];
            tail.extend_from_slice(&appendix);
            Ok(initrd.followed_by(tail))
        }
        // The Pi 5's firmware is in its EEPROM: the Pi 4's start4.elf and
        // fixup4.dat are not for it.
        _ if model == PiModel::Pi5 && is_vc_firmware(name) => Err(not_found()),
        _ => {
            let path = bootfiles::resolve_under(&boot_dir, name)?;
            Source::open(&path).map_err(|_| not_found())
        }
    }
}

/// The VideoCore firmware files a Pi 4 loads (`start4.elf`, `fixup4.dat`, …).
fn is_vc_firmware(name: &str) -> bool {
    (name.starts_with("start") && name.ends_with(".elf"))
        || (name.starts_with("fixup") && name.ends_with(".dat"))
}

fn open_first(dir: &Path, candidates: &[&str], name: &str) -> Result<Source, BootFileError> {
    candidates
        .iter()
        .find_map(|c| {
            let path = bootfiles::resolve_under(dir, c).ok()?;
            Source::open(&path).ok()
        })
        .ok_or_else(|| {
            tracing::warn!(dir = %dir.display(), "TFTP: {name} is missing from the Pi boot files (run `bootherd images fetch`)");
            BootFileError::NotFound(name.to_string())
        })
}

/// The `config.txt` a Pi boots its install with.
pub fn render_config(app: &App, machine: &Machine, model: PiModel) -> anyhow::Result<String> {
    let mut ctx = tera::Context::new();
    ctx.insert("hostname", &machine.hostname);
    ctx.insert(
        "model_number",
        match model {
            PiModel::Pi4 => "4",
            PiModel::Pi5 => "5",
        },
    );
    ctx.insert("kernel", KERNEL);
    ctx.insert("initramfs", INITRD);
    app.renderer.render("pi/config.txt", &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_prefix_is_8_hex_digits_and_a_name() {
        assert_eq!(
            split_serial("9ffefdef/start4.elf"),
            Some((Serial(0x9ffe_fdef), "start4.elf"))
        );
        assert_eq!(
            split_serial("9ffefdef/overlays/a.dtbo"),
            Some((Serial(0x9ffe_fdef), "overlays/a.dtbo"))
        );
        for not_prefixed in [
            "start4.elf",
            "9ffefde/x",
            "9ffefdef0/x",
            "9ffefdef/",
            "pi/x",
        ] {
            assert_eq!(split_serial(not_prefixed), None, "{not_prefixed}");
        }
    }

    #[test]
    fn firmware_names_a_pi_5_does_not_get() {
        for name in ["start4.elf", "start4cd.elf", "fixup4.dat", "fixup4x.dat"] {
            assert!(is_vc_firmware(name), "{name}");
        }
        for name in [
            "vmlinuz",
            "bcm2712-rpi-5-b.dtb",
            "config.txt",
            "overlays/start.dtbo",
        ] {
            assert!(!is_vc_firmware(name), "{name}");
        }
    }
}
