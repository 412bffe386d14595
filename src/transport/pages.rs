//! The pages the service serves itself: the demo shop with the chat widget, the widget
//! script any shop page can include, and the agent console. Compiled into the binary from
//! `web/`; no build step, no CDN.

use axum::http::header;
use axum::response::IntoResponse;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

fn page(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

pub async fn shop() -> impl IntoResponse {
    page(HTML, include_str!("../../web/index.html"))
}

pub async fn agent() -> impl IntoResponse {
    page(HTML, include_str!("../../web/agent.html"))
}

pub async fn widget() -> impl IntoResponse {
    // Any shop's page may include the widget, so it is served to every origin.
    (
        [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        page(JS, include_str!("../../web/widget.js")),
    )
}

pub async fn agent_js() -> impl IntoResponse {
    page(JS, include_str!("../../web/agent.js"))
}

pub async fn agent_css() -> impl IntoResponse {
    page(CSS, include_str!("../../web/agent.css"))
}
