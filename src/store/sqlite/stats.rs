//! A shop's service figures (KPIs): the rows of the window, walked by `store::stats`.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::unavailable;
use crate::store::stats::StatsWalk;
use crate::store::{Sender, ShopStats, StoreError, format_time, parse_time};

pub fn shop_stats(
    c: &Connection,
    shop: &str,
    since: DateTime<Utc>,
) -> Result<ShopStats, StoreError> {
    let since = format_time(since);
    let mut walk = StatsWalk::default();
    let mut statement = c
        .prepare_cached(
            "SELECT h.conversation, h.created_at FROM handoffs h
             WHERE h.shop = ?1 AND h.created_at >= ?2 ORDER BY h.created_at",
        )
        .map_err(unavailable)?;
    let rows = statement
        .query_map(params![shop, since], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(unavailable)?;
    for row in rows {
        let (conversation, at) = row.map_err(unavailable)?;
        walk.handoff(conversation, parse_time(&at)?);
    }
    let mut statement = c
        .prepare_cached(
            "SELECT m.conversation, m.sender, m.at FROM messages m
             JOIN conversations c ON c.id = m.conversation
             WHERE c.shop = ?1 AND m.at >= ?2 ORDER BY m.conversation, m.seq",
        )
        .map_err(unavailable)?;
    let rows = statement
        .query_map(params![shop, since], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .map_err(unavailable)?;
    for row in rows {
        let (conversation, sender, at) = row.map_err(unavailable)?;
        let from = Sender::parse(&sender)
            .ok_or_else(|| StoreError::Corrupt(format!("sender {sender:?}")))?;
        walk.message(&conversation, from, parse_time(&at)?);
    }
    Ok(walk.finish())
}
