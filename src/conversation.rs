//! What the bot remembers about one conversation between messages.
//!
//! It is stored with the conversation, so a buyer who reconnects continues where they were:
//! the bargaining ladder does not restart, the welcome is not repeated the same day, and the
//! away notice is not sent twice in one away period.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationState {
    /// The shop-local date the welcome was last sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcomed_on: Option<NaiveDate>,
    /// The away period the buyer was last told about (identified by when agents are back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_period: Option<String>,
    /// The peak window the buyer was last told about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_period: Option<String>,
    /// How many bargaining replies were sent: the next one climbs to this step of the ladder.
    #[serde(default)]
    pub bargain_step: usize,
    /// The variant last sent for each reply (intent or template name), so the next differs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last_variant: BTreeMap<String, usize>,
    /// The handoff waiting for (or being handled by) a human, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_handoff: Option<String>,
}
