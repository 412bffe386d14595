//! A chat auto-responder for online shops.
//!
//! Buyers talk to it over websocket; it answers from the shop's intent files and hands
//! after-sale requests and complaints to human agents. See ARCHITECTURE.md for the map.

pub mod clock;
pub mod config;
pub mod conversation;
pub mod desk;
pub mod dialogue;
pub mod faq;
pub mod intents;
pub mod kpi;
pub mod normalize;
pub mod open_files;
pub mod reload;
pub mod reply;
pub mod responder;
pub mod retention;
pub mod shop;
pub mod source;
pub mod staffing;
pub mod store;
pub mod telemetry;
pub mod template;
pub mod tools;
pub mod transport;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::clock::SharedClock;
use crate::config::{Database, ServeConfig};
use crate::desk::{CatalogNow, Desk};
use crate::reload::{RuleSources, Rules};
use crate::store::{PgOptions, PgStore, SqliteStore, Store};
use crate::telemetry::Metrics;
use crate::transport::App;
use crate::webhook::Dispatcher;

/// Starts the service and serves on `listener` until `shutdown` completes. `main` passes
/// Ctrl-C-or-SIGTERM; tests pass their own signal and a port-0 listener.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    clock: SharedClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    start(&config, clock).await?.serve(listener, shutdown).await
}

/// A started service: its rules loaded, its store open, its background tasks running.
pub struct Service {
    pub app: Arc<App>,
    /// How long shutdown waits for connections to close.
    shutdown_grace: std::time::Duration,
}

impl Service {
    /// Serves until `shutdown` completes; then every connection and background task ends.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        transport::serve(self.app, listener, self.shutdown_grace, shutdown)
            .await
            .context("serving failed")
    }
}

/// Loads the shops, opens the store, restores the open cases and starts every background
/// task (webhook delivery, escalation, reload triggers, following the other nodes). Blocking
/// file and database work runs off the runtime.
pub async fn start(config: &ServeConfig, clock: SharedClock) -> anyhow::Result<Service> {
    let sources = RuleSources {
        intents: config.intents.clone(),
        index: config.index.clone(),
        faq_on_disk: config.faq_on_disk.clone(),
    };
    // Building FAQ indexes is CPU work: keep it off the async runtime.
    let loading = sources.clone();
    let catalog = tokio::task::spawn_blocking(move || {
        let catalog = loading.load(1);
        // What an earlier run left on disk is of no use now.
        loading.forget_other_generations(1);
        catalog
    })
    .await?
    .map_err(|e| anyhow::anyhow!("the intent or FAQ files have errors:\n{e}"))?;
    tracing::info!(shops = catalog.len(), database = %config.database, "loaded");
    check_demo_tokens(&catalog, config)?;
    let metrics = Metrics::new();
    let rules = Arc::new(Rules::new(
        sources,
        catalog,
        1,
        config.reload_guard,
        metrics.clone(),
    ));
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
    let desk = Desk::new(
        store.clone(),
        clock.clone(),
        metrics.clone(),
        desk::intake::IntakeLimits {
            per_address_per_minute: config.limits.handoffs_per_address_per_minute,
            per_shop_per_minute: config.limits.handoffs_per_shop_per_minute,
        },
    );
    let app = Arc::new(App::new(
        rules.clone(),
        store.clone(),
        desk.clone(),
        clock,
        metrics,
        config,
    ));
    // Cases open before a stop or a crash are back in the queue (or with their agent).
    desk.restore(&rules.catalog_full())
        .await
        .context("cannot load the open handoffs")?;

    let catalog_now: CatalogNow = {
        let rules = rules.clone();
        Arc::new(move || rules.catalog_full())
    };
    let (tasks, shutdown) = (&app.tracker, &app.shutdown);
    tasks.spawn(
        Dispatcher {
            store,
            wake: desk.outbox.clone(),
            settings: config.webhooks.clone(),
            secret_of: webhook_secrets(rules.clone()),
            shutdown: shutdown.clone(),
        }
        .run(),
    );
    tasks.spawn(desk.clone().escalate_every(
        config.escalation_check,
        catalog_now.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(
        kpi::KpiRefresher {
            store: app.store.clone(),
            rules: rules.clone(),
            clock: app.clock.clone(),
            metrics: app.metrics.clone(),
            every: config.kpi_refresh,
        }
        .run(shutdown.clone()),
    );
    tasks.spawn(
        retention::Sweeper {
            store: app.store.clone(),
            rules: rules.clone(),
            clock: app.clock.clone(),
            metrics: app.metrics.clone(),
            every: config.retention_sweep,
        }
        .run(shutdown.clone()),
    );
    tasks.spawn(reload::on_hangup(rules.clone(), shutdown.clone()));
    if config.watch_rules {
        tasks.spawn(reload::watch(
            rules,
            config.reload_debounce,
            shutdown.clone(),
        ));
    }
    if let Some(feed) = feed {
        tasks.spawn(
            desk.clone()
                .follow(feed, catalog_now.clone(), shutdown.clone()),
        );
        tasks.spawn(desk.keep_in_touch(config.cluster.clone(), catalog_now, shutdown.clone()));
    }
    Ok(Service {
        app,
        shutdown_grace: config.shutdown_grace,
    })
}

/// Warns about every agent who logs in with a public demo token, and refuses to serve them
/// on an address other machines can reach unless `allow_demo_tokens` says so.
fn check_demo_tokens(catalog: &shop::Catalog, config: &ServeConfig) -> anyhow::Result<()> {
    let mut listed = Vec::new();
    for id in catalog.ids() {
        let shop = catalog.get(id).expect("listed");
        let file = config.intents.join(id).join("agents.toml");
        let mut agents = Vec::new();
        for (agent, token) in shop.staff.demo_agents() {
            tracing::warn!(
                shop = id,
                agent = %agent.id,
                token,
                "this agent logs in with a public demo token: replace its token_sha256 in {} \
                 (`autoresponder agent-token` prints a new one)",
                file.display()
            );
            agents.push(agent.id.as_str());
        }
        if !agents.is_empty() {
            listed.push(format!("{} (agents {})", file.display(), agents.join(", ")));
        }
    }
    if listed.is_empty() || config.listen.ip().is_loopback() || config.allow_demo_tokens {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {} with the public demo agent tokens of README.md in {}; \
         replace their token_sha256 (`autoresponder agent-token` prints new ones), listen on \
         127.0.0.1, or pass --allow-demo-tokens to serve them anyway",
        config.listen,
        listed.join(", ")
    )
}

/// The current secret of a shop's webhook, looked up at delivery time.
fn webhook_secrets(rules: Arc<Rules>) -> webhook::SecretOf {
    Arc::new(move |shop: &str, url: &str| {
        let catalog = rules.catalog();
        let shop = catalog.get(shop)?;
        shop.staff
            .webhooks
            .iter()
            .find(|h| h.url == url)
            .and_then(|h| h.secret.clone())
    })
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
