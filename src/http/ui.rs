//! The status page at `/`: one HTML file, a small script and a stylesheet,
//! all compiled into the binary (nothing is fetched from the internet), and
//! the live stream it listens to: server-sent events carrying the whole
//! operator view each time it changes.
//!
//! The page and the stream are read-only and open to anyone who can reach
//! bootherd; the reimage button posts to the API, which wants the operator token.

use super::{AppState, HttpError};
use crate::app::App;
use crate::status;
use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::RecvError;

const INDEX_HTML: &str = include_str!("ui/index.html");
const STATUS_JS: &str = include_str!("ui/status.js");
const STATUS_CSS: &str = include_str!("ui/status.css");

/// Changes that come within this window go out as one update: a rack of
/// machines leasing at once sends one frame, not hundreds.
const COALESCE: Duration = Duration::from_millis(150);
/// A comment line this often keeps proxies and NAT from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

fn text(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    text("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn script() -> Response {
    text("text/javascript; charset=utf-8", STATUS_JS)
}

pub async fn stylesheet() -> Response {
    text("text/css; charset=utf-8", STATUS_CSS)
}

/// `GET /api/v1/status/stream`: an `overview` event now, then one after
/// every change.
pub async fn stream(axum::extract::State(app): AppState) -> Result<Response, HttpError> {
    // Subscribe before the first read, so no change between them is missed.
    let mut changes = app.changes.subscribe();
    let first = frame(&app)?;
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if writer.write_all(first.as_bytes()).await.is_err() {
            return;
        }
        loop {
            let out = match tokio::time::timeout(KEEPALIVE, changes.recv()).await {
                Err(_) => ": keep-alive\n\n".to_string(),
                Ok(Err(RecvError::Closed)) => return,
                Ok(Ok(())) | Ok(Err(RecvError::Lagged(_))) => {
                    tokio::time::sleep(COALESCE).await;
                    while !matches!(
                        changes.try_recv(),
                        Err(tokio::sync::broadcast::error::TryRecvError::Empty)
                            | Err(tokio::sync::broadcast::error::TryRecvError::Closed)
                    ) {}
                    match frame(&app) {
                        Ok(f) => f,
                        Err(_) => continue,
                    }
                }
            };
            // Fails once the client has gone (the body, and so the reader, dropped).
            if writer.write_all(out.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(reader)),
    )
        .into_response())
}

/// One server-sent event with the whole view as JSON (one line: no newlines in compact JSON).
fn frame(app: &Arc<App>) -> Result<String, HttpError> {
    let overview = status::overview(app)?;
    let json = serde_json::to_string(&overview).map_err(anyhow::Error::from)?;
    Ok(format!("event: overview\ndata: {json}\n\n"))
}
