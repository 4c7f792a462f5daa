//! The read-only TFTP server: async-tftp's protocol engine over the shared
//! boot-file namespace (`crate::bootfiles`).
//!
//! - `handler` — maps requests to boot files and refusals to TFTP errors.
//! - `reader`  — reads a boot file in large chunks and logs the transfer's end.
//!
//! async-tftp drives all its transfers from the one future `serve()` returns,
//! on smol's reactor. To use every core, and to keep the reactor on the same
//! thread as the transfers (no cross-thread wake-up per ACK), one server runs
//! per core on its own thread, each on its own `SO_REUSEPORT` socket: the
//! kernel spreads clients over them by address, so one client's requests
//! always reach the same server.

mod handler;
mod reader;

use crate::app::App;
use anyhow::{Context, Result};
use async_tftp::server::TftpServerBuilder;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

pub use handler::BootFileHandler;

/// Per-packet retransmission timeout. Clients' own `timeout` option is
/// ignored so that a vanished client (a Raspberry Pi that aborts after the
/// OACK, whose ERROR async-tftp does not act on) is given up on quickly.
const RETRANSMIT_TIMEOUT: Duration = Duration::from_secs(1);
/// Retransmissions of one window before the transfer is abandoned: a dead
/// transfer lives at most (1 + 5) × 1 s, like tftpd-hpa's default.
const MAX_RETRANSMITS: u32 = 5;
/// Cap on RFC 7440 windowsize: the window is buffered in memory, and 64 ×
/// 64 KiB blocks (the largest RFC 2348 blksize) bounds that to 4 MiB per transfer.
const MAX_WINDOW: u16 = 64;
/// Receive buffer of the request sockets, so that a burst of RRQs (a rack
/// powering on) is queued rather than dropped.
const REQUEST_RCVBUF: usize = 1 << 20;

/// Serves read requests on UDP `0.0.0.0:<[tftp] port>` until a socket fails.
pub async fn serve(app: Arc<App>) -> Result<()> {
    let config = app.config();
    let port = config.tftp.port;
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let sockets = bind_group(addr, threads)
        .with_context(|| format!("cannot listen for TFTP on udp/{port}"))?;
    tracing::info!(port, root = %config.tftp.root.display(), threads, "TFTP serving read-only");

    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(threads);
    for (i, socket) in sockets.into_iter().enumerate() {
        let server = TftpServerBuilder::with_handler(BootFileHandler::new(app.clone()))
            .std_socket(socket)?
            .timeout(RETRANSMIT_TIMEOUT)
            .ignore_client_timeout()
            .max_send_retries(MAX_RETRANSMITS)
            .window_size_limit(MAX_WINDOW)
            .build()
            .await?;
        let done = done_tx.clone();
        std::thread::Builder::new()
            .name(format!("tftp-{i}"))
            .spawn(move || {
                // async_io::block_on runs the reactor on this thread while it waits.
                let result = async_io::block_on(server.serve());
                let _ = done.blocking_send(result);
            })
            .context("cannot start a TFTP thread")?;
    }
    drop(done_tx);
    // The servers only return when their socket fails.
    match done_rx.recv().await {
        Some(Err(e)) => Err(e).context("the TFTP server stopped"),
        _ => anyhow::bail!("the TFTP server stopped"),
    }
}

/// Binds `count` sockets to `addr` with `SO_REUSEPORT`. A plain bind first
/// checks that nobody else holds the port: sockets that all set
/// `SO_REUSEPORT` would otherwise silently share it with another server.
fn bind_group(addr: SocketAddr, count: usize) -> std::io::Result<Vec<UdpSocket>> {
    drop(UdpSocket::bind(addr)?);
    (0..count)
        .map(|_| {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_reuse_port(true)?;
            // Best effort: the kernel caps it at net.core.rmem_max.
            let _ = s.set_recv_buffer_size(REQUEST_RCVBUF);
            s.bind(&addr.into())?;
            Ok(s.into())
        })
        .collect()
}
