//! End to end: x86-64 QEMU virtual machines PXE-boot from `bootherd serve`
//! on a private network, in the lab of `tests/common/lab.rs`: a Debian kernel
//! with a busybox initramfs stands in for the Ubuntu installer.
//!
//! Needs root, `qemu-system-x86`, `ipxe-qemu`, `ipxe`, `ovmf`,
//! `linux-image-amd64`, `busybox-static`, `cpio`. TCG only: each boot takes
//! 20–60 s on two cores, so each is bounded by a timeout (`common::lab`).

mod common;

use common::lab::Lab;
use common::machine;
use std::time::Instant;

/// SeaBIOS + the iPXE ROM of the virtio NIC: install, local boot, reimage,
/// install again; then a MAC bootherd does not know.
#[test]
fn bios_install_local_boot_reimage_and_unknown_mac() {
    const MAC: &str = "52:54:00:12:34:56";
    let lab = Lab::start("qb", &machine(MAC, "cp1", "control-plane", "10.55.0.11"));
    let disk = lab.local_disk();
    let t0 = Instant::now();

    // 1. First boot: reserved IP, chain script, installer kernel + initrd; the
    //    stand-in fetches the seed and reports the install finished.
    let serial = lab.boot("1-install", MAC, "bios", Some(&disk), None);
    // iPXE's own report of bootherd's DHCP answer: the reservation and the script URL.
    lab.expect(
        &serial,
        &[
            "net0: 10.55.0.11/",
            "Filename: http://10.55.0.1:8080/boot.ipxe",
        ],
        "first boot",
    );
    lab.expect_install(&serial, "cp1", "10.55.0.11", "first boot");
    for file in [
        "/boot.ipxe",
        "/assets/ubuntu-24.04-amd64/vmlinuz",
        "/assets/ubuntu-24.04-amd64/initrd",
    ] {
        assert!(
            lab.server.log().contains(file),
            "bootherd never served {file}:\n{}",
            lab.server.log()
        );
    }
    // Legacy BIOS must not be told to load the initrd by name (that is for EFI stubs).
    lab.expect(&serial, &["BOOTHERD-STANDIN: cmdline "], "first boot");
    let cmdline = serial
        .lines()
        .find(|l| l.contains("BOOTHERD-STANDIN: cmdline "))
        .unwrap();
    assert!(
        !cmdline.contains("initrd=initrd"),
        "BIOS command line has initrd=: {cmdline}"
    );

    // 2. Installed: the next boot gets the local-boot script, which boots the disk.
    let serial = lab.boot("2-local", MAC, "bios", Some(&disk), None);
    lab.expect(
        &serial,
        &[
            "bootherd: cp1 is installed; booting the local disk",
            "BOOTHERD-LOCALDISK: booted the local disk",
        ],
        "second boot",
    );
    if serial.contains("BOOTHERD-STANDIN") {
        lab.fail(
            "second boot: an installed machine ran the installer again",
            &serial,
        );
    }
    assert_eq!(
        lab.state("cp1"),
        "installed",
        "a local boot must not change the state"
    );

    // 3. Reimage: the next boot installs again.
    let out = lab.server.cli(&["reimage", "cp1"]);
    eprintln!("reimage: {}", out.trim());
    assert_ne!(
        lab.state("cp1"),
        "installed",
        "reimage did not change the state"
    );
    let serial = lab.boot("3-reinstall", MAC, "bios", Some(&disk), None);
    lab.expect_install(&serial, "cp1", "10.55.0.11", "boot after reimage");

    // 4. A MAC not in the config: a pool lease and no boot file, so iPXE has
    //    nothing to boot and SeaBIOS falls through to the disk; bootherd
    //    records the machine as discovered.
    const UNKNOWN: &str = "52:54:00:99:00:01";
    let serial = lab.boot("4-unknown", UNKNOWN, "bios", Some(&disk), None);
    lab.expect(
        &serial,
        &[
            "net0: 10.55.0.",
            "BOOTHERD-LOCALDISK: booted the local disk",
        ],
        "unknown MAC",
    );
    let leased = serial
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("net0: 10.55.0.")?
                .split('/')
                .next()?
                .parse::<u8>()
                .ok()
        })
        .unwrap();
    if !(200..=250).contains(&leased) {
        lab.fail(
            &format!("unknown MAC got 10.55.0.{leased}, outside the pool 200-250"),
            &serial,
        );
    }
    if serial.contains("boot.ipxe") || serial.contains("BOOTHERD-STANDIN") {
        lab.fail("unknown MAC was given something to boot", &serial);
    }
    assert_eq!(lab.state(UNKNOWN), "discovered");
    eprintln!("BIOS flow passed in {:.1} s", t0.elapsed().as_secs_f64());
}

/// OVMF's own UEFI PXE (no iPXE ROM on the NIC): DHCP → ipxe.efi over
/// bootherd's TFTP → iPXE → script → kernel with initrd= → stand-in →
/// installed; then the next boot gets the local-boot script (`exit`).
#[test]
fn uefi_pxe_install() {
    const MAC: &str = "52:54:00:12:34:57";
    let lab = Lab::start("qu", &machine(MAC, "cp2", "control-plane", "10.55.0.12"));
    let t0 = Instant::now();
    let serial = lab.boot("uefi-install", MAC, "uefi", None, None);
    // OVMF's PXE reports bootherd's DHCP offer and the TFTP download of iPXE.
    lab.expect(
        &serial,
        &[
            "Station IP address is 10.55.0.12",
            "NBP filename is ipxe.efi",
            "NBP file downloaded successfully",
        ],
        "UEFI boot",
    );
    lab.expect_install(&serial, "cp2", "10.55.0.12", "UEFI boot");
    let cmdline = serial
        .lines()
        .find(|l| l.contains("BOOTHERD-STANDIN: cmdline "))
        .unwrap();
    // Without it Linux loaded by iPXE under OVMF panics (DESIGN.md).
    assert!(
        cmdline.contains("initrd=initrd"),
        "UEFI command line lacks initrd=initrd: {cmdline}"
    );
    // OVMF's PXE can only have got iPXE from bootherd's TFTP.
    let log = lab.server.log();
    assert!(
        log.contains("ipxe.efi"),
        "bootherd's log shows no transfer of ipxe.efi:\n{log}"
    );

    // Installed: the local-boot script ends in `exit`, handing the machine
    // back to the firmware's next boot option. This VM has no disk, so OVMF
    // would go round its network options again: stop it once iPXE has exited.
    let serial = lab.boot(
        "uefi-local",
        MAC,
        "uefi",
        None,
        Some("No more network devices"),
    );
    lab.expect(
        &serial,
        &[
            "bootherd: cp2 is installed; booting the local disk",
            "No more network devices",
        ],
        "second UEFI boot",
    );
    if serial.contains("BOOTHERD-STANDIN") {
        lab.fail(
            "second UEFI boot: an installed machine ran the installer again",
            &serial,
        );
    }
    assert_eq!(lab.state("cp2"), "installed");
    eprintln!("UEFI flow passed in {:.1} s", t0.elapsed().as_secs_f64());
}
