//! The JSON API under `/api/v1/`: machine listing and history, the
//! installer's progress webhook and install-finished callback (bound to the
//! per-install token), and the operator's writes (reimage, reload), which
//! need the operator token from `<data_dir>/operator-token`.

use super::{AppState, HttpError};
use crate::app::App;
use crate::cluster::etcd::{self, RemovalError};
use crate::config::{Config, Role};
use crate::inventory::{unix_now, Event, State};
use crate::mac::MacAddr;
use crate::operator;
use crate::store::Write;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

pub async fn health() -> &'static str {
    "ok\n"
}

/// One row of `bootherd machines`.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct MachineRow {
    pub hostname: Option<String>,
    pub mac: MacAddr,
    pub role: Option<String>,
    pub platform: Option<String>,
    pub ip: Option<String>,
    pub state: State,
    pub last_seen: Option<u64>,
    pub last_event: Option<Event>,
}

/// Every configured machine (in config order), then every discovered one.
pub fn machine_rows(app: &App, config: &Config) -> anyhow::Result<Vec<MachineRow>> {
    let records = app.store.machines()?;
    let leases = app.store.leases()?;
    let record = |mac: MacAddr| records.iter().find(|r| r.mac == mac);
    let mut rows = Vec::new();
    for m in &config.machines {
        let rec = record(m.mac);
        rows.push(MachineRow {
            hostname: Some(m.hostname.clone()),
            mac: m.mac,
            role: Some(m.role.to_string()),
            platform: Some(m.platform.to_string()),
            ip: Some(m.ip.to_string()),
            state: app.state_of(config, m.mac)?,
            last_seen: rec.and_then(|r| r.last_seen),
            last_event: rec.and_then(|r| r.last_event.clone()),
        });
    }
    for r in records
        .iter()
        .filter(|r| config.machine_by_mac(r.mac).is_none())
    {
        rows.push(MachineRow {
            hostname: None,
            mac: r.mac,
            role: None,
            platform: None,
            ip: leases
                .iter()
                .find(|l| l.mac == r.mac)
                .map(|l| l.ip.to_string()),
            state: State::Discovered,
            last_seen: r.last_seen,
            last_event: r.last_event.clone(),
        });
    }
    Ok(rows)
}

pub async fn machines(
    axum::extract::State(app): AppState,
) -> Result<Json<Vec<MachineRow>>, HttpError> {
    let config = app.config();
    Ok(Json(machine_rows(&app, &config)?))
}

/// Resolves a hostname or MAC from the URL to a MAC bootherd knows.
fn resolve(app: &App, config: &Config, id: &str) -> Result<MacAddr, HttpError> {
    if let Some(m) = config.machine_by_name(id) {
        return Ok(m.mac);
    }
    let mac: MacAddr = id
        .parse()
        .map_err(|_| HttpError::not_found(format!("no machine named {id}")))?;
    match app.store.machine(mac)? {
        Some(_) => Ok(mac),
        None => Err(HttpError::not_found(format!("no machine with MAC {mac}"))),
    }
}

pub async fn events(
    axum::extract::State(app): AppState,
    Path(id): Path<String>,
) -> Result<Json<Vec<Event>>, HttpError> {
    let config = app.config();
    let mac = resolve(&app, &config, &id)?;
    Ok(Json(app.store.events(mac, 1000)?))
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// The configured machine for an installer callback, after checking its install token.
fn installer_caller(
    app: &App,
    config: &Config,
    id: &str,
    token: Option<&str>,
) -> Result<(MacAddr, State), HttpError> {
    let mac: MacAddr = id.parse().map_err(|_| HttpError::not_found("not a MAC"))?;
    let (_, state) = app
        .lookup(config, mac)?
        .ok_or_else(|| HttpError::not_found(format!("{mac} is not in the inventory")))?;
    let token = token.ok_or_else(|| {
        HttpError::new(
            StatusCode::UNAUTHORIZED,
            "missing ?token= (the install token from the seed)",
        )
    })?;
    if !app.store.check_install_token(mac, token)? {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "install token is not valid for this machine (already used, or from another install)",
        ));
    }
    Ok((mac, state))
}

/// The autoinstall `reporting` webhook: subiquity posts JSON events
/// (`name`, `description`, `event_type` start|finish, `result`).
pub async fn installer_event(
    axum::extract::State(app): AppState,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
    body: axum::body::Bytes,
) -> Result<StatusCode, HttpError> {
    let config = app.config();
    let (mac, state) = installer_caller(&app, &config, &id, q.token.as_deref())?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, format!("event is not JSON: {e}")))?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let mut message = format!("{} {}", field("event_type"), field("name"))
        .trim()
        .to_string();
    for k in ["result", "description"] {
        if !field(k).is_empty() {
            message.push_str(&format!(" [{}]", field(k)));
        }
    }
    let event = Event {
        time: unix_now(),
        kind: "installer-progress".into(),
        message: message.chars().take(500).collect(),
    };
    if matches!(state, State::Configured | State::ReimagePending) {
        app.transition(mac, State::Installing, event)?;
    } else {
        app.store.write(&[Write::Event { mac, event }])?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The installer's last step: the install finished, the machine boots its disk from now on.
pub async fn install_finished(
    axum::extract::State(app): AppState,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<StatusCode, HttpError> {
    let config = app.config();
    let (mac, state) = installer_caller(&app, &config, &id, q.token.as_deref())?;
    // Once per install: after success is reported the machine is no longer
    // due an install, and a repeated post is refused.
    if !state.install_due() {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            format!("this install already reported success (the machine is {state})"),
        ));
    }
    app.transition(
        mac,
        State::Installed,
        Event::now("install-finished", "installer reported success"),
    )?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct FailureQuery {
    token: Option<String>,
    step: Option<String>,
}

/// The role script's last step: the node joined the cluster in its role.
pub async fn joined(
    axum::extract::State(app): AppState,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<StatusCode, HttpError> {
    let config = app.config();
    let (mac, state) = installer_caller(&app, &config, &id, q.token.as_deref())?;
    match state {
        State::Installed => app.transition(
            mac,
            State::Joined,
            Event::now("joined", "first boot finished: the node joined the cluster"),
        )?,
        // A re-run of an idempotent role script reports again: harmless.
        State::Joined => {}
        _ => {
            return Err(HttpError::new(
                StatusCode::CONFLICT,
                format!("the machine is {state}: only an installed machine can join"),
            ))
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The role script failed at `step`; recorded for the operator, the state stays.
pub async fn firstboot_failed(
    axum::extract::State(app): AppState,
    Path(id): Path<String>,
    Query(q): Query<FailureQuery>,
) -> Result<StatusCode, HttpError> {
    let config = app.config();
    let (mac, _) = installer_caller(&app, &config, &id, q.token.as_deref())?;
    let step: String = q
        .step
        .unwrap_or_else(|| "unknown".into())
        .chars()
        .take(100)
        .collect();
    let event = Event::now(
        "firstboot-failed",
        format!(
            "first boot failed at step {step}; see /var/log/bootherd-firstboot.log on the node"
        ),
    );
    tracing::warn!(%mac, %step, "first boot failed");
    app.store.write(&[Write::Event { mac, event }])?;
    Ok(StatusCode::NO_CONTENT)
}

fn require_operator(app: &App, headers: &HeaderMap) -> Result<(), HttpError> {
    let config = app.config();
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match operator::verify(&config.server.data_dir, presented) {
        Ok(true) => Ok(()),
        Ok(false) => Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "operator token required (Authorization: Bearer <data_dir>/operator-token)",
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn reimage(
    axum::extract::State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, HttpError> {
    require_operator(&app, &headers)?;
    let config = app.config();
    let machine = config.machine_by_name(&id).ok_or_else(|| {
        HttpError::not_found(format!(
            "no configured machine named {id} (only machines in the config can be installed)"
        ))
    })?;
    // A control plane leaves etcd before its install is served: once it
    // boots the installer its member is dead, and only a healthy quorum can
    // still remove it. A refusal changes nothing.
    let mut message = "operator requested a reinstall".to_string();
    if machine.role == Role::ControlPlane {
        match etcd::prepare_control_plane_reimage(&config, machine).await {
            Ok(note) => message.push_str(&format!("; {note}")),
            Err(RemovalError::Refused(reason)) => {
                return Err(HttpError::new(
                    StatusCode::CONFLICT,
                    format!("reimage of {id} refused: {reason}"),
                ))
            }
            Err(RemovalError::Failed(e)) => {
                tracing::error!("reimage of {id}: {e:#}");
                return Err(HttpError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("reimage of {id} not started: {e:#}"),
                ));
            }
        }
    }
    app.transition(
        machine.mac,
        State::ReimagePending,
        Event::now("reimage", message),
    )?;
    Ok(Json(
        serde_json::json!({ "hostname": machine.hostname, "mac": machine.mac, "state": State::ReimagePending }),
    ))
}

pub async fn reload(
    axum::extract::State(app): AppState,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, HttpError> {
    require_operator(&app, &headers)?;
    match app.reload() {
        Ok(warnings) => Ok(Json(
            serde_json::json!({ "reloaded": true, "warnings": warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>() }),
        )),
        Err(e) => Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{e}\nthe running config stays in force"),
        )),
    }
}
