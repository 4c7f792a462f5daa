//! A Raspberry Pi's serial number as its bootloader uses it: the 8 lowercase
//! hex digits that prefix its TFTP requests (`9ffefdef/start4.elf`, the
//! bootloader's default `TFTP_PREFIX=0`).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Serial(pub u32);

impl Serial {
    /// The serial in a Pi 4/5 bootloader's option 97. The GUID is the
    /// four-character code `RPi4`/`RPi5`, the board revision, the low 4
    /// bytes of the MAC and the serial, 4 bytes each (Pi bootloader docs,
    /// `DHCP_OPTION97`), optionally after RFC 4578's type byte 0. The
    /// bootloader writes these words little-endian: the FourCC `RPi4` is the
    /// documented value 0x34695052, so the serial is read the same way.
    pub fn from_guid(id: &[u8]) -> Option<Serial> {
        let body = match id.first() {
            Some(0) if id.len() == 17 => &id[1..],
            _ => id,
        };
        if body.len() != 16 || !(body.starts_with(b"RPi4") || body.starts_with(b"RPi5")) {
            return None;
        }
        let word: [u8; 4] = body[12..16].try_into().ok()?;
        Some(Serial(u32::from_le_bytes(word)))
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Pi serial number: expected 8 hex digits, e.g. \"9ffefdef\"")]
pub struct BadSerial(pub String);

impl FromStr for Serial {
    type Err = BadSerial;

    /// 8 hex digits, either case (`vcgencmd otp_dump` and `/proc/cpuinfo`
    /// print them in different cases; the TFTP prefix is lowercase).
    fn from_str(s: &str) -> Result<Serial, BadSerial> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadSerial(s.to_string()));
        }
        u32::from_str_radix(s, 16)
            .map(Serial)
            .map_err(|_| BadSerial(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Pi 4 GUID: FourCC, revision 0x00c03111, MAC low bytes, serial 0x9ffefdef.
    fn guid(fourcc: &[u8; 4], serial: u32) -> Vec<u8> {
        let mut g = vec![0u8];
        g.extend_from_slice(fourcc);
        g.extend_from_slice(&0x00c0_3111u32.to_le_bytes());
        g.extend_from_slice(&[0x32, 0x01, 0x02, 0x03]);
        g.extend_from_slice(&serial.to_le_bytes());
        g
    }

    #[test]
    fn serial_from_the_pi_guid() {
        let g = guid(b"RPi4", 0x9ffe_fdef);
        assert_eq!(Serial::from_guid(&g), Some(Serial(0x9ffe_fdef)));
        assert_eq!(Serial::from_guid(&g[1..]), Some(Serial(0x9ffe_fdef)));
        assert_eq!(
            Serial::from_guid(&guid(b"RPi5", 0x0123_4567))
                .unwrap()
                .to_string(),
            "01234567"
        );
        // A UEFI GUID, a short one, the old serial-repeated format: no serial.
        assert_eq!(Serial::from_guid(&[0u8; 17]), None);
        assert_eq!(Serial::from_guid(b"RPi4\x01\x02"), None);
        assert_eq!(Serial::from_guid(&[0xef, 0xfd, 0xfe, 0x9f].repeat(4)), None);
    }

    #[test]
    fn parse_and_print() {
        let s: Serial = "9FFEFDEF".parse().unwrap();
        assert_eq!(s.to_string(), "9ffefdef");
        for bad in ["", "9ffefde", "9ffefdef0", "9ffefdeg", "+ffefdef"] {
            assert!(bad.parse::<Serial>().is_err(), "{bad:?}");
        }
    }
}
