//! The service's outside: HTTP and websocket endpoints, and the wire format.
//!
//! Only this module knows axum, websockets and JSON frames; it turns frames into calls to the
//! responder and the store, and their results back into frames.

mod acceptor;
mod admin;
mod agent;
mod auth;
mod buyer;
mod http;
mod outbound;
mod pages;
mod rate;
mod readiness;
mod slots;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use self::outbound::{ConnectionGuard, Outbound};
use crate::clock::SharedClock;
use crate::config::{Limits, ServeConfig, TokenHash};
use crate::desk::Desk;
use crate::reload::Rules;
use crate::store::Store;
use crate::telemetry::Metrics;

/// The close reason (with 1001) of a buyer's or an agent's connection to a shop that a reload
/// removed: the shop's folder is gone, so nothing of it is served any more.
const SHOP_NOT_SERVED: &str = "this shop is no longer served here";

/// What every connection shares. Nothing here is locked on the message path: the catalogue
/// is swapped atomically, the store is a queue, metrics are atomics.
pub struct App {
    /// The rules serving now, where they come from, and how the last reload went.
    pub rules: Arc<Rules>,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub metrics: Metrics,
    /// The human side: queue, agents, links to buyers.
    pub desk: Arc<Desk>,
    /// The SHA-256 of the admin token, if one is configured.
    pub admin_token_sha256: Option<TokenHash>,
    /// The SHA-256 of the token a scraper sends to see the KPIs in `/metrics`.
    pub metrics_token_sha256: Option<TokenHash>,
    pub limits: Limits,
    /// Cancelled when the service shuts down; connections close themselves on it.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Buyers' rate limits, which outlive their connections.
    buckets: rate::Buckets,
    /// Open websockets, buyers' and agents' apart (so buyers cannot push agents out), for
    /// the caps of `Limits`; every TCP connection's place is the acceptor's (`tcp_slots`).
    buyer_slots: Arc<slots::Slots>,
    agent_slots: Arc<slots::Slots>,
    /// Every accepted TCP connection, upgraded or not.
    tcp_slots: Arc<slots::Slots>,
    /// The last `/readyz` checks, shared by every probe.
    readiness: readiness::Readiness,
    next_connection: AtomicU64,
}

impl App {
    pub fn new(
        rules: Arc<Rules>,
        store: Arc<dyn Store>,
        desk: Arc<Desk>,
        clock: SharedClock,
        metrics: Metrics,
        config: &ServeConfig,
    ) -> App {
        App {
            rules,
            admin_token_sha256: config.admin_token_sha256,
            metrics_token_sha256: config.metrics_token_sha256,
            desk,
            store,
            clock,
            metrics,
            limits: config.limits.clone(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            buckets: rate::Buckets::default(),
            buyer_slots: slots::Slots::new(slots::Caps {
                total: config.limits.max_connections,
                per_address: Some(config.limits.max_connections_per_address),
            }),
            agent_slots: slots::Slots::new(slots::Caps {
                total: config.limits.max_agent_connections,
                per_address: Some(config.limits.max_agent_connections_per_address),
            }),
            tcp_slots: slots::Slots::new(tcp_caps(&config.limits)),
            readiness: readiness::Readiness::default(),
            next_connection: AtomicU64::new(1),
        }
    }

    /// A place for a new websocket of `side` from `address` (or, behind a trusted load
    /// balancer, from the client it names), or the 503 refusal.
    fn connection_slot(
        &self,
        side: Side,
        address: std::net::SocketAddr,
        headers: &axum::http::HeaderMap,
    ) -> Result<slots::Slot, slots::Full> {
        let slots = match side {
            Side::Buyer => &self.buyer_slots,
            Side::Agent => &self.agent_slots,
        };
        slots.take(self.client_address(address, headers))
    }

    /// The client's address as the limits count it: the socket's, or the load balancer's
    /// `X-Forwarded-For` when trusted.
    fn client_address(
        &self,
        address: std::net::SocketAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        match self.limits.trust_forwarded_for {
            true => forwarded_client(headers).unwrap_or(address.ip()),
            false => address.ip(),
        }
    }

    fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}

/// The TCP caps of `limits`. Behind a trusted load balancer every connection comes from the
/// balancer's address, and the client's is only known once a request is read, so only the
/// total applies; the websocket caps still count each client.
fn tcp_caps(limits: &Limits) -> slots::Caps {
    slots::Caps {
        total: limits.max_http_connections,
        per_address: (!limits.trust_forwarded_for)
            .then_some(limits.max_http_connections_per_address),
    }
}

/// Logs the connection caps the service serves with, beside the open-files limit (each
/// connection holds a file descriptor), and warns about caps that cannot be reached.
pub fn log_connection_caps(limits: &Limits, open_files: Option<u64>) {
    let tcp = tcp_caps(limits);
    tracing::info!(
        tcp = tcp.total,
        tcp_per_address = tcp.per_address.map_or("off".to_string(), |n| n.to_string()),
        buyers = limits.max_connections,
        buyers_per_address = limits.max_connections_per_address,
        agents = limits.max_agent_connections,
        agents_per_address = limits.max_agent_connections_per_address,
        "connection caps"
    );
    if tcp.total < limits.max_connections + limits.max_agent_connections {
        tracing::warn!(
            "max_http_connections is below max_connections + max_agent_connections: an \
             upgraded websocket keeps its TCP place, so the websocket caps cannot be reached"
        );
    }
    if let Some(per_address) = tcp.per_address
        && per_address
            < limits.max_connections_per_address + limits.max_agent_connections_per_address
    {
        tracing::warn!(
            "max_http_connections_per_address is below max_connections_per_address + \
             max_agent_connections_per_address: the websocket caps per address cannot be \
             reached"
        );
    }
    if let Some(open_files) = open_files
        && open_files < tcp.total as u64
    {
        tracing::warn!(
            open_files,
            max_http_connections = tcp.total,
            "the open-files limit is below max_http_connections: connections past it wait \
             for a free descriptor instead of getting 503"
        );
    }
}

/// Which side of the chat a websocket serves; each has its own caps and gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Buyer,
    Agent,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Buyer => "buyer",
            Side::Agent => "agent",
        }
    }
}

/// Completes a websocket upgrade: takes a place of `side`'s connection caps for `address`
/// (refused with 503 when full), sizes the socket by the limits, and runs `session` as a
/// tracked task in `span`, with the socket's incoming half and its outbound queue. Once the
/// session returns (dropping its queue), the writer drains what is queued, and the place is
/// held until the socket is closed.
fn accept_socket<S, F>(
    app: Arc<App>,
    address: std::net::SocketAddr,
    headers: &axum::http::HeaderMap,
    ws: WebSocketUpgrade,
    span: tracing::Span,
    side: Side,
    session: S,
) -> Response
where
    S: FnOnce(Arc<App>, SplitStream<WebSocket>, Outbound) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let slot = match app.connection_slot(side, address, headers) {
        Ok(slot) => slot,
        Err(full) => return full.into_response(),
    };
    let limits = &app.limits;
    ws.read_buffer_size(limits.socket_buffer_bytes)
        .write_buffer_size(limits.socket_buffer_bytes)
        .max_write_buffer_size(limits.socket_buffer_bytes + 2 * limits.max_frame_bytes)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| {
            let tracker = app.tracker.clone();
            let connection = async move {
                let _counted = ConnectionGuard::new(&app.metrics, side.label());
                let (sink, stream) = socket.split();
                let (outbound, writer) = Outbound::start(
                    sink,
                    app.limits.outbound_queue,
                    app.limits.outbound_wait,
                    app.metrics.clone(),
                );
                session(app, stream, outbound).await;
                // The writer ends once the queue is drained (the close frame included), or
                // is aborted.
                outbound::finish(writer).await;
                drop(slot);
            };
            tracker.track_future(connection.instrument(span))
        })
}

/// The client a load balancer names: the last address of `X-Forwarded-For`, the one the
/// balancer itself appended (those before it are whatever the client claimed).
fn forwarded_client(headers: &axum::http::HeaderMap) -> Option<std::net::IpAddr> {
    let last = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .next_back()?;
    last.trim().parse().ok()
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/ws/buyer", get(buyer::upgrade))
        .route("/ws/agent", get(agent::upgrade))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .route("/metrics", get(http::metrics))
        .route("/api/stats", get(http::stats))
        .route("/api/admin/status", get(admin::status))
        .route("/api/admin/reload", axum::routing::post(admin::reload))
        .route("/", get(pages::shop))
        .route("/shop.js", get(pages::shop_js))
        .route("/shop.css", get(pages::shop_css))
        .route("/agent", get(pages::agent))
        .route("/widget.js", get(pages::widget))
        .route("/widget.css", get(pages::widget_css))
        .route("/agent.js", get(pages::agent_js))
        .route("/agent.css", get(pages::agent_css))
        .with_state(app)
}

/// Serves until `shutdown` completes, then stops accepting, closes every connection with a
/// close frame, waits for them (up to `grace`) and flushes the store. The background tasks
/// were started with the service (`crate::start`) and end with the same shutdown.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = app.shutdown.clone();
    tokio::spawn(async move {
        shutdown.await;
        token.cancel();
    });
    let served = acceptor::serve_http(
        listener,
        router(app.clone()),
        app.limits.header_read_timeout,
        app.tcp_slots.clone(),
        app.shutdown.clone(),
    )
    .await;
    app.tracker.close();
    if tokio::time::timeout(grace, app.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within the shutdown grace period");
    }
    app.store.close().await;
    served
}

#[cfg(test)]
mod tests {
    use super::forwarded_client;

    #[test]
    fn the_client_behind_a_load_balancer_is_the_last_forwarded_address() {
        let check = |values: &[&str], expected: Option<&str>| {
            let mut headers = axum::http::HeaderMap::new();
            for value in values {
                headers.append("x-forwarded-for", value.parse().unwrap());
            }
            assert_eq!(
                forwarded_client(&headers),
                expected.map(|e| e.parse().unwrap()),
                "{values:?}"
            );
        };
        check(&["203.0.113.7"], Some("203.0.113.7"));
        check(&["1.2.3.4, 203.0.113.7"], Some("203.0.113.7"));
        check(&["1.2.3.4", "2001:db8::1"], Some("2001:db8::1"));
        check(&[], None);
        check(&["unknown"], None);
    }
}
