//! Raspberry Pi 4/5 network boot: the DHCP answer its bootloader needs and
//! the TFTP sequence it runs, against the running server.
//!
//! - DHCP: `bootherd serve` in a network namespace, and DISCOVER/REQUEST
//!   built from the bytes a Pi 4 and a Pi 5 bootloader send (options 60, 93,
//!   94, 97), sent from another namespace; the replies are checked byte for
//!   byte where the Pi needs exact bytes. Then TFTP from that namespace
//!   finds the Pi by the serial DHCP learned, and by its address.
//! - TFTP: the Pi 4 sequence (serial-prefix probe with `tsize 0`, ERROR
//!   "Early terminate" after the OACK, the same request again, then
//!   config.txt, start4.elf, fixup4.dat, config.txt, DTB, cmdline.txt,
//!   kernel, initrd) replayed at blksize 1024 and 1468 against the server in
//!   this process on loopback, every file compared with what it must be.
//!
//! Run as root (`cargo test --test pi_boot`).

mod common;

use bootherd::store::{SqliteStore, Store, Write};
use common::tftp_client::*;
use common::*;
use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::Decodable;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Option 43 as the Pi documentation gives it.
const PI_OPTION_43: &[u8] = &[
    0x06, 0x01, 0x03, 0x0a, 0x04, 0x00, 0x50, 0x58, 0x45, 0x09, 0x14, 0x00, 0x00, 0x11, b'R', b'a',
    b's', b'p', b'b', b'e', b'r', b'r', b'y', b' ', b'P', b'i', b' ', b'B', b'o', b'o', b't', 0xff,
];

const PI4_MAC: &str = "dc:a6:32:aa:bb:01";
const PI5_MAC: &str = "2c:cf:67:aa:bb:02";
const PI4_INSTALLED_MAC: &str = "dc:a6:32:aa:bb:03";
const X86_MAC: &str = "52:54:00:aa:00:41";
const UNKNOWN_PI_MAC: &str = "dc:a6:32:aa:bb:09";
const OLD_GUID_PI5_MAC: &str = "d8:3a:dd:aa:bb:05";
const PI4_SERIAL: u32 = 0x1a2b_3c4d;
const PI5_SERIAL: u32 = 0x5e6f_7081;

fn pi_machine(mac: &str, hostname: &str, ip: &str, platform: &str, serial: Option<&str>) -> String {
    let mut m = machine(mac, hostname, "worker", ip);
    m.truncate(m.trim_end().len());
    m.push_str(&format!("\nplatform = \"{platform}\"\n"));
    if let Some(s) = serial {
        m.push_str(&format!("serial = \"{s}\"\n"));
    }
    m.push('\n');
    m
}

/// The Pi bootloader's option 97: type 0, then `RPi4`/`RPi5`, the board
/// revision, the low 4 bytes of the MAC and the serial, little-endian words.
fn pi_guid(fourcc: &[u8; 4], revision: u32, mac: [u8; 6], serial: u32) -> Vec<u8> {
    let mut g = vec![0u8];
    g.extend_from_slice(fourcc);
    g.extend_from_slice(&revision.to_le_bytes());
    g.extend_from_slice(&mac[2..6]);
    g.extend_from_slice(&serial.to_le_bytes());
    g
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    mac.parse::<bootherd::mac::MacAddr>().unwrap().0
}

/// The options a Pi 4/5 bootloader (and an x86 BIOS PXE ROM) send, apart
/// from 53, 50 and 54: parameter list, vendor class, arch 0, UNDI 2.1.
fn pxe_options(guid: Option<Vec<u8>>) -> Vec<(u8, Vec<u8>)> {
    let mut o = vec![
        (
            55,
            vec![1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135],
        ),
        (60, b"PXEClient:Arch:00000:UNDI:002001".to_vec()),
        (93, vec![0, 0]),
        (94, vec![1, 2, 1]),
    ];
    if let Some(g) = guid {
        o.push((97, g));
    }
    o
}

/// A DHCP request as a PXE client builds it.
fn request(msg_type: u8, xid: u32, mac: [u8; 6], options: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut b = vec![0u8; 236];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[10] = 0x80; // broadcast flag: the Pi has no address yet
    b[28..34].copy_from_slice(&mac);
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, msg_type]);
    for (code, data) in options {
        b.push(*code);
        b.push(data.len() as u8);
        b.extend_from_slice(data);
    }
    b.push(255);
    b
}

/// Sends `packet` from the client namespace to the server and returns the
/// first reply with the same xid (hex-decoded), or `None` after 3 s.
fn exchange(lan: &Lan, packet: &[u8]) -> Option<Message> {
    let program = r#"
import socket, sys, time
p = bytes.fromhex(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind(('0.0.0.0', 68))
s.settimeout(0.5)
deadline = time.time() + 3
s.sendto(p, ('10.55.0.1', 67))
while time.time() < deadline:
    try:
        r, _ = s.recvfrom(2048)
    except socket.timeout:
        continue
    if r[4:8] == p[4:8] and r[0] == 2:
        print(r.hex())
        sys.exit(0)
print('none')
"#;
    let out = sh(lan
        .client
        .cmd("python3")
        .arg("-c")
        .arg(program)
        .arg(hex::encode(packet)));
    let text = String::from_utf8(out.stdout).unwrap();
    let text = text.trim();
    if text == "none" {
        return None;
    }
    let bytes = hex::decode(text).unwrap();
    Some(Message::decode(&mut dhcproto::Decoder::new(&bytes)).unwrap())
}

/// DISCOVER then REQUEST for the offered address: (OFFER, ACK).
fn dora(lan: &Lan, xid: u32, mac: &str, options: &[(u8, Vec<u8>)]) -> (Message, Message) {
    let mac = mac_bytes(mac);
    let offer = exchange(lan, &request(1, xid, mac, options)).expect("no OFFER");
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    let mut req_opts = options.to_vec();
    req_opts.push((50, offer.yiaddr().octets().to_vec()));
    req_opts.push((54, vec![10, 55, 0, 1]));
    let ack = exchange(lan, &request(3, xid + 1, mac, &req_opts)).expect("no ACK");
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    (offer, ack)
}

fn opt(m: &Message, code: OptionCode) -> Option<&DhcpOption> {
    m.opts().get(code)
}

/// The Pi answer: option 43 exactly as documented, option 60 `PXEClient`,
/// and siaddr = option 54 = option 66 = the server.
fn assert_pi_answer(m: &Message, what: &str) {
    let server = Ipv4Addr::new(10, 55, 0, 1);
    assert_eq!(
        opt(m, OptionCode::VendorExtensions),
        Some(&DhcpOption::VendorExtensions(PI_OPTION_43.to_vec())),
        "{what}: option 43"
    );
    assert_eq!(
        opt(m, OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec())),
        "{what}: option 60"
    );
    assert_eq!(m.siaddr(), server, "{what}: siaddr");
    assert_eq!(
        opt(m, OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(server)),
        "{what}: option 54"
    );
    assert_eq!(
        opt(m, OptionCode::TFTPServerName),
        Some(&DhcpOption::TFTPServerName(b"10.55.0.1".to_vec())),
        "{what}: option 66"
    );
}

fn assert_no_boot_answer(m: &Message, what: &str) {
    for code in [
        OptionCode::VendorExtensions,
        OptionCode::ClassIdentifier,
        OptionCode::TFTPServerName,
        OptionCode::BootfileName,
    ] {
        assert_eq!(opt(m, code), None, "{what}: {code:?} must not be sent");
    }
    assert!(m.siaddr().is_unspecified(), "{what}: siaddr {}", m.siaddr());
}

/// Reads `name` over TFTP (lock-step, no options) from `source` in the
/// client namespace: `Ok(bytes)` or `Err(error code)`.
fn tftp_from(lan: &Lan, source: &str, name: &str) -> Result<Vec<u8>, u16> {
    let program = r#"
import socket, struct, sys
src, name = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
s.settimeout(3)
s.sendto(b'\x00\x01' + name.encode() + b'\x00octet\x00', ('10.55.0.1', 69))
out, expect = b'', 1
while True:
    p, peer = s.recvfrom(65536)
    op, n = struct.unpack('!HH', p[:4])
    if op == 5:
        print('error', n)
        sys.exit(0)
    if op == 3 and n == expect:
        out += p[4:]
        s.sendto(struct.pack('!HH', 4, n), peer)
        expect = (expect + 1) % 65536
        if len(p) - 4 < 512:
            print('data', out.hex())
            sys.exit(0)
"#;
    let out = sh(lan
        .client
        .cmd("python3")
        .arg("-c")
        .arg(program)
        .arg(source)
        .arg(name));
    let text = String::from_utf8(out.stdout).unwrap();
    match text.trim().split_once(' ') {
        Some(("data", hex)) => Ok(hex::decode(hex).unwrap()),
        Some(("error", code)) => Err(code.parse().unwrap()),
        _ => panic!("tftp client: {text}"),
    }
}

/// Writes a fake extracted raspi boot partition under `data_dir` (random
/// bytes under the real names) and returns its directory.
fn fake_raspi_boot(data_dir: &Path, kernel_len: usize, initrd_len: usize) -> PathBuf {
    let boot = data_dir.join("images/ubuntu-24.04-raspi/boot");
    std::fs::create_dir_all(boot.join("overlays")).unwrap();
    for (name, len, seed) in [
        ("start4.elf", 2_300_000, 11),
        ("fixup4.dat", 5_400, 12),
        ("bcm2711-rpi-4-b.dtb", 55_000, 13),
        ("bcm2712-rpi-5-b.dtb", 78_000, 14),
        ("overlays/vc4-kms-v3d.dtbo", 3_000, 15),
        ("vmlinuz", kernel_len, 16),
        ("initrd.img", initrd_len, 17),
        // Ubuntu's own, which the served config.txt replaces.
        ("config.txt", 1_200, 18),
    ] {
        std::fs::write(boot.join(name), pattern(len, seed)).unwrap();
    }
    // The image the installer streams, with the digest `images fetch`
    // records: cmdline.txt names both.
    let image = data_dir
        .join("images")
        .join(bootherd::images::RASPI_SET)
        .join(bootherd::images::RASPI_IMAGE);
    let bytes = pattern(4_000, 19);
    std::fs::write(&image, &bytes).unwrap();
    let digest = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes));
    bootherd::images::verify::write_record(&image, &digest).unwrap();
    // The installer archive carries its own busybox (see README).
    common::fake_pi_busybox(data_dir);
    boot
}

#[test]
fn pi_dhcp_answers_and_tftp_finds_the_pi_by_learned_serial_and_address() {
    require(&["python3"]);
    let machines = [
        machine("52:54:00:aa:00:01", "cp1", "control-plane", "10.55.0.11"),
        machine(X86_MAC, "x86", "worker", "10.55.0.41"),
        pi_machine(PI4_MAC, "pi4", "10.55.0.31", "rpi4", None),
        pi_machine(PI5_MAC, "pi5", "10.55.0.32", "rpi5", None),
        pi_machine(PI4_INSTALLED_MAC, "pidone", "10.55.0.33", "rpi4", None),
        pi_machine(OLD_GUID_PI5_MAC, "piold", "10.55.0.35", "rpi5", None),
    ]
    .concat();
    let lan = Lan::new("pi", "10.55.0.1/24");
    let server = Server::start(&lan.server, &lan_config(&machines));
    let boot = fake_raspi_boot(&server.data_dir, 100_000, 200_000);
    SqliteStore::open(&server.data_dir)
        .unwrap()
        .write(&[Write::SetState {
            mac: PI4_INSTALLED_MAC.parse().unwrap(),
            state: bootherd::inventory::State::Installed,
            event: bootherd::inventory::Event::now("install-finished", "test"),
        }])
        .unwrap();
    // The raw client sends from an address of its own, outside the machines'.
    lan.client
        .ip(&["addr", "add", "10.55.0.77/24", "dev", "cl0"]);

    // A Pi 4 and a Pi 5, install due: the Pi answer in OFFER and ACK.
    let pi4_guid = pi_guid(b"RPi4", 0x00c0_3111, mac_bytes(PI4_MAC), PI4_SERIAL);
    let (offer, ack) = dora(&lan, 0x4000, PI4_MAC, &pxe_options(Some(pi4_guid)));
    for (m, what) in [(&offer, "Pi 4 OFFER"), (&ack, "Pi 4 ACK")] {
        assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 55, 0, 31), "{what}");
        assert_pi_answer(m, what);
    }
    let pi5_guid = pi_guid(b"RPi5", 0x00d0_4170, mac_bytes(PI5_MAC), PI5_SERIAL);
    let (offer, ack) = dora(&lan, 0x5000, PI5_MAC, &pxe_options(Some(pi5_guid)));
    for (m, what) in [(&offer, "Pi 5 OFFER"), (&ack, "Pi 5 ACK")] {
        assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 55, 0, 32), "{what}");
        assert_pi_answer(m, what);
    }

    // A bootloader set to the old option 97 (`DHCP_OPTION97=0`: the serial
    // four times) is recognised by its Raspberry Pi OUI, and answered as
    // the model its config says.
    let old_guid = [0x81, 0x70, 0x6f, 0x5e].repeat(4);
    let (offer, ack) = dora(&lan, 0x0500, OLD_GUID_PI5_MAC, &pxe_options(Some(old_guid)));
    for (m, what) in [(&offer, "old-GUID Pi OFFER"), (&ack, "old-GUID Pi ACK")] {
        assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 55, 0, 35), "{what}");
        assert_pi_answer(m, what);
    }

    // The same options 60/93/94 from a non-Pi MAC without option 97 are x86 BIOS PXE.
    let (offer, ack) = dora(&lan, 0x8600, X86_MAC, &pxe_options(None));
    for (m, what) in [(&offer, "x86 OFFER"), (&ack, "x86 ACK")] {
        assert_eq!(m.fname(), Some(&b"undionly.kpxe\0"[..]), "{what}: file");
        assert_eq!(
            opt(m, OptionCode::BootfileName),
            Some(&DhcpOption::BootfileName(b"undionly.kpxe".to_vec())),
            "{what}"
        );
        assert_eq!(opt(m, OptionCode::VendorExtensions), None, "{what}");
        assert_eq!(opt(m, OptionCode::ClassIdentifier), None, "{what}");
    }

    // An installed Pi: its address, and no boot answer.
    let done_guid = pi_guid(
        b"RPi4",
        0x00c0_3111,
        mac_bytes(PI4_INSTALLED_MAC),
        0x0bad_cafe,
    );
    let (offer, ack) = dora(
        &lan,
        0x3300,
        PI4_INSTALLED_MAC,
        &pxe_options(Some(done_guid)),
    );
    for (m, what) in [(&offer, "installed Pi OFFER"), (&ack, "installed Pi ACK")] {
        assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 55, 0, 33), "{what}");
        assert_no_boot_answer(m, what);
    }

    // A Pi that is not in the inventory: a pool address only.
    let stray = pi_guid(b"RPi4", 0x00c0_3111, mac_bytes(UNKNOWN_PI_MAC), 0x0000_0999);
    let (offer, ack) = dora(&lan, 0x9900, UNKNOWN_PI_MAC, &pxe_options(Some(stray)));
    for (m, what) in [(&offer, "unknown Pi OFFER"), (&ack, "unknown Pi ACK")] {
        let ip = m.yiaddr();
        assert!(
            (Ipv4Addr::new(10, 55, 0, 200)..=Ipv4Addr::new(10, 55, 0, 250)).contains(&ip),
            "{what}: {ip}"
        );
        assert_no_boot_answer(m, what);
    }

    // TFTP: the serial DHCP learned maps `<serial>/…` to the Pi, whatever
    // address asks; the Pi 5 gets no start4.elf.
    let pi4_config = tftp_from(&lan, "10.55.0.77", &format!("{PI4_SERIAL:08x}/config.txt"))
        .expect("the Pi 4's config.txt under its learned serial");
    let text = String::from_utf8(pi4_config).unwrap();
    assert!(text.contains("pi4 (Raspberry Pi 4)"), "{text}");
    assert_eq!(
        server.cli(&["render", "--mac", PI4_MAC, "pi-config"]),
        text,
        "`bootherd render` shows what TFTP serves"
    );
    assert!(text.contains("\nkernel=vmlinuz\n"), "{text}");
    assert_eq!(
        tftp_from(&lan, "10.55.0.77", &format!("{PI4_SERIAL:08x}/fixup4.dat")),
        Ok(std::fs::read(boot.join("fixup4.dat")).unwrap())
    );
    assert_eq!(
        tftp_from(&lan, "10.55.0.77", &format!("{PI5_SERIAL:08x}/start4.elf")),
        Err(1),
        "a Pi 5 has its firmware in its EEPROM"
    );
    let pi5_dtb = format!("{PI5_SERIAL:08x}/bcm2712-rpi-5-b.dtb");
    assert_eq!(
        tftp_from(&lan, "10.55.0.77", &pi5_dtb),
        Ok(std::fs::read(boot.join("bcm2712-rpi-5-b.dtb")).unwrap())
    );
    // Ubuntu's kernel under the Pi 5 firmware's default name, for the Pi 5 only.
    assert_eq!(
        tftp_from(
            &lan,
            "10.55.0.77",
            &format!("{PI5_SERIAL:08x}/kernel_2712.img")
        ),
        Ok(std::fs::read(boot.join("vmlinuz")).unwrap())
    );
    assert_eq!(
        tftp_from(
            &lan,
            "10.55.0.77",
            &format!("{PI4_SERIAL:08x}/kernel_2712.img")
        ),
        Err(1)
    );
    // A serial that is not ours: not found, so the Pi falls back to the root.
    assert_eq!(tftp_from(&lan, "10.55.0.77", "0badf00d/start4.elf"), Err(1));
    // At the root, the address DHCP gave maps to the Pi; another address gets
    // only the static boot directory (which has no config.txt).
    assert_eq!(tftp_from(&lan, "10.55.0.77", "config.txt"), Err(1));
    lan.client
        .ip(&["addr", "add", "10.55.0.32/24", "dev", "cl0"]);
    let pi5_config =
        String::from_utf8(tftp_from(&lan, "10.55.0.32", "config.txt").unwrap()).unwrap();
    assert!(pi5_config.contains("pi5 (Raspberry Pi 5)"), "{pi5_config}");
    // The Pi without a serial in its option 97 is found by its address.
    lan.client
        .ip(&["addr", "add", "10.55.0.35/24", "dev", "cl0"]);
    let old_config =
        String::from_utf8(tftp_from(&lan, "10.55.0.35", "config.txt").unwrap()).unwrap();
    assert!(
        old_config.contains("piold (Raspberry Pi 5)"),
        "{old_config}"
    );
    assert_eq!(tftp_from(&lan, "10.55.0.35", "start4.elf"), Err(1));
    // The installed Pi is sent away fast, even under its reserved address.
    lan.client
        .ip(&["addr", "add", "10.55.0.33/24", "dev", "cl0"]);
    let started = Instant::now();
    assert_eq!(tftp_from(&lan, "10.55.0.33", "start4.elf"), Err(1));
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(server);
}

// ---- the Pi 4 TFTP sequence, in process on loopback ----

const SEQ_SERIAL: &str = "9ffefdef";

/// 69 632 blocks of 1024 bytes (and a partial one): past the 65 535 a
/// 16-bit block number holds, so the transfer must roll over.
const PAST_ROLLOVER: usize = 68 * 1024 * 1024 + 517;
const KERNEL_LEN: usize = 9_000_000;
const INITRD_LEN: usize = 3_000_007;

struct PiTftpd {
    addr: SocketAddr,
    app: Arc<bootherd::app::App>,
    boot: PathBuf,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl PiTftpd {
    fn start(kernel_len: usize, initrd_len: usize) -> PiTftpd {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        let boot = fake_raspi_boot(&data, kernel_len, initrd_len);
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let machines = machine("52:54:00:aa:00:01", "cp1", "control-plane", "10.55.0.11")
            + &pi_machine(PI4_MAC, "pi4", "10.55.0.31", "rpi4", Some("9FFEFDEF"));
        let text = tftp_only_config(&data, &root, port, &machines);
        let (config, _) =
            bootherd::config::parse(&text).unwrap_or_else(|e| panic!("test config: {e:?}"));
        let store = SqliteStore::open(&data).unwrap();
        let app = Arc::new(bootherd::app::App::new(config, None, None, Arc::new(store)));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let serving = app.clone();
        rt.spawn(async move {
            if let Err(e) = bootherd::tftp::serve(serving).await {
                panic!("TFTP server failed: {e:#}");
            }
        });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while fetch(addr, "nothing-here", &[], Duration::from_millis(200))
            .is_err_and(|e| e.0 == 0xffff)
        {
            assert!(Instant::now() < deadline, "the TFTP server did not answer");
        }
        PiTftpd {
            addr,
            app,
            boot,
            _rt: rt,
            _dir: dir,
        }
    }

    fn file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.boot.join(name)).unwrap()
    }
}

/// The Pi's first request of a file: `tsize 0` and its blksize; it reads the
/// size from the OACK, aborts with ERROR "Early terminate" and asks again
/// from the same port. Returns the size the OACK announced.
fn probe_and_abort(
    sock: &UdpSocket,
    server: SocketAddr,
    name: &str,
    blksize: &str,
) -> Result<u64, u16> {
    let opts = [("tsize", "0"), ("blksize", blksize)];
    sock.send_to(&rrq(name.as_bytes(), "octet", &opts), server)
        .unwrap();
    let (reply, transfer) = recv(sock).expect("no answer to the tsize probe");
    let oack = match reply {
        Reply::Oack(o) => o,
        Reply::Error(code, _) => return Err(code),
        other => panic!("{name}: expected an OACK, got {other:?}"),
    };
    assert!(
        oack.contains(&("blksize".into(), blksize.into())),
        "{name}: OACK {oack:?}"
    );
    let size = oack
        .iter()
        .find(|(k, _)| k == "tsize")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or_else(|| panic!("{name}: no tsize in {oack:?}"));
    let mut err = vec![0, 5, 0, 0];
    err.extend_from_slice(b"Early terminate\0");
    sock.send_to(&err, transfer).unwrap();
    Ok(size)
}

/// One file the Pi way: probe, abort, ask again at once, read it whole.
fn pi_get(sock: &UdpSocket, server: SocketAddr, name: &str, blksize: &str) -> Result<Vec<u8>, u16> {
    let size = probe_and_abort(sock, server, name, blksize)?;
    let opts = [("tsize", "0"), ("blksize", blksize)];
    let data = fetch_on(sock, server, name, &opts, None).map_err(|(code, _)| code)?;
    assert_eq!(
        data.len() as u64,
        size,
        "{name}: tsize and the bytes served differ"
    );
    Ok(data)
}

/// Asserts a generated file: equal to what the installer function gives,
/// or, while that function fails, refused rather than served half-made.
fn assert_generated(got: Result<Vec<u8>, u16>, want: anyhow::Result<Vec<u8>>, what: &str) {
    let want = want.unwrap_or_else(|e| panic!("{what}: the installer cannot make it: {e:#}"));
    assert_same(
        &got.unwrap_or_else(|c| panic!("{what}: error {c}")),
        &want,
        what,
    );
}

fn pi4_sequence(t: &PiTftpd, blksize: &str) {
    let config = t.app.config();
    let pi = config.machine_by_name("pi4").unwrap().clone();
    let sock = client_socket(Duration::from_secs(3));
    let prefix = format!("{SEQ_SERIAL}/");
    let get = |name: &str| pi_get(&sock, t.addr, &format!("{prefix}{name}"), blksize);

    // The probe of start4.elf under its serial: found, so the Pi keeps the prefix.
    assert_same(
        &get("start4.elf").unwrap(),
        &t.file("start4.elf"),
        "start4.elf probe",
    );
    let rendered =
        bootherd::pi::boot_files::render_config(&t.app, &pi, bootherd::boot::PiModel::Pi4)
            .unwrap()
            .into_bytes();
    let served_config = get("config.txt").unwrap();
    assert_same(&served_config, &rendered, "config.txt");
    let text = String::from_utf8(served_config).unwrap();
    for line in [
        "arm_64bit=1",
        "kernel=vmlinuz",
        "initramfs initrd.img followkernel",
        "[pi4]",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "config.txt lacks {line:?}:\n{text}"
        );
    }
    assert_ne!(
        rendered,
        t.file("config.txt"),
        "Ubuntu's own config.txt is not served"
    );
    assert_same(
        &get("start4.elf").unwrap(),
        &t.file("start4.elf"),
        "start4.elf",
    );
    assert_same(
        &get("fixup4.dat").unwrap(),
        &t.file("fixup4.dat"),
        "fixup4.dat",
    );
    assert_same(&get("config.txt").unwrap(), &rendered, "config.txt again");
    assert_same(
        &get("bcm2711-rpi-4-b.dtb").unwrap(),
        &t.file("bcm2711-rpi-4-b.dtb"),
        "DTB",
    );
    assert_same(
        &get("overlays/vc4-kms-v3d.dtbo").unwrap(),
        &t.file("overlays/vc4-kms-v3d.dtbo"),
        "overlay",
    );
    let cmdline = bootherd::pi::installer::cmdline(&t.app, &config, &pi).map(String::into_bytes);
    assert_generated(get("cmdline.txt"), cmdline, "cmdline.txt");
    assert_same(&get("vmlinuz").unwrap(), &t.file("vmlinuz"), "kernel");
    // The appendix starts on a 4-byte boundary (the kernel skips an archive
    // that doesn't); the fixture initrds have odd lengths so that matters here.
    let initrd = bootherd::pi::installer::initrd_appendix(&t.app, &config, &pi)
        .map(|appendix| bootherd::pi::installer::concatenate(&t.file("initrd.img"), &appendix));
    assert_generated(get("initrd.img"), initrd, "initrd.img + installer appendix");
}

/// At blksize 1024 the initrd (Ubuntu's, then the installer's appendix) is
/// past 65 535 blocks: the block number rolls over inside the concatenation.
#[test]
fn pi4_tftp_sequence_blksize_1024_with_block_number_rollover() {
    let t = PiTftpd::start(KERNEL_LEN, PAST_ROLLOVER);
    let started = Instant::now();
    pi4_sequence(&t, "1024");
    eprintln!("Pi 4 sequence at blksize 1024: {:?}", started.elapsed());
}

#[test]
fn pi4_tftp_sequence_blksize_1468() {
    let t = PiTftpd::start(KERNEL_LEN, INITRD_LEN);
    pi4_sequence(&t, "1468");
}

/// Rollover on a file served whole whatever the installer's state: the
/// kernel, made past 65 535 blocks here.
#[test]
fn a_kernel_past_65535_blocks_arrives_whole() {
    let t = PiTftpd::start(PAST_ROLLOVER, INITRD_LEN);
    let sock = client_socket(Duration::from_secs(3));
    let started = Instant::now();
    let data = pi_get(&sock, t.addr, &format!("{SEQ_SERIAL}/vmlinuz"), "1024").unwrap();
    eprintln!(
        "{} bytes at blksize 1024 in {:?}",
        data.len(),
        started.elapsed()
    );
    assert!(data.len() / 1024 > 65_535);
    assert_same(&data, &t.file("vmlinuz"), "a kernel of 69 633 blocks");
}

#[test]
fn an_installed_pi_and_strangers_get_no_pi_files() {
    let t = PiTftpd::start(KERNEL_LEN, INITRD_LEN);
    let sock = client_socket(Duration::from_secs(3));
    // 127.0.0.1 is no Pi's address: the root is the static boot directory only.
    assert_eq!(pi_get(&sock, t.addr, "start4.elf", "1024"), Err(1));
    assert_eq!(pi_get(&sock, t.addr, "0badf00d/start4.elf", "1024"), Err(1));
    // Hostile names under a Pi's prefix are refused like anywhere else.
    let err = fetch(
        t.addr,
        &format!("{SEQ_SERIAL}/../../etc/passwd"),
        &[],
        Duration::from_secs(2),
    );
    assert!(matches!(err, Err((1 | 2, _))), "{err:?}");
    t.app
        .store
        .write(&[Write::SetState {
            mac: PI4_MAC.parse().unwrap(),
            state: bootherd::inventory::State::Installed,
            event: bootherd::inventory::Event::now("install-finished", "test"),
        }])
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        pi_get(&sock, t.addr, &format!("{SEQ_SERIAL}/start4.elf"), "1024"),
        Err(1),
        "an installed Pi is sent on to its disk"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}
