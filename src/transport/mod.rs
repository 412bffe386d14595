//! The service's outside: HTTP and websocket endpoints, and the wire format.
//!
//! Only this module knows axum, websockets and JSON frames; it turns frames into calls to the
//! responder and the store, and their results back into frames.

mod buyer;
mod http;
mod rate;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::SharedClock;
use crate::config::{Limits, ServeConfig};
use crate::shop::Catalog;
use crate::store::Store;
use crate::telemetry::Metrics;

/// What every connection shares. Nothing here is locked on the message path: the catalogue
/// is swapped atomically, the store is a queue, metrics are atomics.
pub struct App {
    pub catalog: ArcSwap<Catalog>,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub metrics: Metrics,
    pub limits: Limits,
    /// Cancelled when the service shuts down; connections close themselves on it.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    next_connection: AtomicU64,
}

impl App {
    pub fn new(catalog: Catalog, store: Arc<dyn Store>, clock: SharedClock, limits: Limits) -> App {
        App {
            catalog: ArcSwap::from_pointee(catalog),
            store,
            clock,
            metrics: Metrics::new(),
            limits,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            next_connection: AtomicU64::new(1),
        }
    }

    fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/ws/buyer", get(buyer::upgrade))
        .route("/healthz", get(http::healthz))
        .route("/metrics", get(http::metrics))
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
    let stopping = app.shutdown.clone();
    let served = axum::serve(listener, router(app.clone()))
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
