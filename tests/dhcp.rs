//! DHCP against real clients (ISC dhclient, busybox udhcpc, perfdhcp) with
//! `bootherd serve` in one network namespace and the client in another.
//! Run as root (`cargo test --test dhcp`).

mod common;

use bootherd::store::{SqliteStore, Store};
use common::*;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CP1_MAC: &str = "52:54:00:aa:00:01";
const CP1_IP: &str = "10.55.0.11";

/// The test LAN config with one reserved machine. TFTP is off: these tests
/// are about DHCP only.
fn config() -> String {
    let mut c = lan_config(&machine(CP1_MAC, "cp1", "control-plane", CP1_IP));
    c.push_str("[tftp]\nenabled = false\nroot = \"@DATA@/tftp\"\n");
    c
}

fn set_client_mac(lan: &Lan, mac: &str) {
    set_mac(&lan.client, mac);
}

/// Gives `cl0` in `ns` a new MAC and no address.
fn set_mac(ns: &Netns, mac: &str) {
    ns.ip(&["link", "set", "cl0", "down"]);
    ns.ip(&["addr", "flush", "dev", "cl0"]);
    ns.ip(&["link", "set", "cl0", "address", mac]);
    ns.ip(&["link", "set", "cl0", "up"]);
}

/// The IPv4 address on the client's `cl0`, if any.
fn client_address(lan: &Lan) -> Option<Ipv4Addr> {
    address_of_cl0(&lan.client)
}

fn address_of_cl0(ns: &Netns) -> Option<Ipv4Addr> {
    let out = ns.ip(&["-4", "-o", "addr", "show", "dev", "cl0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let word = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    word.split('/').next()?.parse().ok()
}

fn in_pool(ip: Ipv4Addr) -> bool {
    (Ipv4Addr::new(10, 55, 0, 200)..=Ipv4Addr::new(10, 55, 0, 250)).contains(&ip)
}

fn store(server: &Server) -> SqliteStore {
    SqliteStore::open(&server.data_dir).unwrap()
}

fn lease_of(server: &Server, mac: &str) -> Option<Ipv4Addr> {
    let mac = mac.parse().unwrap();
    store(server)
        .leases()
        .unwrap()
        .into_iter()
        .find(|l| l.mac == mac)
        .map(|l| l.ip)
}

/// ISC dhclient with its own lease, pid and config files (nothing of the host's).
struct Dhclient {
    dir: tempfile::TempDir,
}

impl Dhclient {
    fn new() -> Dhclient {
        let dir = tempfile::tempdir().unwrap();
        // Not asking for DNS or host name keeps dhclient-script away from the
        // host's /etc/resolv.conf and host name (the namespace shares the filesystem).
        std::fs::write(
            dir.path().join("dhclient.conf"),
            "timeout 20;\nretry 1;\nrequest subnet-mask, broadcast-address, routers;\n",
        )
        .unwrap();
        Dhclient { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// One acquisition (`-1`); returns whether dhclient got a lease. It then
    /// stays in the background to renew; it is stopped here.
    fn run(&self, lan: &Lan) -> bool {
        self.run_on(&lan.client, "cl0")
    }

    /// One acquisition on `iface` in namespace `ns`.
    fn run_on(&self, ns: &Netns, iface: &str) -> bool {
        let status = ns
            .cmd("timeout")
            .arg("60")
            .args(["dhclient", "-4", "-1", "-v", "-sf", "/sbin/dhclient-script"])
            .arg("-cf")
            .arg(self.file("dhclient.conf"))
            .arg("-lf")
            .arg(self.file("leases"))
            .arg("-pf")
            .arg(self.file("pid"))
            .arg(iface)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        self.stop();
        status.success()
    }

    fn stop(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.file("pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            let _ = std::fs::remove_file(self.file("pid"));
        }
    }

    fn lease_file(&self) -> String {
        std::fs::read_to_string(self.file("leases")).unwrap_or_default()
    }
}

impl Drop for Dhclient {
    fn drop(&mut self) {
        self.stop();
    }
}

/// busybox udhcpc with a script that sets the address and records each event
/// (`bound 10.55.0.200 cp1`, `renew …`) in a file.
struct Udhcpc {
    dir: tempfile::TempDir,
}

impl Udhcpc {
    fn new() -> Udhcpc {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events");
        let script = format!(
            "#!/bin/sh\necho \"$1 ${{ip:-}} ${{hostname:-}}\" >> {events}\ncase \"$1\" in\n  deconfig) ip -4 addr flush dev \"$interface\" ;;\n  bound|renew) ip addr replace \"$ip/${{mask:-24}}\" dev \"$interface\" ;;\nesac\n",
            events = events.display()
        );
        let path = dir.path().join("script");
        std::fs::write(&path, script).unwrap();
        sh(Command::new("chmod").arg("+x").arg(&path));
        Udhcpc { dir }
    }

    fn command(&self, lan: &Lan, extra: &[&str]) -> Command {
        let mut c = lan.client.cmd("busybox");
        c.args([
            "udhcpc", "-f", "-i", "cl0", "-t", "5", "-T", "1", "-A", "1", "-s",
        ])
        .arg(self.dir.path().join("script"))
        .args(extra);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    }

    /// One acquisition that exits when bound (`-n -q`); the address it got.
    fn acquire(&self, lan: &Lan) -> Option<Ipv4Addr> {
        let ok = self.command(lan, &["-n", "-q"]).status().unwrap().success();
        if !ok {
            return None;
        }
        self.events()
            .iter()
            .rev()
            .find(|e| e[0] == "bound")
            .and_then(|e| e.get(1)?.parse().ok())
    }

    /// A udhcpc that keeps running (renewals on SIGUSR1).
    fn spawn(&self, lan: &Lan) -> Child {
        self.command(lan, &[]).spawn().unwrap()
    }

    fn events(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.dir.path().join("events"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .filter(|e: &Vec<String>| !e.is_empty())
            .collect()
    }

    fn wait_for(&self, event: &str, count: usize) -> Vec<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let matching: Vec<_> = self
                .events()
                .into_iter()
                .filter(|e| e[0] == event)
                .collect();
            if matching.len() >= count {
                return matching;
            }
            assert!(
                Instant::now() < deadline,
                "udhcpc: no `{event}` #{count}; events: {:?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Sends raw UDP payloads (hex) from the client namespace to the server's port 67.
fn send_raw(lan: &Lan, from: &str, payloads: &[Vec<u8>]) {
    let hex: Vec<String> = payloads.iter().map(hex::encode).collect();
    let program = format!(
        "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('{from}',0))\nfor h in sys.argv[1:]:\n    s.sendto(bytes.fromhex(h),('10.55.0.1',67))\n"
    );
    sh(lan.client.cmd("python3").arg("-c").arg(program).args(&hex));
}

/// A DHCP request as a client would build it.
fn request(msg_type: u8, mac: [u8; 6], options: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = vec![0u8; 236];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
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

fn mac_bytes(mac: &str) -> [u8; 6] {
    mac.parse::<bootherd::mac::MacAddr>().unwrap().0
}

fn assert_alive(server: &Server) {
    let alive = Command::new("kill")
        .args(["-0", &server.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(alive, "bootherd died:\n{}", server.log());
}

#[test]
fn dhclient_gets_the_reservation_or_a_pool_address_and_keeps_it() {
    require(&["dhclient", "python3"]);
    let lan = Lan::new("dc", "10.55.0.1/24");
    let server = Server::start(&lan.server, &config());

    set_client_mac(&lan, CP1_MAC);
    let reserved = Dhclient::new();
    assert!(
        reserved.run(&lan),
        "dhclient got no lease:\n{}",
        server.log()
    );
    assert_eq!(client_address(&lan), Some(CP1_IP.parse().unwrap()));
    assert!(reserved
        .lease_file()
        .contains(&format!("fixed-address {CP1_IP};")));
    assert!(reserved
        .lease_file()
        .contains("option dhcp-server-identifier 10.55.0.1;"));

    let unknown_mac = "52:54:00:bb:00:07";
    set_client_mac(&lan, unknown_mac);
    let pooled = Dhclient::new();
    assert!(pooled.run(&lan), "dhclient got no lease:\n{}", server.log());
    let first = client_address(&lan).expect("an address");
    assert!(in_pool(first), "{first} is not from the pool");
    assert_eq!(
        lease_of(&server, unknown_mac),
        Some(first),
        "the lease is in the store"
    );

    // Again with the same lease file (INIT-REBOOT): the same address.
    lan.client.ip(&["addr", "flush", "dev", "cl0"]);
    assert!(pooled.run(&lan));
    assert_eq!(client_address(&lan), Some(first));

    let machines = server.cli(&["machines"]);
    let row = machines
        .lines()
        .find(|l| l.contains(unknown_mac))
        .unwrap_or_else(|| panic!("{unknown_mac} not listed:\n{machines}"));
    assert!(row.contains("discovered"), "{row}");
    let row = machines.lines().find(|l| l.contains(CP1_MAC)).unwrap();
    assert!(!row.contains("discovered"), "{row}");
}

#[test]
fn udhcpc_gets_the_reservation_or_a_pool_address_and_renews_it() {
    require(&["busybox"]);
    let lan = Lan::new("uc", "10.55.0.1/24");
    let server = Server::start(&lan.server, &config());

    set_client_mac(&lan, CP1_MAC);
    let reserved = Udhcpc::new();
    assert_eq!(
        reserved.acquire(&lan),
        Some(CP1_IP.parse().unwrap()),
        "{}",
        server.log()
    );
    let bound = reserved.wait_for("bound", 1);
    assert_eq!(
        bound[0].get(2).map(String::as_str),
        Some("cp1"),
        "option 12 carries the configured hostname"
    );

    set_client_mac(&lan, "52:54:00:bb:00:08");
    let pooled = Udhcpc::new();
    let mut child = pooled.spawn(&lan);
    let bound = pooled.wait_for("bound", 1);
    let address: Ipv4Addr = bound[0][1].parse().unwrap();
    assert!(in_pool(address), "{address}");
    // SIGUSR1 makes udhcpc renew now (RENEWING: unicast REQUEST with ciaddr).
    sh(Command::new("kill").args(["-USR1", &child.id().to_string()]));
    let renewed = pooled.wait_for("renew", 1);
    assert_eq!(
        renewed[0][1],
        address.to_string(),
        "the renewal keeps the address"
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(server.log().contains("DHCP Request -> ACK"));
    assert!(
        !server.log().contains("-> NAK"),
        "no NAK expected:\n{}",
        server.log()
    );
}

#[test]
fn leases_survive_kill_9_and_restart() {
    require(&["busybox"]);
    let lan = Lan::new("k9", "10.55.0.1/24");
    let mut server = Server::start(&lan.server, &config());
    let first_mac = "52:54:00:bb:00:09";
    set_client_mac(&lan, first_mac);
    let client = Udhcpc::new();
    let address = client.acquire(&lan).expect("a lease");
    // The ACK was sent, so the lease must already be on disk.
    server.kill9();
    assert_eq!(
        lease_of(&server, first_mac),
        Some(address),
        "acknowledged lease is durable"
    );
    server.restart();

    // Another client must not get that address…
    set_client_mac(&lan, "52:54:00:bb:00:0a");
    let other = Udhcpc::new().acquire(&lan).expect("a lease");
    assert_ne!(other, address);
    // …and the first client gets it back (a fresh DISCOVER, nothing requested).
    set_client_mac(&lan, first_mac);
    assert_eq!(Udhcpc::new().acquire(&lan), Some(address));
}

#[test]
fn malformed_packets_change_nothing_and_clients_are_served_after() {
    require(&["busybox", "python3"]);
    let lan = Lan::new("mf", "10.55.0.1/24");
    let server = Server::start(&lan.server, &config());
    lan.client
        .ip(&["addr", "add", "10.55.0.99/24", "dev", "cl0"]);
    let mac = mac_bytes("52:54:00:bb:00:0b");
    let good = request(1, mac, &[(55, &[1, 3, 6])]);
    let mut bad_option_len = good.clone();
    bad_option_len[244] = 200; // option 55 claims more bytes than the packet has
    let mut bootreply = good.clone();
    bootreply[0] = 2;
    let mut long_hw = good.clone();
    long_hw[2] = 17;
    let mut no_type = good.clone();
    no_type[240..243].copy_from_slice(&[0, 0, 0]);
    let random: Vec<Vec<u8>> = (0..50u32)
        .map(|i| {
            (0..(i * 13 % 600))
                .map(|j| (j.wrapping_mul(2_654_435_761).wrapping_add(i) >> 7) as u8)
                .collect()
        })
        .collect();
    let mut packets = vec![
        good[..100].to_vec(),
        good[..239].to_vec(),
        bad_option_len,
        request(1, mac, &[(50, &[10, 55, 0])]),
        bootreply,
        long_hw,
        no_type,
        Vec::new(),
    ];
    packets.extend(random);
    send_raw(&lan, "10.55.0.99", &packets);
    std::thread::sleep(Duration::from_millis(500));
    assert_alive(&server);
    let s = store(&server);
    assert!(
        s.leases().unwrap().is_empty(),
        "no lease from malformed packets"
    );
    assert!(
        s.machines().unwrap().is_empty(),
        "no machine recorded from malformed packets"
    );
    assert!(
        server.log().contains("DHCP packet dropped"),
        "drops are logged at debug"
    );

    lan.client.ip(&["addr", "flush", "dev", "cl0"]);
    set_client_mac(&lan, "52:54:00:bb:00:0c");
    let address = Udhcpc::new()
        .acquire(&lan)
        .expect("a real client is still served");
    assert!(in_pool(address));
}

#[test]
fn a_declined_address_is_not_offered_again() {
    require(&["busybox", "python3"]);
    let lan = Lan::new("de", "10.55.0.1/24");
    let server = Server::start(&lan.server, &config());
    let mac = "52:54:00:bb:00:0d";
    set_client_mac(&lan, mac);
    let address = Udhcpc::new().acquire(&lan).expect("a lease");
    // The client finds the address in use (e.g. by ARP) and declines it.
    let decline = request(
        4,
        mac_bytes(mac),
        &[(50, &address.octets()), (54, &[10, 55, 0, 1])],
    );
    send_raw(&lan, &address.to_string(), &[decline]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while store(&server).quarantined().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "DECLINE not recorded:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(store(&server).quarantined().unwrap()[0].0, address);
    assert_eq!(lease_of(&server, mac), None, "the declined lease is gone");

    lan.client.ip(&["addr", "flush", "dev", "cl0"]);
    let again = Udhcpc::new().acquire(&lan).expect("a new lease");
    assert_ne!(again, address, "the declined address is not offered again");
    set_client_mac(&lan, "52:54:00:bb:00:0e");
    assert_ne!(
        Udhcpc::new().acquire(&lan),
        Some(address),
        "nor to anyone else"
    );
}

#[test]
fn perfdhcp_as_a_relay_completes_every_exchange() {
    require(&["perfdhcp"]);
    let lan = Lan::new("pd", "10.55.0.1/24");
    let server = Server::start(&lan.server, &config());
    lan.client
        .ip(&["addr", "add", "10.55.0.2/24", "dev", "cl0"]);
    // 40 simulated clients behind a relay (giaddr 10.55.0.2), 2 s at 100/s.
    let out = lan
        .client
        .cmd("perfdhcp")
        .args([
            "-4",
            "-g",
            "single",
            "-r",
            "100",
            "-p",
            "2",
            "-R",
            "40",
            // Replies still in flight at the end are not drops (see below).
            "-W",
            "1000000",
            "-l",
            "10.55.0.2",
            "10.55.0.1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "perfdhcp rc {:?}:\n{text}\n{}",
        out.status.code(),
        server.log()
    );
    let drops: Vec<&str> = text.lines().filter(|l| l.starts_with("drops:")).collect();
    assert_eq!(drops, ["drops: 0", "drops: 0"], "{text}");
    let leases = store(&server).leases().unwrap();
    assert_eq!(leases.len(), 40, "one lease per simulated client");
    assert!(leases.iter().all(|l| in_pool(l.ip)));
}

/// bootherd on 10.55.0.1 serving its own network and two rack networks
/// behind relays, each with its own pool, gateway and DNS; worker w1 is
/// reserved in rack 10.66.0.0/24.
fn relayed_config() -> String {
    r#"[server]
interface = "bh0"
address = "10.55.0.1"
http_port = 8080
data_dir = "@DATA@"

[dhcp]
mode = "authoritative"
lease_time = "1h"

[[dhcp.subnet]]
subnet = "10.55.0.0/24"
gateway = "10.55.0.1"
dns = ["10.55.0.1"]
pool = "10.55.0.200-10.55.0.250"

[[dhcp.subnet]]
subnet = "10.66.0.0/24"
gateway = "10.66.0.1"
dns = ["10.66.0.53"]
pool = "10.66.0.100-10.66.0.199"

[[dhcp.subnet]]
subnet = "10.77.0.0/24"
gateway = "10.77.0.1"
dns = ["10.77.0.53"]
pool = "10.77.0.100-10.77.0.199"

[cluster]
name = "lab"
kubernetes_version = "1.36"
endpoint = "10.55.0.100:6443"
load_balancer = "stacked"

[tftp]
enabled = false
root = "@DATA@/tftp"

"#
    .to_string()
        + &machine(CP1_MAC, "cp1", "control-plane", CP1_IP)
        + &machine(W1_MAC, "w1", "worker", W1_IP)
}

const W1_MAC: &str = "52:54:00:aa:00:21";

/// Captures (AF_PACKET) every BOOTREPLY on the interface in argv[1] and
/// prints its option 82 in hex, one line per reply ("-" when it has none).
const REPLY_OPTION_82_CAPTURE: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
s.bind((sys.argv[1], 0))
print("ready", flush=True)
while True:
    f = s.recv(4096)
    ip = f[14:]
    if ip[9] != 17:
        continue
    udp = ip[(ip[0] & 15) * 4:]
    d = udp[8:]
    if udp[0:2] != b"\x00\x43" or len(d) < 240 or d[0] != 2:
        continue
    found, i = "-", 240
    while i + 1 < len(d) and d[i] != 255:
        if d[i] == 0:
            i += 1
            continue
        if d[i] == 82:
            found = d[i + 2:i + 2 + d[i + 1]].hex()
        i += 2 + d[i + 1]
    print(found, flush=True)
"#;
const W1_IP: &str = "10.66.0.21";

fn in_range(ip: Ipv4Addr, first: [u8; 4], last: [u8; 4]) -> bool {
    (Ipv4Addr::from(first)..=Ipv4Addr::from(last)).contains(&ip)
}

/// client (rack 10.66.0.0/24) — `dhcrelay` (isc-dhcp-relay, adding option
/// 82) — bootherd: ISC dhclient on the far side gets the address of the
/// rack's `[[dhcp.subnet]]`, its reservation or that rack's pool.
#[test]
fn dhclient_behind_dhcrelay_gets_an_address_of_its_rack_subnet() {
    require(&["dhclient", "dhcrelay"]);
    let server_ns = Netns::new("rls");
    let relay = Netns::new("rlr");
    let client = Netns::new("rlc");
    link(&server_ns, "bh0", &relay, "up0");
    link(&relay, "dn0", &client, "cl0");
    server_ns.ip(&["addr", "add", "10.55.0.1/24", "dev", "bh0"]);
    server_ns.ip(&["route", "add", "10.66.0.0/24", "via", "10.55.0.254"]);
    relay.ip(&["addr", "add", "10.55.0.254/24", "dev", "up0"]);
    relay.ip(&["addr", "add", "10.66.0.1/24", "dev", "dn0"]);
    sh(relay.cmd("sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
    let server = Server::start(&server_ns, &relayed_config());

    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("dhcrelay.pid");
    // -a: add option 82 (circuit id = dn0), which bootherd must echo; the
    // capture on the relay's uplink shows what came back.
    let mut dhcrelay = relay
        .cmd("dhcrelay")
        .args(["-4", "-d", "-a", "-id", "dn0", "-iu", "up0", "-pf"])
        .arg(&pid_file)
        .arg("10.55.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dhcrelay");
    let mut capture = relay
        .cmd("python3")
        .args(["-c", REPLY_OPTION_82_CAPTURE, "up0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut captured = std::io::BufReader::new(capture.stdout.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut captured, &mut ready).unwrap();
    assert_eq!(ready.trim(), "ready", "the capture did not start");
    std::thread::sleep(Duration::from_millis(300));

    for (mac, expect) in [
        (W1_MAC, None),
        (
            "52:54:00:bb:06:01",
            Some(([10, 66, 0, 100], [10, 66, 0, 199])),
        ),
    ] {
        set_mac(&client, mac);
        let dhclient = Dhclient::new();
        let got = dhclient.run_on(&client, "cl0");
        let address = address_of_cl0(&client);
        if !got || address.is_none() {
            let _ = dhcrelay.kill();
            let out = dhcrelay.wait_with_output().unwrap();
            panic!(
                "dhclient behind dhcrelay got no lease for {mac}\n--- dhcrelay ---\n{}\n--- bootherd ---\n{}",
                String::from_utf8_lossy(&out.stderr),
                server.log()
            );
        }
        let address = address.unwrap();
        match expect {
            None => assert_eq!(
                address,
                W1_IP.parse::<Ipv4Addr>().unwrap(),
                "w1's reservation"
            ),
            Some((first, last)) => assert!(
                in_range(address, first, last),
                "{mac} got {address}, outside the rack pool"
            ),
        }
        assert!(
            dhclient.lease_file().contains("option routers 10.66.0.1;"),
            "the rack's gateway:\n{}",
            dhclient.lease_file()
        );
        assert_eq!(lease_of(&server, mac), Some(address), "the lease is stored");
    }
    let _ = Command::new("kill").arg(capture.id().to_string()).status();
    let _ = capture.wait();
    let mut replies = String::new();
    std::io::Read::read_to_string(&mut captured, &mut replies).unwrap();
    let echoed: Vec<&str> = replies.lines().collect();
    // Two DORAs: two OFFERs and two ACKs, each with dhcrelay's circuit id
    // (sub-option 1, "dn0") exactly as dhcrelay sent it.
    assert!(
        echoed.len() >= 4,
        "replies on the relay's uplink: {echoed:?}"
    );
    assert!(
        echoed.iter().all(|o| *o == "0103646e30"),
        "option 82 not echoed unchanged: {echoed:?}"
    );
    let _ = dhcrelay.kill();
    let _ = dhcrelay.wait();
}

/// Two perfdhcp runs at once, each a relay (`-l` sets giaddr) on its own
/// rack network: every client gets an address of its rack's pool, 0 drops.
#[test]
fn perfdhcp_relays_on_two_subnets_get_addresses_from_each() {
    require(&["perfdhcp"]);
    let lan = Lan::new("p2", "10.55.0.1/24");
    for rack in ["10.66.0.0/24", "10.77.0.0/24"] {
        lan.server.ip(&["route", "add", rack, "dev", "bh0"]);
    }
    for relay in ["10.66.0.1/24", "10.77.0.1/24"] {
        lan.client.ip(&["addr", "add", relay, "dev", "cl0"]);
    }
    lan.client
        .ip(&["route", "add", "10.55.0.0/24", "dev", "cl0"]);
    let server = Server::start(&lan.server, &relayed_config());
    // Each rack's simulated clients have their own MACs (`-b`).
    let perf = |relay: &str, macs: &str| {
        lan.client
            .cmd("perfdhcp")
            .args(["-4", "-g", "single", "-r", "50", "-p", "2", "-R", "40"])
            // Wait 1 s after the run for replies still in flight, so a
            // slow fsync on a loaded host is not counted as a drop.
            .args(["-W", "1000000"])
            .args(["-b", &format!("mac={macs}")])
            .args(["-l", relay, "10.55.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let runs = [
        perf("10.66.0.1", "00:0c:01:66:00:00"),
        perf("10.77.0.1", "00:0c:01:77:00:00"),
    ];
    for (run, relay) in runs.into_iter().zip(["10.66.0.1", "10.77.0.1"]) {
        let out = run.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "perfdhcp via {relay} rc {:?}:\n{text}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr),
            server.log()
        );
        let drops: Vec<&str> = text.lines().filter(|l| l.starts_with("drops:")).collect();
        assert_eq!(drops, ["drops: 0", "drops: 0"], "via {relay}:\n{text}");
    }
    let leases = store(&server).leases().unwrap();
    let rack = |third: u8| {
        leases
            .iter()
            .filter(|l| in_range(l.ip, [10, third, 0, 100], [10, third, 0, 199]))
            .count()
    };
    assert_eq!(
        (rack(66), rack(77)),
        (40, 40),
        "40 leases in each rack pool: {leases:?}"
    );
    assert_eq!(leases.len(), 80, "and none anywhere else");
}
