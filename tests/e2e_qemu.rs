//! End to end: QEMU virtual machines PXE-boot from `bootherd serve` on a
//! private network (a namespace with a bridge and a tap; see
//! `tests/lab/lab.sh`). A Debian kernel with a busybox initramfs
//! (`tests/lab/make-initramfs.sh`) stands in for the Ubuntu installer: it
//! fetches the seed, checks it, posts the install-finished callback, powers
//! off, and reports each step on the serial console as `BOOTHERD-STANDIN: …`.
//!
//! Needs root, `qemu-system-x86`, `ipxe-qemu`, `ipxe`, `ovmf`,
//! `linux-image-amd64`, `busybox-static`, `cpio`. TCG only: each boot takes
//! 20–60 s on two cores, so each is bounded by `BOOT_TIMEOUT`.

mod common;

use common::{lan_config, machine, require, Netns, Server};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One boot, firmware to power-off. Generous: a boot takes 20–60 s under TCG,
/// more while the other test's VM shares the two cores.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

const SERVER_CIDR: &str = "10.55.0.1/24";

fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab.sh")
}

/// The stand-in initramfs, built once per test run.
fn initramfs() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bootherd-standin.cpio.gz");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/make-initramfs.sh");
        common::sh(Command::new(script).arg(&out));
        out
    })
}

fn stand_in_kernel() -> PathBuf {
    let out = common::sh(Command::new(lab_script()).arg("kernel"));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A provisioning network with bootherd serving it and VMs to boot on it.
struct Lab {
    // Field order is drop order: stop bootherd, then delete the namespace
    // (which kills anything left in it), then remove the files.
    server: Server,
    ns: Netns,
    dir: tempfile::TempDir,
}

impl Lab {
    /// A namespace with bridge `bh0` (bootherd's 10.55.0.1) and `tap0` for
    /// the VM, and `bootherd serve` with `machines` and the installer files.
    fn start(tag: &str, machines: &str) -> Lab {
        Lab::start_with(tag, &lan_config(machines))
    }

    /// The same network and files with bootherd running `config`.
    fn start_with(tag: &str, config: &str) -> Lab {
        require(&["qemu-system-x86_64", "busybox", "cpio", "ip", "timeout"]);
        let ns = Netns::new(tag);
        common::sh(Command::new(lab_script()).args(["net-up", &ns.name, SERVER_CIDR, "bh0"]));
        let server = Server::start(&ns, config);

        // The files an operator would copy out of the live-server ISO, with
        // the stand-ins in their place; the ISO only has to exist (the
        // stand-in reads its first bytes).
        let images = server.data_dir.join("images/ubuntu-24.04-amd64");
        std::fs::create_dir_all(&images).unwrap();
        std::fs::copy(stand_in_kernel(), images.join("vmlinuz")).unwrap();
        std::fs::copy(initramfs(), images.join("initrd")).unwrap();
        std::fs::write(images.join("live-server.iso"), vec![0x42u8; 64 * 1024]).unwrap();

        let dir = tempfile::tempdir().unwrap();
        Lab { server, ns, dir }
    }

    /// Powers on a VM with `mac` and waits until it powers itself off, or
    /// until a serial line matches `until` (then stops it). Returns its
    /// serial console log.
    fn boot(
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
            .args(["--timeout", &BOOT_TIMEOUT.as_secs().to_string()]);
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

    /// A blank 1 MiB disk whose boot sector prints `BOOTHERD-LOCALDISK` and
    /// powers the VM off: proof that the local-boot script handed over to it.
    fn local_disk(&self) -> PathBuf {
        let img = self.dir.path().join("disk.img");
        common::sh(Command::new(lab_script()).arg("local-disk").arg(&img));
        img
    }

    /// `bootherd machines`' STATE column for the row of `host` (a hostname or MAC).
    fn state(&self, host: &str) -> String {
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

    fn fail(&self, what: &str, serial: &str) -> ! {
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

    fn expect(&self, serial: &str, markers: &[&str], ctx: &str) {
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
    fn expect_install(&self, serial: &str, host: &str, ip: &str, ctx: &str) {
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

/// The site's own DHCP server on the lab network: dnsmasq in a namespace of
/// its own, plugged into the lab bridge, handing out 10.55.0.120-140 and
/// nothing about booting.
struct SiteDhcp {
    dnsmasq: Child,
    dir: tempfile::TempDir,
    // Last: deleting the namespace kills whatever is left in it.
    _ns: Netns,
}

impl SiteDhcp {
    fn start(lab: &Lab) -> SiteDhcp {
        require(&["dnsmasq"]);
        let ns = Netns::new("site");
        common::link(&lab.ns, "site0", &ns, "eth0");
        lab.ns.ip(&["link", "set", "site0", "master", "bh0"]);
        ns.ip(&["addr", "add", "10.55.0.254/24", "dev", "eth0"]);
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("dnsmasq.log")).unwrap();
        let dnsmasq = ns
            .cmd("dnsmasq")
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--user=root",
                "--port=0",
                "--interface=eth0",
                "--bind-interfaces",
                "--dhcp-range=10.55.0.120,10.55.0.140,255.255.255.0,1h",
                "--dhcp-authoritative",
                "--log-dhcp",
            ])
            .arg(format!(
                "--dhcp-leasefile={}",
                dir.path().join("leases").display()
            ))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start dnsmasq");
        SiteDhcp {
            dnsmasq,
            dir,
            _ns: ns,
        }
    }

    fn leases(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("leases")).unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default()
    }
}

impl Drop for SiteDhcp {
    fn drop(&mut self) {
        let _ = self.dnsmasq.kill();
        let _ = self.dnsmasq.wait();
    }
}

/// The address the stand-in's `udhcpc` reported on the serial console.
fn standin_address(serial: &str) -> Option<Ipv4Addr> {
    serial
        .lines()
        .find_map(|l| l.split("BOOTHERD-STANDIN: dhcp ip=").nth(1))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Proxy mode beside dnsmasq, the only address server on the network:
/// OVMF's UEFI PXE takes its address from dnsmasq and its boot file from
/// bootherd (proxy offer, then the boot-server ACK on port 4011), iPXE its
/// script URL from bootherd's proxy offer, and the install runs to the end.
/// Then a second machine does the same by UEFI HTTP boot (a proxy offer
/// with `HTTPClient` and the URL). dnsmasq holds the leases; bootherd none.
#[test]
fn uefi_pxe_and_http_boot_through_proxy_dhcp_beside_dnsmasq() {
    const MAC: &str = "52:54:00:12:34:58";
    const HTTP_MAC: &str = "52:54:00:12:34:5a";
    let machines = machine(MAC, "cp3", "control-plane", "10.55.0.13")
        + &machine(HTTP_MAC, "w5", "worker", "10.55.0.15");
    let config = lan_config(&machines)
        .replace("mode = \"authoritative\"", "mode = \"proxy\"")
        .replace("pool = \"10.55.0.200-10.55.0.250\"\n", "");
    let lab = Lab::start_with("qp", &config);
    let site = SiteDhcp::start(&lab);
    let t0 = Instant::now();
    let serial = lab.boot("proxy-install", MAC, "uefi", None, None);
    let context = |what: &str| format!("{what}\n--- dnsmasq ---\n{}", site.log());
    let station = serial
        .lines()
        .find_map(|l| l.split("Station IP address is ").nth(1))
        .and_then(|ip| ip.trim().parse::<Ipv4Addr>().ok());
    let from_dnsmasq = |ip: Ipv4Addr| (120..=140).contains(&ip.octets()[3]);
    if !station.is_some_and(from_dnsmasq) {
        lab.fail(
            &context(&format!(
                "the firmware's address {station:?} is not dnsmasq's"
            )),
            &serial,
        );
    }
    lab.expect(
        &serial,
        &[
            "NBP filename is ipxe.efi",
            "NBP file downloaded successfully",
            "bootherd: installing cp3 ",
            "BOOTHERD-STANDIN: init started",
            "BOOTHERD-STANDIN: seed ok hostname=cp3",
            "BOOTHERD-STANDIN: callback HTTP/1.",
            "BOOTHERD-STANDIN: done",
        ],
        "proxy boot",
    );
    if !standin_address(&serial).is_some_and(from_dnsmasq) {
        lab.fail(
            &context("the installer's address is not dnsmasq's"),
            &serial,
        );
    }
    assert_eq!(lab.state("cp3"), "installed");
    let log = lab.server.log();
    for line in log.lines().filter(|l| l.contains("proxyDHCP")) {
        eprintln!("{line}");
    }
    assert!(
        log.contains("on port 4011 -> Ack"),
        "no boot-server exchange on port 4011:\n{log}"
    );
    assert!(
        site.leases().contains(MAC),
        "dnsmasq holds no lease for {MAC}:\n{}",
        site.leases()
    );
    eprintln!(
        "proxy PXE flow passed in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let t0 = Instant::now();
    let serial = lab.boot("proxy-http-install", HTTP_MAC, "uefi-http", None, None);
    lab.expect(
        &serial,
        &[
            "Start HTTP Boot over IPv4",
            "URI: http://10.55.0.1:8080/ipxe.efi",
            "bootherd: installing w5 ",
            "BOOTHERD-STANDIN: seed ok hostname=w5",
            "BOOTHERD-STANDIN: callback HTTP/1.",
            "BOOTHERD-STANDIN: done",
        ],
        "proxy HTTP boot",
    );
    if serial.contains("NBP filename") || !standin_address(&serial).is_some_and(from_dnsmasq) {
        lab.fail(&context("not an HTTP boot with dnsmasq's address"), &serial);
    }
    assert_eq!(lab.state("w5"), "installed");
    let log = lab.server.log();
    let offered = log.lines().any(|l| {
        l.contains("proxyDHCP Discover on port 67 -> Offer")
            && l.contains("\"http://10.55.0.1:8080/ipxe.efi\"")
    });
    let fetched = log
        .lines()
        .any(|l| l.contains("GET") && l.contains("/ipxe.efi") && l.contains("200"));
    assert!(
        offered && fetched,
        "no HTTP-boot proxy offer (offered {offered}) or download of ipxe.efi (fetched {fetched}):\n{log}"
    );
    assert!(
        site.leases().contains(HTTP_MAC),
        "dnsmasq holds no lease for {HTTP_MAC}:\n{}",
        site.leases()
    );
    let store = bootherd::store::SqliteStore::open(&lab.server.data_dir).unwrap();
    use bootherd::store::Store;
    let leases = store.leases().unwrap();
    assert!(
        leases.is_empty(),
        "bootherd stored leases in proxy mode: {leases:?}"
    );
    eprintln!(
        "proxy HTTP flow passed in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// UEFI HTTP boot: OVMF with its PXE options off asks DHCP as `HTTPClient`,
/// gets the URL of ipxe.efi on bootherd's HTTP, downloads and runs it, and
/// the install runs to the end.
#[test]
fn uefi_http_boot_install() {
    const MAC: &str = "52:54:00:12:34:59";
    let lab = Lab::start("qh", &machine(MAC, "cp4", "control-plane", "10.55.0.14"));
    let t0 = Instant::now();
    let serial = lab.boot("http-install", MAC, "uefi-http", None, None);
    lab.expect_install(&serial, "cp4", "10.55.0.14", "HTTP boot");
    let log = lab.server.log();
    // bootherd's DHCP answer carried the URL, and the firmware fetched it.
    let offered = log.lines().any(|l| {
        l.contains("DHCP Discover -> OFFER") && l.contains("\"http://10.55.0.1:8080/ipxe.efi\"")
    });
    let fetched = log
        .lines()
        .any(|l| l.contains("GET") && l.contains("/ipxe.efi") && l.contains("200"));
    if !offered || !fetched {
        lab.fail(
            &format!("no HTTP-boot offer (offered {offered}) or HTTP download of ipxe.efi (fetched {fetched})"),
            &serial,
        );
    }
    if serial.contains("NBP filename") {
        lab.fail("the firmware PXE-booted instead of HTTP-booting", &serial);
    }
    // EDK2's HttpBootDxe reports the URI it took from bootherd's offer.
    lab.expect(
        &serial,
        &[
            "Start HTTP Boot over IPv4",
            "URI: http://10.55.0.1:8080/ipxe.efi",
        ],
        "HTTP boot",
    );
    eprintln!(
        "HTTP boot flow passed in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
