//! `/api/v1/machines/{mac}/control-plane-slot`: a control plane's first boot
//! asks which of `kubeadm init` and `kubeadm join --control-plane` to run,
//! and waits its turn (the rules are `crate::bringup`). POST asks or renews
//! (200 `init`/`join`, or 409 with `Retry-After` while another holds it);
//! DELETE releases. And `/api/v1/machines/{mac}/etcd-member` (DELETE): a
//! join that failed half-way has its stale etcd member removed before the
//! next attempt. Bound to the install token like the other callbacks.

use super::api::{configured_caller, TokenQuery};
use super::{AppState, HttpError};
use crate::app::App;
use crate::bringup::{self, Answer, SlotAction};
use crate::cluster::etcd::{self, RemovalError};
use crate::config::{Config, Machine, Role};
use crate::inventory::{unix_now, State};
use crate::mac::MacAddr;
use crate::status::progress::JOINED;
use axum::extract::{Path, Query};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// How soon a waiting control plane asks again.
const RETRY_AFTER_SECS: u64 = 15;

/// Whether a control plane has joined, now or before a reimage: then the
/// cluster exists and nobody may `init` again.
pub(super) fn cluster_exists(app: &App, config: &Config) -> anyhow::Result<bool> {
    for m in config.control_planes() {
        if app.state_of(config, m.mac)? == State::Joined {
            return Ok(true);
        }
        if app
            .store
            .events(m.mac, 10_000)?
            .iter()
            .any(|e| e.kind == JOINED)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The control plane behind the install token, and its state.
fn control_plane(
    app: &App,
    config: &Config,
    id: &str,
    token: Option<&str>,
) -> Result<(Machine, State), HttpError> {
    let (machine, state) = configured_caller(app, config, id, token)?;
    if machine.role != Role::ControlPlane {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "only control planes take the control-plane slot",
        ));
    }
    if !matches!(state, State::Installed | State::Joined) {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            format!("the machine is {state}: the slot is for a first boot"),
        ));
    }
    Ok((machine, state))
}

pub async fn ask(
    axum::extract::State(app): AppState,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<Response, HttpError> {
    let config = app.config();
    let (machine, _) = control_plane(&app, &config, &id, q.token.as_deref())?;
    let mac = machine.mac;
    let mut exists = cluster_exists(&app, &config)?;
    let mut probed = false;
    loop {
        let current = app.store.slot()?;
        match bringup::ask(current.as_ref(), mac, exists, unix_now()) {
            Answer::Granted(slot)
                if slot.action == SlotAction::Init
                    && current.map(|c| c.holder) != Some(mac)
                    && !probed =>
            {
                // Before a fresh init: a cluster whose first control plane
                // died before reporting still answers in etcd. Never two.
                probed = true;
                exists = etcd::another_member_answers(&config, &machine).await?;
                continue;
            }
            Answer::Granted(slot) => {
                if !app.store.swap_slot(current.as_ref(), Some(&slot))? {
                    continue; // another control plane asked at the same moment
                }
                if current.map(|c| c.holder) != Some(mac) {
                    tracing::info!(%mac, action = slot.action.name(), "control-plane slot granted");
                }
                return Ok(slot.action.name().into_response());
            }
            Answer::Wait(held) => {
                let holder = config
                    .machine_by_mac(held.holder)
                    .map(|m| m.hostname.clone())
                    .unwrap_or_else(|| held.holder.to_string());
                let left = held.expires.saturating_sub(unix_now());
                return Ok((
                    StatusCode::CONFLICT,
                    [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
                    format!(
                        "wait: {holder} holds the control-plane slot ({}; it lapses in {left} s unless renewed)\n",
                        held.action.name()
                    ),
                )
                    .into_response());
            }
        }
    }
}

/// Releases `mac`'s slot, if it holds it.
pub(super) fn release_slot(app: &App, mac: MacAddr) -> anyhow::Result<()> {
    loop {
        let current = app.store.slot()?;
        let after = bringup::release(current.as_ref(), mac);
        if after == current || app.store.swap_slot(current.as_ref(), after.as_ref())? {
            return Ok(());
        }
    }
}

pub async fn release(
    axum::extract::State(app): AppState,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<StatusCode, HttpError> {
    let config = app.config();
    let (machine, _) = control_plane(&app, &config, &id, q.token.as_deref())?;
    release_slot(&app, machine.mac)?;
    Ok(StatusCode::NO_CONTENT)
}

/// DELETE `etcd-member`: the role script's `kubeadm reset` after a failed
/// control-plane join leaves the member etcd added for it; a second join
/// beside it fails. Only before the node joined (a joined control plane's
/// member is its own; removing it is a reimage's job).
pub async fn forget_member(
    axum::extract::State(app): AppState,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<String, HttpError> {
    let config = app.config();
    let (machine, state) = control_plane(&app, &config, &id, q.token.as_deref())?;
    if state != State::Installed {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            "the machine has joined: its etcd member is not stale (reimage it instead)",
        ));
    }
    match etcd::forget_failed_join(&config, &machine).await {
        Ok(note) => {
            tracing::info!(host = %machine.hostname, "after a failed join: {note}");
            Ok(format!("{note}\n"))
        }
        Err(RemovalError::Refused(reason)) => Err(HttpError::new(StatusCode::CONFLICT, reason)),
        Err(RemovalError::Failed(e)) => {
            Err(HttpError::new(StatusCode::BAD_GATEWAY, format!("{e:#}")))
        }
    }
}
