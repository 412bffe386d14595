//! The human queue on PostgreSQL. Each change is one conditional UPDATE: under READ COMMITTED
//! a second UPDATE of the same row waits for the first to commit and then re-checks its WHERE
//! clause against the new row, so of two nodes racing for a case exactly one changes it.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{column, execute, query, query_opt, unavailable};
use crate::store::{
    BuyerProfile, Change, ClaimOutcome, Handoff, HandoffStatus, Note, OutboxEvent, ResolveOutcome,
    StoreError, state_after_resolve,
};

const COLUMNS: &str = "id, shop, conversation, buyer, intent, priority, status, created_at, \
                       claimed_by, escalated_at, requeued";

/// A row of `COLUMNS`.
fn handoff(row: &Row) -> Result<Handoff, StoreError> {
    let id: String = column(row, 0)?;
    let priority: String = column(row, 5)?;
    let status: String = column(row, 6)?;
    let (priority, status) = crate::store::handoff_labels(&id, &priority, &status)?;
    Ok(Handoff {
        shop: column(row, 1)?,
        conversation: column(row, 2)?,
        buyer: column(row, 3)?,
        intent: column(row, 4)?,
        priority,
        status,
        created_at: column(row, 7)?,
        claimed_by: column(row, 8)?,
        escalated: column::<Option<DateTime<Utc>>>(row, 9)?.is_some(),
        requeued: column(row, 10)?,
        id,
    })
}

fn handoffs(rows: &[Row]) -> Result<Vec<Handoff>, StoreError> {
    rows.iter().map(handoff).collect()
}

/// Handoffs of a shop (or all), oldest first; only queued and claimed ones if `open_only`.
pub async fn list(
    c: &impl GenericClient,
    shop: Option<&str>,
    open_only: bool,
) -> Result<Vec<Handoff>, StoreError> {
    let filter = if open_only {
        "AND status IN ('queued', 'claimed')"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM handoffs WHERE ($1::text IS NULL OR shop = $1) {filter}
         ORDER BY created_at, id"
    );
    handoffs(&query(c, &sql, &[&shop]).await?)
}

pub async fn claim(
    client: &mut deadpool_postgres::Client,
    node: &str,
    id: &str,
    agent: &str,
    now: DateTime<Utc>,
    events: &[OutboxEvent],
) -> Result<ClaimOutcome, StoreError> {
    let tx = client.transaction().await.map_err(unavailable)?;
    let sql = format!(
        "UPDATE handoffs SET status = 'claimed', claimed_by = $2, claimed_at = $3
         WHERE id = $1 AND status = 'queued' RETURNING {COLUMNS}"
    );
    let Some(claimed) = query_opt(&tx, &sql, &[&id, &agent, &now]).await? else {
        let holder =
            query_opt(&tx, "SELECT claimed_by FROM handoffs WHERE id = $1", &[&id]).await?;
        return Ok(match holder {
            None => ClaimOutcome::NotFound,
            Some(row) => ClaimOutcome::Conflict {
                by: column(&row, 0)?,
            },
        });
    };
    let claimed = handoff(&claimed)?;
    let change = Change::Claimed {
        handoff: claimed.clone(),
    };
    super::commit(tx, node, events, now, Some(change)).await?;
    Ok(ClaimOutcome::Claimed(claimed))
}

pub async fn resolve(
    client: &mut deadpool_postgres::Client,
    node: &str,
    id: &str,
    agent: &str,
    now: DateTime<Utc>,
    events: &[OutboxEvent],
) -> Result<ResolveOutcome, StoreError> {
    let tx = client.transaction().await.map_err(unavailable)?;
    let sql = format!("SELECT {COLUMNS} FROM handoffs WHERE id = $1 FOR UPDATE");
    let Some(current) = query_opt(&tx, &sql, &[&id]).await? else {
        return Ok(ResolveOutcome::NotFound);
    };
    let current = handoff(&current)?;
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
    let sql = format!(
        "UPDATE handoffs SET status = 'resolved', resolved_at = $2,
                             claimed_by = COALESCE(claimed_by, $3)
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let resolved = query(&tx, &sql, &[&id, &now, &agent]).await?;
    let resolved = handoff(
        resolved
            .first()
            .ok_or_else(|| StoreError::Corrupt(format!("handoff {id} vanished")))?,
    )?;
    // The conversation goes back to the bot.
    let state = query_opt(
        &tx,
        "SELECT state FROM conversations WHERE id = $1 FOR UPDATE",
        &[&resolved.conversation],
    )
    .await?;
    if let Some(row) = state {
        let state: String = column(&row, 0)?;
        if let Some(state) = state_after_resolve(&resolved.conversation, &state, id)? {
            execute(
                &tx,
                "UPDATE conversations SET state = $2 WHERE id = $1",
                &[&resolved.conversation, &state],
            )
            .await?;
        }
    }
    let change = Change::Resolved {
        handoff: resolved.clone(),
    };
    super::commit(tx, node, events, now, Some(change)).await?;
    Ok(ResolveOutcome::Resolved(resolved))
}

pub async fn requeue(
    client: &mut deadpool_postgres::Client,
    node: &str,
    shop: &str,
    agent: &str,
) -> Result<Vec<Handoff>, StoreError> {
    let tx = client.transaction().await.map_err(unavailable)?;
    let sql = format!(
        "UPDATE handoffs SET status = 'queued', claimed_by = NULL, claimed_at = NULL,
                             requeued = true
         WHERE shop = $1 AND status = 'claimed' AND claimed_by = $2 RETURNING {COLUMNS}"
    );
    let mut moved = handoffs(&query(&tx, &sql, &[&shop, &agent]).await?)?;
    moved.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let change = (!moved.is_empty()).then(|| Change::Requeued {
        shop: shop.to_string(),
        agent: agent.to_string(),
        handoffs: moved.clone(),
    });
    super::commit(tx, node, &[], Utc::now(), change).await?;
    Ok(moved)
}

pub async fn escalate(
    client: &mut deadpool_postgres::Client,
    node: &str,
    id: &str,
    now: DateTime<Utc>,
    events: &[OutboxEvent],
) -> Result<bool, StoreError> {
    let tx = client.transaction().await.map_err(unavailable)?;
    let sql = format!(
        "UPDATE handoffs SET escalated_at = $2
         WHERE id = $1 AND status = 'queued' AND escalated_at IS NULL RETURNING {COLUMNS}"
    );
    let Some(row) = query_opt(&tx, &sql, &[&id, &now]).await? else {
        return Ok(false);
    };
    let change = Change::Escalated {
        handoff: handoff(&row)?,
    };
    super::commit(tx, node, events, now, Some(change)).await?;
    Ok(true)
}

pub async fn add_note(
    client: &mut deadpool_postgres::Client,
    node: &str,
    note: &Note,
    conversation: &str,
) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(unavailable)?;
    execute(
        &tx,
        "INSERT INTO notes (shop, buyer, agent, text, at) VALUES ($1, $2, $3, $4, $5)",
        &[&note.shop, &note.buyer, &note.agent, &note.text, &note.at],
    )
    .await?;
    let change = Change::NoteAdded {
        conversation: conversation.to_string(),
        note: note.clone(),
    };
    super::commit(tx, node, &[], note.at, Some(change)).await
}

/// The buyer's other handoffs (latest 20) and notes (latest 50), oldest first.
pub async fn profile(
    c: &impl GenericClient,
    shop: &str,
    buyer: &str,
    except: &str,
) -> Result<BuyerProfile, StoreError> {
    let sql = format!(
        "SELECT * FROM (SELECT {COLUMNS} FROM handoffs
                        WHERE shop = $1 AND buyer = $2 AND id != $3
                        ORDER BY created_at DESC LIMIT 20) recent
         ORDER BY created_at"
    );
    let previous_handoffs = handoffs(&query(c, &sql, &[&shop, &buyer, &except]).await?)?;
    let notes = query(
        c,
        "SELECT agent, text, at FROM (SELECT agent, text, at, id FROM notes
                                       WHERE shop = $1 AND buyer = $2
                                       ORDER BY id DESC LIMIT 50) recent
         ORDER BY id",
        &[&shop, &buyer],
    )
    .await?;
    let notes = notes
        .iter()
        .map(|row| {
            Ok(Note {
                shop: shop.to_string(),
                buyer: buyer.to_string(),
                agent: column(row, 0)?,
                text: column(row, 1)?,
                at: column(row, 2)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(BuyerProfile {
        previous_handoffs,
        notes,
    })
}
