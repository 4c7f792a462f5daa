//! iPXE scripts, GRUB configs and cloud-init seeds: ask the boot decision,
//! render the answer.

use super::{AppState, HttpError};
use crate::artifacts;
use crate::boot::{Asker, Client, Cpu, Firmware};
use crate::mac::MacAddr;
use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct ScriptQuery {
    mac: Option<String>,
    /// iPXE's `${platform}`: `pcbios` or `efi`.
    platform: Option<String>,
    /// iPXE's `${buildarch}`: `i386`, `x86_64`, `arm64`, …
    buildarch: Option<String>,
}

/// The iPXE client as the query string describes it.
pub fn script_client(platform: Option<&str>, buildarch: Option<&str>) -> Client {
    let firmware = if platform == Some("efi") {
        Firmware::Uefi
    } else {
        Firmware::Bios
    };
    let cpu = match buildarch {
        Some("arm64") | Some("aarch64") => Cpu::Arm64,
        _ => Cpu::X86_64,
    };
    Client {
        firmware,
        cpu,
        asker: Asker::IpxeScript,
        pi: None,
    }
}

pub async fn ipxe_script(
    axum::extract::State(app): AppState,
    Query(q): Query<ScriptQuery>,
) -> Result<impl IntoResponse, HttpError> {
    let config = app.config();
    let mac = match q.mac.as_deref() {
        None | Some("") => None,
        Some(m) => Some(
            m.parse::<MacAddr>()
                .map_err(|e| HttpError::new(axum::http::StatusCode::BAD_REQUEST, e.to_string()))?,
        ),
    };
    let client = script_client(q.platform.as_deref(), q.buildarch.as_deref());
    let (script, action) = artifacts::ipxe_script(&app, &config, mac, &client)?;
    if let Some(mac) = mac {
        let known = config.machine_by_mac(mac).is_some();
        app.store.write(&[crate::store::Write::Seen {
            mac,
            at: crate::inventory::unix_now(),
            known,
        }])?;
        tracing::info!(%mac, ?action, "boot script");
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        script,
    ))
}

/// `/grub/grub.cfg` and `/grub/grub.cfg-01-<mac>`: the GRUB configs that TFTP
/// also serves, for a GRUB whose prefix is bootherd's HTTP server.
pub async fn grub_cfg(
    axum::extract::State(app): AppState,
    Path(file): Path<String>,
) -> Result<impl IntoResponse, HttpError> {
    let config = app.config();
    let grub = artifacts::GrubFile::from_name(&format!("{}/{file}", artifacts::GRUB_PREFIX))
        .ok_or_else(|| HttpError::not_found(format!("no GRUB config {file}")))?;
    let (text, action) = grub.render(&app, &config)?;
    if let (artifacts::GrubFile::Machine(mac), Some(action)) = (grub, action) {
        let known = config.machine_by_mac(mac).is_some();
        app.store.write(&[crate::store::Write::Seen {
            mac,
            at: crate::inventory::unix_now(),
            known,
        }])?;
        tracing::info!(%mac, ?action, "GRUB config");
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

/// `/cloud-init/<mac>/<file>`: the NoCloud seed, for a configured machine
/// whose install is due; 404 for anything else, so nothing leaves without a reason.
pub async fn seed(
    axum::extract::State(app): AppState,
    Path((mac, file)): Path<(String, String)>,
) -> Result<impl IntoResponse, HttpError> {
    let config = app.config();
    let mac: MacAddr = mac.parse().map_err(|_| HttpError::not_found("not a MAC"))?;
    let Some((machine, state)) = app.lookup(&config, mac)? else {
        return Err(HttpError::not_found(format!(
            "{mac} is not in the inventory"
        )));
    };
    if !state.install_due() {
        return Err(HttpError::not_found(format!(
            "{} is {state}: no install pending (bootherd reimage {} to reinstall)",
            machine.hostname, machine.hostname
        )));
    }
    let body = artifacts::seed_file(&app, &config, &machine, &file)?
        .ok_or_else(|| HttpError::not_found(format!("no seed file {file}")))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body))
}
