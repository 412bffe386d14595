//! What the service says to a buyer: one message with its kind of the wire contract.
//!
//! The responder makes replies, the store keeps them as they are, and transport renders them
//! into frames; all three use this one shape.

use std::sync::Arc;

/// The kinds of reply of the wire contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    Welcome,
    Away,
    Busy,
    Answer,
    Faq,
    Fallback,
    Handoff,
    Agent,
}

impl ReplyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyKind::Welcome => "welcome",
            ReplyKind::Away => "away",
            ReplyKind::Busy => "busy",
            ReplyKind::Answer => "answer",
            ReplyKind::Faq => "faq",
            ReplyKind::Fallback => "fallback",
            ReplyKind::Handoff => "handoff",
            ReplyKind::Agent => "agent",
        }
    }

    /// The kind named by `as_str`, as the store reads it back.
    pub fn parse(text: &str) -> Option<ReplyKind> {
        [
            ReplyKind::Welcome,
            ReplyKind::Away,
            ReplyKind::Busy,
            ReplyKind::Answer,
            ReplyKind::Faq,
            ReplyKind::Fallback,
            ReplyKind::Handoff,
            ReplyKind::Agent,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// One message the bot sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: ReplyKind,
    /// The intent (or FAQ entry) that produced it, for `answer`, `faq` and `handoff`.
    pub intent: Option<Arc<str>>,
    pub text: String,
}
