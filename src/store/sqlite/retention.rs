//! Deleting what is older than a shop keeps, one small batch per statement; see
//! `crate::retention`. Each statement is one job of the writer, so buyers' writes pass
//! between batches.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{execute, unavailable};
use crate::store::{Expired, StoreError, format_time};

pub fn delete_expired(
    c: &Connection,
    table: Expired,
    shop: &str,
    before: DateTime<Utc>,
    batch: usize,
) -> Result<usize, StoreError> {
    let sql = match table {
        // Nothing of a conversation with an open case goes, however old.
        Expired::Messages => {
            "DELETE FROM messages WHERE seq IN (
                 SELECT m.seq FROM messages m JOIN conversations c ON c.id = m.conversation
                 WHERE m.at < ?2 AND c.shop = ?1
                   AND m.conversation NOT IN
                       (SELECT conversation FROM handoffs WHERE status IN ('queued', 'claimed'))
                 LIMIT ?3)"
        }
        Expired::Handoffs => {
            "DELETE FROM handoffs WHERE id IN (
                 SELECT id FROM handoffs
                 WHERE shop = ?1 AND status NOT IN ('queued', 'claimed')
                   AND coalesce(resolved_at, created_at) < ?2
                 LIMIT ?3)"
        }
        Expired::Notes => {
            "DELETE FROM notes WHERE id IN (
                 SELECT id FROM notes WHERE shop = ?1 AND at < ?2 LIMIT ?3)"
        }
        Expired::Unmatched => {
            "DELETE FROM unmatched WHERE rowid IN (
                 SELECT rowid FROM unmatched WHERE shop = ?1 AND last_seen < ?2 LIMIT ?3)"
        }
        Expired::Outbox => {
            "DELETE FROM outbox WHERE id IN (
                 SELECT id FROM outbox WHERE shop = ?1 AND created_at < ?2 LIMIT ?3)"
        }
        // Last: a conversation goes once nothing refers to it any more.
        Expired::Conversations => {
            "DELETE FROM conversations WHERE id IN (
                 SELECT c.id FROM conversations c
                 WHERE c.shop = ?1 AND c.created_at < ?2 AND c.updated_at < ?2
                   AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation = c.id)
                   AND NOT EXISTS (SELECT 1 FROM handoffs h WHERE h.conversation = c.id)
                 LIMIT ?3)"
        }
    };
    execute(c, sql, params![shop, format_time(before), batch as i64]).map_err(unavailable)
}

/// Deletes up to `batch` of the shop's unanswered questions beyond the `keep` most recently
/// seen.
pub fn trim_unmatched(
    c: &Connection,
    shop: &str,
    keep: usize,
    batch: usize,
) -> Result<usize, StoreError> {
    execute(
        c,
        "DELETE FROM unmatched WHERE rowid IN (
             SELECT rowid FROM unmatched WHERE shop = ?1
             ORDER BY last_seen DESC LIMIT ?3 OFFSET ?2)",
        params![shop, keep as i64, batch as i64],
    )
    .map_err(unavailable)
}
