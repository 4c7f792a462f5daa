//! The QEMU lab as the end-to-end tests drive it: a provisioning network (a
//! namespace with a bridge and a tap; see `tests/lab/lab.sh`) with `bootherd
//! serve` on it, the installer stand-in in bootherd's image cache, and VMs
//! that network-boot from it. A Debian kernel with a busybox initramfs
//! (`tests/lab/make-initramfs.sh`) stands in for the Ubuntu installer: it
//! fetches the seed, checks it, posts the install-finished callback, powers
//! off, and reports each step on the serial console as `BOOTHERD-STANDIN: …`.
//!
//! x86-64 machines boot SeaBIOS + iPXE or OVMF; arm64 machines boot AAVMF
//! and GRUB, with Debian's arm64 packages (`lab.sh arm64-kit`).

use super::{lan_config, require, sh, Netns, Server};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SERVER_CIDR: &str = "10.55.0.1/24";

/// The architecture of the lab's machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// One boot, firmware to power-off. Generous: under TCG an x86 boot takes
    /// 20–60 s, more while another test's VM shares the two cores; an
    /// emulated arm64 CPU is several times slower.
    fn boot_timeout(self) -> Duration {
        match self {
            Arch::Amd64 => Duration::from_secs(180),
            Arch::Arm64 => Duration::from_secs(300),
        }
    }
}

pub fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab.sh")
}

/// The x86 stand-in initramfs, built once per test run.
fn initramfs() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bootherd-standin.cpio.gz");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/make-initramfs.sh");
        sh(Command::new(script).arg(&out));
        out
    })
}

fn stand_in_kernel() -> PathBuf {
    let out = sh(Command::new(lab_script()).arg("kernel"));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The arm64 boot files (`grubnetaa64.efi`, `vmlinuz`, `initrd`), built once per test run.
fn arm64_kit() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bootherd-arm64-kit");
        sh(Command::new(lab_script()).arg("arm64-kit").arg(&dir));
        dir
    })
}

/// A provisioning network with bootherd serving it and VMs to boot on it.
pub struct Lab {
    // Field order is drop order: stop bootherd, then delete the namespace
    // (which kills anything left in it), then remove the files.
    pub server: Server,
    pub ns: Netns,
    dir: tempfile::TempDir,
    arch: Arch,
}

impl Lab {
    /// A namespace with bridge `bh0` (bootherd's 10.55.0.1) and `tap0` for
    /// the VM, and `bootherd serve` with `machines` and the x86 installer files.
    pub fn start(tag: &str, machines: &str) -> Lab {
        Lab::start_for(Arch::Amd64, tag, machines)
    }

    /// The same for machines of `arch`: arm64 also gets the GRUB network
    /// image in the cache, where `bootherd images fetch` puts Ubuntu's.
    pub fn start_for(arch: Arch, tag: &str, machines: &str) -> Lab {
        Lab::start_config(arch, tag, &lan_config(machines))
    }

    /// The same network and x86 files with bootherd running `config`.
    pub fn start_with(tag: &str, config: &str) -> Lab {
        Lab::start_config(Arch::Amd64, tag, config)
    }

    fn start_config(arch: Arch, tag: &str, config: &str) -> Lab {
        match arch {
            Arch::Amd64 => require(&["qemu-system-x86_64", "busybox", "cpio", "ip", "timeout"]),
            Arch::Arm64 => require(&[
                "qemu-system-aarch64",
                "grub-mkimage",
                "dpkg-deb",
                "cpio",
                "ip",
                "timeout",
            ]),
        }
        let ns = Netns::new(tag);
        sh(Command::new(lab_script()).args(["net-up", &ns.name, SERVER_CIDR, "bh0"]));
        let server = Server::start(&ns, config);

        // The files an operator would copy out of the live-server ISO, with
        // the stand-ins in their place; the ISO only has to exist (the
        // stand-in reads its first bytes).
        let images = server
            .data_dir
            .join(format!("images/ubuntu-24.04-{}", arch.name()));
        std::fs::create_dir_all(&images).unwrap();
        match arch {
            Arch::Amd64 => {
                std::fs::copy(stand_in_kernel(), images.join("vmlinuz")).unwrap();
                std::fs::copy(initramfs(), images.join("initrd")).unwrap();
            }
            Arch::Arm64 => {
                let kit = arm64_kit();
                std::fs::copy(kit.join("vmlinuz"), images.join("vmlinuz")).unwrap();
                std::fs::copy(kit.join("initrd"), images.join("initrd")).unwrap();
                let grub = server.data_dir.join("images/grub");
                std::fs::create_dir_all(&grub).unwrap();
                std::fs::copy(kit.join("grubnetaa64.efi"), grub.join("grubnetaa64.efi")).unwrap();
            }
        }
        std::fs::write(images.join("live-server.iso"), vec![0x42u8; 64 * 1024]).unwrap();

        let dir = tempfile::tempdir().unwrap();
        Lab {
            server,
            ns,
            dir,
            arch,
        }
    }

    /// Powers on a VM with `mac` and waits until it powers itself off, or
    /// until a serial line matches `until` (then stops it). Returns its
    /// serial console log. `firmware` is `bios` or `uefi` (x86), `aavmf` (arm64).
    pub fn boot(
        &self,
        name: &str,
        mac: &str,
        firmware: &str,
        disk: Option<&Path>,
        until: Option<&str>,
    ) -> String {
        let log = self.dir.path().join(format!("{name}.serial.log"));
        let mut cmd = Command::new(lab_script());
        cmd.args(["boot", &self.ns.name, "--mac", mac, "--firmware", firmware])
            .arg("--log")
            .arg(&log)
            .args(["--timeout", &self.arch.boot_timeout().as_secs().to_string()]);
        if let Some(disk) = disk {
            cmd.arg("--disk").arg(disk);
        }
        if let Some(until) = until {
            cmd.args(["--until", until]);
        }
        let started = Instant::now();
        let out = cmd.output().expect("run tests/lab/lab.sh boot");
        let serial = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
        eprintln!(
            "{name}: {firmware} boot of {mac} took {:.1} s",
            started.elapsed().as_secs_f64()
        );
        if !out.status.success() {
            self.fail(
                &format!(
                    "{name}: the VM did not power off by itself ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ),
                &serial,
            );
        }
        serial
    }

    /// A disk that prints `BOOTHERD-LOCALDISK` and powers the VM off when it
    /// boots: proof that the local-boot script handed over to it. x86: a
    /// 1 MiB disk with a boot sector; arm64: a FAT file system with the EFI
    /// removable-media boot loader.
    pub fn local_disk(&self) -> PathBuf {
        let img = self.dir.path().join("disk.img");
        match self.arch {
            Arch::Amd64 => {
                sh(Command::new(lab_script()).arg("local-disk").arg(&img));
            }
            Arch::Arm64 => {
                std::fs::copy(arm64_kit().join("local-disk.img"), &img).unwrap();
            }
        }
        img
    }

    /// `bootherd machines`' STATE column for the row of `host` (a hostname or MAC).
    pub fn state(&self, host: &str) -> String {
        let table = self.server.cli(&["machines"]);
        let header: Vec<&str> = table
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let col = header
            .iter()
            .position(|h| *h == "STATE")
            .unwrap_or_else(|| panic!("no STATE column in `bootherd machines`:\n{table}"));
        let row = table
            .lines()
            .find(|l| l.split_whitespace().take(2).any(|f| f == host))
            .unwrap_or_else(|| panic!("{host} missing from `bootherd machines`:\n{table}"));
        row.split_whitespace()
            .nth(col)
            .unwrap_or_default()
            .to_string()
    }

    pub fn fail(&self, what: &str, serial: &str) -> ! {
        let log = self.server.log();
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        panic!(
            "{what}\n--- serial console ---\n{serial}\n--- bootherd log (last 60 lines) ---\n{}",
            tail.join("\n")
        );
    }

    pub fn expect(&self, serial: &str, markers: &[&str], ctx: &str) {
        if let Some(line) = serial
            .lines()
            .find(|l| l.contains("BOOTHERD-STANDIN: FAILED"))
        {
            self.fail(
                &format!("{ctx}: the installer stand-in failed: {line}"),
                serial,
            );
        }
        for m in markers {
            if !serial.contains(m) {
                self.fail(&format!("{ctx}: serial console lacks {m:?}"), serial);
            }
        }
    }

    /// Asserts the installer stand-in ran the whole install flow for `host`.
    pub fn expect_install(&self, serial: &str, host: &str, ip: &str, ctx: &str) {
        self.expect(
            serial,
            &[
                &format!("bootherd: installing {host} "),
                "BOOTHERD-STANDIN: init started",
                &format!("BOOTHERD-STANDIN: dhcp ip={ip} "),
                "ds=nocloud-net;s=http://10.55.0.1:8080/cloud-init/",
                &format!("BOOTHERD-STANDIN: seed ok hostname={host}"),
                "BOOTHERD-STANDIN: event HTTP/1.",
                "BOOTHERD-STANDIN: callback HTTP/1.",
                "BOOTHERD-STANDIN: done",
            ],
            ctx,
        );
        let callback = serial
            .lines()
            .find(|l| l.contains("BOOTHERD-STANDIN: callback"))
            .unwrap();
        if !callback.contains(" 20") {
            self.fail(
                &format!("{ctx}: the install-finished callback was not accepted: {callback}"),
                serial,
            );
        }
        let state = self.state(host);
        if state != "installed" {
            self.fail(
                &format!("{ctx}: `bootherd machines` shows {host} {state}, want installed"),
                serial,
            );
        }
    }
}
