//! Retention: what is older than its shop keeps (`[retention] days` in `shop.toml`) is
//! deleted by one background task, off the message path, in small batches so that no
//! statement holds the store for long and buyers' writes pass between them. The unanswered
//! questions are also trimmed to the most recently seen [`UNMATCHED_KEPT`] of each shop.
//!
//! Open cases are never deleted, whatever their age, nor anything of their conversations
//! (see [`Expired`]).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::reload::Rules;
use crate::store::{Expired, Store, StoreError};
use crate::telemetry::Metrics;

/// Rows deleted by one statement.
pub const BATCH: usize = 500;

/// Distinct unanswered questions kept per shop; the least recently seen go first.
pub const UNMATCHED_KEPT: usize = 10_000;

/// What the sweeper reads and where it counts.
pub struct Sweeper {
    pub store: Arc<dyn Store>,
    pub rules: Arc<Rules>,
    pub clock: SharedClock,
    pub metrics: Metrics,
    /// How often a sweep runs.
    pub every: Duration,
}

impl Sweeper {
    /// Sweeps at once, then every period, until shutdown.
    pub async fn run(self, shutdown: CancellationToken) {
        crate::clock::every(self.every, shutdown, || async {
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "the retention sweep stopped early");
            }
            self.metrics.retention_sweeps.inc();
        })
        .await;
    }

    /// Deletes, shop by shop, what is older than the shop keeps, and trims its unanswered
    /// questions. Shops no longer served are left alone: their retention is unknown.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        let catalog = self.rules.catalog_full();
        let shops: Vec<_> = catalog
            .ids()
            .filter_map(|id| catalog.get(id).map(|shop| (id.to_string(), shop.retention)))
            .collect();
        for (shop, keep) in shops {
            let before = self.clock.now() - keep;
            // In this order: a conversation goes once its messages and cases have.
            for table in Expired::ALL {
                loop {
                    let deleted = self
                        .store
                        .delete_expired(table, &shop, before, BATCH)
                        .await?;
                    self.count(table.as_str(), deleted);
                    if deleted < BATCH {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
            loop {
                let deleted = self
                    .store
                    .trim_unmatched(&shop, UNMATCHED_KEPT, BATCH)
                    .await?;
                self.count("unmatched", deleted);
                if deleted < BATCH {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    fn count(&self, table: &str, deleted: usize) {
        self.metrics
            .retention_deleted
            .with_label_values(&[table])
            .inc_by(deleted as u64);
    }
}
