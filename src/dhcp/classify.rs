//! Which boot client sent a DHCP request: the boot-flow table (README, lib.rs) turned
//! into a [`boot::Client`](crate::boot::Client), or `None` for a plain DHCP
//! client (an installed OS, a phone) that must get no boot information.

use super::packet::Request;
use crate::boot::{Asker, Client, Cpu, Firmware, PiModel};
use crate::mac::MacAddr;

/// RFC 4578 §2.1 / IANA "Processor Architecture Types" that bootherd serves.
const ARCH_X86_BIOS: u16 = 0;
const ARCH_X64_UEFI: u16 = 7;
const ARCH_X64_UEFI_ALT: u16 = 9; // EFI BC: firmware that reports x64 this way
const ARCH_ARM64_UEFI: u16 = 11;
const ARCH_X64_UEFI_HTTP: u16 = 16;
const ARCH_ARM64_UEFI_HTTP: u16 = 19;

/// OUIs of Raspberry Pi boards; only a fallback for a Pi bootloader that
/// sent no `RPi4`/`RPi5` option 97. The newest OUI belongs to Pi 5 boards.
const PI_OUIS: [([u8; 3], PiModel); 6] = [
    ([0xb8, 0x27, 0xeb], PiModel::Pi4),
    ([0xdc, 0xa6, 0x32], PiModel::Pi4),
    ([0xe4, 0x5f, 0x01], PiModel::Pi4),
    ([0xd8, 0x3a, 0xdd], PiModel::Pi4),
    ([0x28, 0xcd, 0xc1], PiModel::Pi4),
    ([0x2c, 0xcf, 0x67], PiModel::Pi5),
];

/// Classifies a request. `None` = a plain DHCP client: a lease and nothing else.
pub fn classify(req: &Request<'_>) -> Option<Client> {
    let vendor = req.vendor_class.unwrap_or_default();
    let is_pxe = vendor.starts_with(b"PXEClient");
    let is_http = vendor.starts_with(b"HTTPClient");
    let is_ipxe = req.has_ipxe_options || req.user_class.is_some_and(|u| contains(u, b"iPXE"));
    let pi_by_guid = req.client_machine_id.and_then(pi_model_from_guid);

    if !is_pxe && !is_http && !is_ipxe && pi_by_guid.is_none() {
        return None;
    }
    // Option 93 is mandatory for PXE clients; old ROMs only put it in option 60
    // ("PXEClient:Arch:00000:UNDI:002001").
    let arch = req
        .client_arch
        .or_else(|| arch_from_vendor_class(vendor))
        .unwrap_or(ARCH_X86_BIOS);

    // A Pi's bootloader looks exactly like x86 BIOS PXE (opt 60/93), so it is
    // recognised by its GUID, or by its OUI only when it claims BIOS.
    let pi = pi_by_guid.or_else(|| {
        if arch == ARCH_X86_BIOS && !is_ipxe {
            pi_model_from_oui(req.mac)
        } else {
            None
        }
    });
    if let Some(model) = pi {
        return Some(Client {
            firmware: Firmware::Bios,
            cpu: Cpu::Arm64,
            asker: Asker::FirmwarePxe,
            pi: Some(model),
        });
    }

    let (firmware, cpu, http_arch) = match arch {
        ARCH_X86_BIOS => (Firmware::Bios, Cpu::X86_64, false),
        ARCH_X64_UEFI | ARCH_X64_UEFI_ALT => (Firmware::Uefi, Cpu::X86_64, false),
        ARCH_ARM64_UEFI => (Firmware::Uefi, Cpu::Arm64, false),
        ARCH_X64_UEFI_HTTP => (Firmware::Uefi, Cpu::X86_64, true),
        ARCH_ARM64_UEFI_HTTP => (Firmware::Uefi, Cpu::Arm64, true),
        // 32-bit UEFI, Itanium, …: nothing bootherd could hand it.
        _ => return None,
    };
    let asker = if is_ipxe {
        Asker::IpxeDhcp
    } else if is_http || http_arch {
        Asker::FirmwareHttp
    } else {
        Asker::FirmwarePxe
    };
    Some(Client {
        firmware,
        cpu,
        asker,
        pi: None,
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The Pi bootloader's option 97 holds `RPi4`/`RPi5` and the serial, either
/// bare or after RFC 4578's type byte (0).
fn pi_model_from_guid(id: &[u8]) -> Option<PiModel> {
    let body = match id.first() {
        Some(0) => &id[1..],
        _ => id,
    };
    if body.starts_with(b"RPi4") {
        Some(PiModel::Pi4)
    } else if body.starts_with(b"RPi5") {
        Some(PiModel::Pi5)
    } else {
        None
    }
}

fn pi_model_from_oui(mac: MacAddr) -> Option<PiModel> {
    PI_OUIS
        .iter()
        .find(|(oui, _)| mac.0[..3] == oui[..])
        .map(|(_, model)| *model)
}

/// `PXEClient:Arch:00007:UNDI:003016` → 7.
fn arch_from_vendor_class(vendor: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(vendor).ok()?;
    let digits = text.split(':').skip_while(|part| *part != "Arch").nth(1)?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::packet::{parse, tests::request_bytes};

    const X86: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    const PI4_MAC: [u8; 6] = [0xdc, 0xa6, 0x32, 0x01, 0x02, 0x03];

    fn classify_bytes(mac: [u8; 6], options: &[(u8, &[u8])]) -> Option<Client> {
        classify(&parse(&request_bytes(1, mac, options)).unwrap())
    }

    fn client(firmware: Firmware, cpu: Cpu, asker: Asker) -> Option<Client> {
        Some(Client {
            firmware,
            cpu,
            asker,
            pi: None,
        })
    }

    #[test]
    fn firmware_pxe_by_architecture() {
        let pxe = |arch: u16| {
            let a = arch.to_be_bytes();
            classify_bytes(X86, &[(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &a)])
        };
        assert_eq!(
            pxe(0),
            client(Firmware::Bios, Cpu::X86_64, Asker::FirmwarePxe)
        );
        assert_eq!(
            pxe(7),
            client(Firmware::Uefi, Cpu::X86_64, Asker::FirmwarePxe)
        );
        assert_eq!(
            pxe(9),
            client(Firmware::Uefi, Cpu::X86_64, Asker::FirmwarePxe)
        );
        assert_eq!(
            pxe(11),
            client(Firmware::Uefi, Cpu::Arm64, Asker::FirmwarePxe)
        );
        assert_eq!(pxe(6), None, "32-bit UEFI gets nothing");
    }

    #[test]
    fn architecture_from_vendor_class_when_option_93_is_missing() {
        let got = classify_bytes(X86, &[(60, b"PXEClient:Arch:00007:UNDI:003016")]);
        assert_eq!(got, client(Firmware::Uefi, Cpu::X86_64, Asker::FirmwarePxe));
    }

    #[test]
    fn uefi_http_boot() {
        let got = classify_bytes(
            X86,
            &[(60, b"HTTPClient:Arch:00016:UNDI:003001"), (93, &[0, 16])],
        );
        assert_eq!(
            got,
            client(Firmware::Uefi, Cpu::X86_64, Asker::FirmwareHttp)
        );
        let arm = classify_bytes(
            X86,
            &[(60, b"HTTPClient:Arch:00019:UNDI:003001"), (93, &[0, 19])],
        );
        assert_eq!(arm, client(Firmware::Uefi, Cpu::Arm64, Asker::FirmwareHttp));
    }

    #[test]
    fn ipxe_by_user_class_or_option_175() {
        // iPXE keeps sending the PXE vendor class: the user class must win.
        let by_77 = classify_bytes(
            X86,
            &[
                (60, b"PXEClient:Arch:00000:UNDI:002001"),
                (77, b"iPXE"),
                (93, &[0, 0]),
            ],
        );
        assert_eq!(by_77, client(Firmware::Bios, Cpu::X86_64, Asker::IpxeDhcp));
        let by_175 = classify_bytes(
            X86,
            &[
                (60, b"PXEClient:Arch:00007:UNDI:003016"),
                (93, &[0, 7]),
                (175, &[0xb1, 1, 1]),
            ],
        );
        assert_eq!(by_175, client(Firmware::Uefi, Cpu::X86_64, Asker::IpxeDhcp));
        // A Pi OUI running iPXE is not the Pi bootloader.
        let pi_ipxe = classify_bytes(PI4_MAC, &[(77, b"iPXE"), (93, &[0, 11])]);
        assert_eq!(pi_ipxe, client(Firmware::Uefi, Cpu::Arm64, Asker::IpxeDhcp));
    }

    #[test]
    fn plain_clients_get_nothing() {
        assert_eq!(classify_bytes(X86, &[(55, &[1, 3, 6, 12, 15])]), None);
        assert_eq!(classify_bytes(X86, &[(60, b"udhcp 1.36.1")]), None);
        assert_eq!(
            classify_bytes(X86, &[(60, b"MSFT 5.0"), (93, &[0, 7])]),
            None
        );
        assert_eq!(
            classify_bytes(PI4_MAC, &[(55, &[1, 3])]),
            None,
            "an installed Pi doing plain DHCP"
        );
    }

    #[test]
    fn raspberry_pi_by_guid_then_oui_never_by_opt_60_93_alone() {
        let mut guid = vec![0u8];
        guid.extend_from_slice(b"RPi4");
        guid.extend_from_slice(&[0xab; 12]);
        let pxe = b"PXEClient:Arch:00000:UNDI:002001";
        let got = classify_bytes(X86, &[(60, pxe), (93, &[0, 0]), (97, &guid)]).unwrap();
        assert_eq!(got.pi, Some(PiModel::Pi4));
        let pi5 =
            classify_bytes(X86, &[(60, pxe), (93, &[0, 0]), (97, b"RPi5\x01\x02\x03")]).unwrap();
        assert_eq!(pi5.pi, Some(PiModel::Pi5));
        let by_oui = classify_bytes(PI4_MAC, &[(60, pxe), (93, &[0, 0])]).unwrap();
        assert_eq!(by_oui.pi, Some(PiModel::Pi4));
        // The same options from a non-Pi MAC are x86 BIOS.
        let x86 = classify_bytes(X86, &[(60, pxe), (93, &[0, 0])]).unwrap();
        assert_eq!(x86.pi, None);
        assert_eq!(x86.cpu, Cpu::X86_64);
        // A normal UEFI GUID is not a Pi.
        let uefi = classify_bytes(X86, &[(60, pxe), (93, &[0, 7]), (97, &[0; 17])]).unwrap();
        assert_eq!(uefi.pi, None);
    }
}
