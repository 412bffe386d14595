//! Operators' endpoints, behind the admin token (`Authorization: Bearer …`):
//! `GET /api/admin/status` (the rules serving and the last reload, errors included) and
//! `POST /api/admin/reload` (`?force=true`: even when it removes most of a shop's rules).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::App;
use super::auth;
use crate::reload::Removals;

#[derive(Deserialize)]
pub struct AdminQuery {
    token: Option<String>,
    /// Reload even when the new rules remove more than `[reload] max_removed_share`.
    #[serde(default)]
    force: bool,
}

/// Why an admin request was refused.
enum Refused {
    /// No admin token is configured: no request can be let in.
    NotConfigured,
    /// The request has no admin token, or a wrong one.
    Unauthorized,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::NotConfigured => (
                StatusCode::FORBIDDEN,
                "the admin API is off: no admin token is configured; set admin_token_sha256 in \
                 the config file (or --admin-token-sha256, AUTORESPONDER_ADMIN_TOKEN_SHA256) to \
                 the SHA-256 of a token (autoresponder agent-token makes one)\n",
            )
                .into_response(),
            Refused::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "the admin token is required (Authorization: Bearer <token> or ?token=)\n",
            )
                .into_response(),
        }
    }
}

fn authorised(app: &App, headers: &HeaderMap, query: &AdminQuery) -> Result<(), Refused> {
    let expected = app
        .admin_token_sha256
        .as_ref()
        .ok_or(Refused::NotConfigured)?;
    let token = auth::token(headers, query.token.as_deref()).ok_or(Refused::Unauthorized)?;
    if auth::token_matches(token, expected) {
        Ok(())
    } else {
        Err(Refused::Unauthorized)
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
