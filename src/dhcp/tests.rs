//! The DHCP exchanges without sockets: request bytes in, replies and store writes out.

use super::packet::tests::request_bytes;
use super::*;
use crate::config::testing::{cp1, lab_text, lab_text_with, machine_toml, parse};
use crate::inventory::{Event, State};
use crate::store::SqliteStore;
use dhcproto::v4::{DhcpOption, Message, OptionCode};
use dhcproto::Decodable;

/// The lab: pool 10.55.0.200-10.55.0.202 and control plane cp1.
fn config_text() -> String {
    lab_text_with("")
}

const CP1: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0, 1];
const UNKNOWN: [u8; 6] = [0x52, 0x54, 0, 0xbb, 0, 7];
const SERVER_ID: (u8, &[u8]) = (54, &[10, 55, 0, 1]);
const NOW: u64 = 1_000_000;

struct Fixture {
    server: Server,
    app: Arc<App>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    fixture_with(&config_text())
}

fn fixture_with(text: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = parse(text);
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let app = Arc::new(App::new(
        config,
        None,
        Some(dir.path().to_path_buf()),
        store,
    ));
    let server = Server::new(app.clone(), Leases::default());
    Fixture {
        server,
        app,
        _dir: dir,
    }
}

fn from() -> SocketAddr {
    "0.0.0.0:68".parse().unwrap()
}

impl Fixture {
    fn send(&mut self, packet: &[u8]) -> Option<Outcome> {
        self.server.handle(packet, from(), NOW)
    }

    /// Handles the packet and commits its writes, as the writer thread would.
    fn exchange(&mut self, packet: &[u8]) -> Option<Message> {
        let out = self.send(packet).expect("packet accepted");
        self.app.store.write(&out.writes).unwrap();
        out.reply
            .map(|r| Message::decode(&mut dhcproto::Decoder::new(&r.bytes)).unwrap())
    }

    fn dora(&mut self, mac: [u8; 6], extra: &[(u8, &[u8])]) -> (Message, Message) {
        let offer = self
            .exchange(&request_bytes(1, mac, extra))
            .expect("an offer");
        let ip = offer.yiaddr().octets();
        let mut opts = vec![(50, &ip[..]), SERVER_ID];
        opts.extend_from_slice(extra);
        let ack = self
            .exchange(&request_bytes(3, mac, &opts))
            .expect("an ack");
        (offer, ack)
    }
}

/// The BOOTP `file` field without its NUL terminator.
fn file(m: &Message) -> Option<&str> {
    m.fname()
        .map(|f| std::str::from_utf8(f).unwrap().trim_end_matches('\0'))
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn a_configured_machine_gets_its_reservation_and_hostname() {
    let mut f = fixture();
    let (offer, ack) = f.dora(CP1, &[]);
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(offer.yiaddr(), ip("10.55.0.11"));
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), ip("10.55.0.11"));
    assert_eq!(
        ack.opts().get(OptionCode::Hostname),
        Some(&DhcpOption::Hostname("cp1".into()))
    );
    assert!(
        ack.fname().is_none(),
        "a plain DHCP client gets no boot file"
    );
    let leases = f.app.store.leases().unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(
        (leases[0].ip, leases[0].hostname.as_deref()),
        (ip("10.55.0.11"), Some("cp1"))
    );
}

#[test]
fn an_unknown_mac_gets_a_pool_lease_no_boot_file_and_is_discovered() {
    let mut f = fixture();
    let pxe: &[(u8, &[u8])] = &[(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0])];
    let (offer, ack) = f.dora(UNKNOWN, pxe);
    assert_eq!(offer.yiaddr(), ip("10.55.0.200"));
    assert_eq!(ack.yiaddr(), ip("10.55.0.200"));
    assert!(ack.fname().is_none() && ack.opts().get(OptionCode::BootfileName).is_none());
    let rec = f
        .app
        .store
        .machine(MacAddr(UNKNOWN))
        .unwrap()
        .expect("recorded");
    assert_eq!(rec.state, State::Discovered);
    assert_eq!(rec.last_seen, Some(NOW));
}

#[test]
fn boot_files_follow_the_client_table() {
    let mut f = fixture();
    let bios: &[(u8, &[u8])] = &[(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0])];
    let (offer, ack) = f.dora(CP1, bios);
    for m in [&offer, &ack] {
        assert_eq!(file(m), Some("undionly.kpxe"));
        assert_eq!(m.siaddr(), ip("10.55.0.1"));
        assert_eq!(m.opts().get(OptionCode::ClassIdentifier), None);
    }
    let uefi: &[(u8, &[u8])] = &[(60, b"PXEClient:Arch:00007:UNDI:003016"), (93, &[0, 7])];
    let (offer, ack) = f.dora(CP1, uefi);
    for m in [&offer, &ack] {
        assert_eq!(file(m), Some("ipxe.efi"));
        // EDK2 would treat the offer as BINL and ask UDP 4011 (reply.rs).
        assert_eq!(m.opts().get(OptionCode::ClassIdentifier), None);
    }
    let ipxe: &[(u8, &[u8])] = &[
        (60, b"PXEClient:Arch:00000:UNDI:002001"),
        (93, &[0, 0]),
        (77, b"iPXE"),
    ];
    assert_eq!(
        file(&f.dora(CP1, ipxe).1),
        Some("http://10.55.0.1:8080/boot.ipxe")
    );
    let http: &[(u8, &[u8])] = &[(60, b"HTTPClient:Arch:00016:UNDI:003001"), (93, &[0, 16])];
    let ack = f.dora(CP1, http).1;
    assert_eq!(file(&ack), Some("http://10.55.0.1:8080/ipxe.efi"));
    assert_eq!(
        ack.opts().get(OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()))
    );
    let pi: &[(u8, &[u8])] = &[
        (60, b"PXEClient:Arch:00000:UNDI:002001"),
        (93, &[0, 0]),
        (97, b"\0RPi4abcdefabcdef"),
    ];
    let ack = f.dora(CP1, pi).1;
    assert_eq!(ack.yiaddr(), ip("10.55.0.11"), "a Pi still gets its lease");
    assert!(ack.fname().is_none(), "but never an x86 boot file");
}

#[test]
fn an_installed_machine_still_gets_ipxe_from_firmware() {
    let mut f = fixture();
    f.app
        .store
        .write(&[Write::SetState {
            mac: MacAddr(CP1),
            state: State::Installed,
            event: Event::now("t", "t"),
        }])
        .unwrap();
    let bios: &[(u8, &[u8])] = &[(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0])];
    assert_eq!(file(&f.dora(CP1, bios).1), Some("undionly.kpxe"));
}

#[test]
fn wrong_addresses_are_naked() {
    let mut f = fixture();
    let nak = |m: Option<Message>| m.is_some_and(|m| m.opts().msg_type() == Some(MessageType::Nak));
    // A configured machine asking for anything but its reservation.
    assert!(nak(f.exchange(&request_bytes(
        3,
        CP1,
        &[(50, &[10, 55, 0, 200])]
    ))));
    // Another subnet (init-reboot after moving networks).
    assert!(nak(f.exchange(&request_bytes(
        3,
        UNKNOWN,
        &[(50, &[192, 168, 1, 5])]
    ))));
    // Someone else's lease.
    f.dora(UNKNOWN, &[]);
    let other = [0x52, 0x54, 0, 0xbb, 0, 8];
    assert!(nak(f.exchange(&request_bytes(
        3,
        other,
        &[(50, &[10, 55, 0, 200])]
    ))));
    // A reserved address outside the pool asked by an unknown MAC.
    assert!(nak(f.exchange(&request_bytes(
        3,
        other,
        &[(50, &[10, 55, 0, 11])]
    ))));
    assert_eq!(
        f.app.store.leases().unwrap().len(),
        1,
        "no NAK wrote a lease"
    );
}

#[test]
fn init_reboot_and_renewal_keep_the_address() {
    let mut f = fixture();
    let (_, ack) = f.dora(UNKNOWN, &[]);
    let address = ack.yiaddr();
    // INIT-REBOOT: option 50, no server id.
    let again = f
        .exchange(&request_bytes(3, UNKNOWN, &[(50, &address.octets())]))
        .unwrap();
    assert_eq!(
        (again.opts().msg_type(), again.yiaddr()),
        (Some(MessageType::Ack), address)
    );
    // RENEWING: ciaddr set, unicast back to it.
    let mut renew = request_bytes(3, UNKNOWN, &[]);
    renew[12..16].copy_from_slice(&address.octets());
    let out = f.send(&renew).unwrap();
    assert!(out.reply_after_commit);
    let reply = out.reply.unwrap();
    assert_eq!(reply.to, SocketAddrV4::new(address, 68));
    let m = Message::decode(&mut dhcproto::Decoder::new(&reply.bytes)).unwrap();
    assert_eq!(
        (m.opts().msg_type(), m.yiaddr(), m.ciaddr()),
        (Some(MessageType::Ack), address, address)
    );
}

#[test]
fn acks_wait_for_the_commit_and_offers_do_not() {
    let mut f = fixture();
    let offer = f.send(&request_bytes(1, UNKNOWN, &[])).unwrap();
    assert!(!offer.reply_after_commit);
    assert_eq!(
        offer.reply.as_ref().unwrap().to,
        SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)
    );
    let ack = f
        .send(&request_bytes(
            3,
            UNKNOWN,
            &[(50, &[10, 55, 0, 200]), SERVER_ID],
        ))
        .unwrap();
    assert!(ack.reply_after_commit);
    assert!(ack
        .writes
        .iter()
        .any(|w| matches!(w, Write::BindLease(l) if l.ip == ip("10.55.0.200"))));
}

#[test]
fn leases_persist_across_a_restart() {
    let mut f = fixture();
    let (_, ack) = f.dora(UNKNOWN, &[]);
    let other = [0x52, 0x54, 0, 0xbb, 0, 9];
    f.dora(other, &[]);
    // A fresh server loaded from the store, as after kill -9.
    let leases = Leases::load(
        f.app.store.leases().unwrap(),
        f.app.store.quarantined().unwrap(),
    );
    f.server = Server::new(f.app.clone(), leases);
    let offer = f.exchange(&request_bytes(1, UNKNOWN, &[])).unwrap();
    assert_eq!(
        offer.yiaddr(),
        ack.yiaddr(),
        "the same client gets its address back"
    );
    let third = f
        .exchange(&request_bytes(1, [0x52, 0x54, 0, 0xbb, 0, 10], &[]))
        .unwrap();
    assert_eq!(
        third.yiaddr(),
        ip("10.55.0.202"),
        "no one else gets the two leased addresses"
    );
}

#[test]
fn decline_quarantines_and_release_frees() {
    let mut f = fixture();
    let (_, ack) = f.dora(UNKNOWN, &[]);
    let declined = ack.yiaddr();
    assert!(f
        .exchange(&request_bytes(
            4,
            UNKNOWN,
            &[(50, &declined.octets()), SERVER_ID]
        ))
        .is_none());
    assert_eq!(f.app.store.quarantined().unwrap().len(), 1);
    assert!(f.app.store.leases().unwrap().is_empty());
    let offer = f.exchange(&request_bytes(1, UNKNOWN, &[])).unwrap();
    assert_ne!(
        offer.yiaddr(),
        declined,
        "a declined address is not offered again"
    );
    // A DECLINE of an address the client was never given changes nothing.
    let out = f
        .send(&request_bytes(
            4,
            [1, 2, 3, 4, 5, 6],
            &[(50, &[10, 55, 0, 202])],
        ))
        .unwrap();
    assert!(!out
        .writes
        .iter()
        .any(|w| matches!(w, Write::QuarantineAddress { .. })));

    let (_, ack) = f.dora(UNKNOWN, &[]);
    let mut release = request_bytes(7, UNKNOWN, &[SERVER_ID]);
    release[12..16].copy_from_slice(&ack.yiaddr().octets());
    assert!(f.exchange(&release).is_none());
    assert!(f.app.store.leases().unwrap().is_empty(), "released");
}

#[test]
fn relayed_requests_are_answered_to_the_relay_inside_the_subnet_only() {
    let mut f = fixture();
    let mut relayed = request_bytes(1, UNKNOWN, &[]);
    relayed[24..28].copy_from_slice(&[10, 55, 0, 254]);
    let out = f.send(&relayed).unwrap();
    assert_eq!(
        out.reply.unwrap().to,
        SocketAddrV4::new(ip("10.55.0.254"), 67)
    );
    relayed[24..28].copy_from_slice(&[192, 168, 9, 1]);
    assert!(
        f.send(&relayed).is_none(),
        "a relay from another subnet is not served"
    );
}

#[test]
fn messages_for_another_server_are_ignored() {
    let mut f = fixture();
    let other_server: (u8, &[u8]) = (54, &[10, 55, 0, 9]);
    assert!(f
        .send(&request_bytes(
            3,
            UNKNOWN,
            &[(50, &[10, 55, 0, 200]), other_server]
        ))
        .is_none());
    assert!(f.app.store.leases().unwrap().is_empty());
}

#[test]
fn inform_gets_options_but_no_lease() {
    let mut f = fixture();
    let mut inform = request_bytes(8, UNKNOWN, &[]);
    inform[12..16].copy_from_slice(&[10, 55, 0, 77]);
    let out = f.send(&inform).unwrap();
    let reply = out.reply.unwrap();
    assert_eq!(reply.to, SocketAddrV4::new(ip("10.55.0.77"), 68));
    let m = Message::decode(&mut dhcproto::Decoder::new(&reply.bytes)).unwrap();
    assert_eq!(m.opts().msg_type(), Some(MessageType::Ack));
    assert!(m.yiaddr().is_unspecified());
    assert!(m.opts().get(OptionCode::AddressLeaseTime).is_none());
    assert!(m.opts().get(OptionCode::SubnetMask).is_some());
    assert!(!out.writes.iter().any(|w| matches!(w, Write::BindLease(_))));
}

#[test]
fn malformed_packets_change_nothing() {
    let mut f = fixture();
    let good = request_bytes(1, UNKNOWN, &[(55, &[1, 3])]);
    let mut bad_len = good.clone();
    bad_len[244] = 250;
    let mut bootreply = good.clone();
    bootreply[0] = 2;
    for packet in [
        &good[..100],
        &bad_len[..],
        &bootreply[..],
        &[0xffu8; 300][..],
    ] {
        assert!(f.send(packet).is_none());
    }
    assert!(f.server.leases.is_empty());
    assert!(f.app.store.machines().unwrap().is_empty());
}

/// bootherd on 10.55.0.0/24, and a rack network 10.66.0.0/24 behind a relay
/// at 10.66.0.1 with worker w1 reserved in it.
fn relayed() -> String {
    let dhcp = r#"[dhcp]
mode = "authoritative"
lease_time = "1h"
[[dhcp.subnet]]
subnet = "10.55.0.0/24"
gateway = "10.55.0.1"
dns = ["10.55.0.1"]
pool = "10.55.0.200-10.55.0.202"
[[dhcp.subnet]]
subnet = "10.66.0.0/24"
gateway = "10.66.0.1"
dns = ["10.66.0.53"]
pool = "10.66.0.100-10.66.0.110"
"#;
    let w1 = machine_toml("52:54:00:aa:00:21", "w1", "worker", "10.66.0.21");
    lab_text(dhcp, &(cp1() + &w1))
}

const W1: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0, 0x21];

fn decode(bytes: &[u8]) -> Message {
    Message::decode(&mut dhcproto::Decoder::new(bytes)).unwrap()
}

fn relayed_by(mut packet: Vec<u8>, relay: [u8; 4]) -> Vec<u8> {
    packet[24..28].copy_from_slice(&relay);
    packet
}

#[test]
fn each_relay_is_served_from_the_subnet_that_contains_it() {
    let mut f = fixture_with(&relayed());
    let agent: &[u8] = &[1, 3, b'r', b'2', b'4', 2, 2, 0xbe, 0xef];
    // An unknown machine behind the rack relay: that rack's pool and options.
    let discover = relayed_by(request_bytes(1, UNKNOWN, &[(82, agent)]), [10, 66, 0, 1]);
    let out = f.send(&discover).unwrap();
    let reply = out.reply.unwrap();
    assert_eq!(
        reply.to,
        SocketAddrV4::new(ip("10.66.0.1"), 67),
        "unicast to the relay"
    );
    let offer = decode(&reply.bytes);
    assert_eq!(offer.yiaddr(), ip("10.66.0.100"));
    assert_eq!(offer.giaddr(), ip("10.66.0.1"));
    let o = offer.opts();
    assert_eq!(
        o.get(OptionCode::Router),
        Some(&DhcpOption::Router(vec![ip("10.66.0.1")]))
    );
    assert_eq!(
        o.get(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![ip("10.66.0.53")]))
    );
    let mut echoed = vec![82u8, agent.len() as u8];
    echoed.extend_from_slice(agent);
    assert!(
        reply.bytes.windows(echoed.len()).any(|w| w == echoed),
        "option 82 unchanged"
    );

    // Its REQUEST through the relay is acknowledged and leased there.
    let request = relayed_by(
        request_bytes(3, UNKNOWN, &[(50, &[10, 66, 0, 100]), SERVER_ID]),
        [10, 66, 0, 1],
    );
    let ack = f.exchange(&request).unwrap();
    assert_eq!(
        (ack.opts().msg_type(), ack.yiaddr()),
        (Some(MessageType::Ack), ip("10.66.0.100"))
    );
    // Asking for the rack address on the local network is refused.
    let local = request_bytes(3, UNKNOWN, &[(50, &[10, 66, 0, 100]), SERVER_ID]);
    assert_eq!(
        f.exchange(&local).unwrap().opts().msg_type(),
        Some(MessageType::Nak)
    );

    // A unicast renewal from behind the relay (ciaddr, no giaddr) is served
    // from the client's own subnet.
    let mut renew = request_bytes(3, UNKNOWN, &[]);
    renew[12..16].copy_from_slice(&[10, 66, 0, 100]);
    let out = f.send(&renew).unwrap();
    assert_eq!(
        out.reply.as_ref().unwrap().to,
        SocketAddrV4::new(ip("10.66.0.100"), 68)
    );
    assert_eq!(
        decode(&out.reply.unwrap().bytes).yiaddr(),
        ip("10.66.0.100")
    );

    // Local broadcasts get the local network's pool.
    let offer = f
        .exchange(&request_bytes(1, [0x52, 0x54, 0, 0xbb, 0, 8], &[]))
        .unwrap();
    assert_eq!(offer.yiaddr(), ip("10.55.0.200"));
    assert_eq!(
        offer.opts().get(OptionCode::Router),
        Some(&DhcpOption::Router(vec![ip("10.55.0.1")]))
    );
}

#[test]
fn a_reservation_applies_on_its_own_subnet_only() {
    let mut f = fixture_with(&relayed());
    let via_rack = relayed_by(request_bytes(1, W1, &[]), [10, 66, 0, 1]);
    assert_eq!(f.exchange(&via_rack).unwrap().yiaddr(), ip("10.66.0.21"));
    // Plugged into the provisioning network by mistake: a local pool
    // address, never an address that does not route there.
    let local = f.exchange(&request_bytes(1, W1, &[])).unwrap();
    assert_eq!(local.yiaddr(), ip("10.55.0.200"));
    // A relay on no configured network is not served.
    let stray = relayed_by(request_bytes(1, W1, &[]), [10, 77, 0, 1]);
    assert!(f.send(&stray).is_none());
}

fn proxy() -> String {
    let dhcp = r#"[dhcp]
mode = "proxy"
subnet = "10.55.0.0/24"
gateway = "10.55.0.254"
"#;
    lab_text(dhcp, &cp1())
}

fn boot_server_from() -> SocketAddr {
    "10.55.0.150:4011".parse().unwrap()
}

#[test]
fn proxy_offers_carry_boot_information_and_no_address() {
    let mut f = fixture_with(&proxy());
    let guid: &[u8] = b"\0abcdefghijklmnop";
    let bios: &[(u8, &[u8])] = &[
        (60, b"PXEClient:Arch:00000:UNDI:002001"),
        (93, &[0, 0]),
        (97, guid),
    ];
    let out = f.send(&request_bytes(1, CP1, bios)).unwrap();
    let reply = out.reply.unwrap();
    assert_eq!(reply.to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    let offer = decode(&reply.bytes);
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    assert!(offer.yiaddr().is_unspecified(), "a proxy gives no address");
    assert_eq!(offer.siaddr(), ip("10.55.0.1"));
    assert_eq!(file(&offer), Some("undionly.kpxe"));
    let o = offer.opts();
    assert_eq!(
        o.get(OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
    );
    assert_eq!(
        o.get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(ip("10.55.0.1")))
    );
    assert_eq!(
        o.get(OptionCode::VendorExtensions),
        Some(&DhcpOption::VendorExtensions(vec![6, 1, 8, 255])),
        "BIOS ROMs: boot the offered file, no discovery"
    );
    assert_eq!(
        o.get(OptionCode::ClientMachineIdentifier),
        Some(&DhcpOption::ClientMachineIdentifier(guid.to_vec()))
    );
    for absent in [
        OptionCode::AddressLeaseTime,
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::Hostname,
    ] {
        assert!(
            o.get(absent).is_none(),
            "{absent:?} is the site server's to give"
        );
    }

    // UEFI: PXEClient without option 43, so EDK2 asks port 4011.
    let uefi: &[(u8, &[u8])] = &[(60, b"PXEClient:Arch:00007:UNDI:003016"), (93, &[0, 7])];
    let offer = decode(
        &f.send(&request_bytes(1, CP1, uefi))
            .unwrap()
            .reply
            .unwrap()
            .bytes,
    );
    assert_eq!(
        offer.opts().get(OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
    );
    assert!(offer.opts().get(OptionCode::VendorExtensions).is_none());
    // HTTP boot: HTTPClient and the URL.
    let http: &[(u8, &[u8])] = &[(60, b"HTTPClient:Arch:00016:UNDI:003001"), (93, &[0, 16])];
    let offer = decode(
        &f.send(&request_bytes(1, CP1, http))
            .unwrap()
            .reply
            .unwrap()
            .bytes,
    );
    assert_eq!(file(&offer), Some("http://10.55.0.1:8080/ipxe.efi"));
    assert_eq!(
        offer.opts().get(OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()))
    );
    assert!(
        f.app.store.leases().unwrap().is_empty(),
        "no lease for proxy clients"
    );
}

#[test]
fn the_boot_server_port_acknowledges_with_the_boot_file() {
    let mut f = fixture_with(&proxy());
    let uefi: &[(u8, &[u8])] = &[(60, b"PXEClient:Arch:00007:UNDI:003016"), (93, &[0, 7])];
    let mut request = request_bytes(3, CP1, uefi);
    request[12..16].copy_from_slice(&[10, 55, 0, 150]);
    let out = f
        .server
        .handle_boot_server(&request, boot_server_from(), NOW)
        .unwrap();
    let reply = out.reply.unwrap();
    assert_eq!(
        reply.to,
        SocketAddrV4::new(ip("10.55.0.150"), 4011),
        "back to the asking port"
    );
    let ack = decode(&reply.bytes);
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    assert!(ack.yiaddr().is_unspecified());
    assert_eq!(ack.ciaddr(), ip("10.55.0.150"));
    assert_eq!(file(&ack), Some("ipxe.efi"));
    assert_eq!(ack.siaddr(), ip("10.55.0.1"));
    // iPXE asks the same port from 68 and gets its script.
    let ipxe: &[(u8, &[u8])] = &[
        (60, b"PXEClient:Arch:00007:UNDI:003016"),
        (93, &[0, 7]),
        (77, b"iPXE"),
    ];
    let from_ipxe: SocketAddr = "10.55.0.150:68".parse().unwrap();
    let out = f
        .server
        .handle_boot_server(&request_bytes(3, CP1, ipxe), from_ipxe, NOW)
        .unwrap();
    let reply = out.reply.unwrap();
    assert_eq!(reply.to, SocketAddrV4::new(ip("10.55.0.150"), 68));
    assert_eq!(
        file(&decode(&reply.bytes)),
        Some("http://10.55.0.1:8080/boot.ipxe")
    );
    assert!(f.app.store.leases().unwrap().is_empty());
}

#[test]
fn the_proxy_stays_silent_for_everything_that_is_not_its_business() {
    let mut f = fixture_with(&proxy());
    let pxe: &[(u8, &[u8])] = &[(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0])];
    // A plain client, an unknown PXE machine, a REQUEST to the site's server.
    let plain = f.send(&request_bytes(1, CP1, &[(55, &[1, 3])]));
    assert!(plain.is_none());
    let unknown = f.send(&request_bytes(1, UNKNOWN, pxe)).unwrap();
    assert!(unknown.reply.is_none());
    let site: (u8, &[u8]) = (54, &[10, 55, 0, 254]);
    assert!(f
        .send(&request_bytes(
            3,
            CP1,
            &[pxe[0], pxe[1], (50, &[10, 55, 0, 120]), site]
        ))
        .is_none());
    let own = request_bytes(
        3,
        CP1,
        &[pxe[0], pxe[1], (50, &[10, 55, 0, 120]), SERVER_ID],
    );
    assert!(
        f.send(&own).is_none(),
        "REQUESTs on 67 belong to the address server"
    );
    // Authoritative mode does not answer the boot-server port.
    let mut auth = fixture();
    assert!(auth
        .server
        .handle_boot_server(&request_bytes(3, CP1, pxe), boot_server_from(), NOW)
        .is_none());
    // The unknown machine was still recorded as seen.
    assert_eq!(
        f.app.store.machines().unwrap().len(),
        0,
        "writes are committed by the caller"
    );
    f.app.store.write(&unknown.writes).unwrap();
    assert_eq!(
        f.app
            .store
            .machine(MacAddr(UNKNOWN))
            .unwrap()
            .unwrap()
            .state,
        State::Discovered
    );
}

#[test]
fn a_single_network_serves_local_broadcasts_even_off_the_server_address() {
    // `check` warns about this layout, but it served before several subnets
    // existed and must keep serving.
    let mut f =
        fixture_with(&config_text().replace("address = \"10.55.0.1\"", "address = \"10.56.0.1\""));
    let offer = f.exchange(&request_bytes(1, UNKNOWN, &[])).unwrap();
    assert_eq!(offer.yiaddr(), ip("10.55.0.200"));
    // Several networks: a local broadcast belongs to bootherd's own, and
    // with none containing bootherd's address it is not served.
    let mut f =
        fixture_with(&relayed().replace("address = \"10.55.0.1\"", "address = \"10.56.0.1\""));
    assert!(f.send(&request_bytes(1, UNKNOWN, &[])).is_none());
}
