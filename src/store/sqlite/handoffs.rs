//! The human queue: handoffs claimed, resolved, requeued and escalated, and what the shop
//! knows about a buyer. Each change is one conditional UPDATE, so of two agents racing for a
//! case exactly one changes a row.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{execute, query_row, unavailable};
use crate::store::{
    BuyerProfile, ClaimOutcome, Handoff, HandoffStatus, Note, OutboxEvent, ResolveOutcome,
    StoreError, format_time, parse_time, state_after_resolve,
};

const COLUMNS: &str = "id, shop, conversation, buyer, intent, priority, status, created_at, \
                       claimed_by, escalated_at, requeued";

type RawHandoff = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
);

fn raw(row: &Row) -> rusqlite::Result<RawHandoff> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn handoff(raw: RawHandoff) -> Result<Handoff, StoreError> {
    let (id, shop, conversation, buyer, intent, priority, status, created_at, claimed_by, esc, rq) =
        raw;
    let (priority, status) = crate::store::handoff_labels(&id, &priority, &status)?;
    Ok(Handoff {
        id,
        shop,
        conversation,
        buyer,
        intent,
        priority,
        status,
        created_at: parse_time(&created_at)?,
        claimed_by,
        escalated: esc.is_some(),
        requeued: rq,
    })
}

fn query(
    c: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<Handoff>, StoreError> {
    let mut statement = c.prepare_cached(sql).map_err(unavailable)?;
    let rows = statement.query_map(args, raw).map_err(unavailable)?;
    let mut handoffs = Vec::new();
    for row in rows {
        handoffs.push(handoff(row.map_err(unavailable)?)?);
    }
    Ok(handoffs)
}

fn get(c: &Connection, id: &str) -> Result<Option<Handoff>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM handoffs WHERE id = ?1");
    let raw = query_row(c, &sql, params![id], raw)
        .optional()
        .map_err(unavailable)?;
    raw.map(handoff).transpose()
}

/// Handoffs of a shop (or all), oldest first; only queued and claimed ones if `open_only`.
pub fn list(
    c: &Connection,
    shop: Option<&str>,
    open_only: bool,
) -> Result<Vec<Handoff>, StoreError> {
    let filter = if open_only {
        "AND status IN ('queued', 'claimed')"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM handoffs WHERE (?1 IS NULL OR shop = ?1) {filter}
         ORDER BY created_at, id"
    );
    query(c, &sql, params![shop])
}

pub fn claim(
    c: &Connection,
    id: &str,
    agent: &str,
    now: DateTime<Utc>,
    events: &[OutboxEvent],
) -> Result<ClaimOutcome, StoreError> {
    let claimed = execute(
        c,
        "UPDATE handoffs SET status = 'claimed', claimed_by = ?2, claimed_at = ?3
             WHERE id = ?1 AND status = 'queued'",
        params![id, agent, format_time(now)],
    )
    .map_err(unavailable)?;
    let current = get(c, id)?;
    match current {
        None => Ok(ClaimOutcome::NotFound),
        Some(h) if claimed == 1 => {
            super::outbox::enqueue(c, events, now)?;
            Ok(ClaimOutcome::Claimed(h))
        }
        Some(h) => Ok(ClaimOutcome::Conflict { by: h.claimed_by }),
    }
}

pub fn resolve(
    c: &Connection,
    id: &str,
    agent: &str,
    now: DateTime<Utc>,
    events: &[OutboxEvent],
) -> Result<ResolveOutcome, StoreError> {
    let Some(current) = get(c, id)? else {
        return Ok(ResolveOutcome::NotFound);
    };
    let mine = match current.status {
        HandoffStatus::Queued => true,
        HandoffStatus::Claimed => current.claimed_by.as_deref() == Some(agent),
        HandoffStatus::Resolved => false,
    };
    if !mine {
        return Ok(ResolveOutcome::Conflict {
            by: current.claimed_by,
        });
    }
    execute(
        c,
        "UPDATE handoffs SET status = 'resolved', resolved_at = ?2,
                             claimed_by = COALESCE(claimed_by, ?3)
         WHERE id = ?1",
        params![id, format_time(now), agent],
    )
    .map_err(unavailable)?;
    // The conversation goes back to the bot.
    let state: Option<String> = query_row(
        c,
        "SELECT state FROM conversations WHERE id = ?1",
        params![current.conversation],
        |row| row.get(0),
    )
    .optional()
    .map_err(unavailable)?;
    if let Some(state) = state
        && let Some(state) = state_after_resolve(&current.conversation, &state, id)?
    {
        execute(
            c,
            "UPDATE conversations SET state = ?2 WHERE id = ?1",
            params![current.conversation, state],
        )
        .map_err(unavailable)?;
    }
    super::outbox::enqueue(c, events, now)?;
    let resolved =
        get(c, id)?.ok_or_else(|| StoreError::Corrupt(format!("handoff {id} vanished")))?;
    Ok(ResolveOutcome::Resolved(resolved))
}

pub fn requeue(c: &Connection, shop: &str, agent: &str) -> Result<Vec<Handoff>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM handoffs
         WHERE shop = ?1 AND status = 'claimed' AND claimed_by = ?2 ORDER BY created_at, id"
    );
    let held = query(c, &sql, params![shop, agent])?;
    execute(
        c,
        "UPDATE handoffs SET status = 'queued', claimed_by = NULL, claimed_at = NULL,
                             requeued = 1
         WHERE shop = ?1 AND status = 'claimed' AND claimed_by = ?2",
        params![shop, agent],
    )
    .map_err(unavailable)?;
    Ok(held
        .into_iter()
        .map(|h| Handoff {
            status: HandoffStatus::Queued,
            claimed_by: None,
            requeued: true,
            ..h
        })
        .collect())
}

pub fn escalate(
    c: &Connection,
    id: &str,
    now: DateTime<Utc>,
    events: &[OutboxEvent],
) -> Result<bool, StoreError> {
    let changed = execute(
        c,
        "UPDATE handoffs SET escalated_at = ?2
             WHERE id = ?1 AND status = 'queued' AND escalated_at IS NULL",
        params![id, format_time(now)],
    )
    .map_err(unavailable)?;
    if changed == 1 {
        super::outbox::enqueue(c, events, now)?;
    }
    Ok(changed == 1)
}

pub fn add_note(c: &Connection, note: &Note) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO notes (shop, buyer, agent, text, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            note.shop,
            note.buyer,
            note.agent,
            note.text,
            format_time(note.at)
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// The buyer's other handoffs (latest 20) and notes (latest 50), oldest first.
pub fn profile(
    c: &Connection,
    shop: &str,
    buyer: &str,
    except: &str,
) -> Result<BuyerProfile, StoreError> {
    let sql = format!(
        "SELECT * FROM (SELECT {COLUMNS} FROM handoffs
                        WHERE shop = ?1 AND buyer = ?2 AND id != ?3
                        ORDER BY created_at DESC LIMIT 20)
         ORDER BY created_at"
    );
    let previous_handoffs = query(c, &sql, params![shop, buyer, except])?;
    let mut statement = c
        .prepare_cached(
            "SELECT * FROM (SELECT agent, text, at, id FROM notes
                            WHERE shop = ?1 AND buyer = ?2 ORDER BY id DESC LIMIT 50)
             ORDER BY id",
        )
        .map_err(unavailable)?;
    let rows = statement
        .query_map(params![shop, buyer], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .map_err(unavailable)?;
    let mut notes = Vec::new();
    for row in rows {
        let (agent, text, at) = row.map_err(unavailable)?;
        notes.push(Note {
            shop: shop.to_string(),
            buyer: buyer.to_string(),
            agent,
            text,
            at: parse_time(&at)?,
        });
    }
    Ok(BuyerProfile {
        previous_handoffs,
        notes,
    })
}
