//! What every buyer of one load run shares, built by the runner (`load.rs`) and read by each
//! buyer (`buyer.rs`): where to connect, the message mix, the recorder, the pacer, the
//! measured window, the message budget and whether the service was killed on purpose.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::args::Args;
use crate::mix::Mix;
use crate::plan::LoadPlan;
use crate::recorder::Recorder;
use crate::socket::socket_config;

/// What every buyer of a run shares.
pub struct Ctx {
    pub urls: Vec<String>,
    pub shop: String,
    /// Makes buyer ids unique per run.
    pub run_id: String,
    pub seed: u64,
    pub mix: Mix,
    pub socket: WebSocketConfig,
    pub recorder: Recorder,
    pub pacer: Option<Pacer>,
    /// Messages left to send, when the run is bounded by a count.
    budget: Option<AtomicU64>,
    measure_from: Instant,
    pub deadline: Instant,
    pub answer_timeout: Duration,
    /// Handed-off buyers wait for the agent to resolve their case.
    pub agent: bool,
    /// Messages per buyer before it leaves and a new buyer takes the connection; 0: never.
    pub conversation: u64,
    killed: AtomicBool,
}

impl Ctx {
    /// The context of a run of `plan` against the servers at `urls`, measured from
    /// `measure_from` to `deadline`; with `agent`, handed-off buyers wait for the agent.
    pub fn new(
        args: &Args,
        urls: Vec<String>,
        plan: &LoadPlan,
        measure_from: Instant,
        deadline: Instant,
        agent: bool,
    ) -> anyhow::Result<Ctx> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(Ctx {
            urls,
            shop: args.shop.clone(),
            run_id: format!("{:x}{:x}", std::process::id(), nanos % 0xFFFF_FFFF),
            seed: args.seed,
            mix: Mix::new(args.weights.as_deref())?,
            socket: socket_config(args.socket_buffer_bytes, args.max_frame_bytes),
            recorder: Recorder::default(),
            pacer: plan.rate.map(Pacer::new),
            budget: plan.messages.map(AtomicU64::new),
            measure_from,
            deadline,
            answer_timeout: Duration::from_secs_f64(args.answer_timeout),
            agent,
            conversation: args.conversation,
            killed: AtomicBool::new(false),
        })
    }

    /// Whether a buyer may send another message: before the deadline, budget left, alive.
    pub fn may_send(&self) -> bool {
        if Instant::now() >= self.deadline || self.killed() {
            return false;
        }
        match &self.budget {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    pub fn measuring(&self, at: Instant) -> bool {
        at >= self.measure_from && at <= self.deadline
    }

    pub fn killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Marks the service as killed on purpose: buyers stop, and what was outstanding is
    /// counted as cut by the kill, not lost.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
    }
}

/// Spreads sends evenly at an aggregate rate: each send takes the next slot. A slot missed
/// (every buyer was waiting for an answer) is not made up later in a burst.
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(rate: f64) -> Pacer {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            next: Mutex::new(Instant::now()),
        }
    }

    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}
