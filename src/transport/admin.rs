//! Operators' endpoints, behind the admin token (`Authorization: Bearer …`):
//! `GET /api/admin/status` (the rules serving and the last reload, errors included) and
//! `POST /api/admin/reload` (`?force=true`: even when it removes most of a shop's rules).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::App;
use super::auth::{self, Unauthorized};
use crate::reload::Removals;
use crate::shop::staff::token_hash;

#[derive(Deserialize)]
pub struct AdminQuery {
    token: Option<String>,
    /// Reload even when the new rules remove more than `[reload] max_removed_share`.
    #[serde(default)]
    force: bool,
}

fn authorised(app: &App, headers: &HeaderMap, query: &AdminQuery) -> Result<(), Unauthorized> {
    let expected = app.admin_token_sha256.as_ref().ok_or(Unauthorized)?;
    let token = auth::token(headers, query.token.as_deref()).ok_or(Unauthorized)?;
    if token_hash(token) == expected.0 {
        Ok(())
    } else {
        Err(Unauthorized)
    }
}

pub async fn status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<AdminQuery>,
) -> Response {
    if let Err(refused) = authorised(&app, &headers, &query) {
        return refused.into_response();
    }
    Json(app.rules.status()).into_response()
}

pub async fn reload(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<AdminQuery>,
) -> Response {
    if let Err(refused) = authorised(&app, &headers, &query) {
        return refused.into_response();
    }
    let removals = match query.force {
        true => Removals::Forced,
        false => Removals::Guarded,
    };
    let outcome = crate::reload::reload(&app.rules, "POST /api/admin/reload", removals).await;
    let status = if outcome.ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, Json(outcome)).into_response()
}
