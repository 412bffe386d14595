//! The pages the service serves itself: the demo shop with the chat widget, the widget
//! script (and its stylesheet) any shop page can include, and the agent console. Compiled
//! into the binary from `web/`; no build step, no CDN.
//!
//! Every page loads only files of this service: no inline script or style, so the pages are
//! served with a Content-Security-Policy that allows nothing else, may not be framed (the
//! agent console least of all: framed, its buttons could be clicked for an agent by another
//! site), and send no referrer (the console's address may hold its token, the demo page's a
//! buyer id).

use axum::http::{HeaderName, header};
use axum::response::IntoResponse;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// What a page may load and who may frame it: files and sockets of this service only, no
/// plugins, no `<base>` elsewhere, forms posted here only, framed by nobody. (`data:` images:
/// the pages' empty favicon.)
pub const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                               base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

fn page(body: &'static str) -> impl IntoResponse {
    let headers: [(HeaderName, &str); 3] = [
        (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        // For browsers that predate `frame-ancestors`.
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    (headers, file(HTML, body))
}

pub async fn shop() -> impl IntoResponse {
    page(include_str!("../../web/index.html"))
}

pub async fn shop_js() -> impl IntoResponse {
    file(JS, include_str!("../../web/shop.js"))
}

pub async fn shop_css() -> impl IntoResponse {
    file(CSS, include_str!("../../web/shop.css"))
}

pub async fn agent() -> impl IntoResponse {
    page(include_str!("../../web/agent.html"))
}

pub async fn widget() -> impl IntoResponse {
    // Any shop's page may include the widget, so it is served to every origin.
    (
        [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        file(JS, include_str!("../../web/widget.js")),
    )
}

pub async fn widget_css() -> impl IntoResponse {
    (
        [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        file(CSS, include_str!("../../web/widget.css")),
    )
}

pub async fn agent_js() -> impl IntoResponse {
    file(JS, include_str!("../../web/agent.js"))
}

pub async fn agent_css() -> impl IntoResponse {
    file(CSS, include_str!("../../web/agent.css"))
}
