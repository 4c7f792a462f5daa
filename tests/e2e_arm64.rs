//! End to end on arm64: `qemu-system-aarch64 -M virt` with AAVMF (the arm64
//! UEFI of Debian's qemu-efi-aarch64) PXE-boots from `bootherd serve`:
//! DHCP (option 93 = 11) → `grubnetaa64.efi` over TFTP → GRUB reads its
//! `grub.cfg` for this MAC from bootherd → loads a Debian arm64 kernel and the
//! busybox stand-in initramfs over HTTP (`;` escaped as `\;` on its `linux`
//! line) → the stand-in fetches the seed and reports the install finished.
//! Then the installed machine's GRUB config starts the boot loader on its disk.
//!
//! The GRUB image, kernel and busybox come from Debian's arm64 packages
//! (`tests/lab/lab.sh arm64-kit`, downloaded by `tests/install-deps.sh`).
//! Needs root and `qemu-system-arm`, `qemu-efi-aarch64`, `grub-common`. TCG
//! only: an emulated arm64 boot takes a few minutes on two cores.

mod common;

use common::lab::{Arch, Lab};
use std::time::Instant;

const MAC: &str = "52:54:00:12:34:a4";

fn arm64_machine() -> String {
    format!(
        "[[machine]]\nmac = \"{MAC}\"\nhostname = \"arm1\"\nrole = \"control-plane\"\nip = \"10.55.0.14\"\nplatform = \"arm64\"\n\n"
    )
}

#[test]
fn aavmf_pxe_boots_grub_to_the_installer_then_the_local_disk_then_reinstalls() {
    let lab = Lab::start_for(Arch::Arm64, "qa", &arm64_machine());
    let disk = lab.local_disk();
    let t0 = Instant::now();

    // 1. Install: AAVMF's PXE gets GRUB from bootherd, GRUB its config, the
    //    stand-in the seed; the callback marks the machine installed.
    let serial = lab.boot("arm64-install", MAC, "aavmf", Some(&disk), None);
    lab.expect(
        &serial,
        &[
            "Station IP address is 10.55.0.14",
            "NBP filename is grubnetaa64.efi",
            "NBP file downloaded successfully",
        ],
        "arm64 boot",
    );
    lab.expect_install(&serial, "arm1", "10.55.0.14", "arm64 boot");
    let cmdline = serial
        .lines()
        .find(|l| l.contains("BOOTHERD-STANDIN: cmdline "))
        .unwrap();
    // GRUB turned `\;` back into the `;` the installer's datasource needs,
    // and the arm64 kernel took its console from the firmware.
    assert!(
        cmdline.contains(" ds=nocloud-net;s=http://10.55.0.1:8080/cloud-init/52-54-00-12-34-a4/"),
        "{cmdline}"
    );
    assert!(!cmdline.contains("console="), "{cmdline}");
    let log = lab.server.log();
    for served in [
        "grub.cfg-01-52-54-00-12-34-a4",
        "/assets/ubuntu-24.04-arm64/vmlinuz",
        "/assets/ubuntu-24.04-arm64/initrd",
    ] {
        assert!(
            log.contains(served),
            "bootherd never served {served}:\n{log}"
        );
    }

    // 2. Installed: GRUB's config finds the EFI boot loader on the disk and
    //    starts it (network first in the boot order, as on a provisioned rack).
    let serial = lab.boot("arm64-local", MAC, "aavmf", Some(&disk), None);
    lab.expect(
        &serial,
        &[
            "bootherd: arm1 is installed; booting the local disk",
            "bootherd: starting (hd0)/EFI/BOOT/BOOTAA64.EFI",
            "BOOTHERD-LOCALDISK: booted the local disk",
        ],
        "second arm64 boot",
    );
    if serial.contains("BOOTHERD-STANDIN") || serial.contains("bootherd: installing") {
        lab.fail(
            "second arm64 boot: an installed machine ran the installer again",
            &serial,
        );
    }
    assert_eq!(
        lab.state("arm1"),
        "installed",
        "a local boot must not change the state"
    );

    // 3. Reimage: the next boot installs again.
    lab.server.cli(&["reimage", "arm1"]);
    assert_ne!(
        lab.state("arm1"),
        "installed",
        "reimage did not change the state"
    );
    let serial = lab.boot("arm64-reinstall", MAC, "aavmf", Some(&disk), None);
    lab.expect_install(&serial, "arm1", "10.55.0.14", "arm64 boot after reimage");
    if serial.contains("BOOTHERD-LOCALDISK") {
        lab.fail("boot after reimage: the local disk booted instead", &serial);
    }
    eprintln!("arm64 flow passed in {:.1} s", t0.elapsed().as_secs_f64());
}
