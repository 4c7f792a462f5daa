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
use crate::status::progress::{
    FAILURE_LOG, FIRSTBOOT_FAILED, INSTALLER_PROGRESS, INSTALL_FINISHED, JOINED,
};
use crate::status::{self, MachineRow};
use crate::store::Write;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;

pub async fn health() -> &'static str {
    "ok\n"
}

pub async fn machines(
    axum::extract::State(app): AppState,
) -> Result<Json<Vec<MachineRow>>, HttpError> {
    let config = app.config();
    Ok(Json(status::machine_rows(&app, &config)?))
}

/// The cluster strip and every machine row: what the status page shows.
pub async fn overview(
    axum::extract::State(app): AppState,
) -> Result<Json<status::Overview>, HttpError> {
    Ok(Json(status::overview(&app)?))
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
    pub token: Option<String>,
}

/// The configured machine for an installer callback, after checking its install token.
pub(super) fn installer_caller(
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

/// [`installer_caller`], with the machine's config entry.
pub(super) fn configured_caller(
    app: &App,
    config: &Config,
    id: &str,
    token: Option<&str>,
) -> Result<(crate::config::Machine, State), HttpError> {
    let (mac, state) = installer_caller(app, config, id, token)?;
    let machine = config
        .machine_by_mac(mac)
        .cloned()
        .ok_or_else(|| HttpError::not_found(format!("{mac} is not in the inventory")))?;
    Ok((machine, state))
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
        kind: INSTALLER_PROGRESS.into(),
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
    // Once per install. A repeat while the machine is still `installed` is
    // the same installer retrying after its first reply was lost (the Pi
    // installer wipes the disk when it cannot tell bootherd): acknowledge it
    // and record nothing. Once joined, that install is long over.
    if state == State::Installed {
        tracing::info!(%mac, "install success reported again: already recorded");
        return Ok(StatusCode::NO_CONTENT);
    }
    if !state.install_due() {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            format!("this install already reported success (the machine is {state})"),
        ));
    }
    let started = status::progress::install_started(&app.store.events(mac, 1000)?);
    let finished = Event::now(INSTALL_FINISHED, "installer reported success");
    let took = started.map(|t| finished.time.saturating_sub(t));
    app.transition(mac, State::Installed, finished)?;
    // Counted once committed: a refused or failed callback is no install.
    if let Some(secs) = took {
        crate::metrics::install_finished(secs);
    }
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
        State::Installed => {
            app.transition(
                mac,
                State::Joined,
                Event::now(JOINED, "first boot finished: the node joined the cluster"),
            )?;
            // Its turn is over: the next control plane may join.
            super::slot::release_slot(&app, mac)?;
        }
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

/// The end of a failure log kept for the operator: enough to see the error,
/// small enough that a chatty log cannot fill the store.
const LOG_TAIL_BYTES: usize = 8 * 1024;

/// The role script failed at `step`; recorded for the operator, the state
/// stays. The body, when there is one, is the end of the script's log.
pub async fn firstboot_failed(
    axum::extract::State(app): AppState,
    Path(id): Path<String>,
    Query(q): Query<FailureQuery>,
    body: axum::body::Bytes,
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
        FIRSTBOOT_FAILED,
        format!(
            "first boot failed at step {step}; see /var/log/bootherd-firstboot.log on the node"
        ),
    );
    tracing::warn!(%mac, %step, "first boot failed");
    let mut writes = vec![Write::Event { mac, event }];
    if let Some(tail) = log_tail(&body) {
        writes.push(Write::Event {
            mac,
            event: Event::now(FAILURE_LOG, tail),
        });
    }
    app.store.write(&writes)?;
    // A failed step gives up the control-plane slot: the next attempt asks again.
    super::slot::release_slot(&app, mac)?;
    crate::metrics::firstboot_failure();
    Ok(StatusCode::NO_CONTENT)
}

/// The last `LOG_TAIL_BYTES` of a log as text, starting at a line; `None` when empty.
fn log_tail(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim_end();
    if text.trim().is_empty() {
        return None;
    }
    let mut start = text.len().saturating_sub(LOG_TAIL_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    // Drop a partial first line, unless the tail is one long line.
    let tail = match tail.split_once('\n') {
        Some((_, rest)) if start > 0 && !rest.is_empty() => rest,
        _ => tail,
    };
    Some(tail.to_string())
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
        Event::now(status::progress::REIMAGE, message),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_log_keeps_its_end_from_a_line_start() {
        assert_eq!(log_tail(b""), None);
        assert_eq!(log_tail(b" \n\n"), None);
        assert_eq!(log_tail(b"one\ntwo\n").as_deref(), Some("one\ntwo"));
        let mut long = String::new();
        for i in 0..2000 {
            long.push_str(&format!("line {i} é\n"));
        }
        let tail = log_tail(long.as_bytes()).unwrap();
        assert!(tail.len() <= LOG_TAIL_BYTES, "{}", tail.len());
        assert!(tail.starts_with("line "), "starts at a whole line");
        assert!(tail.ends_with("line 1999 é"));
    }
}
