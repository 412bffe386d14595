//! The shops' service figures in `/metrics`, kept on a timer. Computing them walks every
//! message of the last 24 hours, so it happens once per period in one background task, never
//! per scrape: a scrape only renders gauges already set, and any number of scrapes share the
//! one computation.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::reload::Rules;
use crate::store::Store;
use crate::telemetry::Metrics;

/// What the refresher reads and where it writes.
pub struct KpiRefresher {
    pub store: Arc<dyn Store>,
    pub rules: Arc<Rules>,
    pub clock: SharedClock,
    pub metrics: Metrics,
    /// How often the figures are recomputed.
    pub every: Duration,
}

impl KpiRefresher {
    /// Recomputes the figures at once, then every period, until shutdown.
    pub async fn run(self, shutdown: CancellationToken) {
        crate::clock::every(self.every, shutdown, || self.refresh()).await;
    }

    /// Sets the KPI gauges of every shop from the store, over the last 24 hours.
    pub async fn refresh(&self) {
        let since = self.clock.now() - chrono::Duration::hours(24);
        let shops: Vec<String> = self.rules.catalog().ids().map(str::to_string).collect();
        for shop in shops {
            let stats = match self.store.stats(&shop, since).await {
                Ok(stats) => stats,
                Err(e) => {
                    tracing::warn!(error = %e, shop, "cannot compute the service figures");
                    continue;
                }
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
                    self.metrics
                        .kpi
                        .with_label_values(&[&shop, figure])
                        .set(value);
                }
            }
        }
        self.metrics.kpi_refreshes.inc();
    }
}
