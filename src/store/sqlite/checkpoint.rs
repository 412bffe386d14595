//! Checkpoints off the message path.
//!
//! A WAL checkpoint copies committed pages from the log into the database file and calls
//! `fsync` on both, which takes milliseconds. SQLite's automatic checkpoint runs on the
//! connection that commits, inside the commit, so every message of that batch and every
//! message waiting for the next one would wait for it: that was the long tail of reply
//! latency. This thread does the copying and syncing on a connection of its own, in `PASSIVE`
//! mode, which never blocks the writer; the writer's automatic checkpoint is turned off.
//!
//! The log must still be rewound to its start now and then, or it grows without end. SQLite
//! rewinds it when a write begins while every page of the log has been copied, a moment a
//! busy writer never leaves to another connection. So when this thread sees the log past
//! [`Tuning::rewind_pages`], it asks the writer to checkpoint once itself, between two
//! batches, after answering the last: only the pages of the last few milliseconds are left to
//! copy, no reply waits for it, and the writer's next write rewinds the log.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Least time between two passes, so that a busy writer does not cause a sync per commit.
/// Shorter is better up to a point: the less log a pass copies, the shorter its `fsync`s,
/// and while the file system commits its journal for them, the writer's own writes to the
/// log can stall. 10 ms gave a lower p99 than 25 ms, and 100 ms a higher one
/// (`docs/benchmarks.md`, section 8).
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// SQLite's own automatic checkpoint size, restored on the writer if this thread is gone.
const SQLITE_AUTOCHECKPOINT: i64 = 1000;

/// How the log is kept short.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Pages of log (4 KiB each) past which the writer rewinds it. Each rewind costs the
    /// writer two `fsync`s, which the messages arriving meanwhile wait for, so under load it
    /// should be rare; the log file keeps the largest size it reached.
    pub rewind_pages: i64,
}

impl Default for Tuning {
    /// 16,384 pages: a 64 MiB log, rewound every few seconds at thousands of messages a
    /// second.
    fn default() -> Self {
        Tuning {
            rewind_pages: 16_384,
        }
    }
}

/// The writer's side of the checkpointer.
pub struct Checkpoints {
    nudge: Option<SyncSender<()>>,
    rewind_due: Arc<AtomicBool>,
}

impl Checkpoints {
    /// Called after each commit; never blocks.
    pub fn committed(&mut self, writer: &Connection) {
        let Some(nudge) = &self.nudge else { return };
        match nudge.try_send(()) {
            // Full: a pass is already due.
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::warn!("the checkpointer stopped: the writer will checkpoint alone");
                self.nudge = None;
                restore_autocheckpoint(writer);
            }
        }
    }

    /// Called by the writer between batches, once the last one is answered: checkpoints on
    /// the writer's own connection when the log is due to be rewound.
    pub fn rewind_if_due(&self, writer: &Connection) {
        if !self.rewind_due.swap(false, Ordering::AcqRel) {
            return;
        }
        match passive_checkpoint(writer) {
            // The checkpointer is in a pass: try again after the next batch.
            Ok(pass) if pass.busy => self.rewind_due.store(true, Ordering::Release),
            // All copied, so the next write rewinds the log; or a reader still needs its
            // end, and the checkpointer asks again after its next pass.
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the writer's checkpoint failed"),
        }
    }
}

/// Starts the checkpointer for the database at `path`, whose writer is `writer`. When the
/// thread cannot start, the writer's own checkpoint does all the work, as by SQLite's default.
pub fn start(
    path: &Path,
    writer: &Connection,
    busy_timeout: Duration,
    tuning: Tuning,
) -> Checkpoints {
    let alone = || Checkpoints {
        nudge: None,
        rewind_due: Arc::default(),
    };
    let connection = match Connection::open(path).and_then(|c| {
        c.busy_timeout(busy_timeout)?;
        Ok(c)
    }) {
        Ok(connection) => connection,
        Err(e) => {
            tracing::warn!(error = %e, "no checkpointer: the writer will checkpoint alone");
            return alone();
        }
    };
    let (nudge, nudged) = sync_channel(1);
    let rewind_due: Arc<AtomicBool> = Arc::default();
    let asks = rewind_due.clone();
    match std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || run(connection, nudged, &asks, tuning))
    {
        Ok(_) => {
            if let Err(e) = writer.pragma_update(None, "wal_autocheckpoint", 0) {
                tracing::warn!(error = %e, "cannot turn off the writer's own checkpoint");
            }
            Checkpoints {
                nudge: Some(nudge),
                rewind_due,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no checkpointer: the writer will checkpoint alone");
            alone()
        }
    }
}

fn restore_autocheckpoint(writer: &Connection) {
    if let Err(e) = writer.pragma_update(None, "wal_autocheckpoint", SQLITE_AUTOCHECKPOINT) {
        tracing::warn!(error = %e, "cannot turn the writer's own checkpoint back on");
    }
}

/// Runs a passive checkpoint after commits, at most every `MIN_INTERVAL`, until the writer
/// is gone.
fn run(connection: Connection, nudged: Receiver<()>, rewind_due: &AtomicBool, tuning: Tuning) {
    while nudged.recv().is_ok() {
        let started = Instant::now();
        match passive_checkpoint(&connection) {
            Ok(pass) if pass.log_pages >= tuning.rewind_pages => {
                rewind_due.store(true, Ordering::Release)
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "a background checkpoint failed"),
        }
        if let Some(rest) = MIN_INTERVAL.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// What one `PRAGMA wal_checkpoint(PASSIVE)` found.
struct Pass {
    /// Another connection was checkpointing, so this one did nothing.
    busy: bool,
    /// Pages in the log.
    log_pages: i64,
}

fn passive_checkpoint(connection: &Connection) -> rusqlite::Result<Pass> {
    // Columns: busy, pages of log, pages copied.
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok(Pass {
            busy: row.get::<_, i64>(0)? != 0,
            log_pages: row.get(1)?,
        })
    })
}
