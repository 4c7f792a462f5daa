//! The Pi installer: a cpio archive appended to Ubuntu's raspi initrd whose
//! initramfs hook streams the preinstalled image onto the Pi's disk, checks
//! it, seeds cloud-init's NoCloud and reports to bootherd.

use crate::app::App;
use crate::config::{Config, Machine};
use anyhow::{bail, Result};

/// The kernel command line (`cmdline.txt`) for a Pi whose install is due:
/// the console and network words plus the `bootherd.*` words the hook reads.
/// Mints the install token the hook's callbacks carry.
pub fn cmdline(_app: &App, _config: &Config, machine: &Machine) -> Result<String> {
    bail!("the Pi installer for {} is not built yet", machine.hostname)
}

/// The newc cpio archive appended to Ubuntu's raspi initrd (Linux unpacks
/// concatenated archives), carrying the installer hook.
pub fn initrd_appendix(_app: &App, _config: &Config, machine: &Machine) -> Result<Vec<u8>> {
    bail!("the Pi installer for {} is not built yet", machine.hostname)
}
