//! The JSON frames agents receive (`shared/protocol.md` and `docs/protocol-extensions.md`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::queue::Presence;
use crate::store::{BuyerProfile, Handoff, TranscriptLine};

/// Transcript lines sent with a handoff (and read from the store for it); the agent console
/// needs the recent conversation, not a buyer's whole history.
pub const TRANSCRIPT_LINES: usize = 200;

pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn handoff(handoff: &Handoff, transcript: &[TranscriptLine], profile: &BuyerProfile) -> String {
    let recent = &transcript[transcript.len().saturating_sub(TRANSCRIPT_LINES)..];
    let lines: Vec<Value> = recent
        .iter()
        .map(|line| {
            let mut value = json!({
                "from": line.from.as_str(),
                "text": line.text,
                "at": time(line.at),
            });
            if let Some(kind) = &line.kind {
                value["kind"] = json!(kind);
            }
            if let Some(agent) = &line.agent {
                value["agent"] = json!(agent);
            }
            value
        })
        .collect();
    let buyer_texts = transcript
        .iter()
        .filter(|l| l.from == crate::store::Sender::Buyer)
        .map(|l| l.text.as_str());
    json!({
        "type": "handoff",
        "handoff": {
            "id": handoff.id,
            "shop": handoff.shop,
            "conversation": handoff.conversation,
            "buyer": handoff.buyer,
            "intent": handoff.intent,
            "priority": handoff.priority.as_str(),
            "created_at": time(handoff.created_at),
            "status": handoff.status.as_str(),
            "claimed_by": handoff.claimed_by,
            "escalated": handoff.escalated,
            "requeued": handoff.requeued,
            "order_numbers": order_numbers(buyer_texts),
            "buyer_profile": {
                "previous_handoffs": profile.previous_handoffs.iter().map(|h| json!({
                    "id": h.id,
                    "intent": h.intent,
                    "status": h.status.as_str(),
                    "created_at": time(h.created_at),
                })).collect::<Vec<_>>(),
                "notes": profile.notes.iter().map(|n| json!({
                    "text": n.text,
                    "agent": n.agent,
                    "at": time(n.at),
                })).collect::<Vec<_>>(),
            },
            "transcript": lines,
        }
    })
    .to_string()
}

pub fn claimed(handoff: &str, conversation: &str, agent: &str, agent_name: &str) -> String {
    json!({
        "type": "claimed",
        "handoff": handoff,
        "conversation": conversation,
        "agent": agent,
        "agent_name": agent_name,
    })
    .to_string()
}

pub fn resolved(handoff: &str, conversation: &str) -> String {
    json!({"type": "resolved", "handoff": handoff, "conversation": conversation}).to_string()
}

pub fn buyer_message(handoff: &str, conversation: &str, text: &str, at: DateTime<Utc>) -> String {
    json!({
        "type": "buyer_message",
        "handoff": handoff,
        "conversation": conversation,
        "text": text,
        "at": time(at),
    })
    .to_string()
}

pub fn presence(agent: &str, name: &str, status: Option<Presence>) -> String {
    json!({
        "type": "presence",
        "agent": agent,
        "name": name,
        "status": status.map_or("offline", Presence::as_str),
    })
    .to_string()
}

pub fn note(conversation: &str, buyer: &str, text: &str, agent: &str, at: DateTime<Utc>) -> String {
    json!({
        "type": "note",
        "conversation": conversation,
        "buyer": buyer,
        "text": text,
        "agent": agent,
        "at": time(at),
    })
    .to_string()
}

/// Order numbers in the buyer's messages: runs of 12 to 20 digits (platform order numbers are
/// 16–19 digits; couriers' tracking numbers 12–15), full-width digits included.
pub fn order_numbers<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for text in texts {
        let mut run = String::new();
        for c in text.chars().chain(std::iter::once(' ')) {
            let digit = match c {
                '0'..='9' => Some(c),
                '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
                _ => None,
            };
            match digit {
                Some(d) => run.push(d),
                None => {
                    if (12..=20).contains(&run.len()) && !found.contains(&run) {
                        found.push(run.clone());
                    }
                    run.clear();
                }
            }
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
