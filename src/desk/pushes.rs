//! What the desk tells live connections from outside their own loops: a buyer's connection
//! hears of agent messages and of their case; an agent's console hears of cases, buyers,
//! colleagues and notes. Transport renders both into frames.

use chrono::{DateTime, Utc};

use super::QueueNotice;
use super::queue::Presence;
use crate::store::{BuyerProfile, Handoff, TranscriptLine};

/// Transcript lines sent with a handoff (and read from the store for it); the agent console
/// needs the recent conversation, not a buyer's whole history.
pub const TRANSCRIPT_LINES: usize = 200;

/// What a buyer's connection is told from outside its own conversation loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyerPush {
    /// An agent wrote; stored as message `seq`.
    AgentMessage {
        seq: i64,
        agent_name: String,
        text: String,
        at: DateTime<Utc>,
    },
    /// The buyer's place in the queue changed.
    Queued(QueueNotice),
    Claimed {
        agent_name: String,
    },
    Resolved {
        handoff: String,
    },
    /// Pushes may have been missed (the notices from other nodes were interrupted): send
    /// again what the buyer should have, from the store.
    Recheck,
}

/// What an agent's console is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentPush {
    /// The first thing a console hears: who it is, and every colleague's status.
    Hello {
        agent: String,
        name: String,
        shop: String,
        shop_name: String,
        status: Presence,
        agents: Vec<AgentStatus>,
    },
    /// A case to show: queued, or held by this agent.
    Handoff {
        handoff: Handoff,
        /// The conversation's last lines, oldest first.
        transcript: Vec<TranscriptLine>,
        profile: BuyerProfile,
        /// Order numbers the buyer wrote.
        order_numbers: Vec<String>,
    },
    Claimed {
        handoff: String,
        conversation: String,
        agent: String,
        agent_name: String,
    },
    Resolved {
        handoff: String,
        conversation: String,
    },
    /// The buyer of a case wrote.
    BuyerMessage {
        handoff: String,
        conversation: String,
        text: String,
        at: DateTime<Utc>,
    },
    /// A colleague's status changed; `None` is offline.
    Presence {
        agent: String,
        name: String,
        status: Option<Presence>,
    },
    /// Ends a page of the queue (the `handoff` frames just before it): how many cases are
    /// queued in all, how many this page held, and where the next page starts (`None` at the
    /// end of the queue). A console gets the top page on connect and asks for more.
    QueuePage {
        queued: usize,
        sent: usize,
        next: Option<String>,
    },
    /// An agent noted something about a buyer.
    Note {
        conversation: String,
        buyer: String,
        text: String,
        agent: String,
        at: DateTime<Utc>,
    },
}

/// A colleague as a console lists them; `status` is `None` while they are offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    pub id: String,
    pub name: String,
    pub status: Option<Presence>,
}

impl AgentPush {
    /// A case with its recent transcript, the buyer's earlier cases and notes, and the order
    /// numbers the buyer wrote.
    pub fn handoff(
        handoff: Handoff,
        transcript: Vec<TranscriptLine>,
        profile: BuyerProfile,
    ) -> AgentPush {
        let buyer_texts = transcript
            .iter()
            .filter(|l| l.from == crate::store::Sender::Buyer)
            .map(|l| l.text.as_str());
        let order_numbers = order_numbers(buyer_texts);
        let recent = transcript.len().saturating_sub(TRANSCRIPT_LINES);
        let transcript = transcript.into_iter().skip(recent).collect();
        AgentPush::Handoff {
            handoff,
            transcript,
            profile,
            order_numbers,
        }
    }
}

/// Order numbers in the buyer's messages: runs of 12 to 20 digits (platform order numbers are
/// 16–19 digits; couriers' tracking numbers 12–15), full-width digits included.
pub fn order_numbers<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (_, run) in texts.flat_map(crate::normalize::digit_runs) {
        if (12..=20).contains(&run.len()) && !found.contains(&run) {
            found.push(run);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn order_numbers_are_long_digit_runs() {
        let texts = [
            "订单号 3856214790123456789 还没发货",
            "电话13800138000不是订单",
            "单号：７７８８９９００１１２２３３",
            "3856214790123456789 再问一次",
        ];
        assert_eq!(
            super::order_numbers(texts.into_iter()),
            ["3856214790123456789", "77889900112233"]
        );
    }
}
