//! The boot decision: one pure function that every transport asks.
//!
//! Given what bootherd knows of a machine (its config entry and lifecycle
//! state) and what the asking client is (firmware, CPU, who is asking),
//! [`decide`] returns a [`BootAction`]. DHCP, TFTP and HTTP only encode that
//! value; "what does machine X get" is answered and tested here, without sockets.

use crate::config::{Machine, Os, Platform};
use crate::inventory::State;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpu {
    X86_64,
    Arm64,
}

/// Which program is asking, at which step of the boot chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// The firmware's own PXE client (DHCP, then TFTP).
    FirmwarePxe,
    /// UEFI HTTP boot (DHCP with vendor class `HTTPClient`, then HTTP).
    FirmwareHttp,
    /// iPXE asking DHCP (user class `iPXE`).
    IpxeDhcp,
    /// iPXE fetching its boot script over HTTP.
    IpxeScript,
    /// GRUB (the arm64 boot program) fetching its per-machine `grub.cfg`.
    GrubConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiModel {
    Pi4,
    Pi5,
}

/// What bootherd knows about the asking client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub firmware: Firmware,
    pub cpu: Cpu,
    pub asker: Asker,
    /// Set when the client identified itself as a Raspberry Pi bootloader.
    pub pi: Option<PiModel>,
}

/// The boot programs bootherd hands to firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProgram {
    /// iPXE for BIOS PXE, using the ROM's UNDI driver.
    UndionlyKpxe,
    /// iPXE for x86-64 UEFI with its own drivers.
    IpxeEfi,
    /// GRUB's network image for arm64 UEFI (Ubuntu's signed
    /// `grubnetaa64.efi`). No arm64 iPXE build with a published checksum
    /// exists, so arm64 servers boot through GRUB and a `grub.cfg` per machine.
    GrubNetAa64,
}

impl BootProgram {
    pub const ALL: [BootProgram; 3] = [
        BootProgram::UndionlyKpxe,
        BootProgram::IpxeEfi,
        BootProgram::GrubNetAa64,
    ];

    /// The name under which TFTP and HTTP serve it. GRUB's is at the root:
    /// its embedded prefix `/grub` is relative to the TFTP root.
    pub fn file_name(self) -> &'static str {
        match self {
            BootProgram::UndionlyKpxe => "undionly.kpxe",
            BootProgram::IpxeEfi => "ipxe.efi",
            BootProgram::GrubNetAa64 => "grubnetaa64.efi",
        }
    }

    /// The boot programs machines of `platform` are handed by their
    /// firmware (a Raspberry Pi boots its own firmware, none of these).
    pub fn for_platform(platform: Platform) -> &'static [BootProgram] {
        match platform {
            Platform::Amd64 => &[BootProgram::UndionlyKpxe, BootProgram::IpxeEfi],
            Platform::Arm64 => &[BootProgram::GrubNetAa64],
            Platform::Rpi4 | Platform::Rpi5 => &[],
        }
    }

    /// Its directory in the image cache (`<data_dir>/images/<dir>/`).
    pub fn cache_dir(self) -> &'static str {
        match self {
            BootProgram::UndionlyKpxe | BootProgram::IpxeEfi => "ipxe",
            BootProgram::GrubNetAa64 => "grub",
        }
    }
}

/// Why a client gets no boot information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBootReason {
    /// The MAC is not in the inventory: it gets a lease and nothing else.
    UnknownMachine,
    /// A Pi whose install is done: silence sends its bootloader on to its
    /// disk (the next mode in its BOOT_ORDER).
    PiInstalled,
    /// A configured Pi asked through something other than its EEPROM
    /// bootloader (UEFI firmware, iPXE): Pis are only installed through it.
    PiNeedsItsBootloader,
    /// The client's CPU does not match the machine's configured platform.
    PlatformMismatch { configured: Platform, client: Cpu },
}

impl fmt::Display for NoBootReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoBootReason::UnknownMachine => f.write_str("not in the inventory"),
            NoBootReason::PiInstalled => {
                f.write_str("installed Raspberry Pi: left to boot its disk")
            }
            NoBootReason::PiNeedsItsBootloader => f.write_str(
                "configured as a Raspberry Pi, but not asking through the Pi bootloader",
            ),
            NoBootReason::PlatformMismatch { configured, client } => {
                write!(f, "configured as platform {configured} but the client is {client:?}; fix `platform` in the config")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootAction {
    /// No boot information (a lease only, or a script that exits).
    NoBoot(NoBootReason),
    /// Firmware: load this boot program (TFTP name, or HTTP URL for HTTP boot).
    Chainload(BootProgram),
    /// iPXE at DHCP time: fetch the boot script over HTTP (never the iPXE binary
    /// again, which would loop).
    IpxeScript,
    /// Boot script: run the unattended installer of `os` for `arch`.
    Install {
        os: Os,
        arch: &'static str,
        firmware: Firmware,
    },
    /// Boot script: leave the network boot and start the local disk.
    LocalDisk(Firmware),
    /// A Pi's bootloader, install due: the Pi PXE answer at DHCP time, then
    /// its firmware, `config.txt`, `cmdline.txt`, kernel and installer initrd
    /// over TFTP.
    PiInstall(PiModel),
}

/// The boot decision. `machine` is the inventory entry with its lifecycle
/// state, `None` for a MAC that is not configured.
pub fn decide(machine: Option<(&Machine, State)>, client: &Client) -> BootAction {
    let Some((machine, state)) = machine else {
        return BootAction::NoBoot(NoBootReason::UnknownMachine);
    };
    if client.pi.is_some() || machine.platform.is_pi() {
        return decide_pi(machine, state, client);
    }
    let platform_cpu = match machine.platform {
        Platform::Amd64 => Cpu::X86_64,
        _ => Cpu::Arm64,
    };
    if platform_cpu != client.cpu {
        return BootAction::NoBoot(NoBootReason::PlatformMismatch {
            configured: machine.platform,
            client: client.cpu,
        });
    }
    match client.asker {
        Asker::FirmwarePxe | Asker::FirmwareHttp => {
            BootAction::Chainload(match (client.firmware, client.cpu) {
                (Firmware::Bios, _) => BootProgram::UndionlyKpxe,
                (Firmware::Uefi, Cpu::X86_64) => BootProgram::IpxeEfi,
                (Firmware::Uefi, Cpu::Arm64) => BootProgram::GrubNetAa64,
            })
        }
        Asker::IpxeDhcp => BootAction::IpxeScript,
        Asker::IpxeScript | Asker::GrubConfig if state.install_due() => BootAction::Install {
            os: machine.os,
            arch: machine.platform.arch(),
            firmware: client.firmware,
        },
        Asker::IpxeScript | Asker::GrubConfig => BootAction::LocalDisk(client.firmware),
    }
}

/// A Pi: its bootloader is answered while its install is due and left
/// alone once installed; anything else asking for it gets nothing. The
/// model is the configured one, not the one the client reports: without
/// option 97 the model is only guessed from the MAC's OUI (the same OUIs
/// appear on Pi 4 and Pi 5 boards), and both models get the same DHCP
/// answer and install the same Ubuntu image.
fn decide_pi(machine: &Machine, state: State, client: &Client) -> BootAction {
    let configured = match machine.platform {
        Platform::Rpi4 => PiModel::Pi4,
        Platform::Rpi5 => PiModel::Pi5,
        other => {
            return BootAction::NoBoot(NoBootReason::PlatformMismatch {
                configured: other,
                client: Cpu::Arm64,
            })
        }
    };
    match client.pi {
        None => BootAction::NoBoot(NoBootReason::PiNeedsItsBootloader),
        Some(_) if state.install_due() => BootAction::PiInstall(configured),
        Some(_) => BootAction::NoBoot(NoBootReason::PiInstalled),
    }
}

impl PiModel {
    /// The model a Pi platform is.
    pub fn of(platform: Platform) -> Option<PiModel> {
        match platform {
            Platform::Rpi4 => Some(PiModel::Pi4),
            Platform::Rpi5 => Some(PiModel::Pi5),
            Platform::Amd64 | Platform::Arm64 => None,
        }
    }

    /// The client a Pi's bootloader is, as DHCP classifies it (and as TFTP,
    /// which has no option 97, assumes for a configured Pi).
    pub fn bootloader(self) -> Client {
        Client {
            firmware: Firmware::Bios,
            cpu: Cpu::Arm64,
            asker: Asker::FirmwarePxe,
            pi: Some(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;

    fn machine(platform: Platform) -> Machine {
        Machine {
            mac: "52:54:00:aa:00:01".parse().unwrap(),
            hostname: "cp1".into(),
            role: Role::ControlPlane,
            ip: "10.0.0.11".parse().unwrap(),
            platform,
            os: Os::Ubuntu2404,
            disk: None,
            serial: None,
        }
    }

    fn client(firmware: Firmware, asker: Asker) -> Client {
        Client {
            firmware,
            cpu: Cpu::X86_64,
            asker,
            pi: None,
        }
    }

    #[test]
    fn firmware_gets_the_ipxe_build_for_it() {
        let m = machine(Platform::Amd64);
        let bios = decide(
            Some((&m, State::Installed)),
            &client(Firmware::Bios, Asker::FirmwarePxe),
        );
        assert_eq!(bios, BootAction::Chainload(BootProgram::UndionlyKpxe));
        let uefi = decide(
            Some((&m, State::Configured)),
            &client(Firmware::Uefi, Asker::FirmwarePxe),
        );
        assert_eq!(uefi, BootAction::Chainload(BootProgram::IpxeEfi));
        let http = decide(
            Some((&m, State::Configured)),
            &client(Firmware::Uefi, Asker::FirmwareHttp),
        );
        assert_eq!(http, BootAction::Chainload(BootProgram::IpxeEfi));
        let arm = machine(Platform::Arm64);
        let c = Client {
            cpu: Cpu::Arm64,
            ..client(Firmware::Uefi, Asker::FirmwarePxe)
        };
        assert_eq!(
            decide(Some((&arm, State::Configured)), &c),
            BootAction::Chainload(BootProgram::GrubNetAa64)
        );
    }

    #[test]
    fn grub_gets_the_same_install_and_local_boot_decisions_as_ipxe() {
        let m = machine(Platform::Arm64);
        let grub = Client {
            firmware: Firmware::Uefi,
            cpu: Cpu::Arm64,
            asker: Asker::GrubConfig,
            pi: None,
        };
        let ipxe = Client {
            asker: Asker::IpxeScript,
            ..grub
        };
        for (state, due) in [
            (State::Configured, true),
            (State::Installing, true),
            (State::ReimagePending, true),
            (State::Installed, false),
            (State::Joined, false),
        ] {
            let got = decide(Some((&m, state)), &grub);
            let want = if due {
                BootAction::Install {
                    os: Os::Ubuntu2404,
                    arch: "arm64",
                    firmware: Firmware::Uefi,
                }
            } else {
                BootAction::LocalDisk(Firmware::Uefi)
            };
            assert_eq!(got, want, "{state:?}");
            assert_eq!(decide(Some((&m, state)), &ipxe), want, "{state:?}");
        }
        // GRUB asking for an x86 machine's config, or for an unknown MAC: nothing.
        let x86 = machine(Platform::Amd64);
        assert!(matches!(
            decide(Some((&x86, State::Configured)), &grub),
            BootAction::NoBoot(NoBootReason::PlatformMismatch { .. })
        ));
        assert_eq!(
            decide(None, &grub),
            BootAction::NoBoot(NoBootReason::UnknownMachine)
        );
    }

    #[test]
    fn ipxe_never_gets_ipxe_again() {
        let m = machine(Platform::Amd64);
        for state in [State::Configured, State::Installed, State::ReimagePending] {
            for fw in [Firmware::Bios, Firmware::Uefi] {
                assert_eq!(
                    decide(Some((&m, state)), &client(fw, Asker::IpxeDhcp)),
                    BootAction::IpxeScript
                );
            }
        }
    }

    #[test]
    fn the_script_installs_when_due_and_boots_the_disk_otherwise() {
        let m = machine(Platform::Amd64);
        for (state, due) in [
            (State::Configured, true),
            (State::Installing, true),
            (State::ReimagePending, true),
            (State::Installed, false),
            (State::Joined, false),
        ] {
            for fw in [Firmware::Bios, Firmware::Uefi] {
                let got = decide(Some((&m, state)), &client(fw, Asker::IpxeScript));
                let want = if due {
                    BootAction::Install {
                        os: Os::Ubuntu2404,
                        arch: "amd64",
                        firmware: fw,
                    }
                } else {
                    BootAction::LocalDisk(fw)
                };
                assert_eq!(got, want, "{state:?} {fw:?}");
            }
        }
    }

    #[test]
    fn unknown_machines_get_no_boot_program() {
        for asker in [
            Asker::FirmwarePxe,
            Asker::IpxeDhcp,
            Asker::IpxeScript,
            Asker::GrubConfig,
        ] {
            assert_eq!(
                decide(None, &client(Firmware::Bios, asker)),
                BootAction::NoBoot(NoBootReason::UnknownMachine)
            );
        }
        // An unknown Pi gets an address only, like any unknown machine.
        assert_eq!(
            decide(None, &PiModel::Pi4.bootloader()),
            BootAction::NoBoot(NoBootReason::UnknownMachine)
        );
    }

    #[test]
    fn a_pi_is_installed_while_due_and_left_to_its_disk_after() {
        for (platform, model) in [
            (Platform::Rpi4, PiModel::Pi4),
            (Platform::Rpi5, PiModel::Pi5),
        ] {
            let m = machine(platform);
            for (state, due) in [
                (State::Configured, true),
                (State::Installing, true),
                (State::ReimagePending, true),
                (State::Installed, false),
                (State::Joined, false),
            ] {
                let got = decide(Some((&m, state)), &model.bootloader());
                let want = if due {
                    BootAction::PiInstall(model)
                } else {
                    BootAction::NoBoot(NoBootReason::PiInstalled)
                };
                assert_eq!(got, want, "{platform} {state:?}");
            }
        }
    }

    #[test]
    fn a_pi_never_gets_an_x86_program_and_mismatches_get_nothing() {
        // A Pi bootloader answering for a machine configured as amd64.
        let x86 = machine(Platform::Amd64);
        assert!(matches!(
            decide(Some((&x86, State::Configured)), &PiModel::Pi4.bootloader()),
            BootAction::NoBoot(NoBootReason::PlatformMismatch { .. })
        ));
        // Configured rpi4, and the OUI guess says Pi 5: the configured model.
        let pi4 = machine(Platform::Rpi4);
        assert_eq!(
            decide(Some((&pi4, State::Configured)), &PiModel::Pi5.bootloader()),
            BootAction::PiInstall(PiModel::Pi4)
        );
        // A configured Pi asking as x86 BIOS, iPXE or UEFI: nothing.
        for c in [
            client(Firmware::Bios, Asker::FirmwarePxe),
            client(Firmware::Uefi, Asker::IpxeDhcp),
            Client {
                cpu: Cpu::Arm64,
                ..client(Firmware::Uefi, Asker::FirmwarePxe)
            },
        ] {
            assert_eq!(
                decide(Some((&pi4, State::Configured)), &c),
                BootAction::NoBoot(NoBootReason::PiNeedsItsBootloader),
                "{c:?}"
            );
        }
    }

    #[test]
    fn a_client_of_the_wrong_cpu_gets_nothing() {
        let m = machine(Platform::Arm64);
        let got = decide(
            Some((&m, State::Configured)),
            &client(Firmware::Uefi, Asker::FirmwarePxe),
        );
        assert!(matches!(
            got,
            BootAction::NoBoot(NoBootReason::PlatformMismatch { .. })
        ));
    }
}
