//! Raspberry Pi 4/5 network install: what the Pi's bootloader is served over
//! TFTP (firmware, `config.txt`, `cmdline.txt`, kernel, initrd) and the
//! installer that writes Ubuntu's preinstalled raspi image to its disk.
//!
//! - `serial`     — the serial number that prefixes a Pi's TFTP requests; read from option 97.
//! - `sightings`  — what DHCP learned (serial, address → MAC) for TFTP.
//! - `boot_files` — which Pi a TFTP request is from, and the files its install boot gets.
//! - `installer`  — `cmdline.txt` and the archive appended to Ubuntu's initrd.

pub mod boot_files;
pub mod installer;
mod serial;
mod sightings;

pub use serial::{BadSerial, Serial};
pub use sightings::Sightings;
