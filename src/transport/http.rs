//! Plain HTTP endpoints: health, metrics and the shops' service figures.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{App, auth};

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    for queue in app.desk.queue_summaries() {
        app.metrics
            .longest_wait
            .with_label_values(&[&queue.shop])
            .set(queue.longest_wait_seconds);
    }
    refresh_kpis(&app).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

/// Sets the KPI gauges from the store, over the last 24 hours.
async fn refresh_kpis(app: &App) {
    let since = app.clock.now() - chrono::Duration::hours(24);
    let shops: Vec<String> = app.rules.catalog().ids().map(str::to_string).collect();
    for shop in shops {
        let Ok(stats) = app.store.stats(&shop, since).await else {
            continue;
        };
        let figures = [
            ("reply_ratio", Some(stats.reply_ratio)),
            ("handoff_rate", Some(stats.handoff_rate)),
            ("bot_resolution_rate", Some(stats.bot_resolution_rate)),
            (
                "bot_first_response_seconds",
                Some(stats.bot_first_response_seconds),
            ),
            (
                "bot_average_response_seconds",
                Some(stats.bot_average_response_seconds),
            ),
            (
                "human_first_response_seconds",
                stats.human_first_response_seconds,
            ),
            (
                "human_average_response_seconds",
                stats.human_average_response_seconds,
            ),
        ];
        for (figure, value) in figures {
            if let Some(value) = value {
                app.metrics
                    .kpi
                    .with_label_values(&[&shop, figure])
                    .set(value);
            }
        }
    }
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
