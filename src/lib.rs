//! A chat auto-responder for online shops.
//!
//! Buyers talk to it over websocket; it answers from the shop's intent files and hands
//! after-sale requests and complaints to human agents. See ARCHITECTURE.md for the map.

pub mod clock;
pub mod config;
pub mod conversation;
pub mod desk;
pub mod faq;
pub mod intents;
pub mod normalize;
pub mod reload;
pub mod responder;
pub mod shop;
pub mod store;
pub mod telemetry;
pub mod tools;
pub mod transport;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::clock::SharedClock;
use crate::config::{Database, ServeConfig};
use crate::reload::{RuleSources, Rules};
use crate::store::{PgOptions, PgStore, SqliteStore, Store};
use crate::transport::App;

/// Loads the shops, opens the store and serves on `listener` until `shutdown` completes.
/// `main` passes Ctrl-C-or-SIGTERM; tests pass their own signal and a port-0 listener.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    clock: SharedClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = build(&config, clock).await?;
    transport::serve(app, listener, &config, shutdown)
        .await
        .context("serving failed")
}

/// Loads everything the service needs; blocking file and database work runs off the runtime.
pub async fn build(config: &ServeConfig, clock: SharedClock) -> anyhow::Result<Arc<App>> {
    let sources = RuleSources {
        intents: config.intents.clone(),
        index: config.index.clone(),
        faq_on_disk: config.faq_on_disk.clone(),
    };
    let admin_token_sha256 = match &config.admin_token_sha256 {
        None => None,
        Some(hex_hash) => {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(hex_hash.trim(), &mut hash).map_err(|_| {
                anyhow::anyhow!("the admin token hash must be 64 hex digits (its SHA-256)")
            })?;
            Some(hash)
        }
    };
    // Building FAQ indexes is CPU work: keep it off the async runtime.
    let loading = sources.clone();
    let catalog = tokio::task::spawn_blocking(move || loading.load(1))
        .await?
        .map_err(|e| anyhow::anyhow!("the intent or FAQ files have errors:\n{e}"))?;
    let rules = Rules::new(sources, &catalog, 1);
    rules.catch_hangup();
    let store = open_store(config)
        .await
        .with_context(|| format!("cannot open the database {}", config.database))?;
    // Followed before the open cases are loaded, so no change committed meanwhile by another
    // node is missed.
    let feed = store
        .subscribe()
        .await
        .context("cannot follow the other nodes")?;
    tracing::info!(shops = catalog.len(), database = %config.database, "loaded");
    let mut app = App::new(catalog, rules, store, clock, config.limits.clone());
    app.admin_token_sha256 = admin_token_sha256;
    let app = Arc::new(app);
    // Cases open before a stop or a crash are back in the queue (or with their agent).
    let catalog = app.catalog.load_full();
    app.desk
        .restore(&catalog)
        .await
        .context("cannot load the open handoffs")?;
    if let Some(feed) = feed {
        let now: desk::CatalogNow = {
            let app = app.clone();
            Arc::new(move || app.catalog.load_full())
        };
        let desk = app.desk.clone();
        app.tracker
            .spawn(desk.clone().follow(feed, now.clone(), app.shutdown.clone()));
        app.tracker
            .spawn(desk.keep_in_touch(config.cluster.clone(), now, app.shutdown.clone()));
    }
    Ok(app)
}

/// The store the configuration names: a SQLite file (opened off the runtime), or a
/// PostgreSQL database shared with other nodes.
pub async fn open_store(config: &ServeConfig) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.database {
        Database::Sqlite(path) => {
            let (path, busy_timeout) = (path.clone(), config.database_busy_timeout);
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, busy_timeout))
                .await??;
            Arc::new(store)
        }
        Database::Postgres(url) => {
            let options = PgOptions {
                url: url.clone(),
                pool_size: config.cluster.pool_size,
                acquire_timeout: config.database_busy_timeout,
            };
            let store = PgStore::connect(&options).await?;
            tracing::info!(node = store.node(), "joined the nodes sharing the database");
            Arc::new(store)
        }
    })
}
