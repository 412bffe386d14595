//! Logs and metrics.
//!
//! Tracing goes to stderr, filtered by `RUST_LOG`. Metrics live in one Prometheus registry per
//! service instance (not a global one), so tests running several services in one process do
//! not mix their counts; `/metrics` renders it in the text format.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Installs the tracing subscriber; `RUST_LOG` overrides the default `info` filter.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The name of the KPI gauges, which only the scraper with the metrics token sees.
const KPI_METRIC: &str = "autoresponder_kpi";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Open websocket connections by side (buyer, agent).
    pub connections: IntGaugeVec,
    /// Buyer messages received, by shop.
    pub buyer_messages: IntCounterVec,
    /// Replies sent, by shop, kind and intent.
    pub replies: IntCounterVec,
    /// Time from a buyer frame arriving to its replies being queued for sending, stored
    /// included.
    pub reply_latency: Histogram,
    /// Handoffs created, by shop, intent and priority.
    pub handoffs: IntCounterVec,
    /// Requests for a human refused because too many cases were opened lately, by shop and
    /// by the limit reached (address, shop): a handoff flood shows here.
    pub handoffs_refused: IntCounterVec,
    /// Connections of buyers new to a shop refused because their address opened too many
    /// conversations lately, by shop: a flood of fresh buyer ids shows here.
    pub conversations_refused: IntCounterVec,
    /// Rows deleted by the retention task, by table.
    pub retention_deleted: IntCounterVec,
    /// Retention sweeps finished.
    pub retention_sweeps: prometheus::IntCounter,
    /// Error frames sent, by code.
    pub errors: IntCounterVec,
    /// Cases waiting for an agent, by shop.
    pub queue_length: IntGaugeVec,
    /// Seconds the oldest queued case has waited, by shop (set when scraped).
    pub longest_wait: GaugeVec,
    /// Agents at the desk (online or busy), by shop.
    pub agents_online: IntGaugeVec,
    /// From a handoff to its first agent message, by shop.
    pub human_first_response: HistogramVec,
    /// The shops' service figures over the last 24 hours (see `/api/stats`), by shop and
    /// figure; recomputed on a timer (`kpi.rs`) and shown only to a scraper with the metrics
    /// token.
    pub kpi: GaugeVec,
    /// Times the KPIs were recomputed (each one walk of the last 24 hours); scrapes do not
    /// add to it.
    pub kpi_refreshes: prometheus::IntCounter,
    /// Rule reloads, by result (ok, error).
    pub reloads: IntCounterVec,
    /// Mistakes found by the last reload; 0 when the files on disk are what serves.
    pub rule_errors: prometheus::IntGauge,
    /// Clients dropped because they stopped reading their socket.
    pub slow_clients_dropped: prometheus::IntCounter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let connections = IntGaugeVec::new(
            Opts::new("autoresponder_connections", "Open websocket connections."),
            &["side"],
        )
        .expect("valid metric");
        let buyer_messages = IntCounterVec::new(
            Opts::new(
                "autoresponder_buyer_messages_total",
                "Buyer messages received.",
            ),
            &["shop"],
        )
        .expect("valid metric");
        let replies = IntCounterVec::new(
            Opts::new("autoresponder_replies_total", "Replies sent to buyers."),
            &["shop", "kind", "intent"],
        )
        .expect("valid metric");
        let reply_latency = Histogram::with_opts(
            HistogramOpts::new(
                "autoresponder_reply_latency_seconds",
                "From a buyer message arriving to its replies being sent, storage included.",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 1.0,
            ]),
        )
        .expect("valid metric");
        let handoffs = IntCounterVec::new(
            Opts::new(
                "autoresponder_handoffs_total",
                "Conversations handed to humans.",
            ),
            &["shop", "intent", "priority"],
        )
        .expect("valid metric");
        let handoffs_refused = IntCounterVec::new(
            Opts::new(
                "autoresponder_handoffs_refused_total",
                "Requests for a human refused by the handoff rate limits, by limit reached.",
            ),
            &["shop", "limit"],
        )
        .expect("valid metric");
        let conversations_refused = IntCounterVec::new(
            Opts::new(
                "autoresponder_conversations_refused_total",
                "New conversations refused by the per-address limit.",
            ),
            &["shop"],
        )
        .expect("valid metric");
        let retention_deleted = IntCounterVec::new(
            Opts::new(
                "autoresponder_retention_deleted_rows_total",
                "Rows deleted because they were older than their shop keeps, by table.",
            ),
            &["table"],
        )
        .expect("valid metric");
        let retention_sweeps = prometheus::IntCounter::new(
            "autoresponder_retention_sweeps_total",
            "Retention sweeps finished.",
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new("autoresponder_errors_total", "Error frames sent, by code."),
            &["code"],
        )
        .expect("valid metric");
        let queue_length = IntGaugeVec::new(
            Opts::new("autoresponder_queue_length", "Cases waiting for an agent."),
            &["shop"],
        )
        .expect("valid metric");
        let longest_wait = GaugeVec::new(
            Opts::new(
                "autoresponder_queue_longest_wait_seconds",
                "How long the oldest queued case has waited.",
            ),
            &["shop"],
        )
        .expect("valid metric");
        let agents_online = IntGaugeVec::new(
            Opts::new(
                "autoresponder_agents_online",
                "Agents at the desk (online or busy).",
            ),
            &["shop"],
        )
        .expect("valid metric");
        let human_first_response = HistogramVec::new(
            HistogramOpts::new(
                "autoresponder_human_first_response_seconds",
                "From a handoff to the first agent message.",
            )
            .buckets(vec![
                5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
            ]),
            &["shop"],
        )
        .expect("valid metric");
        let kpi = GaugeVec::new(
            Opts::new(
                KPI_METRIC,
                "Service figures over the last 24 hours: reply_ratio, handoff_rate, \
                 bot_resolution_rate, bot/human first and average response seconds.",
            ),
            &["shop", "figure"],
        )
        .expect("valid metric");
        let kpi_refreshes = prometheus::IntCounter::new(
            "autoresponder_kpi_refreshes_total",
            "Times the service figures were recomputed from the store (on a timer, not per scrape).",
        )
        .expect("valid metric");
        let reloads = IntCounterVec::new(
            Opts::new(
                "autoresponder_rule_reloads_total",
                "Rule reloads, by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let rule_errors = prometheus::IntGauge::new(
            "autoresponder_rule_errors",
            "Mistakes found in the rule files by the last reload (the previous rules serve).",
        )
        .expect("valid metric");
        let slow_clients_dropped = prometheus::IntCounter::new(
            "autoresponder_slow_clients_dropped_total",
            "Clients dropped because they stopped reading their socket.",
        )
        .expect("valid metric");
        for collector in [
            Box::new(connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(buyer_messages.clone()),
            Box::new(replies.clone()),
            Box::new(reply_latency.clone()),
            Box::new(handoffs.clone()),
            Box::new(handoffs_refused.clone()),
            Box::new(conversations_refused.clone()),
            Box::new(retention_deleted.clone()),
            Box::new(retention_sweeps.clone()),
            Box::new(errors.clone()),
            Box::new(queue_length.clone()),
            Box::new(longest_wait.clone()),
            Box::new(agents_online.clone()),
            Box::new(human_first_response.clone()),
            Box::new(kpi.clone()),
            Box::new(kpi_refreshes.clone()),
            Box::new(reloads.clone()),
            Box::new(rule_errors.clone()),
            Box::new(slow_clients_dropped.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Metrics {
            registry,
            connections,
            buyer_messages,
            replies,
            reply_latency,
            handoffs,
            handoffs_refused,
            conversations_refused,
            retention_deleted,
            retention_sweeps,
            errors,
            queue_length,
            longest_wait,
            agents_online,
            human_first_response,
            kpi,
            kpi_refreshes,
            reloads,
            rule_errors,
            slow_clients_dropped,
        }
    }

    pub fn render(&self) -> String {
        self.render_families(true)
    }

    /// Every metric but the shops' service figures, which are agent data: what `/metrics`
    /// shows a scraper without the metrics token.
    pub fn render_public(&self) -> String {
        self.render_families(false)
    }

    fn render_families(&self, with_kpis: bool) -> String {
        let families: Vec<_> = self
            .registry
            .gather()
            .into_iter()
            .filter(|family| with_kpis || family.name() != KPI_METRIC)
            .collect();
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut buffer)
            .expect("encoding metrics into memory cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
