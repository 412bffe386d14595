//! The plan of one load run: how many connections, how long, how hard, and whether to
//! print progress or kill the service along the way. `main.rs` draws it from the flags; the
//! runner (`load.rs`) carries it out and the report quotes it.

use std::time::Duration;

use crate::args::Args;

/// How long and how hard one run goes.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub connections: usize,
    pub warmup: f64,
    pub duration: f64,
    pub messages: Option<u64>,
    pub rate: Option<f64>,
    pub ticks: Option<Duration>,
    pub kill_after: Option<f64>,
}

impl LoadPlan {
    pub fn from_args(args: &Args) -> LoadPlan {
        LoadPlan {
            connections: args.connections,
            warmup: args.warmup,
            duration: args.duration,
            messages: args.messages,
            rate: args.rate,
            ticks: None,
            kill_after: None,
        }
    }

    pub fn with_duration(mut self, seconds: f64) -> Self {
        self.duration = seconds;
        self
    }

    pub fn with_rate(mut self, rate: Option<f64>) -> Self {
        self.rate = rate;
        self
    }

    pub fn with_ticks(mut self, every: Duration) -> Self {
        self.ticks = Some(every);
        self
    }

    pub fn with_kill(mut self, after: Option<f64>) -> Self {
        self.kill_after = after;
        self
    }
}
