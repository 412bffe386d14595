//! The webhook outbox on PostgreSQL. Every node runs a dispatcher; each due event is leased to
//! one of them (`FOR UPDATE SKIP LOCKED`, then its next attempt moved to the lease's end), so
//! an event is sent by one node at a time, and by another if that node dies mid-delivery.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{column, execute, query, query_one};
use crate::store::{OutboxEvent, OutboxItem, StoreError};

pub async fn enqueue(
    c: &impl GenericClient,
    events: &[OutboxEvent],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let field = |f: fn(&OutboxEvent) -> &str| events.iter().map(f).collect::<Vec<&str>>();
    // Due at once (the epoch): delivery runs on the machine's real time, which may be behind
    // the shop's (injected) business clock.
    execute(
        c,
        "INSERT INTO outbox (id, shop, url, event, body, next_attempt, created_at)
         SELECT e.id, e.shop, e.url, e.event, e.body, to_timestamp(0), $6
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
              AS e(id, shop, url, event, body)
         ON CONFLICT (id) DO NOTHING",
        &[
            &field(|e| &e.id),
            &field(|e| &e.shop),
            &field(|e| &e.url),
            &field(|e| &e.event),
            &field(|e| &e.body),
            &now,
        ],
    )
    .await?;
    Ok(())
}

pub async fn due(
    c: &impl GenericClient,
    now: DateTime<Utc>,
    limit: usize,
    lease: Duration,
) -> Result<Vec<OutboxItem>, StoreError> {
    let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    let rows = query(
        c,
        "UPDATE outbox SET next_attempt = $3
         WHERE id IN (SELECT id FROM outbox
                      WHERE delivered_at IS NULL AND next_attempt <= $1
                      ORDER BY next_attempt, created_at LIMIT $2
                      FOR UPDATE SKIP LOCKED)
         RETURNING id, shop, url, event, body, attempts, created_at",
        &[&now, &(limit as i64), &until],
    )
    .await?;
    let mut due = rows
        .iter()
        .map(|row| {
            let created: DateTime<Utc> = column(row, 6)?;
            let item = OutboxItem {
                id: column(row, 0)?,
                shop: column(row, 1)?,
                url: column(row, 2)?,
                event: column(row, 3)?,
                body: column(row, 4)?,
                attempts: column::<i32>(row, 5)?.max(0) as u32,
            };
            Ok((created, item))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    due.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    Ok(due.into_iter().map(|(_, item)| item).collect())
}

pub async fn next_due(c: &impl GenericClient) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = query_one(
        c,
        "SELECT min(next_attempt) FROM outbox WHERE delivered_at IS NULL",
        &[],
    )
    .await?;
    column(&row, 0)
}

pub async fn delivered(
    c: &impl GenericClient,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    execute(
        c,
        "UPDATE outbox SET delivered_at = $2, attempts = attempts + 1 WHERE id = $1",
        &[&id, &now],
    )
    .await?;
    Ok(())
}

pub async fn failed(
    c: &impl GenericClient,
    id: &str,
    next_attempt: DateTime<Utc>,
    error: &str,
) -> Result<(), StoreError> {
    execute(
        c,
        "UPDATE outbox SET attempts = attempts + 1, next_attempt = $2, last_error = $3
         WHERE id = $1 AND delivered_at IS NULL",
        &[&id, &next_attempt, &error],
    )
    .await?;
    Ok(())
}
