//! `GET /metrics`: the counters the transports keep and the gauges read
//! from the store, in the Prometheus text format (see `crate::metrics`).

use super::{AppState, HttpError};
use crate::status;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Prometheus text format 0.0.4.
pub async fn metrics(axum::extract::State(app): AppState) -> Result<Response, HttpError> {
    let gauges = status::gauges(&app)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&gauges),
    )
        .into_response())
}
