//! The PostgreSQL store: one database shared by every service node.
//!
//! Calls run on a bounded pool of connections (a caller waits for a free one: backpressure),
//! all asynchronous, nothing on a thread of its own. The common exchange, a question and its
//! answers, is one statement and so one commit; PostgreSQL groups the commits of concurrent
//! connections into one WAL flush. Writes that the other nodes must hear of announce their
//! [`Change`](crate::store::Change) in their own transaction (see `notices.rs`).

mod batch;
mod conversations;
mod handoffs;
mod notices;
mod outbox;
mod retention;
mod schema;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{
    AgentMessage, BuyerProfile, Change, ClaimOutcome, Conversation, Exchange, Expired, Feed,
    Handoff, Note, OutboxEvent, OutboxItem, PendingMessage, Recorded, ResolveOutcome, ShopStats,
    Store, StoreError, TranscriptLine, Unmatched,
};

/// How to reach the database.
#[derive(Debug, Clone, PartialEq)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Connections kept open; callers wait for one when all are busy.
    pub pool_size: u32,
    /// How long a call waits for a connection before the buyer is told `unavailable`.
    pub acquire_timeout: Duration,
}

pub struct PgStore {
    pool: Pool,
    /// Where the dedicated listening connection of `subscribe` connects.
    config: tokio_postgres::Config,
    /// This process among the nodes; notices carry it so that a node skips its own.
    node: String,
    /// Cancelled by `close`: stops listening for notices.
    closing: tokio_util::sync::CancellationToken,
    /// Group commit for the common exchange.
    batcher: batch::Batcher,
}

impl PgStore {
    /// Connects, applies the schema's migrations, and names this node.
    pub async fn connect(options: &PgOptions) -> Result<PgStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(&options.url)
            .map_err(|e| StoreError::Unavailable(format!("bad database URL: {e}")))?;
        config.application_name("autoresponder");
        config.connect_timeout(options.acquire_timeout);
        // Every statement is prepared once per connection and is simple OLTP. Left to itself,
        // PostgreSQL plans statements with array parameters afresh at every execution (a
        // custom plan, which knows the arrays' lengths, always looks cheaper than the generic
        // one), and that planning cost more CPU than the statement itself.
        let session = session_options(config.get_options());
        config.options(&session);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2) as usize)
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.acquire_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot make the pool: {e}")))?;
        let mut client = pool.get().await.map_err(unavailable)?;
        schema::migrate(&mut client).await?;
        drop(client);
        Ok(PgStore {
            config,
            node: uuid::Uuid::new_v4().to_string(),
            closing: tokio_util::sync::CancellationToken::new(),
            batcher: batch::Batcher::start(pool.clone()),
            pool,
        })
    }

    /// This node's id among the nodes sharing the database.
    pub fn node(&self) -> &str {
        &self.node
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }
}

/// The URL's own session options, if any, with generic plans added.
fn session_options(given: Option<&str>) -> String {
    const GENERIC: &str = "-c plan_cache_mode=force_generic_plan";
    match given {
        Some(given) if !given.trim().is_empty() => format!("{given} {GENERIC}"),
        _ => GENERIC.to_string(),
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Query parameters, as tokio-postgres takes them.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Runs a query through the connection's statement cache.
async fn query(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let statement = c.prepare_cached(sql).await.map_err(unavailable)?;
    c.query(&statement, params).await.map_err(unavailable)
}

async fn query_opt(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let statement = c.prepare_cached(sql).await.map_err(unavailable)?;
    c.query_opt(&statement, params).await.map_err(unavailable)
}

async fn query_one(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Row, StoreError> {
    let statement = c.prepare_cached(sql).await.map_err(unavailable)?;
    c.query_one(&statement, params).await.map_err(unavailable)
}

async fn execute(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
    let statement = c.prepare_cached(sql).await.map_err(unavailable)?;
    c.execute(&statement, params).await.map_err(unavailable)
}

/// Finishes a write: its webhook events and the change the other nodes must hear of go in
/// the same transaction, which then commits.
async fn commit(
    tx: deadpool_postgres::Transaction<'_>,
    node: &str,
    events: &[OutboxEvent],
    now: DateTime<Utc>,
    change: Option<Change>,
) -> Result<(), StoreError> {
    outbox::enqueue(&tx, events, now).await?;
    if let Some(change) = change {
        notices::announce(&tx, node, change).await?;
    }
    tx.commit().await.map_err(unavailable)
}

/// A column of a row, or `Corrupt` when it is not what the schema says.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| StoreError::Corrupt(format!("column {index}: {e}")))
}

#[async_trait]
impl Store for PgStore {
    async fn find_conversation(
        &self,
        shop: &str,
        buyer: &str,
    ) -> Result<Option<Conversation>, StoreError> {
        conversations::find(&self.client().await?, shop, buyer).await
    }

    async fn open_conversation(
        &self,
        shop: &str,
        buyer: &str,
        now: DateTime<Utc>,
    ) -> Result<Conversation, StoreError> {
        conversations::open(&self.client().await?, shop, buyer, now).await
    }

    async fn record(&self, exchange: Exchange) -> Result<Recorded, StoreError> {
        // What the other nodes need not hear of is batched; the rest carries its notice.
        let plain = exchange.handoff.is_none() && exchange.events.is_empty() && !exchange.to_agents;
        if plain {
            return self.batcher.record(exchange).await;
        }
        conversations::record(&mut self.client().await?, &self.node, &exchange).await
    }

    async fn handoffs(&self, shop: Option<&str>) -> Result<Vec<Handoff>, StoreError> {
        handoffs::list(&self.client().await?, shop, false).await
    }

    async fn open_handoffs(&self, shop: Option<&str>) -> Result<Vec<Handoff>, StoreError> {
        handoffs::list(&self.client().await?, shop, true).await
    }

    async fn claim(
        &self,
        handoff: &str,
        agent: &str,
        now: DateTime<Utc>,
        events: Vec<OutboxEvent>,
    ) -> Result<ClaimOutcome, StoreError> {
        handoffs::claim(
            &mut self.client().await?,
            &self.node,
            handoff,
            agent,
            now,
            &events,
        )
        .await
    }

    async fn resolve(
        &self,
        handoff: &str,
        agent: &str,
        now: DateTime<Utc>,
        events: Vec<OutboxEvent>,
    ) -> Result<ResolveOutcome, StoreError> {
        handoffs::resolve(
            &mut self.client().await?,
            &self.node,
            handoff,
            agent,
            now,
            &events,
        )
        .await
    }

    async fn requeue(&self, shop: &str, agent: &str) -> Result<Vec<Handoff>, StoreError> {
        handoffs::requeue(&mut self.client().await?, &self.node, shop, agent).await
    }

    async fn escalate(
        &self,
        handoff: &str,
        now: DateTime<Utc>,
        events: Vec<OutboxEvent>,
    ) -> Result<bool, StoreError> {
        handoffs::escalate(&mut self.client().await?, &self.node, handoff, now, &events).await
    }

    async fn agent_message(&self, message: AgentMessage) -> Result<i64, StoreError> {
        conversations::agent_message(&mut self.client().await?, &self.node, &message).await
    }

    async fn pending_messages(
        &self,
        conversation: &str,
    ) -> Result<Vec<PendingMessage>, StoreError> {
        conversations::pending(&self.client().await?, conversation).await
    }

    async fn mark_delivered(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        conversations::mark_delivered(&self.client().await?, &seqs).await
    }

    async fn add_note(&self, note: Note, conversation: &str) -> Result<(), StoreError> {
        handoffs::add_note(&mut self.client().await?, &self.node, &note, conversation).await
    }

    async fn buyer_profile(
        &self,
        shop: &str,
        buyer: &str,
        except: &str,
    ) -> Result<BuyerProfile, StoreError> {
        handoffs::profile(&self.client().await?, shop, buyer, except).await
    }

    async fn outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        outbox::due(&self.client().await?, now, limit, lease).await
    }

    async fn outbox_next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        outbox::next_due(&self.client().await?).await
    }

    async fn outbox_delivered(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        outbox::delivered(&self.client().await?, id, now).await
    }

    async fn outbox_failed(
        &self,
        id: &str,
        next_attempt: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        outbox::failed(&self.client().await?, id, next_attempt, error).await
    }

    async fn stats(&self, shop: &str, since: DateTime<Utc>) -> Result<ShopStats, StoreError> {
        conversations::stats(&self.client().await?, shop, since).await
    }

    async fn transcript(
        &self,
        conversation: &str,
        limit: usize,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        conversations::transcript(&self.client().await?, conversation, limit).await
    }

    async fn delete_expired(
        &self,
        table: Expired,
        shop: &str,
        before: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError> {
        retention::delete_expired(&self.client().await?, table, shop, before, batch).await
    }

    async fn trim_unmatched(
        &self,
        shop: &str,
        keep: usize,
        batch: usize,
    ) -> Result<usize, StoreError> {
        retention::trim_unmatched(&self.client().await?, shop, keep, batch).await
    }

    async fn unmatched(&self, shop: &str, limit: usize) -> Result<Vec<Unmatched>, StoreError> {
        conversations::unmatched(&self.client().await?, shop, limit).await
    }

    async fn subscribe(&self) -> Result<Option<mpsc::Receiver<Feed>>, StoreError> {
        let (config, pool) = (self.config.clone(), self.pool.clone());
        notices::subscribe(config, pool, self.node.clone(), self.closing.clone())
            .await
            .map(Some)
    }

    async fn signal(&self, payload: String) -> Result<(), StoreError> {
        notices::signal(&self.client().await?, &self.node, payload).await
    }

    async fn check_commit(&self) -> Result<(), StoreError> {
        execute(
            &self.client().await?,
            "INSERT INTO readiness (id, checks) VALUES (1, 1)
             ON CONFLICT (id) DO UPDATE SET checks = readiness.checks + 1",
            &[],
        )
        .await?;
        Ok(())
    }

    async fn close(&self) {
        // Each call is its own transaction, committed before it returned: closing only
        // refuses later calls (those in flight keep their connections until they finish).
        self.closing.cancel();
        self.pool.close();
    }
}

#[cfg(test)]
mod tests {
    use super::session_options;

    #[test]
    fn generic_plans_are_added_to_the_urls_own_session_options() {
        assert_eq!(
            session_options(None),
            "-c plan_cache_mode=force_generic_plan"
        );
        assert_eq!(
            session_options(Some("-c search_path=shop")),
            "-c search_path=shop -c plan_cache_mode=force_generic_plan"
        );
    }
}
