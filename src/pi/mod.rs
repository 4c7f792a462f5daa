//! Raspberry Pi 4/5 network install: what the Pi's bootloader is served over
//! TFTP (firmware, `config.txt`, `cmdline.txt`, kernel, initrd) and the
//! installer that writes Ubuntu's preinstalled raspi image to its disk.

pub mod boot_files;
pub mod installer;
mod serial;
mod sightings;

pub use serial::{BadSerial, Serial};
pub use sightings::Sightings;
