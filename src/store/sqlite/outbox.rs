//! The webhook outbox: events written with what caused them, delivered and retried by
//! `webhook::Dispatcher`.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{execute, query_row, unavailable};
use crate::store::{OutboxEvent, OutboxItem, StoreError, format_time, parse_time};

pub fn enqueue(
    c: &Connection,
    events: &[OutboxEvent],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let at = format_time(now);
    // Due at once: delivery runs on the machine's real time, which may be behind the shop's
    // (injected) business clock.
    let mut insert = c
        .prepare_cached(
            "INSERT OR IGNORE INTO outbox (id, shop, url, event, body, next_attempt, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, '', ?6)",
        )
        .map_err(unavailable)?;
    for event in events {
        insert
            .execute(params![
                event.id,
                event.shop,
                event.url,
                event.event,
                event.body,
                at
            ])
            .map_err(unavailable)?;
    }
    Ok(())
}

pub fn due(
    c: &Connection,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<OutboxItem>, StoreError> {
    let mut query = c
        .prepare_cached(
            "SELECT id, shop, url, event, body, attempts FROM outbox
             WHERE delivered_at IS NULL AND next_attempt <= ?1
             ORDER BY next_attempt, created_at LIMIT ?2",
        )
        .map_err(unavailable)?;
    let rows = query
        .query_map(params![format_time(now), limit as i64], |row| {
            Ok(OutboxItem {
                id: row.get(0)?,
                shop: row.get(1)?,
                url: row.get(2)?,
                event: row.get(3)?,
                body: row.get(4)?,
                attempts: row.get::<_, i64>(5)?.max(0) as u32,
            })
        })
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

pub fn next_due(c: &Connection) -> Result<Option<DateTime<Utc>>, StoreError> {
    let next: Option<String> = query_row(
        c,
        "SELECT MIN(next_attempt) FROM outbox WHERE delivered_at IS NULL",
        [],
        |row| row.get(0),
    )
    .optional()
    .map_err(unavailable)?
    .flatten();
    next.as_deref().map(parse_time).transpose()
}

pub fn delivered(c: &Connection, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    execute(
        c,
        "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1 WHERE id = ?1",
        params![id, format_time(now)],
    )
    .map_err(unavailable)?;
    Ok(())
}

pub fn failed(
    c: &Connection,
    id: &str,
    next_attempt: DateTime<Utc>,
    error: &str,
) -> Result<(), StoreError> {
    execute(
        c,
        "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3
         WHERE id = ?1",
        params![id, format_time(next_attempt), error],
    )
    .map_err(unavailable)?;
    Ok(())
}
