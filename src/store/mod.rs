//! Durable storage: conversations with their state, every message in and out, and handoffs.
//!
//! Callers see one async interface, [`Store`]; SQLite is the embedded default and PostgreSQL
//! fits behind the same trait. The contract every backend keeps:
//! - when `record` returns `Ok`, everything in the exchange is durable (it survives `kill -9`),
//!   and it was written atomically: the buyer's message, the replies, the new conversation
//!   state and any new handoff, all or nothing;
//! - operations are applied in the order they were submitted, so a conversation opened right
//!   after a `record` sees that record's state.
//!
//! Backends batch concurrent writes into one transaction (group commit), so many connections
//! writing at once cost one commit, not one each.

mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::conversation::ConversationState;
use crate::intents::HandoffPriority;

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or written; the caller tells the client `unavailable`.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the stored data is damaged: {0}")]
    Corrupt(String),
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Buyer,
    Bot,
    Agent,
}

impl Sender {
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::Buyer => "buyer",
            Sender::Bot => "bot",
            Sender::Agent => "agent",
        }
    }

    fn parse(text: &str) -> Option<Sender> {
        match text {
            "buyer" => Some(Sender::Buyer),
            "bot" => Some(Sender::Bot),
            "agent" => Some(Sender::Agent),
            _ => None,
        }
    }
}

/// A conversation as loaded when a buyer connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: String,
    pub shop: String,
    pub buyer: String,
    pub state: ConversationState,
}

/// A message the bot sends, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub kind: &'static str,
    pub intent: Option<String>,
    pub text: String,
}

/// A handoff to create together with the exchange that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHandoff {
    pub id: String,
    pub intent: String,
    pub priority: HandoffPriority,
}

/// One step of a conversation, written atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub conversation: String,
    pub shop: String,
    pub buyer: String,
    /// The buyer's text and the client's frame id, absent for a welcome on connect.
    pub buyer_message: Option<(String, Option<String>)>,
    pub replies: Vec<OutgoingMessage>,
    pub state: ConversationState,
    pub handoff: Option<NewHandoff>,
    /// The canonical text of a question nothing answered, counted for the operators.
    pub unmatched: Option<String>,
    pub at: DateTime<Utc>,
}

/// A question nothing could answer, with how often it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    pub text: String,
    pub count: u64,
    pub last_seen: DateTime<Utc>,
}

/// A handoff as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    pub id: String,
    pub shop: String,
    pub conversation: String,
    pub buyer: String,
    pub intent: String,
    pub priority: HandoffPriority,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// One line of a conversation's transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    pub from: Sender,
    pub kind: Option<String>,
    pub intent: Option<String>,
    pub text: String,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The conversation of `buyer` at `shop`, created empty on first contact.
    async fn open_conversation(
        &self,
        shop: &str,
        buyer: &str,
        now: DateTime<Utc>,
    ) -> Result<Conversation, StoreError>;

    /// Writes one exchange durably and atomically; see the module contract.
    async fn record(&self, exchange: Exchange) -> Result<(), StoreError>;

    /// Handoffs of one shop (or all shops), oldest first.
    async fn handoffs(&self, shop: Option<&str>) -> Result<Vec<Handoff>, StoreError>;

    /// Every message of a conversation, in order.
    async fn transcript(&self, conversation: &str) -> Result<Vec<TranscriptLine>, StoreError>;

    /// The most frequent unanswered questions of a shop, most frequent first.
    async fn unmatched(&self, shop: &str, limit: usize) -> Result<Vec<Unmatched>, StoreError>;

    /// Finishes pending writes and stops; later calls fail with `Unavailable`.
    async fn close(&self);
}

/// Times are stored as fixed-width RFC 3339 text in UTC so that text order is time order.
fn format_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|e| StoreError::Corrupt(format!("bad time {text:?}: {e}")))
}
