//! The SQLite store: one file in WAL mode, written by one dedicated thread.
//!
//! SQLite allows one writer at a time, and its calls block, so they must stay off the async
//! runtime. A single thread owns the connection and serves a bounded queue of jobs: it takes
//! every job waiting (up to a batch limit), runs them in one transaction, commits once, then
//! answers them all. Under load a commit carries hundreds of messages; when idle a lone
//! message is committed at once. `synchronous=NORMAL` in WAL mode makes every commit survive a
//! crash of the process (`kill -9`); only a power loss may lose the last commits. A full queue
//! makes callers wait (backpressure) rather than grow memory. Copying the log into the
//! database file (checkpoints) happens on another thread, `checkpoint`, so that no commit
//! waits for its `fsync`s; the writer checkpoints only to rewind the log, rarely, and between
//! batches, never inside one.
//!
//! Each write is a closure run on the writer thread inside a savepoint of its own (all or
//! nothing within the shared transaction), answered only once the batch has committed. Reads
//! do not queue behind writes: they run on a small pool of read-only connections on the
//! blocking thread pool, and see everything committed before they start (WAL lets readers
//! and the writer work at once).

mod checkpoint;
mod conversations;
mod handoffs;
mod outbox;
mod retention;
mod schema;
mod stats;

pub use checkpoint::Tuning;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{
    AgentMessage, BuyerProfile, ClaimOutcome, Conversation, Exchange, Expired, Handoff, Note,
    OutboxEvent, OutboxItem, PendingMessage, Recorded, ResolveOutcome, ShopStats, Store,
    StoreError, TranscriptLine, Unmatched,
};

/// Jobs waiting for the writer thread; senders wait when it is full.
const QUEUE_CAPACITY: usize = 4096;
/// Most jobs committed in one transaction, to bound a batch's latency.
const MAX_BATCH: usize = 512;

/// What runs after the batch's commit, told whether it committed.
type Finish = Box<dyn FnOnce(Result<(), &rusqlite::Error>) + Send>;
/// One operation, run inside the batch's transaction.
type Job = Box<dyn FnOnce(&mut Transaction) -> Finish + Send>;

enum Command {
    Run(Job),
    /// Commit what came before, then stop.
    Shutdown,
}

/// Read connections kept open for reuse; more are opened when all are busy.
const IDLE_READERS: usize = 4;

pub struct SqliteStore {
    /// Cloned by nobody: every call sends on it directly, so the message path takes no lock.
    commands: mpsc::Sender<Command>,
    /// Idle read connections; the lock is held only to take or return one.
    readers: Arc<Mutex<Vec<Connection>>>,
    busy_timeout: Duration,
    /// Set by `close`; later calls fail at once instead of queueing behind the shutdown.
    closed: AtomicBool,
    /// Only touched by `close`.
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer thread. A
    /// write that finds the database locked by someone else waits up to `busy_timeout`, then
    /// fails as `Unavailable`.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_tuned(path, busy_timeout, Tuning::default())
    }

    /// `open`, with the log kept short as `tuning` says.
    pub fn open_tuned(
        path: &Path,
        busy_timeout: Duration,
        tuning: Tuning,
    ) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let mut connection = Connection::open(path).map_err(unavailable)?;
        configure(&connection, busy_timeout).map_err(unavailable)?;
        schema::migrate(&mut connection).map_err(unavailable)?;
        let checkpoints = checkpoint::start(path, &connection, busy_timeout, tuning);
        let (commands, queue) = mpsc::channel(QUEUE_CAPACITY);
        let writer = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(connection, queue, checkpoints))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(SqliteStore {
            commands,
            readers: Arc::new(Mutex::new(Vec::new())),
            busy_timeout,
            closed: AtomicBool::new(false),
            writer: Mutex::new(Some(writer)),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn submit(&self, job: Job) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        self.commands
            .send(Command::Run(job))
            .await
            .map_err(|_| StoreError::Unavailable("the writer thread stopped".into()))
    }

    /// Runs `f` in a savepoint; answers once the batch is committed (an error if it was not).
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Box::new(move |tx: &mut Transaction| {
            let result = in_savepoint(tx, f);
            Box::new(move |committed: Result<(), &rusqlite::Error>| {
                let committed = committed.map_err(|e| {
                    StoreError::Unavailable(format!("the transaction did not commit: {e}"))
                });
                let _ = reply.send(committed.and(result));
            })
        }))
        .await?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer thread stopped".into()))?
    }

    /// Runs `f` on a read connection, off the writer thread and off the async runtime.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        let readers = self.readers.clone();
        let (path, busy_timeout) = (self.path.clone(), self.busy_timeout);
        tokio::task::spawn_blocking(move || {
            let idle = readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let connection = match idle {
                Some(connection) => connection,
                None => open_reader(&path, busy_timeout).map_err(unavailable)?,
            };
            let result = f(&connection);
            let mut idle = readers.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < IDLE_READERS {
                idle.push(connection);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a read failed: {e}")))?
    }
}

/// Runs `f` all or nothing inside the batch's transaction. The same as rusqlite's
/// `Savepoint`, through cached statements: that one parses its SQL at every use.
fn in_savepoint<T>(
    tx: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    execute(tx, "SAVEPOINT job", []).map_err(unavailable)?;
    let result = f(tx);
    let ended = match &result {
        Ok(_) => execute(tx, "RELEASE job", []),
        Err(_) => execute(tx, "ROLLBACK TO job", []).and_then(|_| execute(tx, "RELEASE job", [])),
    };
    ended.map_err(unavailable)?;
    result
}

fn open_reader(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(busy_timeout)?;
    tune(&connection)?;
    Ok(connection)
}

#[async_trait]
impl Store for SqliteStore {
    async fn find_conversation(
        &self,
        shop: &str,
        buyer: &str,
    ) -> Result<Option<Conversation>, StoreError> {
        let (shop, buyer) = (shop.to_string(), buyer.to_string());
        self.read(move |c| conversations::find(c, &shop, &buyer))
            .await
    }

    async fn open_conversation(
        &self,
        shop: &str,
        buyer: &str,
        now: DateTime<Utc>,
    ) -> Result<Conversation, StoreError> {
        let (shop, buyer) = (shop.to_string(), buyer.to_string());
        self.write(move |c| conversations::open(c, &shop, &buyer, now))
            .await
    }

    async fn record(&self, exchange: Exchange) -> Result<Recorded, StoreError> {
        self.write(move |c| conversations::record(c, &exchange))
            .await
    }

    async fn handoffs(&self, shop: Option<&str>) -> Result<Vec<Handoff>, StoreError> {
        let shop = shop.map(str::to_string);
        self.read(move |c| handoffs::list(c, shop.as_deref(), false))
            .await
    }

    async fn open_handoffs(&self, shop: Option<&str>) -> Result<Vec<Handoff>, StoreError> {
        let shop = shop.map(str::to_string);
        self.read(move |c| handoffs::list(c, shop.as_deref(), true))
            .await
    }

    async fn claim(
        &self,
        handoff: &str,
        agent: &str,
        now: DateTime<Utc>,
        events: Vec<OutboxEvent>,
    ) -> Result<ClaimOutcome, StoreError> {
        let (handoff, agent) = (handoff.to_string(), agent.to_string());
        self.write(move |c| handoffs::claim(c, &handoff, &agent, now, &events))
            .await
    }

    async fn resolve(
        &self,
        handoff: &str,
        agent: &str,
        now: DateTime<Utc>,
        events: Vec<OutboxEvent>,
    ) -> Result<ResolveOutcome, StoreError> {
        let (handoff, agent) = (handoff.to_string(), agent.to_string());
        self.write(move |c| handoffs::resolve(c, &handoff, &agent, now, &events))
            .await
    }

    async fn requeue(&self, shop: &str, agent: &str) -> Result<Vec<Handoff>, StoreError> {
        let (shop, agent) = (shop.to_string(), agent.to_string());
        self.write(move |c| handoffs::requeue(c, &shop, &agent))
            .await
    }

    async fn escalate(
        &self,
        handoff: &str,
        now: DateTime<Utc>,
        events: Vec<OutboxEvent>,
    ) -> Result<bool, StoreError> {
        let handoff = handoff.to_string();
        self.write(move |c| handoffs::escalate(c, &handoff, now, &events))
            .await
    }

    async fn agent_message(&self, message: AgentMessage) -> Result<i64, StoreError> {
        self.write(move |c| conversations::agent_message(c, &message))
            .await
    }

    async fn pending_messages(
        &self,
        conversation: &str,
    ) -> Result<Vec<PendingMessage>, StoreError> {
        let conversation = conversation.to_string();
        self.read(move |c| conversations::pending(c, &conversation))
            .await
    }

    async fn mark_delivered(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        self.write(move |c| conversations::mark_delivered(c, &seqs))
            .await
    }

    async fn add_note(&self, note: Note, _conversation: &str) -> Result<(), StoreError> {
        self.write(move |c| handoffs::add_note(c, &note)).await
    }

    async fn buyer_profile(
        &self,
        shop: &str,
        buyer: &str,
        except: &str,
    ) -> Result<BuyerProfile, StoreError> {
        let (shop, buyer, except) = (shop.to_string(), buyer.to_string(), except.to_string());
        self.read(move |c| handoffs::profile(c, &shop, &buyer, &except))
            .await
    }

    /// One process delivers this store's outbox, so nothing needs leasing.
    async fn outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        _lease: Duration,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        self.read(move |c| outbox::due(c, now, limit)).await
    }

    async fn outbox_next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read(outbox::next_due).await
    }

    async fn outbox_delivered(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let id = id.to_string();
        self.write(move |c| outbox::delivered(c, &id, now)).await
    }

    async fn outbox_failed(
        &self,
        id: &str,
        next_attempt: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let (id, error) = (id.to_string(), error.to_string());
        self.write(move |c| outbox::failed(c, &id, next_attempt, &error))
            .await
    }

    async fn stats(&self, shop: &str, since: DateTime<Utc>) -> Result<ShopStats, StoreError> {
        let shop = shop.to_string();
        self.read(move |c| stats::shop_stats(c, &shop, since)).await
    }

    async fn transcript(
        &self,
        conversation: &str,
        limit: usize,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        let conversation = conversation.to_string();
        self.read(move |c| conversations::transcript(c, &conversation, limit))
            .await
    }

    async fn delete_expired(
        &self,
        table: Expired,
        shop: &str,
        before: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let shop = shop.to_string();
        self.write(move |c| retention::delete_expired(c, table, &shop, before, batch))
            .await
    }

    async fn trim_unmatched(
        &self,
        shop: &str,
        keep: usize,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let shop = shop.to_string();
        self.write(move |c| retention::trim_unmatched(c, &shop, keep, batch))
            .await
    }

    async fn unmatched(&self, shop: &str, limit: usize) -> Result<Vec<Unmatched>, StoreError> {
        let shop = shop.to_string();
        self.read(move |c| conversations::unmatched(c, &shop, limit))
            .await
    }

    async fn check_commit(&self) -> Result<(), StoreError> {
        self.write(|c| {
            execute(
                c,
                "INSERT INTO readiness (id, checks) VALUES (1, 1)
                 ON CONFLICT (id) DO UPDATE SET checks = checks + 1",
                [],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Everything queued before the shutdown is still committed; the writer then stops
        // and drops the queue, so anything sent later fails.
        let _ = self.commands.send(Command::Shutdown).await;
        let writer = self.writer.lock().expect("store lock poisoned").take();
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

/// `Connection::execute` through the connection's statement cache: every statement of the
/// store runs again and again, so each is parsed and planned once per connection.
fn execute(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// `Connection::query_row` through the statement cache.
fn query_row<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Statements kept prepared per connection: more than the store has, so none is parsed twice.
const STATEMENT_CACHE: usize = 64;

/// What every connection of the store gets, the writer's and the readers'.
fn tune(connection: &Connection) -> rusqlite::Result<()> {
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Without the planner stability guarantee, SQLite plans a statement again whenever a
    // value bound to its `LIMIT` or compared with a partial index's condition changes, which
    // is at almost every execution of the readers' queries.
    connection.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

fn configure(connection: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    tune(connection)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.busy_timeout(busy_timeout)?;
    Ok(())
}

fn write_loop(
    mut connection: Connection,
    mut queue: mpsc::Receiver<Command>,
    mut checkpoints: checkpoint::Checkpoints,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Shutdown => {
                    stopping = true;
                    break;
                }
                Command::Run(job) => batch.push(job),
            }
            if batch.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        run_batch(&mut connection, &mut batch);
        // The rewind first: a pass the nudge starts would find it busy.
        checkpoints.rewind_if_due(&connection);
        checkpoints.committed(&connection);
        if stopping {
            return;
        }
    }
}

/// Runs a batch in one transaction and answers every job once it is committed.
fn run_batch(connection: &mut Connection, batch: &mut Vec<Job>) {
    let mut finishes = Vec::with_capacity(batch.len());
    let committed = (|| -> rusqlite::Result<()> {
        let mut tx = connection.transaction()?;
        for job in batch.drain(..) {
            finishes.push(job(&mut tx));
        }
        tx.commit()
    })();
    // Jobs not run because the transaction could not even begin are dropped: their callers
    // are told the store is unavailable.
    batch.clear();
    if let Err(e) = &committed {
        tracing::error!(error = %e, "a store transaction failed to commit");
    }
    for finish in finishes {
        finish(committed.as_ref().map(|_| ()));
    }
    if committed.is_err() {
        // Drop any half-finished transaction state before the next batch.
        let _ = connection.execute_batch("ROLLBACK");
    }
}
