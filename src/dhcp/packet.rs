//! Strict, zero-copy parsing of DHCP requests (RFC 2131 header, RFC 2132 options).
//!
//! Requests come from anyone on the VLAN, so this parser trusts nothing: any
//! length that does not add up, an unknown op, a hardware address that is not
//! Ethernet, or a missing message type makes the whole packet invalid. It
//! borrows from the receive buffer and allocates nothing.

use crate::mac::MacAddr;
use dhcproto::v4::{MessageType, OptionCode};
use std::net::Ipv4Addr;

/// Size of the fixed BOOTP header, before the magic cookie.
pub const HEADER_LEN: usize = 236;
/// The cookie that starts the options (RFC 2131 §3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
const OPTIONS_START: usize = HEADER_LEN + 4;

const OP_BOOTREQUEST: u8 = 1;
const HTYPE_ETHERNET: u8 = 1;

/// Why a packet was dropped (logged at debug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("{0} bytes is shorter than a DHCP header")]
    Truncated(usize),
    #[error("op {0} is not BOOTREQUEST")]
    NotARequest(u8),
    #[error("hardware type {htype} / length {hlen} is not Ethernet")]
    NotEthernet { htype: u8, hlen: u8 },
    #[error("no DHCP magic cookie")]
    NoMagicCookie,
    #[error("option {code} runs past the end of the packet")]
    OptionOverrun { code: u8 },
    #[error("option {code} has length {len}, which is wrong for it")]
    BadOptionLength { code: u8, len: usize },
    #[error("no DHCP message type (option 53): BOOTP is not served")]
    NoMessageType,
    #[error("unknown DHCP message type {0}")]
    UnknownMessageType(u8),
}

/// A validated DHCP request, borrowing the receive buffer.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub msg_type: MessageType,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub mac: MacAddr,
    /// The raw 16-byte chaddr field, echoed in replies.
    pub chaddr: [u8; 16],
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 55, in the client's order.
    pub parameter_list: Option<&'a [u8]>,
    /// Option 57.
    pub max_message_size: Option<u16>,
    /// Option 60.
    pub vendor_class: Option<&'a [u8]>,
    /// Option 77.
    pub user_class: Option<&'a [u8]>,
    /// Option 93: the first architecture the client lists.
    pub client_arch: Option<u16>,
    /// Option 97 (type byte + GUID, or the Pi's `RPi4…`).
    pub client_machine_id: Option<&'a [u8]>,
    /// Option 175 (iPXE's encapsulated options): only iPXE sends it.
    pub has_ipxe_options: bool,
    /// Option 82, echoed unchanged in replies (RFC 3046 §2.2).
    pub relay_agent_info: Option<&'a [u8]>,
    /// Option 12, for logs only.
    pub hostname: Option<&'a [u8]>,
}

impl Request<'_> {
    pub fn broadcast_flag(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// Whether the client asked for `code` in option 55; `true` when it sent no list.
    pub fn wants(&self, code: u8) -> bool {
        self.parameter_list.is_none_or(|list| list.contains(&code))
    }
}

fn ipv4(data: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(data[0], data[1], data[2], data[3])
}

/// Parses and validates one request.
pub fn parse(buf: &[u8]) -> Result<Request<'_>, Invalid> {
    if buf.len() < OPTIONS_START {
        return Err(Invalid::Truncated(buf.len()));
    }
    if buf[0] != OP_BOOTREQUEST {
        return Err(Invalid::NotARequest(buf[0]));
    }
    let (htype, hlen) = (buf[1], buf[2]);
    // Leases are keyed by MAC: anything but a 6-byte Ethernet address (and
    // every hlen > 16, which would overrun chaddr) is refused.
    if htype != HTYPE_ETHERNET || hlen != 6 {
        return Err(Invalid::NotEthernet { htype, hlen });
    }
    if buf[HEADER_LEN..OPTIONS_START] != MAGIC_COOKIE {
        return Err(Invalid::NoMagicCookie);
    }
    let mut chaddr = [0u8; 16];
    chaddr.copy_from_slice(&buf[28..44]);
    let mac = MacAddr::from_slice(&chaddr).ok_or(Invalid::NotEthernet { htype, hlen })?;

    let mut req = Request {
        msg_type: MessageType::Unknown(0),
        xid: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        flags: u16::from_be_bytes([buf[10], buf[11]]),
        ciaddr: ipv4(&buf[12..16]),
        giaddr: ipv4(&buf[24..28]),
        mac,
        chaddr,
        requested_ip: None,
        server_id: None,
        parameter_list: None,
        max_message_size: None,
        vendor_class: None,
        user_class: None,
        client_arch: None,
        client_machine_id: None,
        has_ipxe_options: false,
        relay_agent_info: None,
        hostname: None,
    };
    let mut msg_type = None;
    let mut rest = &buf[OPTIONS_START..];
    while let Some((&code, tail)) = rest.split_first() {
        match code {
            0 => {
                rest = tail;
                continue;
            }
            255 => break,
            _ => {}
        }
        let (&len, tail) = tail.split_first().ok_or(Invalid::OptionOverrun { code })?;
        let len = len as usize;
        if tail.len() < len {
            return Err(Invalid::OptionOverrun { code });
        }
        let (data, tail) = tail.split_at(len);
        rest = tail;
        let bad = || Invalid::BadOptionLength { code, len };
        // A repeated option is a long option split in parts (RFC 3396); none
        // of the ones read here is that long in practice, so the first part wins.
        match OptionCode::from(code) {
            OptionCode::MessageType => {
                if len != 1 {
                    return Err(bad());
                }
                msg_type.get_or_insert(data[0]);
            }
            OptionCode::RequestedIpAddress => {
                if len != 4 {
                    return Err(bad());
                }
                req.requested_ip.get_or_insert(ipv4(data));
            }
            OptionCode::ServerIdentifier => {
                if len != 4 {
                    return Err(bad());
                }
                req.server_id.get_or_insert(ipv4(data));
            }
            OptionCode::MaxMessageSize => {
                if len != 2 {
                    return Err(bad());
                }
                req.max_message_size
                    .get_or_insert(u16::from_be_bytes([data[0], data[1]]));
            }
            OptionCode::ClientSystemArchitecture => {
                if len < 2 || len % 2 != 0 {
                    return Err(bad());
                }
                req.client_arch
                    .get_or_insert(u16::from_be_bytes([data[0], data[1]]));
            }
            OptionCode::ParameterRequestList => {
                req.parameter_list.get_or_insert(data);
            }
            OptionCode::ClassIdentifier => {
                req.vendor_class.get_or_insert(data);
            }
            OptionCode::UserClass => {
                req.user_class.get_or_insert(data);
            }
            OptionCode::ClientMachineIdentifier => {
                req.client_machine_id.get_or_insert(data);
            }
            OptionCode::RelayAgentInformation => {
                req.relay_agent_info.get_or_insert(data);
            }
            OptionCode::Hostname => {
                req.hostname.get_or_insert(data);
            }
            _ if code == IPXE_ENCAPSULATED_OPTIONS => req.has_ipxe_options = true,
            _ => {}
        }
    }
    let msg_type = msg_type.ok_or(Invalid::NoMessageType)?;
    req.msg_type = match MessageType::from(msg_type) {
        MessageType::Unknown(n) => return Err(Invalid::UnknownMessageType(n)),
        t => t,
    };
    Ok(req)
}

/// Option 175, where iPXE puts its feature flags.
const IPXE_ENCAPSULATED_OPTIONS: u8 = 175;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a request the way a client would put it on the wire.
    pub fn request_bytes(msg_type: u8, mac: [u8; 6], options: &[(u8, &[u8])]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[0] = OP_BOOTREQUEST;
        b[1] = HTYPE_ETHERNET;
        b[2] = 6;
        b[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        b[28..34].copy_from_slice(&mac);
        b.extend_from_slice(&MAGIC_COOKIE);
        b.extend_from_slice(&[53, 1, msg_type]);
        for (code, data) in options {
            b.push(*code);
            b.push(data.len() as u8);
            b.extend_from_slice(data);
        }
        b.push(255);
        b
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    #[test]
    fn reads_the_fields_a_server_needs() {
        let b = request_bytes(
            3,
            MAC,
            &[
                (50, &[10, 0, 0, 5]),
                (54, &[10, 0, 0, 1]),
                (55, &[1, 3, 6]),
                (57, &[5, 192]),
                (93, &[0, 7]),
                (175, &[1]),
            ],
        );
        let r = parse(&b).unwrap();
        assert_eq!(r.msg_type, MessageType::Request);
        assert_eq!(r.mac, MacAddr(MAC));
        assert_eq!(r.xid, 0x1234_5678);
        assert_eq!(r.requested_ip, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(r.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(r.parameter_list, Some(&[1u8, 3, 6][..]));
        assert_eq!(r.max_message_size, Some(1472));
        assert_eq!(r.client_arch, Some(7));
        assert!(r.has_ipxe_options);
        assert!(r.wants(6) && !r.wants(15));
    }

    #[test]
    fn refuses_malformed_packets() {
        let good = request_bytes(1, MAC, &[(55, &[1, 3])]);
        assert!(parse(&good).is_ok());
        for cut in [0, 1, 100, HEADER_LEN, OPTIONS_START - 1] {
            assert!(
                matches!(parse(&good[..cut]), Err(Invalid::Truncated(_))),
                "cut at {cut}"
            );
        }
        let mut reply = good.clone();
        reply[0] = 2;
        assert_eq!(parse(&reply).unwrap_err(), Invalid::NotARequest(2));
        let mut long_hw = good.clone();
        long_hw[2] = 17;
        assert!(matches!(parse(&long_hw), Err(Invalid::NotEthernet { .. })));
        let mut no_cookie = good.clone();
        no_cookie[HEADER_LEN] = 0;
        assert_eq!(parse(&no_cookie).unwrap_err(), Invalid::NoMagicCookie);
        // Option 55 claims 200 bytes; the packet ends first.
        let mut overrun = good.clone();
        overrun[OPTIONS_START + 4] = 200;
        assert!(matches!(
            parse(&overrun),
            Err(Invalid::OptionOverrun { code: 55 })
        ));
        let bad_len = request_bytes(1, MAC, &[(50, &[10, 0, 0])]);
        assert!(matches!(
            parse(&bad_len),
            Err(Invalid::BadOptionLength { code: 50, len: 3 })
        ));
        let bad_arch = request_bytes(1, MAC, &[(93, &[0])]);
        assert!(matches!(
            parse(&bad_arch),
            Err(Invalid::BadOptionLength { code: 93, .. })
        ));
        let mut no_type = request_bytes(1, MAC, &[]);
        no_type[OPTIONS_START] = 0; // turn option 53 into pads
        no_type[OPTIONS_START + 1] = 0;
        no_type[OPTIONS_START + 2] = 0;
        assert_eq!(parse(&no_type).unwrap_err(), Invalid::NoMessageType);
        assert!(matches!(
            parse(&request_bytes(99, MAC, &[])),
            Err(Invalid::UnknownMessageType(99))
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, RngCore};
        let mut rng = rand::rng();
        let base = request_bytes(
            1,
            MAC,
            &[(55, &[1, 3, 6]), (60, b"PXEClient"), (93, &[0, 0])],
        );
        for _ in 0..20_000 {
            let mut b = if rng.random_bool(0.5) {
                let mut v = vec![0u8; rng.random_range(0..600)];
                rng.fill_bytes(&mut v);
                v
            } else {
                base.clone()
            };
            // Corrupt a few bytes of a valid packet, mostly in the options.
            for _ in 0..rng.random_range(1..6) {
                if !b.is_empty() {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
            }
            let cut = rng.random_range(0..=b.len());
            let _ = parse(&b[..cut]);
        }
    }
}
