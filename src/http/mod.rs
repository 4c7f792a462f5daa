//! The HTTP server (axum): a thin adapter around the boot decision and the
//! store. `boot` serves iPXE scripts, GRUB configs and cloud-init seeds, `assets` streams
//! installer and boot files (with Range), `api` is the JSON API under `/api/v1/`,
//! `ui` the status page at `/` and its live stream, `metrics` is `/metrics`,
//! `conn` the connection loop (header names in Title-Case, for GRUB).

pub mod api;
mod assets;
mod boot;
mod conn;
mod lb;
mod metrics;
mod slot;
mod token;
mod ui;

use crate::app::App;
use anyhow::Context;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use std::time::Instant;

pub type AppState = State<Arc<App>>;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(ui::index))
        .route("/ui/status.js", get(ui::script))
        .route("/ui/status.css", get(ui::stylesheet))
        .route("/metrics", get(metrics::metrics))
        .route("/boot.ipxe", get(boot::ipxe_script))
        .route("/grub/{file}", get(boot::grub_cfg))
        .route("/cloud-init/{mac}/{file}", get(boot::seed))
        .route("/assets/{set}/{file}", get(assets::installer_file))
        .route("/api/v1/health", get(api::health))
        .route("/api/v1/machines", get(api::machines))
        .route("/api/v1/status", get(api::overview))
        .route("/api/v1/status/stream", get(ui::stream))
        .route(
            "/api/v1/machines/{id}/events",
            get(api::events).post(api::installer_event),
        )
        .route(
            "/api/v1/machines/{id}/installed",
            post(api::install_finished),
        )
        .route("/api/v1/machines/{id}/joined", post(api::joined))
        .route(
            "/api/v1/machines/{id}/firstboot-failed",
            post(api::firstboot_failed),
        )
        .route("/api/v1/machines/{id}/haproxy.cfg", get(lb::haproxy))
        .route("/api/v1/machines/{id}/bootstrap-token", get(token::current))
        .route(
            "/api/v1/machines/{id}/control-plane-slot",
            post(slot::ask).delete(slot::release),
        )
        .route(
            "/api/v1/machines/{id}/etcd-member",
            axum::routing::delete(slot::forget_member),
        )
        .route("/api/v1/machines/{id}/reimage", post(api::reimage))
        .route("/api/v1/reload", post(api::reload))
        .fallback(get(assets::boot_file))
        // Installer progress events are small; nothing legitimate posts more.
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// Installer and first-boot callbacks (POST), by route: their refusals are
/// counted as callback failures.
const CALLBACK_ROUTES: [(&str, &str); 4] = [
    ("/api/v1/machines/{id}/events", "installer-event"),
    ("/api/v1/machines/{id}/installed", "installed"),
    ("/api/v1/machines/{id}/joined", "joined"),
    ("/api/v1/machines/{id}/firstboot-failed", "firstboot-failed"),
];

/// One log line per request (method, path, status, time) and its count in `/metrics`.
async fn log_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // The route pattern, not the path: MACs and file names must not each
    // become a metrics series. Unmatched paths are boot files (the fallback).
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "files".to_string());
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    crate::metrics::http_request(&route, method.as_str(), status);
    if method == axum::http::Method::POST && status >= 400 {
        if let Some((_, callback)) = CALLBACK_ROUTES.iter().find(|(r, _)| *r == route) {
            crate::metrics::callback_failure(callback, status);
        }
    }
    tracing::info!(target: "bootherd::http", %peer, %method, %path, status = resp.status().as_u16(), ms = start.elapsed().as_millis() as u64, "http");
    resp
}

pub async fn serve(app: Arc<App>) -> anyhow::Result<()> {
    let bind = app.config().server.http_bind;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen for HTTP on {bind} (is another server using the port? change [server] http_port)"))?;
    tracing::info!("HTTP listening on {bind}");
    conn::serve(listener, router(app)).await;
    Ok(())
}

/// An error that becomes an HTTP response with a plain-text reason.
pub struct HttpError(StatusCode, String);

impl HttpError {
    pub fn new(status: StatusCode, msg: impl Into<String>) -> HttpError {
        HttpError(status, msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> HttpError {
        HttpError(StatusCode::NOT_FOUND, msg.into())
    }
}

impl From<anyhow::Error> for HttpError {
    fn from(e: anyhow::Error) -> HttpError {
        tracing::error!("request failed: {e:#}");
        HttpError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut body = self.1;
        body.push('\n');
        (self.0, body).into_response()
    }
}

pub use crate::status::MachineRow;
pub use boot::script_client;
