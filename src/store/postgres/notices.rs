//! The nodes' notices to each other over PostgreSQL's LISTEN/NOTIFY.
//!
//! A change is announced with `pg_notify` inside the transaction that commits it: PostgreSQL
//! delivers it only if that transaction commits, and delivers notices in commit order, so every
//! node's view follows the database's own order. Signals (presence) are sent on their own.
//! A notice larger than NOTIFY's payload limit is written to `spilled_notices` and the notice
//! names the row. Each node skips its own notices: it applied its changes as they returned.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification};
use tokio_util::sync::CancellationToken;

use super::{execute, query_one, query_opt, unavailable};
use crate::store::{Change, Feed, StoreError};

/// The channel every node of one database listens on.
const CHANNEL: &str = "autoresponder";
/// NOTIFY takes payloads below 8000 bytes; larger notices are spilled.
const MAX_PAYLOAD: usize = 7900;
/// Notices received but not yet applied by the desk; the listener waits when it is full (and
/// PostgreSQL keeps the rest in its own queue).
const FEED_CAPACITY: usize = 4096;

#[derive(Serialize, Deserialize)]
struct Notice {
    node: String,
    body: Body,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Body {
    Change(Change),
    Signal(String),
    /// The notice is in `spilled_notices` under this id.
    Spilled(i64),
}

/// Announces `change` from `node`, on the connection (and so in the transaction) that is
/// committing it.
pub async fn announce(
    c: &impl GenericClient,
    node: &str,
    change: Change,
) -> Result<(), StoreError> {
    send(c, node, Body::Change(change)).await
}

/// Sends a signal from `node`, outside any transaction.
pub async fn signal(c: &impl GenericClient, node: &str, payload: String) -> Result<(), StoreError> {
    send(c, node, Body::Signal(payload)).await
}

async fn send(c: &impl GenericClient, node: &str, body: Body) -> Result<(), StoreError> {
    let mut payload = encode(node, body);
    if payload.len() > MAX_PAYLOAD {
        // Spilled notices older than this were read by every live node long ago.
        execute(
            c,
            "DELETE FROM spilled_notices WHERE at < now() - interval '10 minutes'",
            &[],
        )
        .await?;
        let row = query_one(
            c,
            "INSERT INTO spilled_notices (payload) VALUES ($1) RETURNING id",
            &[&payload],
        )
        .await?;
        payload = encode(node, Body::Spilled(row.get(0)));
    }
    execute(c, "SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await?;
    Ok(())
}

fn encode(node: &str, body: Body) -> String {
    serde_json::to_string(&Notice {
        node: node.to_string(),
        body,
    })
    .expect("notices encode")
}

/// A connection of its own that LISTENs, and the notices it receives.
struct Listening {
    /// Kept so the connection stays open.
    _client: Client,
    notices: mpsc::Receiver<Notification>,
}

async fn listen(config: &tokio_postgres::Config) -> Result<Listening, tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (notices, receiver) = mpsc::channel(FEED_CAPACITY);
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notice)) => {
                    if notices.send(notice).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the connection listening for notices failed");
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok(Listening {
        _client: client,
        notices: receiver,
    })
}

/// Listens on the channel and returns the other nodes' notices. LISTEN is in effect when
/// this returns; it ends when `closing` is cancelled or the receiver is dropped.
pub async fn subscribe(
    config: tokio_postgres::Config,
    pool: Pool,
    node: String,
    closing: CancellationToken,
) -> Result<mpsc::Receiver<Feed>, StoreError> {
    let listening = listen(&config).await.map_err(unavailable)?;
    let (feed, receiver) = mpsc::channel(FEED_CAPACITY);
    tokio::spawn(async move {
        tokio::select! {
            _ = closing.cancelled() => {}
            _ = pump(config, pool, node, feed, listening) => {}
        }
    });
    Ok(receiver)
}

async fn pump(
    config: tokio_postgres::Config,
    pool: Pool,
    node: String,
    feed: mpsc::Sender<Feed>,
    mut listening: Listening,
) {
    loop {
        while let Some(notice) = listening.notices.recv().await {
            let Some(item) = decode(&pool, &node, notice.payload()).await else {
                continue;
            };
            if feed.send(item).await.is_err() {
                return;
            }
        }
        tracing::warn!("lost the other nodes' notices; reconnecting");
        let mut backoff = Duration::from_millis(100);
        listening = loop {
            tokio::time::sleep(backoff).await;
            match listen(&config).await {
                Ok(listening) => break listening,
                Err(e) => tracing::warn!(error = %e, "cannot listen for notices yet"),
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        };
        // Listening again: whatever was sent meanwhile is lost, so the view must be rebuilt,
        // from reads made from now on.
        if feed.send(Feed::Gap).await.is_err() {
            return;
        }
    }
}

/// The feed item a notice carries; `None` for the node's own notices and for notices that
/// cannot be read (logged).
async fn decode(pool: &Pool, own: &str, payload: &str) -> Option<Feed> {
    let notice: Notice = match serde_json::from_str(payload) {
        Ok(notice) => notice,
        Err(e) => {
            tracing::error!(error = %e, "an unreadable notice from another node");
            return None;
        }
    };
    if notice.node == own {
        return None;
    }
    match notice.body {
        Body::Change(change) => Some(Feed::Change(change)),
        Body::Signal(payload) => Some(Feed::Signal {
            node: notice.node,
            payload,
        }),
        Body::Spilled(id) => {
            let spilled = match pool.get().await {
                Ok(c) => {
                    query_opt(
                        &c,
                        "SELECT payload FROM spilled_notices WHERE id = $1",
                        &[&id],
                    )
                    .await
                }
                Err(e) => Err(unavailable(e)),
            };
            match spilled {
                Ok(Some(row)) => Box::pin(decode(pool, own, row.get(0))).await,
                Ok(None) => {
                    tracing::error!(id, "a spilled notice is gone");
                    Some(Feed::Gap)
                }
                Err(e) => {
                    tracing::error!(error = %e, id, "cannot read a spilled notice");
                    Some(Feed::Gap)
                }
            }
        }
    }
}
