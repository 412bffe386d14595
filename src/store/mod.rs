//! Durable storage: conversations with their state, every message in and out, and handoffs.
//!
//! Callers see one async interface, [`Store`]; SQLite is the embedded default and PostgreSQL
//! lets several service nodes share one database. The contract every backend keeps (and
//! `tests/it/store_contract.rs` checks against both):
//! - when `record` returns `Ok`, everything in the exchange is durable (it survives `kill -9`),
//!   and it was written atomically: the buyer's message, the replies, the new conversation
//!   state and any new handoff, all or nothing;
//! - operations of one caller are applied in the order they were submitted, so a
//!   conversation opened right after a `record` sees that record's state;
//! - of two claims of one queued handoff, from any nodes, exactly one wins;
//! - a buyer message with the `client_id` and text of one the conversation stored within
//!   [`RESEND_WINDOW`] is a resend: `record` writes nothing and answers with what the first
//!   got ([`Recorded::Resent`]). An index on (conversation, client id) finds it; the common
//!   case, a new message, costs no extra round trip.
//!
//! A store shared by several nodes also carries their [`Feed`]: every change to the human side
//! (a handoff created, claimed, resolved…) is announced to the other nodes in the same
//! transaction that commits it, so they hear of it in commit order and never of a change that
//! was rolled back.

mod change;
mod postgres;
mod sqlite;
mod stats;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::conversation::ConversationState;
use crate::intents::HandoffPriority;
use crate::reply::Reply;

pub use change::{Change, Feed};
pub use postgres::{PgOptions, PgStore};
pub use sqlite::{SqliteStore, Tuning as SqliteTuning};

#[derive(Debug, Clone, thiserror::Error)]
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

/// How far back a resend finds the message it repeats. Clients resend within seconds; an id
/// reused much later (a client numbering its messages per connection) is a new message.
pub const RESEND_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// What `record` did with an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Written now.
    New,
    /// The buyer's message was already stored (a resend): nothing was written. The bot
    /// replies it got then, and the conversation's state as stored now.
    Resent {
        replies: Vec<Reply>,
        state: ConversationState,
    },
}

/// A buyer's message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyerMessage {
    pub text: String,
    /// The client's id for the message (its frame's `id`), kept for the transcript and to
    /// recognise a resend.
    pub client_id: Option<String>,
}

/// A webhook event to deliver, written to the outbox in the same transaction as what caused
/// it, so it is delivered (at least once) even if the service dies right after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Unique per event and receiver; sent as the idempotency key.
    pub id: String,
    pub shop: String,
    pub url: String,
    pub event: String,
    pub body: String,
}

/// One step of a conversation, written atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub conversation: String,
    pub shop: String,
    pub buyer: String,
    /// Absent for a welcome on connect.
    pub buyer_message: Option<BuyerMessage>,
    pub replies: Vec<Reply>,
    pub state: ConversationState,
    /// A case this exchange opens (queued, created at `at`).
    pub handoff: Option<Handoff>,
    /// The canonical text of a question nothing answered, counted for the operators.
    pub unmatched: Option<String>,
    pub events: Vec<OutboxEvent>,
    /// The buyer wrote while the conversation is with the humans: the agents' consoles, on
    /// whichever node they are, must see the message.
    pub to_agents: bool,
    pub at: DateTime<Utc>,
}

/// Longest unanswered question kept, in characters: enough to read what was asked, and a
/// buyer's long random text costs little.
pub const UNMATCHED_MAX_CHARS: usize = 200;

/// `text` cut to [`UNMATCHED_MAX_CHARS`], as the unanswered questions keep it.
fn unmatched_text(text: &str) -> &str {
    match text.char_indices().nth(UNMATCHED_MAX_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// What the retention task deletes, table by table, in this order ([`Expired::ALL`]): a
/// conversation goes last, once nothing refers to it. Nothing of a conversation with an open
/// case (queued or claimed) is ever deleted, however old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Messages written before the cutoff.
    Messages,
    /// Cases closed before the cutoff.
    Handoffs,
    /// Notes about buyers written before the cutoff.
    Notes,
    /// Unanswered questions last asked before the cutoff.
    Unmatched,
    /// Webhook events created before the cutoff, delivered or not.
    Outbox,
    /// Conversations started and last written before the cutoff, with nothing left in them.
    Conversations,
}

impl Expired {
    pub const ALL: [Expired; 6] = [
        Expired::Messages,
        Expired::Handoffs,
        Expired::Notes,
        Expired::Unmatched,
        Expired::Outbox,
        Expired::Conversations,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Expired::Messages => "messages",
            Expired::Handoffs => "handoffs",
            Expired::Notes => "notes",
            Expired::Unmatched => "unmatched",
            Expired::Outbox => "outbox",
            Expired::Conversations => "conversations",
        }
    }
}

/// A question nothing could answer, with how often it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    pub text: String,
    pub count: u64,
    pub last_seen: DateTime<Utc>,
}

/// Where a handoff is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandoffStatus {
    Queued,
    Claimed,
    Resolved,
}

impl HandoffStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffStatus::Queued => "queued",
            HandoffStatus::Claimed => "claimed",
            HandoffStatus::Resolved => "resolved",
        }
    }

    fn parse(text: &str) -> Option<HandoffStatus> {
        match text {
            "queued" => Some(HandoffStatus::Queued),
            "claimed" => Some(HandoffStatus::Claimed),
            "resolved" => Some(HandoffStatus::Resolved),
            _ => None,
        }
    }
}

/// A handoff as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub id: String,
    pub shop: String,
    pub conversation: String,
    pub buyer: String,
    pub intent: String,
    pub priority: HandoffPriority,
    pub status: HandoffStatus,
    pub created_at: DateTime<Utc>,
    /// The agent id holding it, while claimed.
    pub claimed_by: Option<String>,
    pub escalated: bool,
    /// It went back to the queue at least once because its agent left.
    pub requeued: bool,
}

/// One line of a conversation's transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    pub seq: i64,
    pub from: Sender,
    pub kind: Option<String>,
    pub intent: Option<String>,
    /// The agent's display name, for agent messages.
    pub agent: Option<String>,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// A human agent's message to a buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMessage {
    pub conversation: String,
    pub agent_id: String,
    pub agent_name: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// An agent message not yet delivered to the buyer's widget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMessage {
    pub seq: i64,
    pub agent_name: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// A note an agent wrote about a buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub shop: String,
    pub buyer: String,
    pub agent: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// What the shop knows about a buyer from earlier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuyerProfile {
    pub previous_handoffs: Vec<Handoff>,
    pub notes: Vec<Note>,
}

/// The result of trying to claim a handoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed(Handoff),
    /// Someone else holds it (or it was resolved).
    Conflict {
        by: Option<String>,
    },
    NotFound,
}

/// The result of trying to resolve a handoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveOutcome {
    Resolved(Handoff),
    /// Claimed by another agent.
    Conflict {
        by: Option<String>,
    },
    NotFound,
}

/// An outbox row due for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: String,
    pub shop: String,
    pub url: String,
    pub event: String,
    pub body: String,
    pub attempts: u32,
}

/// A shop's service figures, computed from the stored messages since a given time.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ShopStats {
    pub conversations: u64,
    pub buyer_messages: u64,
    pub bot_replies: u64,
    pub agent_replies: u64,
    /// (bot + agent replies) ÷ buyer messages: 问答比.
    pub reply_ratio: f64,
    pub handoffs: u64,
    /// Conversations with a handoff ÷ conversations with a buyer message.
    pub handoff_rate: f64,
    /// Conversations that ended without a handoff ÷ conversations with a buyer message.
    pub bot_resolution_rate: f64,
    /// Seconds from a buyer's first message to the bot's first reply, averaged.
    pub bot_first_response_seconds: f64,
    pub bot_average_response_seconds: f64,
    /// Seconds from a handoff to the first agent message, averaged over answered handoffs.
    pub human_first_response_seconds: Option<f64>,
    /// Seconds from a buyer message waiting for a human to the agent's next message.
    pub human_average_response_seconds: Option<f64>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The conversation of `buyer` at `shop` if there is one; stores nothing.
    async fn find_conversation(
        &self,
        shop: &str,
        buyer: &str,
    ) -> Result<Option<Conversation>, StoreError>;

    /// The conversation of `buyer` at `shop`, created empty on first contact.
    async fn open_conversation(
        &self,
        shop: &str,
        buyer: &str,
        now: DateTime<Utc>,
    ) -> Result<Conversation, StoreError>;

    /// Writes one exchange durably and atomically, unless its buyer message is a resend; see
    /// the module contract.
    async fn record(&self, exchange: Exchange) -> Result<Recorded, StoreError>;

    /// Handoffs of one shop (or all shops), oldest first.
    async fn handoffs(&self, shop: Option<&str>) -> Result<Vec<Handoff>, StoreError>;

    /// Handoffs still queued or claimed, of one shop or all.
    async fn open_handoffs(&self, shop: Option<&str>) -> Result<Vec<Handoff>, StoreError>;

    /// Claims a queued handoff for `agent`; of two racing agents exactly one wins. `events`
    /// are written with the claim.
    async fn claim(
        &self,
        handoff: &str,
        agent: &str,
        now: DateTime<Utc>,
        events: Vec<OutboxEvent>,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Resolves a handoff held by `agent` (or still queued) and gives the conversation back to
    /// the bot.
    async fn resolve(
        &self,
        handoff: &str,
        agent: &str,
        now: DateTime<Utc>,
        events: Vec<OutboxEvent>,
    ) -> Result<ResolveOutcome, StoreError>;

    /// Returns every handoff `agent` of `shop` holds to the queue; the ones moved.
    async fn requeue(&self, shop: &str, agent: &str) -> Result<Vec<Handoff>, StoreError>;

    /// Marks a queued handoff as escalated; false when it is no longer queued.
    async fn escalate(
        &self,
        handoff: &str,
        now: DateTime<Utc>,
        events: Vec<OutboxEvent>,
    ) -> Result<bool, StoreError>;

    /// Stores an agent's message, undelivered; returns its sequence number.
    async fn agent_message(&self, message: AgentMessage) -> Result<i64, StoreError>;

    /// Agent messages of a conversation not yet delivered, oldest first.
    async fn pending_messages(&self, conversation: &str)
    -> Result<Vec<PendingMessage>, StoreError>;

    /// Marks agent messages as handed to the buyer's connection.
    async fn mark_delivered(&self, seqs: Vec<i64>) -> Result<(), StoreError>;

    /// Stores a note about a buyer, written in `conversation`.
    async fn add_note(&self, note: Note, conversation: &str) -> Result<(), StoreError>;

    /// Earlier handoffs (other than `except`) and notes of a buyer at a shop.
    async fn buyer_profile(
        &self,
        shop: &str,
        buyer: &str,
        except: &str,
    ) -> Result<BuyerProfile, StoreError>;

    /// Undelivered webhook events whose next attempt is due, oldest first. A store shared by
    /// several nodes hands each event to one of them, leased for `lease`: if that node dies
    /// before recording the delivery, the event is due again when the lease ends.
    async fn outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>, StoreError>;

    /// When the next undelivered event is due, if any.
    async fn outbox_next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    async fn outbox_delivered(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    async fn outbox_failed(
        &self,
        id: &str,
        next_attempt: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// The shop's figures over messages since `since`.
    async fn stats(&self, shop: &str, since: DateTime<Utc>) -> Result<ShopStats, StoreError>;

    /// The last `limit` messages of a conversation, oldest first. A returning buyer's
    /// conversation grows without end; readers take what they show.
    async fn transcript(
        &self,
        conversation: &str,
        limit: usize,
    ) -> Result<Vec<TranscriptLine>, StoreError>;

    /// The most frequent unanswered questions of a shop, most frequent first.
    async fn unmatched(&self, shop: &str, limit: usize) -> Result<Vec<Unmatched>, StoreError>;

    /// Deletes up to `batch` rows of `table` belonging to `shop` and older than `before`
    /// (see [`Expired`]) in one statement; returns how many. Called until it deletes fewer
    /// than `batch`.
    async fn delete_expired(
        &self,
        table: Expired,
        shop: &str,
        before: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError>;

    /// Deletes up to `batch` of the shop's unanswered questions beyond the `keep` most
    /// recently seen; returns how many. Called until it deletes fewer than `batch`.
    async fn trim_unmatched(
        &self,
        shop: &str,
        keep: usize,
        batch: usize,
    ) -> Result<usize, StoreError>;

    /// Starts following what the other nodes sharing this store commit and signal; `None`
    /// for a store only this process uses. Once this returns, nothing committed later is
    /// missed (or a [`Feed::Gap`] says so), so call it before loading the open cases.
    async fn subscribe(&self) -> Result<Option<mpsc::Receiver<Feed>>, StoreError> {
        Ok(None)
    }

    /// Tells the other nodes something that is not stored (which agents are connected here).
    /// Nothing to do for a store only this process uses.
    async fn signal(&self, _payload: String) -> Result<(), StoreError> {
        Ok(())
    }

    /// Commits a one-row write, to prove the store can commit now (for `/readyz`): a read
    /// succeeds on a database that is read-only, locked by someone else or full.
    async fn check_commit(&self) -> Result<(), StoreError>;

    /// Finishes pending writes and stops; later calls fail with `Unavailable`.
    async fn close(&self);
}

/// A conversation's state as stored.
fn encode_state(state: &ConversationState) -> Result<String, StoreError> {
    serde_json::to_string(state)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode state: {e}")))
}

/// A conversation's stored state, or `Corrupt` naming the conversation.
fn decode_state(conversation: &str, json: &str) -> Result<ConversationState, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("conversation {conversation}: state: {e}")))
}

/// Forgets the state's open handoff unless the handoffs table (`status`, of the handoff the
/// state names) still has it queued or claimed: one resolved while the buyer's state was
/// being written is over.
fn forget_closed_handoff(state: &mut ConversationState, status: Option<&str>) {
    if !matches!(status, Some("queued" | "claimed")) {
        state.open_handoff = None;
    }
}

/// The stored state of a conversation after its handoff `handoff` is resolved, encoded,
/// when it named that handoff (the bot has the buyer back); `None` when it is unchanged.
fn state_after_resolve(
    conversation: &str,
    json: &str,
    handoff: &str,
) -> Result<Option<String>, StoreError> {
    let mut state = decode_state(conversation, json)?;
    if state.open_handoff.as_deref() != Some(handoff) {
        return Ok(None);
    }
    state.open_handoff = None;
    encode_state(&state).map(Some)
}

/// A stored handoff's priority and status, or `Corrupt` naming the handoff.
fn handoff_labels(
    id: &str,
    priority: &str,
    status: &str,
) -> Result<(HandoffPriority, HandoffStatus), StoreError> {
    let priority = HandoffPriority::parse(priority)
        .ok_or_else(|| StoreError::Corrupt(format!("handoff {id}: priority {priority:?}")))?;
    let status = HandoffStatus::parse(status)
        .ok_or_else(|| StoreError::Corrupt(format!("handoff {id}: status {status:?}")))?;
    Ok((priority, status))
}

/// The first message of a resend: a buyer message of `exchange`'s conversation with its
/// client id and text, stored since [`RESEND_WINDOW`] before it; with its client id.
fn resend_of(exchange: &Exchange) -> Option<(&str, &str, DateTime<Utc>)> {
    let message = exchange.buyer_message.as_ref()?;
    let client_id = message.client_id.as_deref()?;
    Some((client_id, &message.text, exchange.at - RESEND_WINDOW))
}

/// A stored bot reply read back, or `Corrupt` naming its kind.
fn stored_reply(kind: &str, intent: Option<String>, text: String) -> Result<Reply, StoreError> {
    let kind = crate::reply::ReplyKind::parse(kind)
        .ok_or_else(|| StoreError::Corrupt(format!("reply kind {kind:?}")))?;
    Ok(Reply {
        kind,
        intent: intent.map(Into::into),
        text,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// States written before a field existed must still decode: a conversation stored by an
    /// older version continues where it was.
    #[test]
    fn states_stored_by_older_versions_still_decode() {
        let before_topics = r#"{"welcomed_on":"2026-11-11","away_period":"closed","bargain_step":2,"last_variant":{"shipping_time":1},"open_handoff":"h1"}"#;
        let state = decode_state("c1", before_topics).unwrap();
        assert_eq!(state.bargain_step, 2);
        assert_eq!(state.open_handoff.as_deref(), Some("h1"));
        assert_eq!(state.topic, None);
        assert_eq!(
            decode_state("c2", "{}").unwrap(),
            ConversationState::default()
        );

        let mut with_topic = state.clone();
        with_topic.topic = Some(crate::conversation::Topic::new(
            vec![crate::conversation::Answered::Intent(
                "free_shipping".into(),
            )],
            "包邮吗",
            parse_time("2026-11-11T00:05:00Z").unwrap(),
        ));
        let encoded = encode_state(&with_topic).unwrap();
        assert!(
            encoded.contains(r#""topic":{"answered":[{"intent":"free_shipping"}]"#),
            "{encoded}"
        );
        assert_eq!(decode_state("c3", &encoded).unwrap(), with_topic);
        // A state without a topic is written as before, so older nodes can still read it.
        assert!(!encode_state(&state).unwrap().contains("topic"));
    }
}
