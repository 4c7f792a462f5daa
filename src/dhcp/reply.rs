//! Building DHCPOFFER / DHCPACK / DHCPNAK, and turning a [`BootAction`] into
//! the boot fields PXE, UEFI HTTP boot and iPXE read.

use super::packet::Request;
use crate::boot::{Asker, BootAction, Client};
use crate::config::{Config, Subnet};
use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption};
use dhcproto::{Encodable, Encoder};
use std::net::Ipv4Addr;

/// RFC 2131 §2: every client accepts a 576-byte IP datagram, that is 548
/// bytes of DHCP message after the IP and UDP headers.
const MIN_DATAGRAM: usize = 576;
const IP_UDP_HEADERS: usize = 28;
/// The largest reply bootherd sends even when a client allows more: one
/// Ethernet frame, no fragmentation.
const MAX_DATAGRAM: usize = 1500;

/// Boot information for a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    /// The BOOTP `file` field and option 67: a TFTP name, or an HTTP URL.
    pub file: String,
    /// `siaddr` and option 66: the TFTP server (bootherd).
    pub next_server: Ipv4Addr,
    /// Option 60 echoed: `HTTPClient` for HTTP boot (EDK2 ignores an HTTP
    /// boot offer without it). Never `PXEClient` in an address-giving offer,
    /// except to a Raspberry Pi: see [`boot_info`].
    pub vendor_class: Option<&'static str>,
    /// Option 43 (vendor-specific information), when the client needs it:
    /// PXE sub-options, already encoded with their closing 255.
    pub vendor_specific: Option<&'static [u8]>,
}

/// Option 43 for a Raspberry Pi bootloader, byte for byte as the Pi
/// documentation shows it, in PXE sub-options: discovery control (6) = 3,
/// menu prompt (10) = timeout 0 and "PXE", boot menu (9) = item type 0 with
/// the 17-byte description "Raspberry Pi Boot", end (255). The bootloader
/// only takes its TFTP server from a reply carrying this description (its
/// `PXE_OPTION43` setting) together with option 60 `PXEClient`.
pub const PI_OPTION_43: &[u8] =
    b"\x06\x01\x03\x0a\x04\x00PXE\x09\x14\x00\x00\x11Raspberry Pi Boot\xff";

/// What the boot decision means on the wire for this client; `None` for no boot file.
pub fn boot_info(action: &BootAction, client: &Client, config: &Config) -> Option<BootInfo> {
    let server = config.server.address;
    match action {
        BootAction::Chainload(program) if client.asker == Asker::FirmwareHttp => Some(BootInfo {
            file: format!("{}/{}", config.http_base(), program.file_name()),
            next_server: server,
            vendor_class: Some("HTTPClient"),
            vendor_specific: None,
        }),
        // The Pi bootloader reads no boot file name (it asks for
        // `<serial>/start4.elf`, then the root); it needs the PXE menu in
        // option 43 and `PXEClient` in option 60 before it takes siaddr /
        // option 66 as its TFTP server.
        BootAction::PiInstall(_) => Some(BootInfo {
            file: String::new(),
            next_server: server,
            vendor_class: Some("PXEClient"),
            vendor_specific: Some(PI_OPTION_43),
        }),
        // No option 60 here. EDK2 (OVMF, most UEFI firmware) classifies an
        // offer that carries `PXEClient` but no option 43 as a "BINL" offer
        // and asks the boot server on UDP 4011 for the file instead of using
        // option 67; with nobody on 4011 it gives up with "PXE-E16: No valid
        // offer received" (seen in tests/e2e_qemu.rs). Without option 60 it is
        // a plain DHCP offer with a boot file, which EDK2 and BIOS PXE ROMs boot.
        BootAction::Chainload(program) => Some(BootInfo {
            file: program.file_name().to_string(),
            next_server: server,
            vendor_class: None,
            vendor_specific: None,
        }),
        BootAction::IpxeScript => Some(BootInfo {
            file: format!("{}/boot.ipxe", config.http_base()),
            next_server: server,
            vendor_class: None,
            vendor_specific: None,
        }),
        // The boot script's answers (install, local disk) are not DHCP's; a
        // client that gets here at DHCP time gets a plain lease.
        BootAction::NoBoot(_) | BootAction::Install { .. } | BootAction::LocalDisk(_) => None,
    }
}

/// Everything a reply carries besides what it copies from the request.
#[derive(Debug, Clone)]
pub struct Reply<'a> {
    pub kind: MessageType,
    /// The address given (`yiaddr`); unspecified for NAK and INFORM's ACK.
    pub address: Ipv4Addr,
    /// Lease time in seconds; `None` for NAK and for INFORM (RFC 2131 §4.3.5).
    pub lease_secs: Option<u32>,
    /// Hostname of a configured machine (option 12).
    pub hostname: Option<&'a str>,
    pub boot: Option<&'a BootInfo>,
    /// The network whose mask, router and DNS go out; `None` in proxyDHCP
    /// replies, where those are the site's DHCP server's to give.
    pub network: Option<&'a Subnet>,
    /// Echo option 97 (the client's UUID), as PXE 2.1 asks of proxyDHCP
    /// and boot servers.
    pub echo_machine_id: bool,
}

/// Encodes `reply` to `req` into `out` (cleared first). Options the client did
/// not ask for in option 55 are left out, except those every client and every
/// PXE stack needs; optional ones are dropped when the reply would exceed the
/// size the client accepts. Returns `false` if it cannot fit at all.
pub fn encode(req: &Request<'_>, reply: &Reply<'_>, config: &Config, out: &mut Vec<u8>) -> bool {
    let limit = usize::from(req.max_message_size.unwrap_or(0)).clamp(MIN_DATAGRAM, MAX_DATAGRAM)
        - IP_UDP_HEADERS;
    // The optional options still allowed; popped from the end (least needed
    // first) while the reply is too large.
    let mut optional: Vec<OptionCode> = vec![
        OptionCode::DomainNameServer,
        OptionCode::NtpServers,
        OptionCode::Hostname,
        OptionCode::DomainName,
    ];
    loop {
        let msg = message(req, reply, config, &optional);
        out.clear();
        if msg.encode(&mut Encoder::new(out)).is_err() {
            return false;
        }
        if out.len() <= limit {
            return true;
        }
        if optional.pop().is_none() {
            return false;
        }
    }
}

fn message(
    req: &Request<'_>,
    reply: &Reply<'_>,
    config: &Config,
    optional: &[OptionCode],
) -> Message {
    let is_nak = reply.kind == MessageType::Nak;
    // RFC 2131 table 3: ciaddr is echoed in ACKs only; a relayed NAK must be broadcast by the relay.
    let ciaddr = if reply.kind == MessageType::Ack {
        req.ciaddr
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let mut flags = req.flags;
    if is_nak && !req.giaddr.is_unspecified() {
        flags |= 0x8000;
    }
    let siaddr = reply
        .boot
        .map(|b| b.next_server)
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut msg = Message::new_with_id(
        req.xid,
        ciaddr,
        reply.address,
        siaddr,
        req.giaddr,
        &req.chaddr[..6],
    );
    msg.set_opcode(Opcode::BootReply)
        .set_flags(Flags::from(flags));

    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(reply.kind));
    opts.insert(DhcpOption::ServerIdentifier(config.server.address));
    if let Some(info) = req.relay_agent_info.filter(|i| i.len() <= 255) {
        opts.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::RelayAgentInformation,
            info.to_vec(),
        )));
    }
    if is_nak {
        return msg;
    }
    let include = |code: OptionCode| optional.contains(&code) && req.wants(u8::from(code));
    if let Some(secs) = reply.lease_secs {
        opts.insert(DhcpOption::AddressLeaseTime(secs));
        opts.insert(DhcpOption::Renewal(secs / 2));
        opts.insert(DhcpOption::Rebinding((u64::from(secs) * 7 / 8) as u32));
    }
    if let Some(net) = reply.network {
        // Mask and router are sent whatever option 55 says: PXE ROMs often ask
        // for neither and still need both to reach the boot server.
        opts.insert(DhcpOption::SubnetMask(net.net.netmask()));
        if let Some(gw) = net.gateway {
            opts.insert(DhcpOption::Router(vec![gw]));
        }
        if !net.dns.is_empty() && include(OptionCode::DomainNameServer) {
            opts.insert(DhcpOption::DomainNameServer(net.dns.clone()));
        }
        if !net.ntp.is_empty() && include(OptionCode::NtpServers) {
            opts.insert(DhcpOption::NtpServers(net.ntp.clone()));
        }
        if let Some(domain) = config
            .dhcp
            .domain
            .as_ref()
            .filter(|_| include(OptionCode::DomainName))
        {
            opts.insert(DhcpOption::DomainName(domain.clone()));
        }
    }
    if let Some(name) = reply.hostname.filter(|_| include(OptionCode::Hostname)) {
        opts.insert(DhcpOption::Hostname(name.to_string()));
    }
    if let Some(boot) = reply.boot {
        // The 128-byte `file` field needs a terminating NUL; a longer name
        // (a long URL) travels in option 67 alone.
        if !boot.file.is_empty() && boot.file.len() < 128 {
            msg.set_fname_str(&boot.file);
        }
        let opts = msg.opts_mut();
        if !boot.file.is_empty() {
            opts.insert(DhcpOption::BootfileName(boot.file.as_bytes().to_vec()));
        }
        opts.insert(DhcpOption::TFTPServerName(
            boot.next_server.to_string().into_bytes(),
        ));
        if let Some(class) = boot.vendor_class {
            opts.insert(DhcpOption::ClassIdentifier(class.as_bytes().to_vec()));
        }
        if let Some(pxe) = boot.vendor_specific {
            opts.insert(DhcpOption::VendorExtensions(pxe.to_vec()));
        }
    }
    if let Some(id) = req.client_machine_id.filter(|_| reply.echo_machine_id) {
        msg.opts_mut()
            .insert(DhcpOption::ClientMachineIdentifier(id.to_vec()));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{BootProgram, Cpu, Firmware, NoBootReason};
    use crate::config::testing;
    use crate::dhcp::packet::{parse, tests::request_bytes};
    use dhcproto::Decodable;

    pub fn config() -> Config {
        let dhcp = r#"[dhcp]
mode = "authoritative"
subnet = "10.55.0.0/24"
gateway = "10.55.0.1"
dns = ["10.55.0.1", "10.55.0.2"]
ntp = ["10.55.0.3"]
domain = "lab.example"
pool = "10.55.0.200-10.55.0.250"
lease_time = "1h"
"#;
        testing::parse(&testing::lab_text(dhcp, &testing::cp1()))
    }

    fn decode(bytes: &[u8]) -> Message {
        Message::decode(&mut dhcproto::Decoder::new(bytes)).unwrap()
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0, 1];

    #[test]
    fn pxe_offer_carries_file_and_next_server_without_pxeclient() {
        let cfg = config();
        let req_bytes = request_bytes(
            1,
            MAC,
            &[(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0])],
        );
        let req = parse(&req_bytes).unwrap();
        let client = Client {
            firmware: Firmware::Bios,
            cpu: Cpu::X86_64,
            asker: Asker::FirmwarePxe,
            pi: None,
        };
        let boot = boot_info(
            &BootAction::Chainload(BootProgram::UndionlyKpxe),
            &client,
            &cfg,
        )
        .unwrap();
        let reply = Reply {
            kind: MessageType::Offer,
            address: Ipv4Addr::new(10, 55, 0, 11),
            lease_secs: Some(3600),
            hostname: Some("cp1"),
            boot: Some(&boot),
            network: cfg.dhcp.subnets.first(),
            echo_machine_id: false,
        };
        let mut out = Vec::new();
        assert!(encode(&req, &reply, &cfg, &mut out));
        let m = decode(&out);
        assert_eq!(m.opcode(), Opcode::BootReply);
        assert_eq!(m.xid(), 0x1234_5678);
        assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 55, 0, 11));
        assert_eq!(m.siaddr(), Ipv4Addr::new(10, 55, 0, 1));
        assert_eq!(m.chaddr(), &MAC);
        assert_eq!(m.fname(), Some(&b"undionly.kpxe\0"[..]), "NUL-terminated");
        let o = m.opts();
        assert_eq!(o.msg_type(), Some(MessageType::Offer));
        assert_eq!(
            o.get(OptionCode::BootfileName),
            Some(&DhcpOption::BootfileName(b"undionly.kpxe".to_vec()))
        );
        assert_eq!(
            o.get(OptionCode::TFTPServerName),
            Some(&DhcpOption::TFTPServerName(b"10.55.0.1".to_vec()))
        );
        assert_eq!(
            o.get(OptionCode::ClassIdentifier),
            None,
            "PXEClient in an offer makes EDK2 look for a boot server on port 4011"
        );
        assert_eq!(
            o.get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 55, 0, 1)))
        );
        assert_eq!(
            o.get(OptionCode::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(3600))
        );
        assert_eq!(o.get(OptionCode::Renewal), Some(&DhcpOption::Renewal(1800)));
        assert_eq!(
            o.get(OptionCode::Rebinding),
            Some(&DhcpOption::Rebinding(3150))
        );
        assert_eq!(
            o.get(OptionCode::SubnetMask),
            Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
        );
        assert_eq!(
            o.get(OptionCode::Router),
            Some(&DhcpOption::Router(vec![Ipv4Addr::new(10, 55, 0, 1)]))
        );
        // No option 55 at all: everything configured is sent.
        assert!(o.get(OptionCode::DomainNameServer).is_some());
        assert_eq!(
            o.get(OptionCode::Hostname),
            Some(&DhcpOption::Hostname("cp1".into()))
        );
        assert!(out.len() <= 548);
    }

    #[test]
    fn http_boot_gets_a_url_and_httpclient_and_ipxe_gets_the_script() {
        let cfg = config();
        let http = Client {
            firmware: Firmware::Uefi,
            cpu: Cpu::X86_64,
            asker: Asker::FirmwareHttp,
            pi: None,
        };
        let info = boot_info(&BootAction::Chainload(BootProgram::IpxeEfi), &http, &cfg).unwrap();
        assert_eq!(info.file, "http://10.55.0.1:8080/ipxe.efi");
        assert_eq!(info.vendor_class, Some("HTTPClient"));
        let ipxe = Client {
            asker: Asker::IpxeDhcp,
            ..http
        };
        let info = boot_info(&BootAction::IpxeScript, &ipxe, &cfg).unwrap();
        assert_eq!(info.file, "http://10.55.0.1:8080/boot.ipxe");
        assert_eq!(info.vendor_class, None);
        assert_eq!(
            boot_info(
                &BootAction::NoBoot(NoBootReason::UnknownMachine),
                &ipxe,
                &cfg
            ),
            None
        );
    }

    #[test]
    fn a_pi_gets_the_pi_menu_pxeclient_and_the_tftp_server_but_no_file() {
        let cfg = config();
        let pi = crate::boot::PiModel::Pi4.bootloader();
        let info = boot_info(&BootAction::PiInstall(crate::boot::PiModel::Pi4), &pi, &cfg).unwrap();
        assert_eq!(info.vendor_specific, Some(PI_OPTION_43));
        assert_eq!(PI_OPTION_43.len(), 32);
        assert_eq!(&PI_OPTION_43[14..31], b"Raspberry Pi Boot");
        assert_eq!(info.vendor_class, Some("PXEClient"));
        let req_bytes = request_bytes(1, [0xdc, 0xa6, 0x32, 1, 2, 3], &[(93, &[0, 0])]);
        let req = parse(&req_bytes).unwrap();
        let reply = Reply {
            kind: MessageType::Offer,
            address: Ipv4Addr::new(10, 55, 0, 31),
            lease_secs: Some(3600),
            hostname: None,
            boot: Some(&info),
            network: cfg.dhcp.subnets.first(),
            echo_machine_id: false,
        };
        let mut out = Vec::new();
        assert!(encode(&req, &reply, &cfg, &mut out));
        let m = decode(&out);
        assert_eq!(m.siaddr(), Ipv4Addr::new(10, 55, 0, 1));
        assert_eq!(m.fname(), None, "the Pi reads no boot file name");
        let o = m.opts();
        assert_eq!(o.get(OptionCode::BootfileName), None);
        assert_eq!(
            o.get(OptionCode::VendorExtensions),
            Some(&DhcpOption::VendorExtensions(PI_OPTION_43.to_vec()))
        );
        assert_eq!(
            o.get(OptionCode::TFTPServerName),
            Some(&DhcpOption::TFTPServerName(b"10.55.0.1".to_vec()))
        );
        // Nothing for an installed Pi.
        let installed = BootAction::NoBoot(NoBootReason::PiInstalled);
        assert_eq!(boot_info(&installed, &pi, &cfg), None);
    }

    #[test]
    fn option_55_is_honoured_but_pxe_essentials_always_go_out() {
        let cfg = config();
        let req_bytes = request_bytes(3, MAC, &[(55, &[1, 6])]);
        let req = parse(&req_bytes).unwrap();
        let reply = Reply {
            kind: MessageType::Ack,
            address: Ipv4Addr::new(10, 55, 0, 11),
            lease_secs: Some(3600),
            hostname: Some("cp1"),
            boot: None,
            network: cfg.dhcp.subnets.first(),
            echo_machine_id: false,
        };
        let mut out = Vec::new();
        assert!(encode(&req, &reply, &cfg, &mut out));
        let o = decode(&out).opts().clone();
        assert!(o.get(OptionCode::DomainNameServer).is_some());
        assert!(o.get(OptionCode::Hostname).is_none(), "not asked for");
        assert!(o.get(OptionCode::DomainName).is_none(), "not asked for");
        assert!(o.get(OptionCode::Router).is_some(), "always sent");
        assert!(o.get(OptionCode::AddressLeaseTime).is_some());
        assert!(o.get(OptionCode::NtpServers).is_none(), "not asked for");

        // A client that asks for time servers (dhclient does) gets them.
        let req_bytes = request_bytes(3, MAC, &[(55, &[1, 3, 6, 42])]);
        let req = parse(&req_bytes).unwrap();
        assert!(encode(&req, &reply, &cfg, &mut out));
        let o = decode(&out).opts().clone();
        assert_eq!(
            o.get(OptionCode::NtpServers),
            Some(&DhcpOption::NtpServers(vec![Ipv4Addr::new(10, 55, 0, 3)]))
        );
    }

    #[test]
    fn relay_agent_information_is_echoed_byte_for_byte() {
        let cfg = config();
        // Circuit-id and an unknown sub-option 151 that a re-encoder could mangle.
        let info: &[u8] = &[1, 4, b'e', b't', b'h', b'0', 151, 2, 0xde, 0xad];
        let mut req_bytes = request_bytes(1, MAC, &[(82, info)]);
        req_bytes[24..28].copy_from_slice(&[10, 55, 0, 254]);
        let req = parse(&req_bytes).unwrap();
        let reply = Reply {
            kind: MessageType::Offer,
            address: Ipv4Addr::new(10, 55, 0, 200),
            lease_secs: Some(3600),
            hostname: None,
            boot: None,
            network: cfg.dhcp.subnets.first(),
            echo_machine_id: false,
        };
        let mut out = Vec::new();
        assert!(encode(&req, &reply, &cfg, &mut out));
        let mut expected = vec![82u8, info.len() as u8];
        expected.extend_from_slice(info);
        assert!(
            out.windows(expected.len()).any(|w| w == expected),
            "option 82 unchanged"
        );
        assert_eq!(decode(&out).giaddr(), Ipv4Addr::new(10, 55, 0, 254));
    }

    #[test]
    fn a_nak_carries_no_address_or_lease() {
        let cfg = config();
        let mut req_bytes = request_bytes(3, MAC, &[(50, &[10, 9, 9, 9])]);
        req_bytes[24..28].copy_from_slice(&[10, 55, 0, 254]);
        let req = parse(&req_bytes).unwrap();
        let reply = Reply {
            kind: MessageType::Nak,
            address: Ipv4Addr::UNSPECIFIED,
            lease_secs: None,
            hostname: None,
            boot: None,
            network: cfg.dhcp.subnets.first(),
            echo_machine_id: false,
        };
        let mut out = Vec::new();
        assert!(encode(&req, &reply, &cfg, &mut out));
        let m = decode(&out);
        assert_eq!(m.opts().msg_type(), Some(MessageType::Nak));
        assert!(m.yiaddr().is_unspecified());
        assert!(m.opts().get(OptionCode::AddressLeaseTime).is_none());
        assert!(
            m.flags().broadcast(),
            "a relayed NAK is broadcast by the relay"
        );
    }

    #[test]
    fn replies_fit_the_size_the_client_accepts() {
        let mut cfg = config();
        cfg.dhcp.subnets[0].dns = (1..=60).map(|n| Ipv4Addr::new(10, 55, 1, n)).collect();
        cfg.dhcp.domain = Some("d".repeat(200));
        let long_file = BootInfo {
            file: "x".repeat(120),
            next_server: cfg.server.address,
            vendor_class: Some("PXEClient"),
            vendor_specific: None,
        };
        let reply = Reply {
            kind: MessageType::Ack,
            address: Ipv4Addr::new(10, 55, 0, 11),
            lease_secs: Some(3600),
            hostname: Some("cp1"),
            boot: Some(&long_file),
            network: cfg.dhcp.subnets.first(),
            echo_machine_id: false,
        };
        let small_bytes = request_bytes(3, MAC, &[]);
        let small = parse(&small_bytes).unwrap();
        let mut out = Vec::new();
        assert!(encode(&small, &reply, &cfg, &mut out));
        assert!(out.len() <= 548, "{} bytes", out.len());
        let o = decode(&out).opts().clone();
        assert!(
            o.get(OptionCode::BootfileName).is_some(),
            "boot info is never dropped"
        );
        let big_bytes = request_bytes(3, MAC, &[(57, &1500u16.to_be_bytes())]);
        let big = parse(&big_bytes).unwrap();
        assert!(encode(&big, &reply, &cfg, &mut out));
        assert!(out.len() > 548 && out.len() <= 1472, "{} bytes", out.len());
        assert!(decode(&out)
            .opts()
            .get(OptionCode::DomainNameServer)
            .is_some());
    }
}
