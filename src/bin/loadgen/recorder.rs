//! Latencies and counts shared by every buyer of a run: one histogram for the whole measured
//! window and one for the current progress interval (the soak prints one per minute).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, from 1 µs to a minute, to three digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[derive(Default)]
pub struct Recorder {
    inner: Mutex<Inner>,
}

struct Inner {
    total: Histogram<u64>,
    interval: Histogram<u64>,
    /// Answers (replies, queue frames or errors) that arrived inside the measured window.
    measured_answers: u64,
    /// Error frames by `code`.
    errors: BTreeMap<String, u64>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            total: histogram(),
            interval: histogram(),
            measured_answers: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reply or queue frame answered a message after `latency`; `measured` when it
    /// arrived inside the measured window.
    pub fn answer(&self, latency: Duration, measured: bool) {
        let mut inner = self.lock();
        let micros = (latency.as_nanos() / 1000).max(1) as u64;
        inner.interval.saturating_record(micros);
        if measured {
            inner.total.saturating_record(micros);
            inner.measured_answers += 1;
        }
    }

    /// An error frame answered a message.
    pub fn error(&self, code: &str, measured: bool) {
        let mut inner = self.lock();
        *inner.errors.entry(code.to_string()).or_default() += 1;
        if measured {
            inner.measured_answers += 1;
        }
    }

    /// The interval's latencies so far, and a fresh interval.
    pub fn take_interval(&self) -> Latencies {
        let mut inner = self.lock();
        let latencies = Latencies::of(&inner.interval);
        inner.interval.reset();
        latencies
    }

    pub fn finish(&self) -> (Latencies, u64, BTreeMap<String, u64>) {
        let inner = self.lock();
        (
            Latencies::of(&inner.total),
            inner.measured_answers,
            inner.errors.clone(),
        )
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latencies {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

impl Latencies {
    fn of(h: &Histogram<u64>) -> Latencies {
        if h.is_empty() {
            return Latencies::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Latencies {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p99_9_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "p50 {:.3} ms, p90 {:.3}, p99 {:.3}, p99.9 {:.3}, max {:.3} (mean {:.3}, {} answers)",
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p99_9_ms,
            self.max_ms,
            self.mean_ms,
            self.count
        )
    }
}
