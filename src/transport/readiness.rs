//! `/readyz`: whether this node can serve buyers now, as opposed to `/healthz`, which only
//! says the process answers. A load balancer takes a node that is not ready out of rotation;
//! an orchestrator restarts one that is not live.
//!
//! The store check commits a one-row write, since reads still succeed on a database that is
//! read-only, locked by someone else or full. Anyone may ask, so the check is shared: one
//! runs at a time, callers that arrive meanwhile take its result, and a result younger than
//! [`REUSE_FOR`] is reused, so a flood of probes costs at most one small commit a second.

use std::time::Duration;

use tokio::time::Instant;

/// How long a check's result answers later probes.
pub const REUSE_FOR: Duration = Duration::from_secs(1);
/// A commit that takes longer than this counts as failed.
const COMMIT_DEADLINE: Duration = Duration::from_secs(5);

/// The outcome of one round of checks.
#[derive(Debug, Clone)]
pub struct Checked {
    /// When the round started, to reuse it for a while.
    at: Instant,
    /// `Err(reason)` when the store could not commit.
    pub store: Result<(), String>,
    /// `true` once the service began shutting down.
    pub shutting_down: bool,
}

impl Checked {
    pub fn ready(&self) -> bool {
        self.store.is_ok() && !self.shutting_down
    }

    /// One line per check: `store: ok`, or `store: failed: <why>`.
    pub fn report(&self) -> String {
        let store = match &self.store {
            Ok(()) => "store: ok".to_string(),
            Err(why) => format!("store: failed: {why}"),
        };
        let shutdown = match self.shutting_down {
            false => "shutdown: ok",
            true => "shutdown: failed: the service is shutting down",
        };
        format!("{store}\n{shutdown}\n")
    }
}

/// The last round of checks; the lock is held while a round runs, so rounds never overlap.
#[derive(Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<Checked>>,
}

impl Readiness {
    /// The checks' outcome now: a fresh round, or one that started after this call or less
    /// than [`REUSE_FOR`] ago.
    pub async fn check(
        &self,
        store: &dyn crate::store::Store,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Checked {
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        if let Some(checked) = last.as_ref()
            && (checked.at >= asked || checked.at.elapsed() < REUSE_FOR)
        {
            // Shutting down is known at once; only the store's answer is reused.
            return Checked {
                shutting_down: shutdown.is_cancelled(),
                ..checked.clone()
            };
        }
        let at = Instant::now();
        let store_result = match tokio::time::timeout(COMMIT_DEADLINE, store.check_commit()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot commit: {e}")),
            Err(_) => Err(format!("no commit within {} s", COMMIT_DEADLINE.as_secs())),
        };
        let checked = Checked {
            at,
            store: store_result,
            shutting_down: shutdown.is_cancelled(),
        };
        // Said once per change, not once per probe.
        let was_ok = last.as_ref().is_none_or(|previous| previous.store.is_ok());
        match (&checked.store, was_ok) {
            (Err(why), true) => {
                tracing::error!(check = "store", error = %why, "not ready: the store cannot commit")
            }
            (Ok(()), false) => tracing::info!(check = "store", "ready again: the store commits"),
            _ => {}
        }
        *last = Some(checked.clone());
        checked
    }
}
