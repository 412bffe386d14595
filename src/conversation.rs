//! What the bot remembers about one conversation between messages.
//!
//! It is stored with the conversation, so a buyer who reconnects continues where they were:
//! the bargaining ladder does not restart, the welcome is not repeated the same day, and the
//! away notice is not sent twice in one away period, and a short follow-up ("那新疆呢") is
//! read in the topic of the answer just before it.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
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
    /// What the bot's last real answer was about, for short follow-ups; none after a
    /// handoff or the fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<Topic>,
}

/// At most this many characters of the buyer's question are kept in a [`Topic`].
pub const TOPIC_QUESTION_CHARS: usize = 60;

/// The topic of an answer: what was answered, to what question, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    /// The intents and FAQ entries answered, by name (names survive a reload that reorders
    /// them); at most as many as one message is answered with.
    pub answered: Vec<Answered>,
    /// The buyer's question in canonical form, cut to [`TOPIC_QUESTION_CHARS`]: a follow-up
    /// to an FAQ answer asks the FAQ again with it.
    pub question: String,
    /// When the answer was given; a follow-up counts only within the shop's window.
    pub at: DateTime<Utc>,
}

/// One thing a topic's answer answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answered {
    /// A keyword intent, by name.
    Intent(String),
    /// An FAQ entry, by id.
    Faq(String),
}

impl Topic {
    /// A topic whose question is `canonical`, cut to [`TOPIC_QUESTION_CHARS`] characters.
    pub fn new(answered: Vec<Answered>, canonical: &str, at: DateTime<Utc>) -> Topic {
        let end = canonical
            .char_indices()
            .nth(TOPIC_QUESTION_CHARS)
            .map_or(canonical.len(), |(i, _)| i);
        Topic {
            answered,
            question: canonical[..end].to_string(),
            at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_keeps_a_bounded_question() {
        let at = DateTime::UNIX_EPOCH;
        let long = "发".repeat(TOPIC_QUESTION_CHARS + 10);
        let topic = Topic::new(vec![Answered::Intent("shipping_time".into())], &long, at);
        assert_eq!(topic.question.chars().count(), TOPIC_QUESTION_CHARS);
        assert_eq!(Topic::new(Vec::new(), "几天到", at).question, "几天到");
    }
}
