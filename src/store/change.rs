//! What the nodes sharing one store hear from each other: the committed changes to the human
//! side, and signals that are not stored.
//!
//! A backend shared by several nodes derives each [`Change`] from the write it commits and
//! sends it in the same transaction; a node never hears its own changes back (it applied them
//! itself when the write returned).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Handoff, Note};

/// A committed change another node's live view (queue, consoles, buyers' connections) must
/// follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A buyer's conversation was handed to the humans.
    HandoffCreated { handoff: Handoff },
    /// A buyer wrote while their conversation is with the humans.
    BuyerWrote {
        shop: String,
        conversation: String,
        text: String,
        at: DateTime<Utc>,
    },
    /// An agent took a queued case (`claimed_by` names them).
    Claimed { handoff: Handoff },
    /// A case is over; the bot has the conversation back.
    Resolved { handoff: Handoff },
    /// An absent agent's cases went back to the queue.
    Requeued {
        shop: String,
        agent: String,
        handoffs: Vec<Handoff>,
    },
    /// A high-priority case waited too long and is announced again.
    Escalated { handoff: Handoff },
    /// An agent wrote to a buyer; stored as message `seq`, not yet delivered.
    AgentWrote {
        conversation: String,
        seq: i64,
        agent_name: String,
        text: String,
        at: DateTime<Utc>,
    },
    /// An agent noted something about a buyer, in `conversation`.
    NoteAdded { conversation: String, note: Note },
}

/// What a node receives from the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// Another node committed a change.
    Change(Change),
    /// Another node's signal: the payload it passed to `Store::signal`.
    Signal { node: String, payload: String },
    /// Notices may have been lost (the connection to the database dropped and came back):
    /// whatever is live must be rebuilt from the store.
    Gap,
}
