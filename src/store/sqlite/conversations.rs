//! Conversations and their messages: opening, recording exchanges, agent messages and their
//! delivery, transcripts, unanswered questions.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{execute, query_row, unavailable};
use crate::conversation::ConversationState;
use crate::store::{
    AgentMessage, Conversation, Exchange, PendingMessage, Recorded, Sender, StoreError,
    TranscriptLine, Unmatched, decode_state, encode_state, forget_closed_handoff, format_time,
    parse_time, resend_of, stored_reply, unmatched_text,
};

/// The conversation of `buyer` at `shop`, if it exists; reads only.
pub fn find(c: &Connection, shop: &str, buyer: &str) -> Result<Option<Conversation>, StoreError> {
    let existing = query_row(
        c,
        "SELECT id, state FROM conversations WHERE shop = ?1 AND buyer = ?2",
        params![shop, buyer],
        |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
    )
    .optional()
    .map_err(unavailable)?;
    let Some((id, state)) = existing else {
        return Ok(None);
    };
    let mut state = decode_state(&id, &state)?;
    if let Some(handoff) = &state.open_handoff {
        let status: Option<String> = query_row(
            c,
            "SELECT status FROM handoffs WHERE id = ?1",
            params![handoff],
            |row| row.get(0),
        )
        .optional()
        .map_err(unavailable)?;
        forget_closed_handoff(&mut state, status.as_deref());
    }
    Ok(Some(Conversation {
        id,
        shop: shop.to_string(),
        buyer: buyer.to_string(),
        state,
    }))
}

pub fn open(
    c: &Connection,
    shop: &str,
    buyer: &str,
    now: DateTime<Utc>,
) -> Result<Conversation, StoreError> {
    if let Some(existing) = find(c, shop, buyer)? {
        return Ok(existing);
    }
    let id = uuid::Uuid::now_v7().to_string();
    let at = format_time(now);
    execute(
        c,
        "INSERT INTO conversations (id, shop, buyer, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, '{}', ?4, ?4)",
        params![id, shop, buyer, at],
    )
    .map_err(unavailable)?;
    Ok(Conversation {
        id,
        shop: shop.to_string(),
        buyer: buyer.to_string(),
        state: ConversationState::default(),
    })
}

/// Bot replies to the last buyer message with a given client id and text stored since a
/// given time: the rows written with it (same conversation and time, later seq, no buyer
/// message between).
const FIRST_ANSWER: &str = "
    WITH first AS (
        SELECT seq, at FROM messages
        WHERE conversation = ?1 AND client_id = ?2 AND sender = 'buyer' AND text = ?3
          AND at >= ?4
        ORDER BY seq DESC LIMIT 1
    )
    SELECT m.kind, m.intent, m.text FROM messages m, first
    WHERE m.conversation = ?1 AND m.seq > first.seq AND m.at = first.at
          AND NOT EXISTS (SELECT 1 FROM messages b WHERE b.conversation = ?1 AND b.sender = 'buyer'
                          AND b.seq > first.seq AND b.seq < m.seq) AND m.sender = 'bot'
    ORDER BY m.seq";

pub fn record(c: &Connection, exchange: &Exchange) -> Result<Recorded, StoreError> {
    if let Some((client_id, text, since)) = resend_of(exchange) {
        let stored: Option<i64> = query_row(
            c,
            "SELECT seq FROM messages
             WHERE conversation = ?1 AND client_id = ?2 AND sender = 'buyer' AND text = ?3
               AND at >= ?4
             LIMIT 1",
            params![exchange.conversation, client_id, text, format_time(since)],
            |row| row.get(0),
        )
        .optional()
        .map_err(unavailable)?;
        if stored.is_some() {
            return first_answer(c, exchange, client_id, text, since);
        }
    }
    write(c, exchange)?;
    Ok(Recorded::New)
}

/// What a resent message got the first time, and the conversation's state now.
fn first_answer(
    c: &Connection,
    exchange: &Exchange,
    client_id: &str,
    text: &str,
    since: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    let mut statement = c.prepare_cached(FIRST_ANSWER).map_err(unavailable)?;
    let rows = statement
        .query_map(
            params![exchange.conversation, client_id, text, format_time(since)],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, String>(2)?,
                ))
            },
        )
        .map_err(unavailable)?;
    let mut replies = Vec::new();
    for row in rows {
        let (kind, intent, text) = row.map_err(unavailable)?;
        replies.push(stored_reply(&kind, intent, text)?);
    }
    let state: String = query_row(
        c,
        "SELECT state FROM conversations WHERE id = ?1",
        params![exchange.conversation],
        |row| row.get(0),
    )
    .map_err(unavailable)?;
    let state = decode_state(&exchange.conversation, &state)?;
    Ok(Recorded::Resent { replies, state })
}

fn write(c: &Connection, exchange: &Exchange) -> Result<(), StoreError> {
    let at = format_time(exchange.at);
    let state = encode_state(&exchange.state)?;
    let updated = execute(
        c,
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
    let mut insert = c
        .prepare_cached(
            "INSERT INTO messages (conversation, sender, kind, intent, text, client_id, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(unavailable)?;
    if let Some(message) = &exchange.buyer_message {
        insert
            .execute(params![
                exchange.conversation,
                Sender::Buyer.as_str(),
                None::<&str>,
                None::<&str>,
                message.text,
                message.client_id,
                at
            ])
            .map_err(unavailable)?;
    }
    for reply in &exchange.replies {
        insert
            .execute(params![
                exchange.conversation,
                Sender::Bot.as_str(),
                reply.kind.as_str(),
                reply.intent.as_deref(),
                reply.text,
                None::<&str>,
                at
            ])
            .map_err(unavailable)?;
    }
    if let Some(text) = &exchange.unmatched {
        execute(
            c,
            "INSERT INTO unmatched (shop, text, count, first_seen, last_seen)
             VALUES (?1, ?2, 1, ?3, ?3)
             ON CONFLICT (shop, text) DO UPDATE SET count = count + 1, last_seen = ?3",
            params![exchange.shop, unmatched_text(text), at],
        )
        .map_err(unavailable)?;
    }
    if let Some(handoff) = &exchange.handoff {
        execute(
            c,
            "INSERT INTO handoffs (id, shop, conversation, buyer, intent, priority, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                handoff.id,
                handoff.shop,
                handoff.conversation,
                handoff.buyer,
                handoff.intent,
                handoff.priority.as_str(),
                format_time(handoff.created_at)
            ],
        )
        .map_err(unavailable)?;
    }
    super::outbox::enqueue(c, &exchange.events, exchange.at)
}

pub fn agent_message(c: &Connection, message: &AgentMessage) -> Result<i64, StoreError> {
    let at = format_time(message.at);
    let inserted = execute(
        c,
        "INSERT INTO messages (conversation, sender, kind, text, at, agent_id, agent_name,
                               delivered)
         SELECT id, 'agent', 'agent', ?2, ?3, ?4, ?5, 0 FROM conversations WHERE id = ?1",
        params![
            message.conversation,
            message.text,
            at,
            message.agent_id,
            message.agent_name
        ],
    )
    .map_err(unavailable)?;
    if inserted == 0 {
        return Err(StoreError::Corrupt(format!(
            "no conversation {}",
            message.conversation
        )));
    }
    execute(
        c,
        "UPDATE conversations SET updated_at = ?2 WHERE id = ?1",
        params![message.conversation, at],
    )
    .map_err(unavailable)?;
    Ok(c.last_insert_rowid())
}

pub fn pending(c: &Connection, conversation: &str) -> Result<Vec<PendingMessage>, StoreError> {
    let mut query = c
        .prepare_cached(
            "SELECT seq, agent_name, text, at FROM messages
             WHERE conversation = ?1 AND delivered = 0 ORDER BY seq",
        )
        .map_err(unavailable)?;
    let rows = query
        .query_map(params![conversation], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .map_err(unavailable)?;
    let mut messages = Vec::new();
    for row in rows {
        let (seq, agent_name, text, at) = row.map_err(unavailable)?;
        messages.push(PendingMessage {
            seq,
            agent_name: agent_name.unwrap_or_default(),
            text,
            at: parse_time(&at)?,
        });
    }
    Ok(messages)
}

pub fn mark_delivered(c: &Connection, seqs: &[i64]) -> Result<(), StoreError> {
    let mut update = c
        .prepare_cached("UPDATE messages SET delivered = 1 WHERE seq = ?1")
        .map_err(unavailable)?;
    for seq in seqs {
        update.execute(params![seq]).map_err(unavailable)?;
    }
    Ok(())
}

pub fn transcript(
    c: &Connection,
    conversation: &str,
    limit: usize,
) -> Result<Vec<TranscriptLine>, StoreError> {
    let mut query = c
        .prepare_cached(
            "SELECT * FROM (SELECT seq, sender, kind, intent, agent_name, text, at FROM messages
                            WHERE conversation = ?1 ORDER BY seq DESC LIMIT ?2)
             ORDER BY seq",
        )
        .map_err(unavailable)?;
    let rows = query
        .query_map(params![conversation, limit as i64], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
            ))
        })
        .map_err(unavailable)?;
    let mut lines = Vec::new();
    for row in rows {
        let (seq, from, kind, intent, agent, text, at) = row.map_err(unavailable)?;
        lines.push(TranscriptLine {
            seq,
            from: Sender::parse(&from)
                .ok_or_else(|| StoreError::Corrupt(format!("sender {from:?}")))?,
            kind,
            intent,
            agent,
            text,
            at: parse_time(&at)?,
        });
    }
    Ok(lines)
}

pub fn unmatched(c: &Connection, shop: &str, limit: usize) -> Result<Vec<Unmatched>, StoreError> {
    let mut query = c
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
