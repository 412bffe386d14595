//! The PostgreSQL schema, as migrations applied in order. `schema_version` records those
//! applied; nodes starting at once take turns behind an advisory lock, so each migration runs
//! exactly once.

use super::{query_one, unavailable};
use crate::store::StoreError;

/// The advisory lock key nodes take while migrating ("ar" in ASCII, and a version marker).
const MIGRATION_LOCK: i64 = 0x6172_0001;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE conversations (
    id          text PRIMARY KEY,
    shop        text NOT NULL,
    buyer       text NOT NULL,
    state       text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (shop, buyer)
);
CREATE TABLE messages (
    seq          bigserial PRIMARY KEY,
    conversation text NOT NULL REFERENCES conversations(id),
    sender       text NOT NULL CHECK (sender IN ('buyer', 'bot', 'agent')),
    kind         text,
    intent       text,
    text         text NOT NULL,
    client_id    text,
    at           timestamptz NOT NULL,
    agent_id     text,
    agent_name   text,
    delivered    boolean
);
CREATE INDEX messages_by_conversation ON messages (conversation, seq);
CREATE INDEX messages_undelivered ON messages (conversation, seq) WHERE delivered = false;
CREATE INDEX messages_by_time ON messages (at);
CREATE TABLE handoffs (
    id           text PRIMARY KEY,
    shop         text NOT NULL,
    conversation text NOT NULL REFERENCES conversations(id),
    buyer        text NOT NULL,
    intent       text NOT NULL,
    priority     text NOT NULL CHECK (priority IN ('high', 'normal')),
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'claimed', 'resolved')),
    created_at   timestamptz NOT NULL,
    claimed_by   text,
    claimed_at   timestamptz,
    resolved_at  timestamptz,
    escalated_at timestamptz,
    requeued     boolean NOT NULL DEFAULT false
);
CREATE INDEX handoffs_queue ON handoffs (shop, status, priority, created_at);
CREATE INDEX handoffs_by_buyer ON handoffs (shop, buyer, created_at);
CREATE INDEX handoffs_open ON handoffs (status) WHERE status IN ('queued', 'claimed');
CREATE TABLE unmatched (
    shop       text NOT NULL,
    text       text NOT NULL,
    count      bigint NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (shop, text)
);
CREATE INDEX unmatched_by_count ON unmatched (shop, count DESC);
CREATE TABLE notes (
    id     bigserial PRIMARY KEY,
    shop   text NOT NULL,
    buyer  text NOT NULL,
    agent  text NOT NULL,
    text   text NOT NULL,
    at     timestamptz NOT NULL
);
CREATE INDEX notes_by_buyer ON notes (shop, buyer, id);
CREATE TABLE outbox (
    id            text PRIMARY KEY,
    shop          text NOT NULL,
    url           text NOT NULL,
    event         text NOT NULL,
    body          text NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    next_attempt  timestamptz NOT NULL,
    last_error    text,
    delivered_at  timestamptz,
    created_at    timestamptz NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt) WHERE delivered_at IS NULL;
-- Notices too large for NOTIFY's 8000-byte payload wait here; the notice names the row.
CREATE TABLE spilled_notices (
    id       bigserial PRIMARY KEY,
    payload  text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX spilled_notices_by_time ON spilled_notices (at);
"#,
    // One row that `/readyz` writes to prove the store can commit.
    r#"
CREATE TABLE readiness (
    id      integer PRIMARY KEY CHECK (id = 1),
    checks  bigint NOT NULL
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
    // Retention: what is old is found by time, shop by shop, without a scan (messages
    // already have theirs).
    r#"
CREATE INDEX conversations_by_age ON conversations (shop, created_at);
CREATE INDEX handoffs_by_conversation ON handoffs (conversation);
CREATE INDEX notes_by_time ON notes (shop, at);
CREATE INDEX outbox_by_age ON outbox (shop, created_at);
"#,
];

pub async fn migrate(client: &mut deadpool_postgres::Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(unavailable)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(unavailable)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        .await
        .map_err(unavailable)?;
    let applied: Option<i32> = query_one(&tx, "SELECT max(version) FROM schema_version", &[])
        .await?
        .get(0);
    let applied = applied.unwrap_or(0).max(0) as usize;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).await.map_err(unavailable)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(version as i32 + 1)],
        )
        .await
        .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)
}
