//! What DHCP learned about the Pis it answered, for TFTP, which sees only a
//! request's name and the client's address: the MAC behind a serial number
//! (from option 97) and behind an address it gave. In memory only: a Pi
//! always does DHCP before TFTP, so a restart loses nothing a Pi needs.

use super::Serial;
use crate::mac::MacAddr;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

/// Bounds the maps, so a flood of made-up GUIDs cannot grow them without end.
const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
pub struct Sightings {
    inner: Mutex<Maps>,
}

#[derive(Default)]
struct Maps {
    by_serial: HashMap<Serial, MacAddr>,
    by_ip: HashMap<Ipv4Addr, MacAddr>,
}

impl Sightings {
    /// Records a Pi bootloader's DHCP exchange: its serial (when its option
    /// 97 carries one) and the address it was given.
    pub fn record(&self, mac: MacAddr, serial: Option<Serial>, address: Ipv4Addr) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if m.by_serial.len() >= MAX_ENTRIES || m.by_ip.len() >= MAX_ENTRIES {
            // Oldest-first eviction would need more bookkeeping than a rare
            // flood deserves; starting over only costs later Pis a root fallback.
            m.by_serial.clear();
            m.by_ip.clear();
        }
        if let Some(serial) = serial {
            m.by_serial.insert(serial, mac);
        }
        // One address per MAC: a Pi that moved leaves no stale mapping.
        m.by_ip.retain(|_, v| *v != mac);
        // In proxy mode bootherd gives no address and never learns one:
        // only the serial prefix can name such a Pi.
        if !address.is_unspecified() {
            m.by_ip.insert(address, mac);
        }
    }

    pub fn mac_by_serial(&self, serial: Serial) -> Option<MacAddr> {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.by_serial.get(&serial).copied()
    }

    pub fn mac_by_ip(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.by_ip.get(&ip).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pi_is_found_by_serial_and_by_its_latest_address() {
        let s = Sightings::default();
        let mac: MacAddr = "dc:a6:32:01:02:03".parse().unwrap();
        let ip1 = Ipv4Addr::new(10, 0, 0, 31);
        let ip2 = Ipv4Addr::new(10, 0, 0, 32);
        s.record(mac, Some(Serial(0x9ffe_fdef)), ip1);
        assert_eq!(s.mac_by_serial(Serial(0x9ffe_fdef)), Some(mac));
        assert_eq!(s.mac_by_ip(ip1), Some(mac));
        s.record(mac, None, ip2);
        assert_eq!(s.mac_by_ip(ip1), None, "the old address is forgotten");
        assert_eq!(s.mac_by_ip(ip2), Some(mac));
        assert_eq!(s.mac_by_serial(Serial(1)), None);
    }
}
