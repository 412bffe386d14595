//! The service's outside: HTTP and websocket endpoints, and the wire format.
//!
//! Only this module knows axum, websockets and JSON frames; it turns frames into calls to the
//! responder and the store, and their results back into frames.

mod admin;
mod agent;
mod auth;
mod buyer;
mod http;
mod outbound;
mod pages;
mod rate;
mod slots;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::SharedClock;
use crate::config::{Limits, ServeConfig};
use crate::desk::Desk;
use crate::reload::Rules;
use crate::shop::Catalog;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::webhook::Dispatcher;

/// What every connection shares. Nothing here is locked on the message path: the catalogue
/// is swapped atomically, the store is a queue, metrics are atomics.
pub struct App {
    pub catalog: ArcSwap<Catalog>,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub metrics: Metrics,
    /// The human side: queue, agents, links to buyers.
    pub desk: Arc<Desk>,
    /// Where the rules come from, and how the last reload went.
    pub rules: Rules,
    /// The SHA-256 of the admin token, if one is configured.
    pub admin_token_sha256: Option<[u8; 32]>,
    pub limits: Limits,
    /// Cancelled when the service shuts down; connections close themselves on it.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Open connections, for the caps of `Limits`.
    slots: Arc<slots::Slots>,
    next_connection: AtomicU64,
}

impl App {
    pub fn new(
        catalog: Catalog,
        rules: Rules,
        store: Arc<dyn Store>,
        clock: SharedClock,
        limits: Limits,
    ) -> App {
        let metrics = Metrics::new();
        App {
            rules,
            admin_token_sha256: None,
            catalog: ArcSwap::from_pointee(catalog),
            desk: Desk::new(store.clone(), clock.clone(), metrics.clone()),
            store,
            clock,
            metrics,
            limits,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            slots: Arc::default(),
            next_connection: AtomicU64::new(1),
        }
    }

    /// A place for a new connection from `address`, or the 503 refusal.
    fn connection_slot(&self, address: std::net::SocketAddr) -> Result<slots::Slot, slots::Full> {
        self.slots.take(
            address.ip(),
            self.limits.max_connections,
            self.limits.max_connections_per_address,
        )
    }

    fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/ws/buyer", get(buyer::upgrade))
        .route("/ws/agent", get(agent::upgrade))
        .route("/healthz", get(http::healthz))
        .route("/metrics", get(http::metrics))
        .route("/api/stats", get(http::stats))
        .route("/api/admin/status", get(admin::status))
        .route("/api/admin/reload", axum::routing::post(admin::reload))
        .route("/", get(pages::shop))
        .route("/agent", get(pages::agent))
        .route("/widget.js", get(pages::widget))
        .route("/agent.js", get(pages::agent_js))
        .route("/agent.css", get(pages::agent_css))
        .with_state(app)
}

/// Serves until `shutdown` completes, then stops accepting, closes every connection with a
/// close frame, waits for them (up to the configured grace) and flushes the store.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    config: &ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = app.shutdown.clone();
    tokio::spawn(async move {
        shutdown.await;
        token.cancel();
    });
    app.tracker.spawn(
        Dispatcher {
            store: app.store.clone(),
            wake: app.desk.outbox.clone(),
            settings: config.webhooks.clone(),
            secret_of: webhook_secrets(app.clone()),
            shutdown: app.shutdown.clone(),
        }
        .run(),
    );
    app.tracker
        .spawn(escalations(app.clone(), config.escalation_check));
    app.tracker.spawn(crate::reload::on_hangup(app.clone()));
    if config.watch_rules {
        app.tracker
            .spawn(crate::reload::watch(app.clone(), config.reload_debounce));
    }
    let stopping = app.shutdown.clone();
    // Chat frames are small and a reply often comes as two (a notice, then the answer):
    // without TCP_NODELAY the second waits for the client's delayed ACK, up to 40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let served = axum::serve(
        listener,
        router(app.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stopping.cancelled().await })
    .await;
    app.tracker.close();
    if tokio::time::timeout(config.shutdown_grace, app.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within the shutdown grace period");
    }
    app.store.close().await;
    served
}

/// The current secret of a shop's webhook, looked up at delivery time.
fn webhook_secrets(app: Arc<App>) -> crate::webhook::SecretOf {
    Arc::new(move |shop: &str, url: &str| {
        let catalog = app.catalog.load();
        let shop = catalog.get(shop)?;
        shop.staff
            .webhooks
            .iter()
            .find(|h| h.url == url)
            .and_then(|h| h.secret.clone())
    })
}

/// Re-announces high-priority cases that waited too long, until shutdown.
async fn escalations(app: Arc<App>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let catalog = app.catalog.load_full();
        app.desk.escalate_due(&catalog).await;
    }
}
