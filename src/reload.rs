//! Hot reload: operators edit `intents/` and `index/`, and the new rules serve a moment later,
//! without a restart and without ever taking the shop down.
//!
//! A reload loads and validates everything off the async runtime (FAQ indexes included),
//! then swaps the whole catalogue atomically: a buyer's next message uses the new rules,
//! conversations keep their state (it lives with the conversation, not the rules). A broken
//! edit never takes effect: the old rules keep serving, and the errors (file and line) are
//! logged, shown by `GET /api/admin/status` and counted in `/metrics`.
//!
//! A reload that would remove most of a shop's intents or FAQ entries at once is refused
//! the same way (`guard`), unless the operator forces it (`POST /api/admin/reload?force=true`).
//!
//! Triggers: a change under the watched folders (debounced), `SIGHUP`, and
//! `POST /api/admin/reload`. One reload runs at a time.

mod guard;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::shop::Catalog;
use crate::telemetry::Metrics;
pub use guard::{ReloadGuard, Removals};

/// Where the rules come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSources {
    pub intents: PathBuf,
    pub index: PathBuf,
    /// Build FAQ indexes in files under this folder (a fresh sub-folder per load, so a
    /// reload never writes under an index that is serving).
    pub faq_on_disk: Option<PathBuf>,
}

impl RuleSources {
    /// Loads every shop, for load number `generation`. Blocking: call it off the runtime.
    pub fn load(&self, generation: u64) -> Result<Catalog, crate::source::LoadErrors> {
        let on_disk = self
            .faq_on_disk
            .as_ref()
            .map(|dir| dir.join(format!("gen-{generation}")));
        Catalog::load_with_faq(&self.intents, Some(&self.index), on_disk.as_deref())
    }

    /// Removes the on-disk FAQ indexes of every load but `serving` (a failed or refused load,
    /// the rules it replaced); files still mapped by a reader stay readable until it lets go.
    /// Blocking: call it off the runtime.
    pub fn forget_other_generations(&self, serving: u64) {
        if let Some(dir) = &self.faq_on_disk {
            remove_other_generations(dir, serving);
        }
    }
}

fn remove_other_generations(dir: &Path, keep: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let keep = format!("gen-{keep}");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("gen-") && name != keep {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The outcome of the last reload, for operators.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadOutcome {
    pub at: DateTime<Utc>,
    pub trigger: String,
    pub ok: bool,
    /// The operator forced it past the guard on removals.
    pub forced: bool,
    /// Each mistake as `file:line:column: message`.
    pub errors: Vec<String>,
    pub took_ms: u64,
}

/// What operators see at `/api/admin/status`.
#[derive(Debug, Clone, Serialize)]
pub struct RulesStatus {
    /// When the rules now serving were loaded.
    pub loaded_at: DateTime<Utc>,
    pub shops: Vec<String>,
    pub generation: u64,
    /// Reloads attempted since start.
    pub reloads: u64,
    pub last_reload: Option<ReloadOutcome>,
}

/// The rules serving now, where they come from, and how reloading them went; shared by every
/// connection (which reads the catalogue without a lock) and by the reload triggers.
pub struct Rules {
    pub sources: RuleSources,
    /// Every shop's rules, swapped whole by a reload.
    catalog: ArcSwap<Catalog>,
    /// Where reloads are counted.
    metrics: Metrics,
    /// How much one reload may remove.
    guard: ReloadGuard,
    generation: AtomicU64,
    /// The generation serving now, announced after every swap: open agent consoles check
    /// that their token is still valid (an `agents.toml` edit may have revoked it).
    swapped: tokio::sync::watch::Sender<u64>,
    status: std::sync::Mutex<RulesStatus>,
    /// One reload at a time; a trigger during a reload waits for it, then reloads again.
    running: tokio::sync::Mutex<()>,
    /// SIGHUP, listened for from the moment the rules are loaded (before the service says it
    /// is listening), so an early signal reloads instead of killing the process.
    #[cfg(unix)]
    hangup: std::sync::Mutex<Option<tokio::signal::unix::Signal>>,
}

impl Rules {
    pub fn new(
        sources: RuleSources,
        catalog: Catalog,
        generation: u64,
        guard: ReloadGuard,
        metrics: Metrics,
    ) -> Rules {
        let shops = catalog.ids().map(str::to_string).collect();
        Rules {
            sources,
            catalog: ArcSwap::from_pointee(catalog),
            metrics,
            guard,
            generation: AtomicU64::new(generation),
            swapped: tokio::sync::watch::Sender::new(generation),
            status: std::sync::Mutex::new(RulesStatus {
                loaded_at: Utc::now(),
                shops,
                generation,
                reloads: 0,
                last_reload: None,
            }),
            running: tokio::sync::Mutex::new(()),
            #[cfg(unix)]
            hangup: std::sync::Mutex::new(None),
        }
    }

    /// Starts catching SIGHUP; `on_hangup` then reloads on each. Needs the async runtime.
    pub fn catch_hangup(&self) {
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => *self.hangup.lock().unwrap_or_else(|p| p.into_inner()) = Some(signal),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /api/admin/reload")
            }
        }
    }

    /// The rules serving now; a reload meanwhile does not change what this holds.
    pub fn catalog(&self) -> Guard<Arc<Catalog>> {
        self.catalog.load()
    }

    /// The rules serving now, to keep beyond a short borrow.
    pub fn catalog_full(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// Changes each time new rules are swapped in; subscribe before reading the catalogue,
    /// so no swap after the read is missed.
    pub fn swaps(&self) -> tokio::sync::watch::Receiver<u64> {
        self.swapped.subscribe()
    }

    pub fn status(&self) -> RulesStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Loads the rules again and swaps them in if they are valid and, unless `removals` is
/// `Forced`, remove no more than the guard allows.
pub async fn reload(rules: &Rules, trigger: &str, removals: Removals) -> ReloadOutcome {
    let _one = rules.running.lock().await;
    let generation = rules.generation.fetch_add(1, Ordering::Relaxed) + 1;
    let sources = rules.sources.clone();
    let started = Instant::now();
    // Rebuilding a large FAQ takes seconds of CPU; it runs on its own low-priority thread
    // (the index's writer threads inherit the priority), so conversations keep their cores.
    let (done, loaded) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("rules-reload".into())
        .spawn(move || {
            lower_this_threads_priority();
            let _ = done.send(sources.load(generation));
        });
    let loaded = match spawned {
        Ok(_) => loaded.await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let took_ms = started.elapsed().as_millis() as u64;
    let mut outcome = ReloadOutcome {
        at: Utc::now(),
        trigger: trigger.to_string(),
        ok: false,
        forced: removals == Removals::Forced,
        errors: Vec::new(),
        took_ms,
    };
    let refusals = match (&loaded, removals) {
        (Ok(Ok(catalog)), Removals::Guarded) => rules.guard.refusals(&rules.catalog(), catalog),
        _ => Vec::new(),
    };
    match loaded {
        Ok(Ok(_)) if !refusals.is_empty() => {
            let reasons = refusals.join("\n");
            outcome.errors = refusals;
            tracing::error!(
                trigger,
                "the edited rules remove too much; the previous rules keep serving:\n{reasons}"
            );
        }
        Ok(Ok(catalog)) => {
            let shops: Vec<String> = catalog.ids().map(str::to_string).collect();
            let previous = rules.catalog.swap(Arc::new(catalog));
            // Freeing a large FAQ index takes milliseconds: not on a thread serving buyers.
            tokio::task::spawn_blocking(move || drop(previous));
            outcome.ok = true;
            let mut status = rules.status.lock().unwrap_or_else(|p| p.into_inner());
            status.loaded_at = outcome.at;
            status.shops = shops;
            status.generation = generation;
            drop(status);
            rules.swapped.send_replace(generation);
            tracing::info!(
                trigger,
                took_ms,
                forced = outcome.forced,
                "the rules were reloaded"
            );
        }
        Ok(Err(errors)) => {
            outcome.errors = errors.0.iter().map(ToString::to_string).collect();
            tracing::error!(
                trigger,
                "the edited rules have errors; the previous rules keep serving:\n{errors}"
            );
        }
        Err(e) => {
            outcome.errors = vec![format!("the reload failed: {e}")];
            tracing::error!(error = %e, "the reload failed; the previous rules keep serving");
        }
    }
    let result = if outcome.ok { "ok" } else { "error" };
    rules.metrics.reloads.with_label_values(&[result]).inc();
    rules.metrics.rule_errors.set(outcome.errors.len() as i64);
    let serving = {
        let mut status = rules.status.lock().unwrap_or_else(|p| p.into_inner());
        status.reloads += 1;
        status.last_reload = Some(outcome.clone());
        status.generation
    };
    // Within the one-reload-at-a-time lock: the next reload's files are never removed.
    let sources = rules.sources.clone();
    let _ = tokio::task::spawn_blocking(move || sources.forget_other_generations(serving)).await;
    outcome
}

/// Makes the calling thread (and threads it starts) yield the CPU to the service's own.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; `0` names the calling thread on
    // Linux, whose nice value is per thread and inherited by threads it creates.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Reloads on SIGHUP until shutdown (once `Rules::catch_hangup` was called).
pub async fn on_hangup(rules: Arc<Rules>, shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        let taken = rules
            .hangup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(mut hangups) = taken else {
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                received = hangups.recv() => {
                    if received.is_none() {
                        return;
                    }
                    reload(&rules, "SIGHUP", Removals::Guarded).await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    shutdown.cancelled().await;
}

/// Watches the rule folders and reloads once changes have settled for `debounce`.
pub async fn watch(rules: Arc<Rules>, debounce: Duration, shutdown: CancellationToken) {
    use notify::{RecursiveMode, Watcher};
    let (changed, mut changes) = mpsc::channel::<()>(1);
    let ignored = rules.sources.faq_on_disk.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        // The on-disk FAQ indexes are written by reloads themselves.
        let ours = |p: &PathBuf| ignored.as_ref().is_some_and(|dir| p.starts_with(dir));
        if event.paths.iter().all(ours) && !event.paths.is_empty() {
            return;
        }
        // A full channel already holds a pending change: nothing is lost by dropping this.
        let _ = changed.try_send(());
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the rule folders; reload with SIGHUP");
            return;
        }
    };
    for dir in [&rules.sources.intents, &rules.sources.index] {
        if let Err(e) = watcher.watch(dir, RecursiveMode::Recursive) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch a rule folder");
        }
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            change = changes.recv() => if change.is_none() { return },
        }
        // Editors write a file in several steps: wait until the folder is quiet.
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                change = tokio::time::timeout(debounce, changes.recv()) => match change {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                },
            }
        }
        reload(&rules, "files changed", Removals::Guarded).await;
    }
}
