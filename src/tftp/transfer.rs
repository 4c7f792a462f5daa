//! One read transfer: option negotiation, then the file's blocks in windows
//! (RFC 7440; a window of 1 is RFC 1350's lock-step), from a socket of its
//! own that is connected to the client, so the kernel drops strangers'
//! packets and sends need no address lookup.
//!
//! Sending rules:
//! - the sender keeps up to `window` blocks unacknowledged;
//! - an ACK for a block it sent moves the window to start right after that
//!   block (an ACK inside the window means the client lost what followed:
//!   those blocks are sent again);
//! - ACKs for blocks already acknowledged, or never sent, are ignored (a
//!   duplicate ACK must not trigger a retransmission, or every loss would
//!   double the traffic from then on: the "Sorcerer's Apprentice" bug);
//! - with no progress for one timeout, the window is sent again from the
//!   first unacknowledged block, at most `MAX_RETRANSMITS` times;
//! - the client's ERROR ends the transfer at once.
//!
//! The per-block path does not allocate: one packet buffer and one receive
//! buffer per transfer, blocks read ahead by `BlockReader`, and one timer
//! that is only re-armed when it fires early.

use super::packet::{self, ErrorCode, Mode, Packet, RequestedOptions, DATA_HEADER_LEN};
use super::reader::BlockReader;
use crate::bootsource::Source;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Retransmission timeout when the client does not negotiate one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Retransmissions of one window before the transfer is given up: a stalled
/// transfer ends after (1 + 5) timeouts, 6 s by default, like tftpd-hpa.
pub const MAX_RETRANSMITS: u32 = 5;
/// Cap on RFC 7440 windowsize. 64 × 1468 bytes is ~94 KiB in flight, which
/// the default socket send buffer holds, and well past the point where a
/// bigger window stops paying on a LAN.
pub const MAX_WINDOW: u16 = 64;
/// Cap on window × blksize: the window stays in memory until acknowledged,
/// and a thousand transfers must not be able to pin gigabytes.
const MAX_WINDOW_BYTES: usize = 1 << 20;
/// The largest blksize whose DATA fits an Ethernet frame (1500 − IP − UDP −
/// TFTP headers); used when the path MTU cannot be learnt.
const ETHERNET_BLKSIZE: u16 = 1468;
/// IPv4 (20) + UDP (8) + TFTP DATA (4) headers.
const HEADERS_LEN: u32 = 32;

/// A read request, owned, as handed to a transfer task.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub client: SocketAddr,
    pub filename: String,
    pub mode: Mode,
    pub options: RequestedOptions,
}

/// What was agreed with the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub window: u16,
    pub timeout: Duration,
    /// The options to acknowledge in an OACK, in a fixed order; empty when
    /// none was accepted (then the transfer starts with DATA 1, RFC 2347).
    oack: [(&'static str, u64); 4],
    oack_len: usize,
}

impl Negotiated {
    pub fn oack(&self) -> &[(&'static str, u64)] {
        &self.oack[..self.oack_len]
    }

    fn acknowledge(&mut self, name: &'static str, value: u64) {
        self.oack[self.oack_len] = (name, value);
        self.oack_len += 1;
    }
}

/// Agrees on options. `path_blksize` is the largest blksize that fits the
/// path MTU to the client, when known.
pub fn negotiate(
    options: &RequestedOptions,
    mode: Mode,
    size: u64,
    path_blksize: Option<u16>,
) -> Negotiated {
    let mut n = Negotiated {
        blksize: 512,
        window: 1,
        timeout: DEFAULT_TIMEOUT,
        oack: [("", 0); 4],
        oack_len: 0,
    };
    if let Some(asked) = options.blksize {
        // More than an Ethernet frame only when the path carries it whole:
        // a fragmented block is lost whole when any fragment is.
        let limit = path_blksize
            .unwrap_or(ETHERNET_BLKSIZE)
            .clamp(packet::MIN_BLKSIZE, packet::MAX_BLKSIZE);
        n.blksize = asked.min(limit);
        n.acknowledge("blksize", n.blksize.into());
    }
    // The size of a netascii transfer is not the file's size; like
    // tftpd-hpa, only acknowledge tsize for octet.
    if options.tsize.is_some() && mode == Mode::Octet {
        n.acknowledge("tsize", size);
    }
    if let Some(asked) = options.windowsize {
        let by_memory = (MAX_WINDOW_BYTES / usize::from(n.blksize)).max(1);
        let by_memory = u16::try_from(by_memory).unwrap_or(u16::MAX);
        n.window = asked.min(MAX_WINDOW).min(by_memory);
        n.acknowledge("windowsize", n.window.into());
    }
    if let Some(secs) = options.timeout {
        n.timeout = Duration::from_secs(secs.into());
        n.acknowledge("timeout", secs.into());
    }
    n
}

/// How a transfer ended.
#[derive(Debug)]
pub enum Outcome {
    Complete,
    AbortedByClient(String),
    /// No progress after `MAX_RETRANSMITS` retransmissions.
    TimedOut {
        idle: Duration,
    },
    /// The client's port answered with ICMP port unreachable.
    ClientGone,
    /// A new request from the same client address and port replaced it.
    Superseded,
    ReadError(io::Error),
    NetworkError(io::Error),
    /// The client sent something that has no place in a read transfer.
    IllegalPacket(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Complete => f.write_str("complete"),
            Outcome::AbortedByClient(msg) => write!(f, "aborted by client: {msg}"),
            Outcome::TimedOut { idle } => write!(
                f,
                "timed out: no ACK for {:.1} s after {MAX_RETRANSMITS} retransmissions",
                idle.as_secs_f64()
            ),
            Outcome::ClientGone => f.write_str("client gone (port unreachable)"),
            Outcome::Superseded => f.write_str("superseded by a new request from the same port"),
            Outcome::ReadError(e) => write!(f, "read error: {e}"),
            Outcome::NetworkError(e) => write!(f, "network error: {e}"),
            Outcome::IllegalPacket(what) => write!(f, "illegal packet from client: {what}"),
        }
    }
}

/// The largest blksize that fits the path MTU of a connected socket.
pub fn path_blksize(socket: &UdpSocket) -> Option<u16> {
    use std::os::fd::AsRawFd;
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid fd, and an int-sized out buffer with its length.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU,
            (&mut mtu as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    let mtu = u32::try_from(mtu).ok().filter(|_| rc == 0)?;
    let blksize = mtu.checked_sub(HEADERS_LEN)?;
    Some(u16::try_from(blksize).unwrap_or(u16::MAX))
}

/// Runs one read transfer on `socket` (already connected to the client) and
/// logs its start and end. `cancel` firing (or its sender going away) ends it.
pub async fn run(
    socket: UdpSocket,
    request: ReadRequest,
    source: Source,
    cancel: oneshot::Receiver<()>,
) -> Outcome {
    let started = Instant::now();
    let size = source.len();
    let agreed = negotiate(&request.options, request.mode, size, path_blksize(&socket));
    if !request.options.ignored.is_empty() {
        tracing::debug!(client = %request.client, file = %request.filename,
            "TFTP options not acknowledged: {}", request.options.ignored.join("; "));
    }
    tracing::info!(
        client = %request.client,
        file = %request.filename,
        size,
        blksize = agreed.blksize,
        window = agreed.window,
        mode = %request.mode,
        "TFTP transfer started"
    );
    let reader = BlockReader::new(source, request.mode, agreed.blksize, agreed.window);
    let mut sender = Sender::new(&socket, reader, &agreed);
    let outcome = sender.run(cancel).await;
    tracing::info!(
        client = %request.client,
        file = %request.filename,
        bytes = sender.acknowledged_bytes(),
        size,
        secs = format!("{:.3}", started.elapsed().as_secs_f64()),
        outcome = %outcome,
        "TFTP transfer ended"
    );
    crate::metrics::tftp_transfer(&outcome, sender.acknowledged_bytes());
    outcome
}

struct Sender<'a> {
    socket: &'a UdpSocket,
    reader: BlockReader,
    blksize: usize,
    window: u64,
    timeout: Duration,
    oack: &'a [(&'static str, u64)],
    /// One DATA (or OACK) packet, reused for every send.
    packet: Vec<u8>,
    /// Client packets: ACKs, or an ERROR whose message is only logged.
    incoming: Box<[u8; 1024]>,
    /// Highest block acknowledged; 0 before the first (or for the OACK).
    acked: u64,
    /// Next block to send.
    next: u64,
    /// The last block (the short one), once the reader has reached it.
    last: Option<(u64, usize)>,
}

impl<'a> Sender<'a> {
    fn new(socket: &'a UdpSocket, reader: BlockReader, agreed: &'a Negotiated) -> Sender<'a> {
        let blksize = usize::from(agreed.blksize);
        Sender {
            socket,
            reader,
            blksize,
            window: agreed.window.into(),
            timeout: agreed.timeout,
            oack: agreed.oack(),
            packet: vec![0; DATA_HEADER_LEN + blksize],
            incoming: Box::new([0; 1024]),
            acked: 0,
            next: 1,
            last: None,
        }
    }

    fn acknowledged_bytes(&self) -> u64 {
        match self.last {
            Some((last, len)) if self.acked == last => {
                (last - 1) * self.blksize as u64 + len as u64
            }
            _ => self.acked * self.blksize as u64,
        }
    }

    async fn run(&mut self, cancel: oneshot::Receiver<()>) -> Outcome {
        let mut cancel = std::pin::pin!(cancel);
        // Until the client acknowledges the OACK (block 0), no DATA goes out.
        let mut awaiting_oack_ack = !self.oack.is_empty();
        if awaiting_oack_ack {
            if let Err(e) = self.send_oack().await {
                return self.network_error(e);
            }
        }
        let mut retransmits = 0;
        let mut last_progress = Instant::now();
        let mut deadline = last_progress + self.timeout;
        // One timer for the whole transfer. Progress only moves `deadline`;
        // the timer is re-armed when it fires before it (once per timeout at
        // most), instead of once per ACK.
        let timer = tokio::time::sleep_until(deadline);
        let mut timer = std::pin::pin!(timer);
        loop {
            if !awaiting_oack_ack {
                if let Err(outcome) = self.send_window().await {
                    return outcome;
                }
            }
            let received = tokio::select! {
                biased;
                r = self.socket.recv(&mut self.incoming[..]) => r,
                _ = &mut cancel => return Outcome::Superseded,
                _ = &mut timer => {
                    let now = Instant::now();
                    if now < deadline {
                        timer.as_mut().reset(deadline);
                        continue;
                    }
                    if retransmits == MAX_RETRANSMITS {
                        return Outcome::TimedOut { idle: now - last_progress };
                    }
                    retransmits += 1;
                    deadline = now + self.timeout;
                    timer.as_mut().reset(deadline);
                    if awaiting_oack_ack {
                        if let Err(e) = self.send_oack().await {
                            return self.network_error(e);
                        }
                    } else {
                        // Go back to the first unacknowledged block.
                        self.next = self.acked + 1;
                    }
                    continue;
                }
            };
            let len = match received {
                Ok(len) => len,
                Err(e) => return self.network_error(e),
            };
            match packet::parse(&self.incoming[..len]) {
                Ok(Packet::Ack { block }) => {
                    let progressed = if awaiting_oack_ack {
                        awaiting_oack_ack = block != 0;
                        block == 0
                    } else {
                        self.on_ack(block)
                    };
                    if progressed {
                        if self.last.is_some_and(|(last, _)| self.acked == last) {
                            return Outcome::Complete;
                        }
                        retransmits = 0;
                        last_progress = Instant::now();
                        deadline = last_progress + self.timeout;
                    }
                }
                Ok(Packet::Error { code, message }) => {
                    let message = if message.is_empty() {
                        format!("error code {code}")
                    } else {
                        message.to_string()
                    };
                    return Outcome::AbortedByClient(message);
                }
                Ok(Packet::Rrq(_)) => {
                    // A request repeated to our transfer port instead of
                    // port 69: harmless, the transfer goes on.
                }
                Ok(other) => {
                    let what = format!("{other:?}");
                    self.send_error(ErrorCode::IllegalOperation, "only ACK or ERROR expected")
                        .await;
                    return Outcome::IllegalPacket(what.chars().take(80).collect());
                }
                Err(e) => {
                    // Noise on a connected socket is still the client's; one
                    // garbled packet is not worth ending a boot for.
                    tracing::debug!("TFTP: ignoring a malformed packet from the client: {e}");
                }
            }
        }
    }

    /// Handles an ACK during the data phase; true when it acknowledged new blocks.
    fn on_ack(&mut self, block: u16) -> bool {
        // Block numbers wrap at 65536: how far past the last ACK this one is.
        let ahead = u64::from(block.wrapping_sub(self.acked as u16));
        let in_flight = self.next - 1 - self.acked;
        if ahead == 0 || ahead > in_flight {
            return false;
        }
        self.acked += ahead;
        // Restart the window right after the acknowledged block: when the
        // client acknowledges inside the window, what followed was lost.
        self.next = self.acked + 1;
        true
    }

    /// Sends blocks until the window is full or the last block is out.
    async fn send_window(&mut self) -> Result<(), Outcome> {
        while self.next <= self.acked + self.window
            && self.last.is_none_or(|(last, _)| self.next <= last)
        {
            let block = self.next;
            let payload = match self.reader.block(block, self.acked + 1) {
                Ok(p) => p,
                Err(e) => {
                    self.send_error(ErrorCode::NotDefined, "read error").await;
                    return Err(Outcome::ReadError(e));
                }
            };
            let len = payload.len();
            self.packet[DATA_HEADER_LEN..DATA_HEADER_LEN + len].copy_from_slice(payload);
            packet::put_data_header(&mut self.packet, block as u16);
            if len < self.blksize {
                self.last = Some((block, len));
            }
            if let Err(e) = self
                .socket
                .send(&self.packet[..DATA_HEADER_LEN + len])
                .await
            {
                return Err(self.network_error(e));
            }
            self.next += 1;
        }
        Ok(())
    }

    async fn send_oack(&mut self) -> io::Result<()> {
        packet::encode_oack(&mut self.packet, self.oack);
        let sent = self.socket.send(&self.packet).await;
        // encode_oack reshaped the buffer; DATA needs it full-size again.
        self.packet.resize(DATA_HEADER_LEN + self.blksize, 0);
        sent.map(|_| ())
    }

    async fn send_error(&mut self, code: ErrorCode, message: &str) {
        let mut buf = Vec::new();
        packet::encode_error(&mut buf, code, message);
        // Best effort: the transfer ends either way.
        let _ = self.socket.send(&buf).await;
    }

    fn network_error(&self, e: io::Error) -> Outcome {
        if e.kind() == io::ErrorKind::ConnectionRefused {
            Outcome::ClientGone
        } else {
            Outcome::NetworkError(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(
        blksize: Option<u16>,
        tsize: Option<u64>,
        windowsize: Option<u16>,
    ) -> RequestedOptions {
        RequestedOptions {
            blksize,
            tsize,
            windowsize,
            ..Default::default()
        }
    }

    #[test]
    fn no_options_no_oack() {
        let n = negotiate(&RequestedOptions::default(), Mode::Octet, 10, Some(1468));
        assert_eq!((n.blksize, n.window, n.timeout), (512, 1, DEFAULT_TIMEOUT));
        assert!(n.oack().is_empty());
    }

    #[test]
    fn blksize_is_clamped_to_the_path() {
        let o = asked(Some(1468), Some(0), None);
        let n = negotiate(&o, Mode::Octet, 12345, Some(1468));
        assert_eq!(n.oack(), &[("blksize", 1468), ("tsize", 12345)]);
        // Ethernet: a jumbo request gets what fits a frame.
        let n = negotiate(&asked(Some(65464), None, None), Mode::Octet, 1, Some(1468));
        assert_eq!(n.blksize, 1468);
        // Loopback (MTU 65536) carries the largest block whole.
        let n = negotiate(&asked(Some(65464), None, None), Mode::Octet, 1, Some(65504));
        assert_eq!(n.blksize, 65464);
        // Unknown path: Ethernet size.
        let n = negotiate(&asked(Some(9000), None, None), Mode::Octet, 1, None);
        assert_eq!(n.blksize, 1468);
        let n = negotiate(&asked(Some(1024), None, None), Mode::Octet, 1, Some(1468));
        assert_eq!(n.blksize, 1024);
    }

    #[test]
    fn windowsize_and_timeout() {
        let mut o = asked(Some(1468), None, Some(16));
        o.timeout = Some(1);
        let n = negotiate(&o, Mode::Octet, 1, Some(1468));
        assert_eq!(
            n.oack(),
            &[("blksize", 1468), ("windowsize", 16), ("timeout", 1)]
        );
        assert_eq!(n.timeout, Duration::from_secs(1));
        let n = negotiate(&asked(None, None, Some(65535)), Mode::Octet, 1, None);
        assert_eq!(n.window, MAX_WINDOW);
        // Big blocks shrink the window to the memory cap.
        let n = negotiate(
            &asked(Some(65464), None, Some(64)),
            Mode::Octet,
            1,
            Some(65504),
        );
        assert_eq!(n.window, 16);
    }

    #[test]
    fn tsize_only_for_octet() {
        let n = negotiate(&asked(None, Some(0), None), Mode::Netascii, 99, None);
        assert!(n.oack().is_empty());
    }
}
