//! The HTTP/1 connection loop, with header names written in Title-Case.
//!
//! Header names are case-insensitive (RFC 9110), but GRUB's HTTP client
//! (2.06 and 2.12) looks for `Content-Length: ` byte for byte. Without it GRUB
//! does not know a file's size, and its `linux` command then fails with
//! "out of memory" on arm64 servers. hyper writes lowercase names unless told
//! otherwise, and `axum::serve` has no way to tell it: hence this loop.
//!
//! Connections to machines that are gone are dropped quickly. A machine
//! that reboots never finishes its connections, and GRUB's TCP numbers its
//! source ports the same way on every boot: its next connection from the
//! same port meets the left-over one (idle, or closing with a FIN the gone
//! peer never acknowledges, or waiting on the zero window it last
//! advertised), gets an ACK for the old connection, which GRUB does not
//! answer with a reset, and its download times out ("connection timeout").
//! Seen when an arm64 machine reinstalled a minute after its first install.
//! So a connection idle for [`IDLE_TIMEOUT`] is reset, not closed with a
//! FIN (a reset leaves nothing behind, and on an idle connection nothing is
//! in flight to cut off); and a connection closed with everything
//! acknowledged gives its FIN [`PEER_GONE_TIMEOUT`] (TCP_USER_TIMEOUT, which
//! also bounds zero-window probes) instead of the kernel's minutes. While
//! data is in flight nothing is shortened: a Pi writing its image to a slow
//! SD card may hold its window shut for a while and must not be cut off.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a connection may wait for (the rest of) a request's headers,
/// idle keep-alive time included. Boot clients send a request as soon as they
/// have connected.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the FIN of a connection whose data was all acknowledged may stay
/// unacknowledged before the peer counts as gone.
pub const PEER_GONE_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves `router` on every connection `listener` accepts; requests carry
/// the peer address as `ConnectInfo<SocketAddr>`, as with axum's own server.
pub async fn serve(listener: TcpListener, router: Router) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection reset while queued:
                // keep serving the others.
                tracing::warn!("HTTP: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req)
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.title_case_headers(true)
                .timer(TokioTimer::new())
                .header_read_timeout(IDLE_TIMEOUT);
            let mut stream = stream;
            let served = http
                .serve_connection(TokioIo::new(&mut stream), service)
                .await;
            if let Err(e) = &served {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
            let socket = socket2::SockRef::from(&stream);
            let closing = match served {
                // Idle: closing with SO_LINGER 0 sends a reset.
                Err(e) if e.is_timeout() => socket.set_linger(Some(Duration::ZERO)),
                _ => match unacknowledged_bytes(&stream) {
                    Ok(0) => socket.set_tcp_user_timeout(Some(PEER_GONE_TIMEOUT)),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = closing {
                tracing::debug!(%peer, "HTTP: cannot set how the connection closes: {e}");
            }
        });
    }
}

/// Data bytes sent on `stream` that its peer has not acknowledged yet: the
/// send queue (SIOCOUTQ) less our FIN, which takes one sequence number once
/// sent (states FIN-WAIT-1, CLOSING, LAST-ACK).
fn unacknowledged_bytes(stream: &tokio::net::TcpStream) -> std::io::Result<usize> {
    // include/net/tcp_states.h
    const FIN_WAIT1: u8 = 4;
    const LAST_ACK: u8 = 9;
    const CLOSING: u8 = 11;
    let fd = stream.as_raw_fd();
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) on a TCP socket writes one int to the
    // pointer it is given, which points at `queued`.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes
    // into it and stores the length it wrote in `len`.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::addr_of_mut!(info).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fin_sent = matches!(info.tcpi_state, FIN_WAIT1 | LAST_ACK | CLOSING);
    let queued = usize::try_from(queued).unwrap_or(0);
    Ok(queued.saturating_sub(usize::from(fin_sent)))
}
