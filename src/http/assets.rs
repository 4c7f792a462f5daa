//! Files streamed to machines: installer kernels, initrds and ISOs, and the
//! boot-file namespace shared with TFTP (iPXE builds for UEFI HTTP boot, the
//! boot directory). Range requests are honoured (the installer fetches the ISO
//! in parts; interrupted downloads resume).

use super::{AppState, HttpError};
use crate::{bootfiles, images};
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

async fn stream(path: std::path::PathBuf, req: Request) -> Result<Response, HttpError> {
    // Bigger reads than the 64 KiB default: fewer wakeups per GiB streamed.
    let resp = ServeFile::new(&path)
        .with_buf_chunk_size(512 * 1024)
        .oneshot(req)
        .await
        .map_err(|e| HttpError::from(anyhow::anyhow!(e)))?;
    Ok(resp.map(Body::new).into_response())
}

pub async fn installer_file(
    axum::extract::State(app): AppState,
    Path((set, file)): Path<(String, String)>,
    req: Request,
) -> Result<Response, HttpError> {
    let config = app.config();
    let path = images::installer_file(&config, &set, &file)
        .ok_or_else(|| HttpError::not_found(format!("no installer file {set}/{file}")))?;
    if !path.is_file() {
        return Err(HttpError::not_found(format!(
            "{} is missing: place it there (see README: installer files)",
            path.display()
        )));
    }
    stream(path, req).await
}

pub async fn boot_file(
    axum::extract::State(app): AppState,
    req: Request,
) -> Result<Response, HttpError> {
    let config = app.config();
    let requested = req.uri().path().trim_start_matches('/').to_string();
    let requested =
        percent_decode(&requested).ok_or_else(|| HttpError::not_found("bad percent-encoding"))?;
    match bootfiles::resolve(&config, &requested) {
        Ok(path) => stream(path, req).await,
        Err(e @ bootfiles::BootFileError::Refused(..)) => Err(HttpError::new(
            axum::http::StatusCode::FORBIDDEN,
            e.to_string(),
        )),
        Err(e) => Err(HttpError::not_found(e.to_string())),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
