//! The SQLite store: one file in WAL mode, written by one dedicated thread.
//!
//! SQLite allows one writer at a time, and its calls block, so they must stay off the async
//! runtime. A single thread owns the connection and serves a bounded queue of commands: it
//! takes every command waiting (up to a batch limit), runs them in one transaction, commits
//! once, then answers them all. Under load a commit carries hundreds of messages; when idle a
//! lone message is committed at once. `synchronous=NORMAL` in WAL mode makes every commit
//! survive a crash of the process (`kill -9`); only a power loss may lose the last commits.
//! A full queue makes callers wait (backpressure) rather than grow memory.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use super::{
    Conversation, Exchange, Handoff, Sender, Store, StoreError, TranscriptLine, Unmatched,
    format_time, parse_time,
};
use crate::conversation::ConversationState;
use crate::intents::HandoffPriority;

/// Commands waiting for the writer thread; senders wait when it is full.
const QUEUE_CAPACITY: usize = 4096;
/// Most commands committed in one transaction, to bound a batch's latency.
const MAX_BATCH: usize = 512;

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    shop        TEXT NOT NULL,
    buyer       TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (shop, buyer)
);
CREATE TABLE messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT NOT NULL REFERENCES conversations(id),
    sender       TEXT NOT NULL CHECK (sender IN ('buyer', 'bot', 'agent')),
    kind         TEXT,
    intent       TEXT,
    text         TEXT NOT NULL,
    client_id    TEXT,
    at           TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation, seq);
CREATE TABLE handoffs (
    id           TEXT PRIMARY KEY,
    shop         TEXT NOT NULL,
    conversation TEXT NOT NULL REFERENCES conversations(id),
    buyer        TEXT NOT NULL,
    intent       TEXT NOT NULL,
    priority     TEXT NOT NULL CHECK (priority IN ('high', 'normal')),
    status       TEXT NOT NULL DEFAULT 'queued',
    created_at   TEXT NOT NULL,
    claimed_by   TEXT,
    claimed_at   TEXT,
    resolved_at  TEXT
);
CREATE INDEX handoffs_queue ON handoffs (shop, status, priority, created_at);
"#,
    r#"
CREATE TABLE unmatched (
    shop       TEXT NOT NULL,
    text       TEXT NOT NULL,
    count      INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    PRIMARY KEY (shop, text)
);
CREATE INDEX unmatched_by_count ON unmatched (shop, count DESC);
"#,
];

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    Open {
        shop: String,
        buyer: String,
        now: DateTime<Utc>,
        reply: Reply<Conversation>,
    },
    Record {
        exchange: Box<Exchange>,
        reply: Reply<()>,
    },
    Handoffs {
        shop: Option<String>,
        reply: Reply<Vec<Handoff>>,
    },
    Transcript {
        conversation: String,
        reply: Reply<Vec<TranscriptLine>>,
    },
    Unmatched {
        shop: String,
        limit: usize,
        reply: Reply<Vec<Unmatched>>,
    },
    /// Commit what came before, then stop.
    Shutdown,
}

/// A finished command's answer, held until its transaction commits.
enum Answer {
    Open(Reply<Conversation>, Result<Conversation, StoreError>),
    Record(Reply<()>, Result<(), StoreError>),
    Handoffs(Reply<Vec<Handoff>>, Result<Vec<Handoff>, StoreError>),
    Transcript(
        Reply<Vec<TranscriptLine>>,
        Result<Vec<TranscriptLine>, StoreError>,
    ),
    Unmatched(Reply<Vec<Unmatched>>, Result<Vec<Unmatched>, StoreError>),
}

pub struct SqliteStore {
    /// Cloned by nobody: every call sends on it directly, so the message path takes no lock.
    commands: mpsc::Sender<Command>,
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
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let mut connection = Connection::open(path).map_err(unavailable)?;
        configure(&connection, busy_timeout).map_err(unavailable)?;
        migrate(&mut connection).map_err(unavailable)?;
        let (commands, queue) = mpsc::channel(QUEUE_CAPACITY);
        let writer = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(connection, queue))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(SqliteStore {
            commands,
            closed: AtomicBool::new(false),
            writer: Mutex::new(Some(writer)),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn submit<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Unavailable("the writer thread stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer thread stopped".into()))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn open_conversation(
        &self,
        shop: &str,
        buyer: &str,
        now: DateTime<Utc>,
    ) -> Result<Conversation, StoreError> {
        self.submit(|reply| Command::Open {
            shop: shop.to_string(),
            buyer: buyer.to_string(),
            now,
            reply,
        })
        .await
    }

    async fn record(&self, exchange: Exchange) -> Result<(), StoreError> {
        self.submit(|reply| Command::Record {
            exchange: Box::new(exchange),
            reply,
        })
        .await
    }

    async fn handoffs(&self, shop: Option<&str>) -> Result<Vec<Handoff>, StoreError> {
        self.submit(|reply| Command::Handoffs {
            shop: shop.map(str::to_string),
            reply,
        })
        .await
    }

    async fn transcript(&self, conversation: &str) -> Result<Vec<TranscriptLine>, StoreError> {
        self.submit(|reply| Command::Transcript {
            conversation: conversation.to_string(),
            reply,
        })
        .await
    }

    async fn unmatched(&self, shop: &str, limit: usize) -> Result<Vec<Unmatched>, StoreError> {
        self.submit(|reply| Command::Unmatched {
            shop: shop.to_string(),
            limit,
            reply,
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

fn not_committed(e: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("the transaction did not commit: {e}"))
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn configure(connection: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.busy_timeout(busy_timeout)?;
    Ok(())
}

fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let applied: i64 = connection.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let tx = connection.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn write_loop(mut connection: Connection, mut queue: mpsc::Receiver<Command>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            if matches!(command, Command::Shutdown) {
                stopping = true;
                break;
            }
            batch.push(command);
            if batch.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        run_batch(&mut connection, &mut batch);
        if stopping {
            return;
        }
    }
}

/// Runs a batch in one transaction and answers every command once it is committed.
fn run_batch(connection: &mut Connection, batch: &mut Vec<Command>) {
    let mut answers = Vec::with_capacity(batch.len());
    let committed = (|| -> rusqlite::Result<()> {
        let mut tx = connection.transaction()?;
        for command in batch.drain(..) {
            answers.push(execute(&mut tx, command));
        }
        tx.commit()
    })();
    if let Err(e) = &committed {
        tracing::error!(error = %e, "a store transaction failed to commit");
    }
    for answer in answers {
        // A commit failure turns every write of the batch into an error; reads stand.
        match answer {
            Answer::Open(reply, result) => {
                let _ = reply.send(committed.as_ref().map_err(not_committed).and(result));
            }
            Answer::Record(reply, result) => {
                let _ = reply.send(committed.as_ref().map_err(not_committed).and(result));
            }
            Answer::Handoffs(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Transcript(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Unmatched(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }
    if let Err(e) = committed {
        // Drop any half-finished transaction state before the next batch.
        let _ = connection.execute_batch("ROLLBACK");
        drop(e);
    }
}

fn execute(tx: &mut Transaction, command: Command) -> Answer {
    match command {
        Command::Shutdown => unreachable!("the writer loop stops at a shutdown"),
        Command::Open {
            shop,
            buyer,
            now,
            reply,
        } => Answer::Open(reply, open(tx, &shop, &buyer, now)),
        Command::Record { exchange, reply } => {
            // A savepoint per exchange keeps it all-or-nothing inside the shared transaction.
            let result = (|| {
                let savepoint = tx.savepoint().map_err(unavailable)?;
                record(&savepoint, &exchange)?;
                savepoint.commit().map_err(unavailable)
            })();
            Answer::Record(reply, result)
        }
        Command::Handoffs { shop, reply } => Answer::Handoffs(reply, handoffs(tx, shop.as_deref())),
        Command::Transcript {
            conversation,
            reply,
        } => Answer::Transcript(reply, transcript(tx, &conversation)),
        Command::Unmatched { shop, limit, reply } => {
            Answer::Unmatched(reply, unmatched(tx, &shop, limit))
        }
    }
}

fn open(
    tx: &Transaction,
    shop: &str,
    buyer: &str,
    now: DateTime<Utc>,
) -> Result<Conversation, StoreError> {
    let existing = tx
        .query_row(
            "SELECT id, state FROM conversations WHERE shop = ?1 AND buyer = ?2",
            params![shop, buyer],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
        )
        .optional()
        .map_err(unavailable)?;
    let (id, state) = match existing {
        Some((id, state)) => {
            let state: ConversationState = serde_json::from_str(&state)
                .map_err(|e| StoreError::Corrupt(format!("conversation {id}: {e}")))?;
            (id, state)
        }
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            let at = format_time(now);
            tx.execute(
                "INSERT INTO conversations (id, shop, buyer, state, created_at, updated_at)
                 VALUES (?1, ?2, ?3, '{}', ?4, ?4)",
                params![id, shop, buyer, at],
            )
            .map_err(unavailable)?;
            (id, ConversationState::default())
        }
    };
    Ok(Conversation {
        id,
        shop: shop.to_string(),
        buyer: buyer.to_string(),
        state,
    })
}

fn record(tx: &rusqlite::Savepoint, exchange: &Exchange) -> Result<(), StoreError> {
    let at = format_time(exchange.at);
    let state = serde_json::to_string(&exchange.state)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode state: {e}")))?;
    let updated = tx
        .execute(
            "UPDATE conversations SET state = ?2, updated_at = ?3 WHERE id = ?1",
            params![exchange.conversation, state, at],
        )
        .map_err(unavailable)?;
    if updated == 0 {
        return Err(StoreError::Corrupt(format!(
            "no conversation {}",
            exchange.conversation
        )));
    }
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO messages (conversation, sender, kind, intent, text, client_id, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(unavailable)?;
    if let Some((text, client_id)) = &exchange.buyer_message {
        insert
            .execute(params![
                exchange.conversation,
                Sender::Buyer.as_str(),
                None::<&str>,
                None::<&str>,
                text,
                client_id,
                at
            ])
            .map_err(unavailable)?;
    }
    for reply in &exchange.replies {
        insert
            .execute(params![
                exchange.conversation,
                Sender::Bot.as_str(),
                reply.kind,
                reply.intent,
                reply.text,
                None::<&str>,
                at
            ])
            .map_err(unavailable)?;
    }
    if let Some(text) = &exchange.unmatched {
        tx.prepare_cached(
            "INSERT INTO unmatched (shop, text, count, first_seen, last_seen)
             VALUES (?1, ?2, 1, ?3, ?3)
             ON CONFLICT (shop, text) DO UPDATE SET count = count + 1, last_seen = ?3",
        )
        .and_then(|mut s| s.execute(params![exchange.shop, text, at]))
        .map_err(unavailable)?;
    }
    if let Some(handoff) = &exchange.handoff {
        tx.execute(
            "INSERT INTO handoffs (id, shop, conversation, buyer, intent, priority, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                handoff.id,
                exchange.shop,
                exchange.conversation,
                exchange.buyer,
                handoff.intent,
                handoff.priority.as_str(),
                at
            ],
        )
        .map_err(unavailable)?;
    }
    Ok(())
}

fn handoffs(tx: &Transaction, shop: Option<&str>) -> Result<Vec<Handoff>, StoreError> {
    let mut query = tx
        .prepare_cached(
            "SELECT id, shop, conversation, buyer, intent, priority, status, created_at
             FROM handoffs WHERE ?1 IS NULL OR shop = ?1 ORDER BY created_at, id",
        )
        .map_err(unavailable)?;
    let rows = query
        .query_map(params![shop], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, String>(7)?,
            ))
        })
        .map_err(unavailable)?;
    let mut handoffs = Vec::new();
    for row in rows {
        let (id, shop, conversation, buyer, intent, priority, status, created_at) =
            row.map_err(unavailable)?;
        let priority = HandoffPriority::parse(&priority)
            .ok_or_else(|| StoreError::Corrupt(format!("handoff {id}: priority {priority:?}")))?;
        handoffs.push(Handoff {
            id,
            shop,
            conversation,
            buyer,
            intent,
            priority,
            status,
            created_at: parse_time(&created_at)?,
        });
    }
    Ok(handoffs)
}

fn transcript(tx: &Transaction, conversation: &str) -> Result<Vec<TranscriptLine>, StoreError> {
    let mut query = tx
        .prepare_cached(
            "SELECT sender, kind, intent, text, at FROM messages
             WHERE conversation = ?1 ORDER BY seq",
        )
        .map_err(unavailable)?;
    let rows = query
        .query_map(params![conversation], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .map_err(unavailable)?;
    let mut lines = Vec::new();
    for row in rows {
        let (from, kind, intent, text, at) = row.map_err(unavailable)?;
        lines.push(TranscriptLine {
            from: Sender::parse(&from)
                .ok_or_else(|| StoreError::Corrupt(format!("sender {from:?}")))?,
            kind,
            intent,
            text,
            at: parse_time(&at)?,
        });
    }
    Ok(lines)
}

fn unmatched(tx: &Transaction, shop: &str, limit: usize) -> Result<Vec<Unmatched>, StoreError> {
    let mut query = tx
        .prepare_cached(
            "SELECT text, count, last_seen FROM unmatched WHERE shop = ?1
             ORDER BY count DESC, last_seen DESC LIMIT ?2",
        )
        .map_err(unavailable)?;
    let rows = query
        .query_map(params![shop, limit as i64], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .map_err(unavailable)?;
    let mut questions = Vec::new();
    for row in rows {
        let (text, count, last_seen) = row.map_err(unavailable)?;
        questions.push(Unmatched {
            text,
            count: count.max(0) as u64,
            last_seen: parse_time(&last_seen)?,
        });
    }
    Ok(questions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OutgoingMessage;

    fn exchange(conversation: &Conversation, text: &str) -> Exchange {
        Exchange {
            conversation: conversation.id.clone(),
            shop: conversation.shop.clone(),
            buyer: conversation.buyer.clone(),
            buyer_message: Some((text.to_string(), None)),
            replies: vec![OutgoingMessage {
                kind: "fallback",
                intent: None,
                text: "reply".into(),
            }],
            state: ConversationState::default(),
            handoff: None,
            unmatched: Some(text.to_string()),
            at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn acknowledged_writes_outlive_close_and_later_calls_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path, Duration::from_secs(1)).unwrap();
        let conversation = store
            .open_conversation("default", "b", Utc::now())
            .await
            .unwrap();
        store.record(exchange(&conversation, "在吗")).await.unwrap();
        store.record(exchange(&conversation, "在吗")).await.unwrap();
        store.close().await;
        assert!(matches!(
            store.record(exchange(&conversation, "late")).await,
            Err(StoreError::Unavailable(_))
        ));
        store.close().await; // a second close is harmless

        let reopened = SqliteStore::open(&path, Duration::from_secs(1)).unwrap();
        let again = reopened
            .open_conversation("default", "b", Utc::now())
            .await
            .unwrap();
        assert_eq!(again.id, conversation.id, "the same buyer continues");
        assert_eq!(reopened.transcript(&again.id).await.unwrap().len(), 4);
        let unmatched = reopened.unmatched("default", 10).await.unwrap();
        assert_eq!(
            (unmatched[0].text.as_str(), unmatched[0].count),
            ("在吗", 2)
        );
        reopened.close().await;
    }
}
