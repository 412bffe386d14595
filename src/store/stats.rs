//! A shop's service figures (KPIs), computed from its handoffs and messages in order. Each
//! backend reads the rows; the arithmetic is here, once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Sender, ShopStats};

/// One conversation's walk through its messages in order.
#[derive(Default)]
struct Walk {
    /// When the buyer first wrote (in the window).
    first_buyer: Option<DateTime<Utc>>,
    first_bot_done: bool,
    /// The oldest buyer message no one has answered yet.
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

/// Feed it every handoff of the window (oldest first), then every message of the window
/// (grouped by conversation, in order within each), then `finish`.
#[derive(Default)]
pub struct StatsWalk {
    walks: HashMap<String, Walk>,
    stats: ShopStats,
    bot_first: Mean,
    bot_each: Mean,
    human_first: Mean,
    human_each: Mean,
}

impl StatsWalk {
    pub fn handoff(&mut self, conversation: String, at: DateTime<Utc>) {
        self.walks
            .entry(conversation)
            .or_default()
            .handoffs
            .push(at);
    }

    pub fn message(&mut self, conversation: &str, from: Sender, at: DateTime<Utc>) {
        if !self.walks.contains_key(conversation) {
            self.walks.insert(conversation.to_string(), Walk::default());
        }
        let walk = self.walks.get_mut(conversation).expect("inserted above");
        let stats = &mut self.stats;
        match from {
            Sender::Buyer => {
                stats.buyer_messages += 1;
                walk.first_buyer.get_or_insert(at);
                walk.waiting.get_or_insert(at);
            }
            Sender::Bot => {
                stats.bot_replies += 1;
                if let Some(waiting) = walk.waiting.take() {
                    let seconds = (at - waiting).as_seconds_f64();
                    self.bot_each.add(seconds);
                    if !walk.first_bot_done {
                        walk.first_bot_done = true;
                        self.bot_first.add(seconds);
                    }
                }
            }
            Sender::Agent => {
                stats.agent_replies += 1;
                // The first agent message after each handoff answers that handoff.
                while walk.answered_handoffs < walk.handoffs.len()
                    && walk.handoffs[walk.answered_handoffs] <= at
                {
                    self.human_first
                        .add((at - walk.handoffs[walk.answered_handoffs]).as_seconds_f64());
                    walk.answered_handoffs += 1;
                }
                if let Some(waiting) = walk.waiting.take() {
                    self.human_each.add((at - waiting).as_seconds_f64());
                }
            }
        }
    }

    pub fn finish(self) -> ShopStats {
        let mut stats = self.stats;
        let talked: Vec<&Walk> = self
            .walks
            .values()
            .filter(|w| w.first_buyer.is_some())
            .collect();
        stats.conversations = talked.len() as u64;
        stats.handoffs = self.walks.values().map(|w| w.handoffs.len() as u64).sum();
        let handed_off = talked.iter().filter(|w| !w.handoffs.is_empty()).count() as f64;
        if stats.conversations > 0 {
            stats.handoff_rate = handed_off / stats.conversations as f64;
            stats.bot_resolution_rate = 1.0 - stats.handoff_rate;
        }
        if stats.buyer_messages > 0 {
            stats.reply_ratio =
                (stats.bot_replies + stats.agent_replies) as f64 / stats.buyer_messages as f64;
        }
        stats.bot_first_response_seconds = self.bot_first.get().unwrap_or(0.0);
        stats.bot_average_response_seconds = self.bot_each.get().unwrap_or(0.0);
        stats.human_first_response_seconds = self.human_first.get();
        stats.human_average_response_seconds = self.human_each.get();
        stats
    }
}
