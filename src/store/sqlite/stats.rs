//! A shop's service figures (KPIs), computed from the stored messages and handoffs.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::unavailable;
use crate::store::{ShopStats, StoreError, format_time, parse_time};

/// One conversation's walk through its messages in order.
#[derive(Default)]
struct Walk {
    /// When the buyer first wrote (in the window).
    first_buyer: Option<DateTime<Utc>>,
    first_bot_done: bool,
    /// The oldest buyer message no one has answered yet, and whether a human owes the answer.
    waiting: Option<DateTime<Utc>>,
    handoffs: Vec<DateTime<Utc>>,
    /// Handoffs whose first agent message was already counted.
    answered_handoffs: usize,
}

#[derive(Default)]
struct Mean {
    sum: f64,
    count: u64,
}

impl Mean {
    fn add(&mut self, seconds: f64) {
        self.sum += seconds.max(0.0);
        self.count += 1;
    }

    fn get(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

pub fn shop_stats(
    c: &Connection,
    shop: &str,
    since: DateTime<Utc>,
) -> Result<ShopStats, StoreError> {
    let since = format_time(since);
    let mut walks: HashMap<String, Walk> = HashMap::new();
    {
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
            walks
                .entry(conversation)
                .or_default()
                .handoffs
                .push(parse_time(&at)?);
        }
    }
    let mut stats = ShopStats::default();
    let (mut bot_first, mut bot_each, mut human_first, mut human_each) = (
        Mean::default(),
        Mean::default(),
        Mean::default(),
        Mean::default(),
    );
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
        let at = parse_time(&at)?;
        let walk = walks.entry(conversation).or_default();
        match sender.as_str() {
            "buyer" => {
                stats.buyer_messages += 1;
                walk.first_buyer.get_or_insert(at);
                walk.waiting.get_or_insert(at);
            }
            "bot" => {
                stats.bot_replies += 1;
                if let Some(waiting) = walk.waiting.take() {
                    let seconds = (at - waiting).as_seconds_f64();
                    bot_each.add(seconds);
                    if !walk.first_bot_done {
                        walk.first_bot_done = true;
                        bot_first.add(seconds);
                    }
                }
            }
            _ => {
                stats.agent_replies += 1;
                // The first agent message after each handoff answers that handoff.
                while walk.answered_handoffs < walk.handoffs.len()
                    && walk.handoffs[walk.answered_handoffs] <= at
                {
                    human_first.add((at - walk.handoffs[walk.answered_handoffs]).as_seconds_f64());
                    walk.answered_handoffs += 1;
                }
                if let Some(waiting) = walk.waiting.take() {
                    human_each.add((at - waiting).as_seconds_f64());
                }
            }
        }
    }
    let talked: Vec<&Walk> = walks.values().filter(|w| w.first_buyer.is_some()).collect();
    stats.conversations = talked.len() as u64;
    stats.handoffs = walks.values().map(|w| w.handoffs.len() as u64).sum();
    let handed_off = talked.iter().filter(|w| !w.handoffs.is_empty()).count() as f64;
    if stats.conversations > 0 {
        stats.handoff_rate = handed_off / stats.conversations as f64;
        stats.bot_resolution_rate = 1.0 - stats.handoff_rate;
    }
    if stats.buyer_messages > 0 {
        stats.reply_ratio =
            (stats.bot_replies + stats.agent_replies) as f64 / stats.buyer_messages as f64;
    }
    stats.bot_first_response_seconds = bot_first.get().unwrap_or(0.0);
    stats.bot_average_response_seconds = bot_each.get().unwrap_or(0.0);
    stats.human_first_response_seconds = human_first.get();
    stats.human_average_response_seconds = human_each.get();
    Ok(stats)
}
