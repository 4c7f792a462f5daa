//! End to end: x86-64 QEMU virtual machines PXE-boot from `bootherd serve`
//! on a private network, in the lab of `tests/common/lab.rs`: a Debian kernel
//! with a busybox initramfs stands in for the Ubuntu installer.
//!
//! Needs root, `qemu-system-x86`, `ipxe-qemu`, `ipxe`, `ovmf`,
//! `linux-image-amd64`, `busybox-static`, `cpio`. TCG only: each boot takes
//! 20–60 s on two cores, so each is bounded by a timeout (`common::lab`).

mod common;

use common::lab::Lab;
use common::{lan_config, machine, require, Netns};
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
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
    // Without it Linux loaded by iPXE under OVMF panics.
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
