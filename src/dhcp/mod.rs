//! The authoritative DHCP server (RFC 2131): the socket, the receive loop, the
//! per-message logic, and the group-commit writer that makes leases durable.
//!
//! - `packet`   — strict zero-copy parsing of requests.
//! - `classify` — which boot client is asking (→ `boot::Client`).
//! - `leases`   — in-memory address allocation.
//! - `reply`    — building OFFER/ACK/NAK and the boot fields.
//! - `proxy`    — proxy mode: boot information beside another DHCP server (ports 67 and 4011).
//!
//! Several networks: a request is served from the `[[dhcp.subnet]]` that
//! contains its relay's `giaddr` (or, unrelayed, bootherd's own network);
//! replies to relays go by unicast to `giaddr`:67 with option 82 echoed.
//!
//! Durability: an ACK is sent only after its lease is committed to the store.
//! The receive loop never touches the store's write path; it queues
//! `(writes, reply)` to one writer thread, which commits everything queued
//! in ONE transaction (one fsync for many leases) and then sends that batch's
//! replies. OFFERs do not wait. So `kill -9` at any moment loses no lease a
//! client was told about, and the server keeps answering under overload.

mod classify;
mod leases;
mod packet;
mod proxy;
mod reply;

pub use classify::classify;
pub use leases::Leases;
pub use packet::{parse, Invalid, Request};

use crate::app::App;
use crate::config::{Config, DhcpMode, Machine, Subnet};
use crate::inventory::unix_now;
use crate::mac::MacAddr;
use crate::store::{Lease, Store, Write};
use anyhow::{Context, Result};
use dhcproto::v4::MessageType;
use leases::Exclusions;
use reply::{BootInfo, Reply};
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::mpsc::{Receiver, TrySendError};
use std::sync::Arc;

const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;
/// The PXE boot-server port that proxy mode also answers on.
const BOOT_SERVER_PORT: u16 = 4011;
/// Receive buffer: bursts of thousands of requests wait here instead of being dropped.
const RECV_BUFFER_BYTES: usize = 4 << 20;
/// Commits waiting for the writer. When it is full, new requests are dropped
/// (clients retry) rather than queued without bound.
const COMMIT_QUEUE: usize = 65_536;
/// The most commits written in one transaction.
const MAX_BATCH: usize = 16_384;
/// The most ACKs released by one transaction. A commit frees its ACKs all at
/// once; capping the burst keeps a relay's (or perfdhcp's) receive buffer
/// from overflowing, at the cost of more, smaller transactions under backlog.
const MAX_REPLIES_PER_BATCH: usize = 256;
/// `last_seen` is written at most this often per MAC, so a busy client does
/// not cost a store write per packet.
const SEEN_INTERVAL_SECS: u64 = 60;

/// Binds UDP 0.0.0.0:67 (and 4011 in proxy mode) and serves until an error.
/// Switching between authoritative and proxy mode takes a restart.
pub async fn serve(app: Arc<App>) -> Result<()> {
    let config = app.config();
    let interface = config.server.interface.as_deref();
    let socket = bind_socket(interface, SERVER_PORT)?;
    let boot_server = match config.dhcp.mode {
        DhcpMode::Proxy => Some(tokio::net::UdpSocket::from_std(bind_socket(
            interface,
            BOOT_SERVER_PORT,
        )?)?),
        _ => None,
    };
    let reply_socket = socket
        .try_clone()
        .context("cannot clone the DHCP socket for the lease writer")?;
    let leases = Leases::load(app.store.leases()?, app.store.quarantined()?);
    tracing::info!(
        interface = interface.unwrap_or("(all)"),
        mode = %config.dhcp.mode,
        subnets = config.dhcp.subnets.len(),
        leases = leases.len(),
        "DHCP server listening on 0.0.0.0:67{}",
        if boot_server.is_some() { " and 0.0.0.0:4011" } else { "" }
    );
    let (commits, queued) = std::sync::mpsc::sync_channel::<Commit>(COMMIT_QUEUE);
    let store = app.store.clone();
    let writer = std::thread::Builder::new()
        .name("dhcp-lease-writer".into())
        .spawn(move || write_loop(store.as_ref(), queued, &reply_socket))
        .context("cannot start the DHCP lease writer")?;

    let socket = tokio::net::UdpSocket::from_std(socket)?;
    let mut server = Server::new(app, leases);
    let mut buf = [0u8; 4096];
    let mut boot_buf = [0u8; 4096];
    loop {
        // Replies leave through the socket their request came in on: a
        // boot-server ACK must come from port 4011.
        let (outcome, via) = tokio::select! {
            got = socket.recv_from(&mut buf) => {
                let (len, from) = got.context("DHCP socket receive failed")?;
                let handled = server.handle(&buf[..len], from, unix_now());
                crate::metrics::dhcp_packet(&buf[..len], handled.as_ref());
                (handled, &socket)
            }
            got = recv_if_open(boot_server.as_ref(), &mut boot_buf) => {
                let (len, from) = got.context("PXE boot-server socket receive failed")?;
                let handled = server.handle_boot_server(&boot_buf[..len], from, unix_now());
                crate::metrics::dhcp_packet(&boot_buf[..len], handled.as_ref());
                (handled, boot_server.as_ref().unwrap_or(&socket))
            }
        };
        let Some(outcome) = outcome else {
            continue;
        };
        let (send_now, after_commit) = match outcome.reply {
            Some(reply) if outcome.reply_after_commit => (None, Some(reply)),
            reply => (reply, None),
        };
        if let Some(out) = send_now {
            if let Err(e) = via.send_to(&out.bytes, out.to).await {
                tracing::debug!(to = %out.to, "DHCP send failed: {e}");
            }
        }
        if outcome.writes.is_empty() && after_commit.is_none() {
            continue;
        }
        match commits.try_send(Commit {
            writes: outcome.writes,
            reply: after_commit,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::debug!("lease writer busy: request dropped, the client will retry")
            }
            Err(TrySendError::Disconnected(_)) => {
                let why = match writer.join() {
                    Err(_) => "panicked".to_string(),
                    Ok(()) => "stopped".to_string(),
                };
                anyhow::bail!("the DHCP lease writer {why}");
            }
        }
    }
}

/// Receives from `socket`, or waits forever when there is none.
async fn recv_if_open(
    socket: Option<&tokio::net::UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

fn bind_socket(interface: Option<&str>, port: u16) -> Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    if let Some(iface) = interface {
        socket
            .bind_device(Some(iface.as_bytes()))
            .with_context(|| {
                format!(
                    "cannot bind DHCP to interface {iface} (check [server] interface; needs root)"
                )
            })?;
    }
    set_receive_buffer(&socket);
    let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    socket
        .bind(&addr.into())
        .with_context(|| format!("cannot bind UDP 0.0.0.0:{port} (is another DHCP or PXE server running without SO_REUSEADDR? bootherd needs root or CAP_NET_BIND_SERVICE)"))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Asks for a large receive buffer; SO_RCVBUFFORCE passes the host's
/// `rmem_max` cap when running as root, SO_RCVBUF is the fallback.
fn set_receive_buffer(socket: &socket2::Socket) {
    use std::os::fd::AsRawFd;
    let size = RECV_BUFFER_BYTES as libc::c_int;
    // SAFETY: a valid fd and a pointer to a c_int that lives across the call.
    let forced = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    if !forced {
        if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER_BYTES) {
            tracing::warn!("cannot enlarge the DHCP receive buffer: {e}");
        }
    }
}

/// A batch entry for the writer: store changes, and the reply to send once they are durable.
struct Commit {
    writes: Vec<Write>,
    reply: Option<Outgoing>,
}

/// Commits everything queued in one transaction, then sends those replies.
fn write_loop(store: &dyn Store, queued: Receiver<Commit>, socket: &std::net::UdpSocket) {
    let mut writes = Vec::new();
    let mut replies = Vec::new();
    while let Ok(first) = queued.recv() {
        let mut commits = 1;
        writes.extend(first.writes);
        replies.extend(first.reply);
        while commits < MAX_BATCH && replies.len() < MAX_REPLIES_PER_BATCH {
            let Ok(c) = queued.try_recv() else { break };
            writes.extend(c.writes);
            replies.extend(c.reply);
            commits += 1;
        }
        match store.write(&writes) {
            Ok(()) => {
                for out in &replies {
                    if let Err(e) = socket.send_to(&out.bytes, out.to) {
                        tracing::debug!(to = %out.to, "DHCP send failed: {e}");
                    }
                }
            }
            Err(e) => tracing::error!(
                "cannot commit {} lease changes; {} ACKs withheld (clients will retry): {e:#}",
                writes.len(),
                replies.len()
            ),
        }
        writes.clear();
        replies.clear();
    }
}

/// A reply and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub kind: MessageType,
    pub bytes: Vec<u8>,
    pub to: SocketAddrV4,
}

/// What handling one packet produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Store changes (leases, quarantine, `Seen`).
    pub writes: Vec<Write>,
    pub reply: Option<Outgoing>,
    /// The reply promises a lease: send it only once `writes` are committed.
    pub reply_after_commit: bool,
}

/// What the current config implies for allocation, rebuilt when the config is reloaded.
struct ConfigView {
    config: Arc<Config>,
    /// Addresses never handed out from the pool: reservations, the server, gateway, DNS, network, broadcast.
    excluded: HashSet<Ipv4Addr>,
}

impl ConfigView {
    fn new(config: Arc<Config>) -> ConfigView {
        let excluded = never_offered(&config);
        ConfigView { config, excluded }
    }
}

/// Addresses never handed out from a pool: reservations, the server, and
/// each subnet's gateway, DNS, network and broadcast addresses. The DHCP
/// server and the pool-usage gauges both count with this one set.
pub fn never_offered(config: &Config) -> HashSet<Ipv4Addr> {
    let mut excluded: HashSet<Ipv4Addr> = config.machines.iter().map(|m| m.ip).collect();
    excluded.insert(config.server.address);
    for subnet in &config.dhcp.subnets {
        excluded.extend([subnet.net.network(), subnet.net.broadcast()]);
        excluded.extend(subnet.gateway);
        excluded.extend(subnet.dns.iter().copied());
    }
    excluded
}

/// The DHCP logic without sockets: packets in, replies and store writes out.
pub struct Server {
    app: Arc<App>,
    view: ConfigView,
    leases: Leases,
    /// When `Seen` was last queued per MAC (see [`SEEN_INTERVAL_SECS`]).
    seen_recorded: HashMap<MacAddr, u64>,
    reply_buf: Vec<u8>,
}

impl Server {
    pub fn new(app: Arc<App>, leases: Leases) -> Server {
        let view = ConfigView::new(app.config());
        Server {
            app,
            view,
            leases,
            seen_recorded: HashMap::new(),
            reply_buf: Vec::with_capacity(1500),
        }
    }

    /// Handles one datagram received on port 67 from `from`. `None` =
    /// dropped, nothing changed.
    pub fn handle(&mut self, packet: &[u8], from: SocketAddr, now: u64) -> Option<Outcome> {
        self.handle_on(Port::Dhcp, packet, from, now)
    }

    /// Handles one datagram received on the PXE boot-server port 4011
    /// (proxy mode only; see `proxy`).
    pub fn handle_boot_server(
        &mut self,
        packet: &[u8],
        from: SocketAddr,
        now: u64,
    ) -> Option<Outcome> {
        self.handle_on(Port::BootServer, packet, from, now)
    }

    fn handle_on(
        &mut self,
        port: Port,
        packet: &[u8],
        from: SocketAddr,
        now: u64,
    ) -> Option<Outcome> {
        let req = match packet::parse(packet) {
            Ok(r) => r,
            Err(why) => {
                tracing::debug!(%from, len = packet.len(), "DHCP packet dropped: {why}");
                return None;
            }
        };
        let current = self.app.config();
        if !Arc::ptr_eq(&current, &self.view.config) {
            self.view = ConfigView::new(current);
        }
        let config = self.view.config.clone();
        match (config.dhcp.mode, port) {
            (DhcpMode::Authoritative, Port::Dhcp) => {}
            (DhcpMode::Proxy, _) => return self.proxy(&req, &config, port, from, now),
            _ => return None,
        }
        if req.server_id.is_some_and(|id| id != config.server.address) {
            // The client is talking to (or chose) another server.
            tracing::debug!(mac = %req.mac, server = ?req.server_id, "{:?} for another server ignored", req.msg_type);
            return None;
        }
        let Some(subnet) = serving_subnet(&req, &config) else {
            tracing::debug!(mac = %req.mac, giaddr = %req.giaddr, ciaddr = %req.ciaddr, "request from a network that is in no [dhcp] subnet ignored");
            return None;
        };
        let machine = config.machine_by_mac(req.mac);
        let mut out = Outcome::default();
        self.record_seen(&req, machine.is_some(), now, &mut out);
        // A machine's reservation is on the subnet its `ip` lies in; asking
        // from another network, it gets that network's pool instead.
        let reserved = machine.filter(|m| subnet.net.contains(&m.ip));
        if let (Some(m), None) = (machine, reserved) {
            tracing::warn!(mac = %req.mac, "{} asks from subnet {} but its ip {} is not there: serving it from the pool (fix its `ip` or its cabling)", m.hostname, subnet.net, m.ip);
        }
        let ask = Ask {
            req: &req,
            config: &config,
            subnet,
            machine,
            reserved,
        };
        match req.msg_type {
            MessageType::Discover => self.discover(&ask, now, &mut out),
            MessageType::Request => self.request(&ask, now, &mut out),
            MessageType::Decline => self.decline(&ask, now, &mut out),
            MessageType::Release => self.release(&ask, &mut out),
            MessageType::Inform => self.inform(&ask, &mut out),
            other => tracing::debug!(mac = %req.mac, "DHCP {other:?} ignored (not for a server)"),
        }
        Some(out)
    }

    fn record_seen(&mut self, req: &Request<'_>, known: bool, now: u64, out: &mut Outcome) {
        let due = self
            .seen_recorded
            .get(&req.mac)
            .is_none_or(|last| now.saturating_sub(*last) >= SEEN_INTERVAL_SECS);
        if due {
            self.seen_recorded.insert(req.mac, now);
            out.writes.push(Write::Seen {
                mac: req.mac,
                at: now,
                known,
            });
        }
    }

    fn discover(&mut self, ask: &Ask<'_>, now: u64, out: &mut Outcome) {
        let (req, config) = (ask.req, ask.config);
        let excluded = Exclusions {
            addresses: &self.view.excluded,
        };
        let address = match ask.reserved {
            Some(m) => Some(m.ip),
            None => self
                .leases
                .offer(req.mac, req.requested_ip, ask.subnet.pool, &excluded, now),
        };
        let Some(address) = address else {
            tracing::warn!(mac = %req.mac, subnet = %ask.subnet.net, "DHCP DISCOVER: no address to offer (no pool, or the pool is full)");
            return;
        };
        let boot = self.boot_info(req, config, address);
        let reply = Reply {
            kind: MessageType::Offer,
            address,
            lease_secs: Some(lease_secs(config)),
            hostname: hostname(ask.machine),
            boot: boot.as_ref(),
            network: Some(ask.subnet),
            echo_machine_id: false,
        };
        out.reply = self.encode(req, &reply, config);
        log_exchange(req, "OFFER", address, boot.as_ref());
    }

    fn request(&mut self, ask: &Ask<'_>, now: u64, out: &mut Outcome) {
        let (req, config) = (ask.req, ask.config);
        let asked = req
            .requested_ip
            .or_else(|| Some(req.ciaddr).filter(|ip| !ip.is_unspecified()));
        let Some(address) = asked else {
            tracing::debug!(mac = %req.mac, "DHCP REQUEST without an address dropped");
            return;
        };
        let excluded = Exclusions {
            addresses: &self.view.excluded,
        };
        let valid = ask.subnet.net.contains(&address)
            && match ask.reserved {
                Some(m) => m.ip == address,
                None => self
                    .leases
                    .assignable(req.mac, address, ask.subnet.pool, &excluded, now),
            };
        if !valid {
            let nak = Reply {
                kind: MessageType::Nak,
                address: Ipv4Addr::UNSPECIFIED,
                lease_secs: None,
                hostname: None,
                boot: None,
                network: None,
                echo_machine_id: false,
            };
            out.reply = self.encode(req, &nak, config);
            log_exchange(req, "NAK", address, None);
            return;
        }
        let lease = lease_secs(config);
        let expires = now + u64::from(lease);
        self.leases.bind(req.mac, address, expires);
        let stored_name = match ask.machine {
            Some(m) => Some(m.hostname.clone()),
            None => req
                .hostname
                .and_then(|h| std::str::from_utf8(h).ok())
                .map(str::to_owned),
        };
        out.writes.push(Write::BindLease(Lease {
            ip: address,
            mac: req.mac,
            expires,
            hostname: stored_name,
        }));
        let boot = self.boot_info(req, config, address);
        let reply = Reply {
            kind: MessageType::Ack,
            address,
            lease_secs: Some(lease),
            hostname: hostname(ask.machine),
            boot: boot.as_ref(),
            network: Some(ask.subnet),
            echo_machine_id: false,
        };
        out.reply = self.encode(req, &reply, config);
        out.reply_after_commit = true;
        log_exchange(req, "ACK", address, boot.as_ref());
    }

    fn decline(&mut self, ask: &Ask<'_>, now: u64, out: &mut Outcome) {
        let req = ask.req;
        let Some(address) = req.requested_ip else {
            tracing::debug!(mac = %req.mac, "DHCP DECLINE without an address dropped");
            return;
        };
        // Only the address this client was given may be declined by it;
        // otherwise any host could take addresses out of the pool.
        let its_own = self.leases.address_of(req.mac) == Some(address)
            || ask.reserved.is_some_and(|m| m.ip == address);
        if !its_own {
            tracing::info!(mac = %req.mac, %address, "DHCP DECLINE for an address it was not given: ignored");
            return;
        }
        let until = now + u64::from(lease_secs(ask.config));
        self.leases.quarantine(address, until);
        out.writes
            .push(Write::QuarantineAddress { ip: address, until });
        tracing::info!(mac = %req.mac, %address, until, "DHCP DECLINE: address in use elsewhere, quarantined");
    }

    fn release(&mut self, ask: &Ask<'_>, out: &mut Outcome) {
        let req = ask.req;
        let address = req.ciaddr;
        let held = self.leases.release(req.mac, address);
        if held || ask.machine.is_some_and(|m| m.ip == address) {
            out.writes.push(Write::ReleaseLease {
                ip: address,
                mac: req.mac,
            });
            tracing::info!(mac = %req.mac, %address, "DHCP RELEASE: lease freed");
        } else {
            tracing::debug!(mac = %req.mac, %address, "DHCP RELEASE for an address it does not hold ignored");
        }
    }

    fn inform(&mut self, ask: &Ask<'_>, out: &mut Outcome) {
        let req = ask.req;
        let reply = Reply {
            kind: MessageType::Ack,
            address: Ipv4Addr::UNSPECIFIED,
            lease_secs: None,
            hostname: hostname(ask.machine),
            boot: None,
            network: Some(ask.subnet),
            echo_machine_id: false,
        };
        out.reply = self.encode(req, &reply, ask.config);
        log_exchange(req, "ACK (inform)", req.ciaddr, None);
    }

    /// Boot fields for this client: classification → boot decision → encoding.
    /// A Pi bootloader's serial and `address` are remembered for TFTP.
    fn boot_info(&self, req: &Request<'_>, config: &Config, address: Ipv4Addr) -> Option<BootInfo> {
        let client = classify(req)?;
        if client.pi.is_some() {
            let serial = req.client_machine_id.and_then(crate::pi::Serial::from_guid);
            self.app.pis.record(req.mac, serial, address);
        }
        match self.app.decide(config, req.mac, &client) {
            Ok(action) => {
                let info = reply::boot_info(&action, &client, config);
                if info.is_none() {
                    tracing::debug!(mac = %req.mac, ?client, ?action, "no boot file for this client");
                }
                info
            }
            Err(e) => {
                tracing::warn!(mac = %req.mac, "boot decision failed, replying without boot file: {e:#}");
                None
            }
        }
    }

    fn encode(
        &mut self,
        req: &Request<'_>,
        reply: &Reply<'_>,
        config: &Config,
    ) -> Option<Outgoing> {
        if !reply::encode(req, reply, config, &mut self.reply_buf) {
            tracing::warn!(mac = %req.mac, "DHCP {:?} does not fit the client's maximum message size", reply.kind);
            return None;
        }
        Some(Outgoing {
            kind: reply.kind,
            bytes: self.reply_buf.clone(),
            to: destination(req, reply.kind),
        })
    }
}

/// Which UDP port a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// 67: DHCP (and proxyDHCP offers).
    Dhcp,
    /// 4011: the PXE boot-server exchange of proxy mode.
    BootServer,
}

impl Port {
    fn number(self) -> u16 {
        match self {
            Port::Dhcp => SERVER_PORT,
            Port::BootServer => BOOT_SERVER_PORT,
        }
    }
}

/// One request in context: what the per-message handlers share.
struct Ask<'a> {
    req: &'a Request<'a>,
    config: &'a Config,
    /// The network the request is served from.
    subnet: &'a Subnet,
    /// The configured machine with this MAC, wherever its `ip` is.
    machine: Option<&'a Machine>,
    /// `machine`, when its `ip` is on `subnet` (its reservation applies).
    reserved: Option<&'a Machine>,
}

/// The network a request is served from: the relay's (`giaddr`) when
/// relayed; the client's own when it already has an address (a unicast
/// renewal from behind a relay arrives without `giaddr`); otherwise the
/// network bootherd itself is on, where local broadcasts come from.
fn serving_subnet<'c>(req: &Request<'_>, config: &'c Config) -> Option<&'c Subnet> {
    // A DISCOVER has no address of its own (RFC 2131 table 5); one that
    // claims one must not pick another network's pool by it.
    let ciaddr = if req.msg_type == MessageType::Discover {
        Ipv4Addr::UNSPECIFIED
    } else {
        req.ciaddr
    };
    let key = [req.giaddr, ciaddr, config.server.address]
        .into_iter()
        .find(|ip| !ip.is_unspecified())?;
    match (
        config.dhcp.subnet_containing(key),
        config.dhcp.subnets.as_slice(),
    ) {
        (Some(subnet), _) => Some(subnet),
        // One network and a local broadcast: it is that network, even when
        // bootherd's own address lies outside it (`check` warns about that).
        (None, [only]) if req.giaddr.is_unspecified() && ciaddr.is_unspecified() => Some(only),
        (None, _) => None,
    }
}

fn lease_secs(config: &Config) -> u32 {
    config
        .dhcp
        .lease_time
        .as_secs()
        .clamp(60, u64::from(u32::MAX - 1)) as u32
}

fn hostname(machine: Option<&Machine>) -> Option<&str> {
    machine.map(|m| m.hostname.as_str())
}

/// RFC 2131 §4.1: via the relay when relayed; to the client's address when it
/// has one; otherwise broadcast (the client has no address to unicast to yet).
fn destination(req: &Request<'_>, kind: MessageType) -> SocketAddrV4 {
    if !req.giaddr.is_unspecified() {
        SocketAddrV4::new(req.giaddr, SERVER_PORT)
    } else if kind != MessageType::Nak && !req.ciaddr.is_unspecified() {
        SocketAddrV4::new(req.ciaddr, CLIENT_PORT)
    } else {
        SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
    }
}

fn log_exchange(req: &Request<'_>, outcome: &str, address: Ipv4Addr, boot: Option<&BootInfo>) {
    tracing::info!(
        mac = %req.mac,
        %address,
        boot = boot
            .map(|b| match b.file.as_str() {
                "" => "(Raspberry Pi boot menu)",
                file => file,
            })
            .unwrap_or("-"),
        relay = %req.giaddr,
        "DHCP {:?} -> {outcome}",
        req.msg_type
    );
}

#[cfg(test)]
mod tests;
