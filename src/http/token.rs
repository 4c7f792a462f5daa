//! `/api/v1/machines/{mac}/bootstrap-token`: the bootstrap token bootherd
//! holds now. A node's seed carries the token of the day it was made; one
//! whose first boot comes after that token expired (a machine that sat
//! powered off, a late control plane) joins with the one bootherd renewed.
//! Only for nodes that join (control planes and workers), bound to the
//! install token.

use super::api::{configured_caller, TokenQuery};
use super::{AppState, HttpError};
use crate::cluster::Secrets;
use crate::config::Role;
use axum::extract::{Path, Query};
use axum::http::StatusCode;

pub async fn current(
    axum::extract::State(app): AppState,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<String, HttpError> {
    let config = app.config();
    let (machine, _) = configured_caller(&app, &config, &id, q.token.as_deref())?;
    if machine.role == Role::LoadBalancer {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "a load balancer joins no cluster: it gets no bootstrap token",
        ));
    }
    let secrets = Secrets::load_or_create(&config)?;
    Ok(secrets.token().token())
}
