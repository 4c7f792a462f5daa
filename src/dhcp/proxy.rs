//! proxyDHCP (PXE 2.1 spec, §2.2.2): beside the site's own DHCP server,
//! bootherd gives no addresses and answers only PXE clients, with the same
//! boot decision and the same `reply::boot_info` as authoritative replies.
//!
//! - Port 67: a DHCPDISCOVER from a boot client gets a proxy DHCPOFFER —
//!   `yiaddr` 0, option 60 `PXEClient` (or `HTTPClient`), option 54, the boot
//!   file and `siaddr`. The site's server gives the address.
//! - Port 4011: the client then asks bootherd directly (DHCPREQUEST, unicast)
//!   and gets a DHCPACK with the boot file. EDK2 (OVMF and most UEFI
//!   firmware) does this for a proxy offer without option 43 (a "BINL"
//!   offer, `PxeBcRetryBinlOffer`); iPXE does it for every proxy offer.
//!
//! Nothing is leased and nothing but `Seen` is stored.

use super::reply::{BootInfo, Reply};
use super::{classify, Outcome, Port, Server};
use crate::boot::{Asker, Client, Firmware};
use crate::config::Config;
use dhcproto::v4::MessageType;
use std::net::{Ipv4Addr, SocketAddr};

/// Option 43 for BIOS PXE ROMs: PXE_DISCOVERY_CONTROL (sub-option 6) = 8,
/// "boot the file named in this offer, skip boot-server discovery" (PXE 2.1
/// table 2-1), then the end mark. UEFI clients get no option 43 (see the
/// module doc): EDK2 would take a discovery-control offer as "PXE10" and run
/// a boot-server discovery that many firmwares implement badly.
const BIOS_PXE_OPTIONS: &[u8] = &[6, 1, 8, 255];

impl Server {
    /// Proxy mode: a proxy OFFER on port 67, an ACK on port 4011, or nothing.
    pub(super) fn proxy(
        &mut self,
        req: &super::Request<'_>,
        config: &Config,
        port: Port,
        from: SocketAddr,
        now: u64,
    ) -> Option<Outcome> {
        let kind = match (port, req.msg_type) {
            (Port::Dhcp, MessageType::Discover) => MessageType::Offer,
            (Port::BootServer, MessageType::Request | MessageType::Discover) => MessageType::Ack,
            // REQUESTs on 67 go to the site's server, which owns the lease.
            (_, other) => {
                tracing::debug!(mac = %req.mac, ?port, "proxyDHCP: {other:?} is not for the proxy");
                return None;
            }
        };
        if req.server_id.is_some_and(|id| id != config.server.address) {
            return None;
        }
        // Plain DHCP clients are the site's server's alone: no reply at all.
        let client = classify(req)?;
        let machine = config.machine_by_mac(req.mac);
        let mut out = Outcome::default();
        self.record_seen(req, machine.is_some(), now, &mut out);
        let Some(boot) = self.boot_info(req, config, Ipv4Addr::UNSPECIFIED) else {
            tracing::info!(mac = %req.mac, "proxyDHCP {:?}: nothing to boot, not answered", req.msg_type);
            return Some(out);
        };
        let boot = for_proxy(boot, &client);
        let reply = Reply {
            kind,
            address: Ipv4Addr::UNSPECIFIED,
            lease_secs: None,
            hostname: None,
            boot: Some(&boot),
            network: None,
            echo_machine_id: true,
        };
        out.reply = self.encode(req, &reply, config);
        if port == Port::BootServer {
            // The boot-server reply goes back to where the request came
            // from: the client's own address and port (4011 for EDK2, 68 for iPXE).
            let SocketAddr::V4(to) = from else {
                return Some(Outcome::default());
            };
            if let Some(r) = out.reply.as_mut() {
                r.to = to;
            }
        }
        tracing::info!(
            mac = %req.mac,
            boot = boot.file.as_str(),
            relay = %req.giaddr,
            "proxyDHCP {:?} on port {} -> {kind:?}",
            req.msg_type,
            port.number()
        );
        Some(out)
    }
}

/// What a proxy reply carries beyond an authoritative one: option 60 always
/// (a proxy offer without it is no PXE offer to any client), and option 43
/// for BIOS PXE ROMs unless the boot decision already set one (a Raspberry
/// Pi's menu).
pub fn for_proxy(mut info: BootInfo, client: &Client) -> BootInfo {
    if info.vendor_class.is_none() {
        info.vendor_class = Some("PXEClient");
    }
    let bios_rom = client.asker == Asker::FirmwarePxe
        && client.firmware == Firmware::Bios
        && client.pi.is_none();
    if info.vendor_specific.is_none() && bios_rom {
        info.vendor_specific = Some(BIOS_PXE_OPTIONS);
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{Cpu, PiModel};

    fn info(
        vendor_class: Option<&'static str>,
        vendor_specific: Option<&'static [u8]>,
    ) -> BootInfo {
        BootInfo {
            file: "f".into(),
            next_server: Ipv4Addr::new(10, 55, 0, 1),
            vendor_class,
            vendor_specific,
        }
    }

    fn client(firmware: Firmware, asker: Asker, pi: Option<PiModel>) -> Client {
        Client {
            firmware,
            cpu: if pi.is_some() {
                Cpu::Arm64
            } else {
                Cpu::X86_64
            },
            asker,
            pi,
        }
    }

    #[test]
    fn what_each_client_gets_on_top_of_the_authoritative_answer() {
        let bios = for_proxy(
            info(None, None),
            &client(Firmware::Bios, Asker::FirmwarePxe, None),
        );
        assert_eq!(bios.vendor_class, Some("PXEClient"));
        assert_eq!(bios.vendor_specific, Some(&[6u8, 1, 8, 255][..]));
        let uefi = for_proxy(
            info(None, None),
            &client(Firmware::Uefi, Asker::FirmwarePxe, None),
        );
        assert_eq!(
            (uefi.vendor_class, uefi.vendor_specific),
            (Some("PXEClient"), None),
            "no option 43: EDK2 then asks port 4011"
        );
        let http = for_proxy(
            info(Some("HTTPClient"), None),
            &client(Firmware::Uefi, Asker::FirmwareHttp, None),
        );
        assert_eq!(
            (http.vendor_class, http.vendor_specific),
            (Some("HTTPClient"), None)
        );
        let ipxe = for_proxy(
            info(None, None),
            &client(Firmware::Bios, Asker::IpxeDhcp, None),
        );
        assert_eq!(
            (ipxe.vendor_class, ipxe.vendor_specific),
            (Some("PXEClient"), None)
        );
    }

    #[test]
    fn a_pi_answer_from_the_boot_decision_goes_out_unchanged() {
        // What `reply::boot_info` gives a Raspberry Pi: its own option 43
        // (the "Raspberry Pi Boot" menu). The proxy must not replace it.
        let menu: &'static [u8] =
            b"\x06\x01\x03\x0a\x04\x00PXE\x09\x14\x00\x00\x11Raspberry Pi Boot\xff";
        let pi = for_proxy(
            info(Some("PXEClient"), Some(menu)),
            &client(Firmware::Bios, Asker::FirmwarePxe, Some(PiModel::Pi4)),
        );
        assert_eq!(pi.vendor_specific, Some(menu));
        assert_eq!(pi.vendor_class, Some("PXEClient"));
    }
}
