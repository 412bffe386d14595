//! Conversations and their messages on PostgreSQL: opening, recording exchanges, agent
//! messages and their delivery, transcripts, unanswered questions, figures.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{column, notices, query, query_opt, unavailable};
use crate::conversation::ConversationState;
use crate::store::stats::StatsWalk;
use crate::store::{
    AgentMessage, Change, Conversation, Exchange, PendingMessage, Recorded, Sender, ShopStats,
    StoreError, TranscriptLine, Unmatched, decode_state, encode_state, forget_closed_handoff,
    resend_of, stored_reply, unmatched_text,
};

/// The conversation of `buyer` at `shop`, if it exists; reads only.
pub async fn find(
    c: &impl GenericClient,
    shop: &str,
    buyer: &str,
) -> Result<Option<Conversation>, StoreError> {
    // The state names its open handoff; the handoffs table is the truth about whether it is
    // still open (it may have been resolved while the buyer's state was being written).
    let existing = query_opt(
        c,
        "SELECT c.id, c.state, h.status FROM conversations c
         LEFT JOIN handoffs h ON h.id = (c.state::jsonb ->> 'open_handoff')
         WHERE c.shop = $1 AND c.buyer = $2",
        &[&shop, &buyer],
    )
    .await?;
    let Some(row) = existing else {
        return Ok(None);
    };
    let (id, state, status): (String, String, Option<String>) =
        (column(&row, 0)?, column(&row, 1)?, column(&row, 2)?);
    let mut state = decode_state(&id, &state)?;
    if state.open_handoff.is_some() {
        forget_closed_handoff(&mut state, status.as_deref());
    }
    Ok(Some(Conversation {
        id,
        shop: shop.to_string(),
        buyer: buyer.to_string(),
        state,
    }))
}

pub async fn open(
    c: &impl GenericClient,
    shop: &str,
    buyer: &str,
    now: DateTime<Utc>,
) -> Result<Conversation, StoreError> {
    if let Some(existing) = find(c, shop, buyer).await? {
        return Ok(existing);
    }
    let id = uuid::Uuid::now_v7().to_string();
    // Two connections of a new buyer may race: the loser reads the winner's row.
    let inserted = super::execute(
        c,
        "INSERT INTO conversations (id, shop, buyer, state, created_at, updated_at)
         VALUES ($1, $2, $3, '{}', $4, $4) ON CONFLICT (shop, buyer) DO NOTHING",
        &[&id, &shop, &buyer, &now],
    )
    .await?;
    if inserted == 0 {
        return Box::pin(open(c, shop, buyer, now)).await;
    }
    Ok(Conversation {
        id,
        shop: shop.to_string(),
        buyer: buyer.to_string(),
        state: ConversationState::default(),
    })
}

/// What [`write_exchanges`] did, by conversation id.
#[derive(Debug, Default)]
pub struct Written {
    /// Exchanges written.
    pub new: HashSet<String>,
    /// Exchanges not written because their buyer message was a resend.
    pub resent: HashSet<String>,
}

/// The state updates, the messages and the unanswered-question counts of several exchanges
/// (at most one per conversation), in one statement and so one commit. An exchange whose
/// conversation does not exist writes nothing, nor does one whose buyer message is a resend
/// (found in the same statement, so a new message costs no extra round trip).
pub async fn write_exchanges(
    c: &impl GenericClient,
    exchanges: &[&Exchange],
) -> Result<Written, StoreError> {
    let mut ids = Vec::with_capacity(exchanges.len());
    let mut states = Vec::with_capacity(exchanges.len());
    let mut ats = Vec::with_capacity(exchanges.len());
    // One entry per message, in order: each buyer message before its replies.
    let mut m_conversations: Vec<&str> = Vec::new();
    let mut senders: Vec<&str> = Vec::new();
    let mut kinds: Vec<Option<&str>> = Vec::new();
    let mut intents: Vec<Option<&str>> = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    let mut client_ids: Vec<Option<&str>> = Vec::new();
    let mut m_ats = Vec::new();
    // One entry per unanswered question.
    let (mut u_conversations, mut u_shops, mut u_texts, mut u_ats) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // One entry per buyer message that may be a resend.
    let (mut r_conversations, mut r_client_ids, mut r_texts, mut r_since) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for exchange in exchanges {
        let conversation = exchange.conversation.as_str();
        if let Some((client_id, text, since)) = resend_of(exchange) {
            r_conversations.push(conversation);
            r_client_ids.push(client_id);
            r_texts.push(text);
            r_since.push(since);
        }
        ids.push(conversation);
        states.push(encode_state(&exchange.state)?);
        ats.push(exchange.at);
        let buyer = exchange.buyer_message.as_ref().map(|m| {
            let id = m.client_id.as_deref();
            (Sender::Buyer.as_str(), None, None, &m.text, id)
        });
        let replies = exchange.replies.iter().map(|r| {
            let kind = Some(r.kind.as_str());
            (
                Sender::Bot.as_str(),
                kind,
                r.intent.as_deref(),
                &r.text,
                None,
            )
        });
        for (sender, kind, intent, text, client_id) in buyer.into_iter().chain(replies) {
            m_conversations.push(conversation);
            senders.push(sender);
            kinds.push(kind);
            intents.push(intent);
            texts.push(text.as_str());
            client_ids.push(client_id);
            m_ats.push(exchange.at);
        }
        if let Some(text) = &exchange.unmatched {
            u_conversations.push(conversation);
            u_shops.push(exchange.shop.as_str());
            u_texts.push(unmatched_text(text));
            u_ats.push(exchange.at);
        }
    }
    let rows = query(
        c,
        // `id = ANY($1)` keeps to the primary key in the generic plan whatever the batch's
        // size (a join with UNNEST is planned for 100 rows and scans the table instead).
        "WITH resent AS (
             SELECT DISTINCT r.conversation
             FROM UNNEST($15::text[], $16::text[], $17::text[], $18::timestamptz[])
                      AS r(conversation, client_id, text, since)
             WHERE EXISTS (
                 SELECT 1 FROM messages m
                 WHERE m.conversation = r.conversation AND m.client_id = r.client_id
                   AND m.sender = 'buyer' AND m.text = r.text AND m.at >= r.since)
         ), updated AS (
             UPDATE conversations c
             SET state = ($2::text[])[array_position($1::text[], c.id)],
                 updated_at = ($3::timestamptz[])[array_position($1::text[], c.id)]
             WHERE c.id = ANY($1::text[]) AND c.id NOT IN (SELECT conversation FROM resent)
             RETURNING c.id
         ), written AS (
             INSERT INTO messages (conversation, sender, kind, intent, text, client_id, at)
             SELECT m.conversation, m.sender, m.kind, m.intent, m.text, m.client_id, m.at
             FROM UNNEST($4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                         $9::text[], $10::timestamptz[])
                      WITH ORDINALITY AS m(conversation, sender, kind, intent, text,
                                           client_id, at, n)
             WHERE m.conversation IN (SELECT id FROM updated)
             ORDER BY m.n
             RETURNING seq
         ), counted AS (
             INSERT INTO unmatched (shop, text, count, first_seen, last_seen)
             SELECT u.shop, u.text, count(*), min(u.at), max(u.at)
             FROM UNNEST($11::text[], $12::text[], $13::text[], $14::timestamptz[])
                      AS u(conversation, shop, text, at)
             WHERE u.conversation IN (SELECT id FROM updated)
             GROUP BY u.shop, u.text
             ON CONFLICT (shop, text) DO UPDATE
             SET count = unmatched.count + EXCLUDED.count,
                 last_seen = GREATEST(unmatched.last_seen, EXCLUDED.last_seen)
         )
         SELECT id, false FROM updated UNION ALL SELECT conversation, true FROM resent",
        &[
            &ids,
            &states,
            &ats,
            &m_conversations,
            &senders,
            &kinds,
            &intents,
            &texts,
            &client_ids,
            &m_ats,
            &u_conversations,
            &u_shops,
            &u_texts,
            &u_ats,
            &r_conversations,
            &r_client_ids,
            &r_texts,
            &r_since,
        ],
    )
    .await?;
    let mut written = Written::default();
    for row in &rows {
        let (id, resent): (String, bool) = (column(row, 0)?, column(row, 1)?);
        if resent {
            written.resent.insert(id);
        } else {
            written.new.insert(id);
        }
    }
    Ok(written)
}

/// What a resent message got the first time (the bot replies written with the last buyer
/// message of its client id and text), and the conversation's state now. Only read for a
/// resend, so it may take its own round trips.
pub async fn first_answer(
    c: &impl GenericClient,
    exchange: &Exchange,
) -> Result<Recorded, StoreError> {
    let Some((client_id, text, since)) = resend_of(exchange) else {
        return Err(StoreError::Corrupt("a resend without a client id".into()));
    };
    let rows = query(
        c,
        "WITH first AS (
             SELECT seq, at FROM messages
             WHERE conversation = $1 AND client_id = $2 AND sender = 'buyer' AND text = $3
               AND at >= $4
             ORDER BY seq DESC LIMIT 1
         )
         SELECT m.kind, m.intent, m.text FROM messages m, first
         WHERE m.conversation = $1 AND m.seq > first.seq AND m.at = first.at
          AND NOT EXISTS (SELECT 1 FROM messages b WHERE b.conversation = $1 AND b.sender = 'buyer'
                          AND b.seq > first.seq AND b.seq < m.seq)
           AND m.sender = 'bot'
         ORDER BY m.seq",
        &[&exchange.conversation, &client_id, &text, &since],
    )
    .await?;
    let mut replies = Vec::with_capacity(rows.len());
    for row in &rows {
        replies.push(stored_reply(
            &column::<String>(row, 0)?,
            column(row, 1)?,
            column(row, 2)?,
        )?);
    }
    let state = query_opt(
        c,
        "SELECT state FROM conversations WHERE id = $1",
        &[&exchange.conversation],
    )
    .await?
    .ok_or_else(|| missing(exchange))?;
    let state = decode_state(&exchange.conversation, &column::<String>(&state, 0)?)?;
    Ok(Recorded::Resent { replies, state })
}

/// The error of an exchange whose conversation does not exist.
pub fn missing(exchange: &Exchange) -> StoreError {
    StoreError::Corrupt(format!("no conversation {}", exchange.conversation))
}

/// Writes an exchange that creates a handoff, carries webhook events or goes to the agents,
/// in a transaction of its own with its notice. (The others are batched: `batch.rs`.)
pub async fn record(
    client: &mut deadpool_postgres::Client,
    node: &str,
    exchange: &Exchange,
) -> Result<Recorded, StoreError> {
    let tx = client.transaction().await.map_err(unavailable)?;
    let written = write_exchanges(&tx, &[exchange]).await?;
    if written.resent.contains(&exchange.conversation) {
        // Nothing was written; what the first got is read outside the transaction.
        drop(tx);
        return first_answer(&*client, exchange).await;
    }
    if written.new.is_empty() {
        return Err(missing(exchange));
    }
    if let Some(handoff) = &exchange.handoff {
        super::execute(
            &tx,
            "INSERT INTO handoffs (id, shop, conversation, buyer, intent, priority, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &handoff.id,
                &handoff.shop,
                &handoff.conversation,
                &handoff.buyer,
                &handoff.intent,
                &handoff.priority.as_str(),
                &handoff.created_at,
            ],
        )
        .await?;
        let created = handoff.clone();
        notices::announce(&tx, node, Change::HandoffCreated { handoff: created }).await?;
    }
    let to_agents = match &exchange.buyer_message {
        Some(message) if exchange.to_agents => Some(Change::BuyerWrote {
            shop: exchange.shop.clone(),
            conversation: exchange.conversation.clone(),
            text: message.text.clone(),
            at: exchange.at,
        }),
        _ => None,
    };
    super::commit(tx, node, &exchange.events, exchange.at, to_agents).await?;
    Ok(Recorded::New)
}

pub async fn agent_message(
    client: &mut deadpool_postgres::Client,
    node: &str,
    message: &AgentMessage,
) -> Result<i64, StoreError> {
    let tx = client.transaction().await.map_err(unavailable)?;
    let row = query_opt(
        &tx,
        "WITH touched AS (
             UPDATE conversations SET updated_at = $3 WHERE id = $1 RETURNING id
         )
         INSERT INTO messages (conversation, sender, kind, text, at, agent_id, agent_name,
                               delivered)
         SELECT id, 'agent', 'agent', $2, $3, $4, $5, false FROM touched
         RETURNING seq",
        &[
            &message.conversation,
            &message.text,
            &message.at,
            &message.agent_id,
            &message.agent_name,
        ],
    )
    .await?;
    let Some(row) = row else {
        return Err(StoreError::Corrupt(format!(
            "no conversation {}",
            message.conversation
        )));
    };
    let seq: i64 = column(&row, 0)?;
    let change = Change::AgentWrote {
        conversation: message.conversation.clone(),
        seq,
        agent_name: message.agent_name.clone(),
        text: message.text.clone(),
        at: message.at,
    };
    super::commit(tx, node, &[], message.at, Some(change)).await?;
    Ok(seq)
}

pub async fn pending(
    c: &impl GenericClient,
    conversation: &str,
) -> Result<Vec<PendingMessage>, StoreError> {
    let rows = query(
        c,
        "SELECT seq, agent_name, text, at FROM messages
         WHERE conversation = $1 AND delivered = false ORDER BY seq",
        &[&conversation],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PendingMessage {
                seq: column(row, 0)?,
                agent_name: column::<Option<String>>(row, 1)?.unwrap_or_default(),
                text: column(row, 2)?,
                at: column(row, 3)?,
            })
        })
        .collect()
}

pub async fn mark_delivered(c: &impl GenericClient, seqs: &[i64]) -> Result<(), StoreError> {
    super::execute(
        c,
        "UPDATE messages SET delivered = true WHERE seq = ANY($1)",
        &[&seqs],
    )
    .await?;
    Ok(())
}

pub async fn transcript(
    c: &impl GenericClient,
    conversation: &str,
    limit: usize,
) -> Result<Vec<TranscriptLine>, StoreError> {
    let rows = query(
        c,
        "SELECT * FROM (SELECT seq, sender, kind, intent, agent_name, text, at FROM messages
                        WHERE conversation = $1 ORDER BY seq DESC LIMIT $2) recent
         ORDER BY seq",
        &[&conversation, &(limit as i64)],
    )
    .await?;
    rows.iter()
        .map(|row| {
            let from: String = column(row, 1)?;
            Ok(TranscriptLine {
                seq: column(row, 0)?,
                from: Sender::parse(&from)
                    .ok_or_else(|| StoreError::Corrupt(format!("sender {from:?}")))?,
                kind: column(row, 2)?,
                intent: column(row, 3)?,
                agent: column(row, 4)?,
                text: column(row, 5)?,
                at: column(row, 6)?,
            })
        })
        .collect()
}

pub async fn unmatched(
    c: &impl GenericClient,
    shop: &str,
    limit: usize,
) -> Result<Vec<Unmatched>, StoreError> {
    let rows = query(
        c,
        "SELECT text, count, last_seen FROM unmatched WHERE shop = $1
         ORDER BY count DESC, last_seen DESC LIMIT $2",
        &[&shop, &(limit as i64)],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Unmatched {
                text: column(row, 0)?,
                count: column::<i64>(row, 1)?.max(0) as u64,
                last_seen: column(row, 2)?,
            })
        })
        .collect()
}

pub async fn stats(
    c: &impl GenericClient,
    shop: &str,
    since: DateTime<Utc>,
) -> Result<ShopStats, StoreError> {
    let mut walk = StatsWalk::default();
    let handoffs = query(
        c,
        "SELECT conversation, created_at FROM handoffs
         WHERE shop = $1 AND created_at >= $2 ORDER BY created_at",
        &[&shop, &since],
    )
    .await?;
    for row in &handoffs {
        walk.handoff(column(row, 0)?, column(row, 1)?);
    }
    let messages = query(
        c,
        "SELECT m.conversation, m.sender, m.at FROM messages m
         JOIN conversations c ON c.id = m.conversation
         WHERE c.shop = $1 AND m.at >= $2 ORDER BY m.conversation, m.seq",
        &[&shop, &since],
    )
    .await?;
    for row in &messages {
        let sender: String = column(row, 1)?;
        let from = Sender::parse(&sender)
            .ok_or_else(|| StoreError::Corrupt(format!("sender {sender:?}")))?;
        walk.message(column(row, 0)?, from, column(row, 2)?);
    }
    Ok(walk.finish())
}
