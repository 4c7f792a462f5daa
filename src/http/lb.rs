//! `/api/v1/machines/{mac}/haproxy.cfg`: the haproxy config a VIP holder
//! runs, rendered from today's config. The load balancers' sync timer asks
//! for it every two minutes, so a control plane added to the config later
//! becomes a backend without a reinstall. Bound to the install token.

use super::api::{configured_caller, TokenQuery};
use super::{AppState, HttpError};
use crate::firstboot::lb::{haproxy_cfg, holds_vip};
use axum::extract::{Path, Query};
use axum::http::StatusCode;

pub async fn haproxy(
    axum::extract::State(app): AppState,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<String, HttpError> {
    let config = app.config();
    let (machine, _) = configured_caller(&app, &config, &id, q.token.as_deref())?;
    if !holds_vip(&config, &machine) {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            format!("{} holds no VIP: it runs no haproxy", machine.hostname),
        ));
    }
    Ok(haproxy_cfg(&app.renderer, &config, &machine)?)
}
