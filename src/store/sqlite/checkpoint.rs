//! Checkpoints off the message path.
//!
//! A WAL checkpoint copies committed pages from the log into the database file and calls
//! `fsync` on both, which takes milliseconds. SQLite's automatic checkpoint runs on the
//! connection that commits, so every message waiting for the next commit would wait for it
//! too: that was the long tail of reply latency. This thread does the copying and syncing on
//! a connection of its own, in `PASSIVE` mode, which never blocks the writer.
//!
//! The writer keeps its own automatic checkpoint: only a checkpoint that begins while no
//! write is in progress can rewind the log to its start, and the writer never pauses long
//! enough for another connection to find that moment. When it fires, this thread has already
//! copied and synced nearly everything, so it only has the last few pages to copy and little
//! to sync, and the log is rewound instead of growing.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Pages of log at which the writer checkpoints itself while this thread runs (SQLite's
/// default is 1,000): by then this thread has copied nearly all of them.
const WRITER_CHECKPOINT_PAGES: i64 = 4000;
/// Least time between two passes, so that a busy writer does not cause a sync per commit.
const MIN_INTERVAL: Duration = Duration::from_millis(25);

/// The writer's side: tells the checkpointer that something was committed.
pub struct Nudge(Option<SyncSender<()>>);

impl Nudge {
    /// Called after each commit; never blocks.
    pub fn committed(&self) {
        if let Some(nudge) = &self.0 {
            // Full: a pass is already due. Gone: the checkpointer stopped; the writer's own
            // checkpoint carries on alone.
            let _ = nudge.try_send(());
        }
    }
}

/// Starts the checkpointer for the database at `path`, whose writer is `writer`. When the
/// thread cannot start, the writer's own checkpoint does all the work, as by SQLite's default.
pub fn start(path: &Path, writer: &Connection, busy_timeout: Duration) -> Nudge {
    let connection = match Connection::open(path).and_then(|c| {
        c.busy_timeout(busy_timeout)?;
        Ok(c)
    }) {
        Ok(connection) => connection,
        Err(e) => {
            tracing::warn!(error = %e, "no checkpointer: the writer will checkpoint alone");
            return Nudge(None);
        }
    };
    let (nudge, nudged) = sync_channel(1);
    match std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || run(connection, nudged))
    {
        Ok(_) => {
            if let Err(e) =
                writer.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            {
                tracing::warn!(error = %e, "cannot set the writer's checkpoint size");
            }
            Nudge(Some(nudge))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no checkpointer: the writer will checkpoint alone");
            Nudge(None)
        }
    }
}

/// Runs a passive checkpoint after commits, at most every `MIN_INTERVAL`, until the writer
/// is gone.
fn run(connection: Connection, nudged: Receiver<()>) {
    while nudged.recv().is_ok() {
        let started = Instant::now();
        // A pass that finds the writer's own checkpoint running reports itself busy and
        // leaves the work to it.
        if let Err(e) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "a background checkpoint failed");
        }
        if let Some(rest) = MIN_INTERVAL.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}
