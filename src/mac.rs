//! Ethernet MAC addresses: parsed from config, URLs and DHCP `chaddr`, printed one way.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A 48-bit MAC address. Printed lowercase with colons (`52:54:00:aa:00:01`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// From DHCP `chaddr`; `None` unless it holds at least six bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<MacAddr> {
        let six: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(MacAddr(six))
    }

    /// Hyphenated form, as iPXE's `:hexhyp` and PXELINUX-style paths use it.
    pub fn hyphenated(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a MAC address (write six hex pairs, e.g. 52:54:00:aa:00:01)")]
pub struct BadMac(String);

impl FromStr for MacAddr {
    type Err = BadMac;
    /// Accepts `:` or `-` separators (or none: 12 hex digits), any letter case.
    fn from_str(s: &str) -> Result<MacAddr, BadMac> {
        let bad = || BadMac(s.to_string());
        let groups: Vec<&str> = if s.len() == 12 {
            (0..6)
                .map(|i| s.get(2 * i..2 * i + 2).unwrap_or(""))
                .collect()
        } else {
            s.split([':', '-']).collect()
        };
        if groups.len() != 6 || groups.iter().any(|g| g.len() != 2) {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (byte, group) in out.iter_mut().zip(groups) {
            *byte = u8::from_str_radix(group, 16).map_err(|_| bad())?;
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_spellings() {
        let want = MacAddr([0x52, 0x54, 0, 0xaa, 0, 1]);
        for s in ["52:54:00:aa:00:01", "52-54-00-AA-00-01", "525400aa0001"] {
            assert_eq!(s.parse::<MacAddr>().unwrap(), want, "{s}");
        }
        assert_eq!(want.to_string(), "52:54:00:aa:00:01");
        assert_eq!(want.hyphenated(), "52-54-00-aa-00-01");
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "52:54:00:aa:00",
            "52:54:00:aa:00:0g",
            "52:54:00:aa:00:01:02",
            "5:254:00:aa:00:01",
        ] {
            assert!(s.parse::<MacAddr>().is_err(), "{s}");
        }
    }
}
