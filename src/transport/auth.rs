//! Agent authentication: a token from `Authorization: Bearer …` or, for browsers, `?token=`,
//! checked against the SHA-256 hashes in the shops' `agents.toml`.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::App;
use crate::shop::Shop;
use crate::shop::staff::AgentAccount;

/// The shop and agent a token belongs to.
pub struct AgentIdentity {
    pub shop: Arc<Shop>,
    pub agent: AgentAccount,
}

pub fn token<'a>(headers: &'a HeaderMap, query_token: Option<&'a str>) -> Option<&'a str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").map(str::trim))
        .or(query_token)
        .filter(|t| !t.is_empty())
}

/// Whether `token` is the one whose SHA-256 is `expected` (the admin or metrics token).
pub fn token_matches(token: &str, expected: &crate::config::TokenHash) -> bool {
    crate::shop::staff::token_hash(token) == expected.0
}

/// A request without a valid agent token.
#[derive(Debug)]
pub struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid agent token is required (Authorization: Bearer <token> or ?token=)\n",
        )
            .into_response()
    }
}

/// The agent a request's token belongs to.
pub fn agent(
    app: &App,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<AgentIdentity, Unauthorized> {
    let Some(token) = token(headers, query_token) else {
        return Err(Unauthorized);
    };
    let catalog = app.rules.catalog();
    for id in catalog.ids() {
        let shop = catalog.get(id).expect("listed");
        if let Some(agent) = shop.staff.agent_with_token(token) {
            return Ok(AgentIdentity {
                shop: shop.clone(),
                agent: agent.clone(),
            });
        }
    }
    Err(Unauthorized)
}
