//! The SQLite schema, as migrations applied in order; `PRAGMA user_version` counts those
//! applied, so an existing database is upgraded in place at start-up.

use rusqlite::Connection;

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
    // Human agents: who wrote an agent message and whether the buyer has it, escalation,
    // notes about buyers, and the webhook outbox.
    r#"
ALTER TABLE messages ADD COLUMN agent_id TEXT;
ALTER TABLE messages ADD COLUMN agent_name TEXT;
ALTER TABLE messages ADD COLUMN delivered INTEGER;
CREATE INDEX messages_undelivered ON messages (conversation, seq) WHERE delivered = 0;
ALTER TABLE handoffs ADD COLUMN escalated_at TEXT;
ALTER TABLE handoffs ADD COLUMN requeued INTEGER NOT NULL DEFAULT 0;
CREATE INDEX handoffs_by_buyer ON handoffs (shop, buyer, created_at);
CREATE INDEX handoffs_open ON handoffs (status) WHERE status IN ('queued', 'claimed');
CREATE TABLE notes (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    shop   TEXT NOT NULL,
    buyer  TEXT NOT NULL,
    agent  TEXT NOT NULL,
    text   TEXT NOT NULL,
    at     TEXT NOT NULL
);
CREATE INDEX notes_by_buyer ON notes (shop, buyer, id);
CREATE TABLE outbox (
    id            TEXT PRIMARY KEY,
    shop          TEXT NOT NULL,
    url           TEXT NOT NULL,
    event         TEXT NOT NULL,
    body          TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  TEXT NOT NULL,
    last_error    TEXT,
    delivered_at  TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt) WHERE delivered_at IS NULL;
"#,
    // One row that `/readyz` writes to prove the store can commit.
    r#"
CREATE TABLE readiness (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    checks INTEGER NOT NULL
);
"#,
    // A resent buyer message is found by its client id within its conversation.
    r#"
CREATE INDEX messages_by_client_id ON messages (conversation, client_id)
    WHERE client_id IS NOT NULL;
"#,
    // The least recently seen unanswered questions of a shop, found without a scan.
    r#"
CREATE INDEX unmatched_by_last_seen ON unmatched (shop, last_seen);
"#,
    // Retention: what is old is found by time, shop by shop, without a scan.
    r#"
CREATE INDEX messages_by_time ON messages (at);
CREATE INDEX conversations_by_age ON conversations (shop, created_at);
CREATE INDEX handoffs_by_conversation ON handoffs (conversation);
CREATE INDEX notes_by_time ON notes (shop, at);
CREATE INDEX outbox_by_age ON outbox (shop, created_at);
"#,
];

pub fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let applied: i64 = connection.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let tx = connection.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
