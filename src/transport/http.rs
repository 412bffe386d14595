//! Plain HTTP endpoints: health, metrics and the shops' service figures.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{App, auth};

/// `GET /healthz`: liveness only. The process answers; whether it can serve is `/readyz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when the store commits and the service is not shutting down, else
/// 503; the body names each check and why it failed.
pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    let checked = app.readiness.check(app.store.as_ref(), &app.shutdown).await;
    let status = match checked.ready() {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, checked.report()).into_response()
}

/// `GET /metrics`: renders what is already counted; the KPIs are kept by a timer
/// (`kpi.rs`), so a scrape reads no database. The KPIs are agent data: they are included only
/// for a scraper with the metrics token (`Authorization: Bearer …`).
pub async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> impl IntoResponse {
    for queue in app.desk.queue_summaries() {
        app.metrics
            .longest_wait
            .with_label_values(&[&queue.shop])
            .set(queue.longest_wait_seconds);
    }
    let with_kpis = match (&app.metrics_token_sha256, auth::token(&headers, None)) {
        (Some(expected), Some(token)) => auth::token_matches(token, expected),
        _ => false,
    };
    let body = match with_kpis {
        true => app.metrics.render(),
        false => app.metrics.render_public(),
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

#[derive(Deserialize)]
pub struct StatsQuery {
    shop: Option<String>,
    token: Option<String>,
    /// The window, in hours back from now (default 24).
    hours: Option<u32>,
}

/// `GET /api/stats?shop=…`: the shop's service figures; needs an agent token of that shop.
pub async fn stats(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<StatsQuery>,
) -> Response {
    let identity = match auth::agent(&app, &headers, query.token.as_deref()) {
        Ok(identity) => identity,
        Err(refused) => return refused.into_response(),
    };
    let shop = query.shop.unwrap_or_else(|| identity.shop.id.to_string());
    if shop != *identity.shop.id {
        return (
            StatusCode::FORBIDDEN,
            "this token belongs to an agent of another shop\n",
        )
            .into_response();
    }
    let hours = query.hours.unwrap_or(24).clamp(1, 24 * 366);
    let now = app.clock.now();
    let since = now - chrono::Duration::hours(i64::from(hours));
    let figures = match app.store.stats(&shop, since).await {
        Ok(figures) => figures,
        Err(e) => {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response();
        }
    };
    let queue = app.desk.queue_summary(&shop);
    Json(json!({
        "shop": shop,
        "since": crate::clock::rfc3339(since),
        "until": crate::clock::rfc3339(now),
        "figures": figures,
        "queue_length": queue.queued,
        "longest_wait_seconds": queue.longest_wait_seconds,
        "agents_online": queue.agents_online,
    }))
    .into_response()
}
