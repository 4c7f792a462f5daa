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
//! So: unacknowledged data (FINs and window probes included) gives up after
//! [`PEER_GONE_TIMEOUT`] (TCP_USER_TIMEOUT), and a connection idle for
//! [`IDLE_TIMEOUT`] is reset, not closed with a FIN: a reset leaves nothing
//! behind, and on an idle connection nothing is in flight to cut off.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a connection may wait for (the rest of) a request's headers,
/// idle keep-alive time included. Boot clients send a request as soon as they
/// have connected.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long sent data may stay unacknowledged before the peer counts as
/// gone. On a provisioning LAN a live peer acknowledges in milliseconds,
/// also when its window is full.
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
        if let Err(e) =
            socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(PEER_GONE_TIMEOUT))
        {
            tracing::debug!(%peer, "HTTP: cannot set TCP_USER_TIMEOUT: {e}");
        }
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
            if let Err(e) = served {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
                if e.is_timeout() {
                    // Closing with SO_LINGER 0 sends a reset.
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                }
            }
        });
    }
}
