//! The JSON frames of the wire contract (`shared/protocol.md`, `docs/protocol-extensions.md`):
//! what clients send, parsed and checked, and what the service sends, rendered. Only
//! `transport` knows them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::desk::{AgentPush, Presence};
use crate::store::TranscriptLine;

/// Stable error codes clients branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    TooLarge,
    RateLimited,
    Unavailable,
    /// Agents only: the case is held by another agent.
    Conflict,
    /// Agents only: no such case or conversation, or not yours.
    NotFound,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotFound => "not_found",
        }
    }
}

/// A client frame as received; fields are checked by [`parse_buyer_frame`] so that each
/// mistake gets its own message. Unknown fields are ignored.
#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    id: Option<Value>,
}

/// A valid buyer frame.
#[derive(Debug, PartialEq)]
pub enum BuyerFrame {
    Message {
        text: String,
        /// The client's id for the message, echoed as `in_reply_to`.
        id: Option<Value>,
    },
}

impl BuyerFrame {
    /// The client's id for the frame, if it gave one.
    pub fn id(&self) -> Option<&Value> {
        match self {
            BuyerFrame::Message { id, .. } => id.as_ref(),
        }
    }
}

/// A frame the client got wrong, with the code and message to send back.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    /// The id of the message the mistake was found in, when the frame had one.
    pub in_reply_to: Option<Value>,
}

impl FrameError {
    fn bad_request(message: impl Into<String>) -> FrameError {
        FrameError {
            code: ErrorCode::BadRequest,
            message: message.into(),
            in_reply_to: None,
        }
    }

    fn answering(mut self, id: Option<Value>) -> FrameError {
        self.in_reply_to = id;
        self
    }
}

pub fn parse_buyer_frame(text: &str, max_text_chars: usize) -> Result<BuyerFrame, FrameError> {
    let raw: RawFrame = serde_json::from_str(text)
        .map_err(|e| FrameError::bad_request(format!("a frame must be one JSON object: {e}")))?;
    let checked = match raw.kind.as_deref() {
        None => Err(FrameError::bad_request("the frame has no `type`")),
        Some("message") => match raw.text {
            None => Err(FrameError::bad_request("a `message` frame needs `text`")),
            Some(text) if text.chars().count() > max_text_chars => Err(FrameError {
                code: ErrorCode::TooLarge,
                message: format!("a message may be at most {max_text_chars} characters"),
                in_reply_to: None,
            }),
            Some(text) => return Ok(BuyerFrame::Message { text, id: raw.id }),
        },
        Some(other) => Err(FrameError::bad_request(format!(
            "unknown frame type `{other}`; buyers send `message`"
        ))),
    };
    checked.map_err(|e| e.answering(raw.id))
}

/// A valid agent frame.
#[derive(Debug, PartialEq)]
pub enum AgentFrame {
    Presence {
        status: String,
    },
    Claim {
        handoff: String,
    },
    Reply {
        conversation: String,
        text: String,
        id: Option<Value>,
    },
    Resolve {
        handoff: String,
    },
    Note {
        conversation: String,
        text: String,
    },
    /// The next page of the queue, after the cursor of the last `queue_page` (from the top
    /// without one).
    MoreCases {
        after: Option<String>,
        limit: Option<usize>,
    },
}

pub fn parse_agent_frame(text: &str, max_text_chars: usize) -> Result<AgentFrame, FrameError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FrameError::bad_request(format!("a frame must be one JSON object: {e}")))?;
    let field = |name: &str| -> Result<String, FrameError> {
        value
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                FrameError::bad_request(format!(
                    "a `{}` frame needs `{name}` as a string",
                    value["type"].as_str().unwrap_or("")
                ))
            })
    };
    let checked_text = || -> Result<String, FrameError> {
        let text = field("text")?;
        if text.trim().is_empty() {
            return Err(FrameError::bad_request("`text` is empty"));
        }
        if text.chars().count() > max_text_chars {
            return Err(FrameError {
                code: ErrorCode::TooLarge,
                message: format!("a message may be at most {max_text_chars} characters"),
                in_reply_to: None,
            });
        }
        Ok(text)
    };
    match value.get("type").and_then(Value::as_str) {
        None => Err(FrameError::bad_request("the frame has no `type`")),
        Some("presence") => Ok(AgentFrame::Presence {
            status: field("status")?,
        }),
        Some("claim") => Ok(AgentFrame::Claim {
            handoff: field("handoff")?,
        }),
        Some("reply") => Ok(AgentFrame::Reply {
            conversation: field("conversation")?,
            text: checked_text()?,
            id: value.get("id").cloned(),
        }),
        Some("resolve") => Ok(AgentFrame::Resolve {
            handoff: field("handoff")?,
        }),
        Some("note") => Ok(AgentFrame::Note {
            conversation: field("conversation")?,
            text: checked_text()?,
        }),
        Some("more_cases") => {
            let after = match value.get("after") {
                None | Some(Value::Null) => None,
                Some(_) => Some(field("after")?),
            };
            let limit = match value.get("limit") {
                None | Some(Value::Null) => None,
                Some(limit) => Some(
                    limit
                        .as_u64()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| {
                            FrameError::bad_request("`limit` is a positive whole number")
                        })?
                        .try_into()
                        .unwrap_or(usize::MAX),
                ),
            };
            Ok(AgentFrame::MoreCases { after, limit })
        }
        Some(other) => Err(FrameError::bad_request(format!(
            "unknown frame type `{other}`; agents send presence, claim, reply, resolve, note \
             or more_cases"
        ))),
    }
}

/// Frames the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Reply {
        kind: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        intent: Option<&'a str>,
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<&'a Value>,
        conversation: &'a str,
        at: &'a str,
    },
    /// A human agent's message (`reply` of kind `agent`).
    #[serde(rename = "reply")]
    AgentReply {
        kind: &'a str,
        agent: &'a str,
        text: &'a str,
        conversation: &'a str,
        at: &'a str,
        /// The message's sequence number, for dropping a repeat after a reconnect.
        id: i64,
    },
    /// Where the buyer's case stands with the humans.
    Queue {
        status: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        ahead: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        wait_seconds: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        agent: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<&'a Value>,
        conversation: &'a str,
        at: &'a str,
    },
    /// The agent's `reply` is stored (and delivered if the buyer is online).
    Sent {
        conversation: &'a str,
        text: &'a str,
        at: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
    },
    Error {
        code: ErrorCode,
        message: &'a str,
        /// The id of the buyer's message this error answers, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<&'a Value>,
    },
}

impl ServerFrame<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialise")
    }
}

/// An agent console's frame for a push of the desk.
pub fn agent_push(push: &AgentPush) -> String {
    let frame = match push {
        AgentPush::Hello {
            agent,
            name,
            shop,
            shop_name,
            status,
            agents,
        } => json!({
            "type": "hello",
            "agent": {"id": agent, "name": name},
            "shop": shop,
            "shop_name": shop_name,
            "status": status.as_str(),
            "agents": agents.iter().map(|a| json!({
                "id": a.id,
                "name": a.name,
                "status": presence(a.status),
            })).collect::<Vec<_>>(),
        }),
        AgentPush::Handoff {
            handoff,
            transcript,
            profile,
            order_numbers,
        } => json!({
            "type": "handoff",
            "handoff": {
                "id": handoff.id,
                "shop": handoff.shop,
                "conversation": handoff.conversation,
                "buyer": handoff.buyer,
                "intent": handoff.intent,
                "priority": handoff.priority.as_str(),
                "created_at": rfc3339(handoff.created_at),
                "status": handoff.status.as_str(),
                "claimed_by": handoff.claimed_by,
                "escalated": handoff.escalated,
                "requeued": handoff.requeued,
                "order_numbers": order_numbers,
                "buyer_profile": {
                    "previous_handoffs": profile.previous_handoffs.iter().map(|h| json!({
                        "id": h.id,
                        "intent": h.intent,
                        "status": h.status.as_str(),
                        "created_at": rfc3339(h.created_at),
                    })).collect::<Vec<_>>(),
                    "notes": profile.notes.iter().map(|n| json!({
                        "text": n.text,
                        "agent": n.agent,
                        "at": rfc3339(n.at),
                    })).collect::<Vec<_>>(),
                },
                "transcript": transcript.iter().map(transcript_line).collect::<Vec<_>>(),
            }
        }),
        AgentPush::Claimed {
            handoff,
            conversation,
            agent,
            agent_name,
        } => json!({
            "type": "claimed",
            "handoff": handoff,
            "conversation": conversation,
            "agent": agent,
            "agent_name": agent_name,
        }),
        AgentPush::Resolved {
            handoff,
            conversation,
        } => json!({"type": "resolved", "handoff": handoff, "conversation": conversation}),
        AgentPush::BuyerMessage {
            handoff,
            conversation,
            text,
            at,
        } => json!({
            "type": "buyer_message",
            "handoff": handoff,
            "conversation": conversation,
            "text": text,
            "at": rfc3339(*at),
        }),
        AgentPush::Presence {
            agent,
            name,
            status,
        } => json!({
            "type": "presence",
            "agent": agent,
            "name": name,
            "status": presence(*status),
        }),
        AgentPush::QueuePage { queued, sent, next } => json!({
            "type": "queue_page",
            "queued": queued,
            "sent": sent,
            "next": next,
        }),
        AgentPush::Note {
            conversation,
            buyer,
            text,
            agent,
            at,
        } => json!({
            "type": "note",
            "conversation": conversation,
            "buyer": buyer,
            "text": text,
            "agent": agent,
            "at": rfc3339(*at),
        }),
    };
    frame.to_string()
}

fn presence(status: Option<Presence>) -> &'static str {
    status.map_or("offline", Presence::as_str)
}

fn transcript_line(line: &TranscriptLine) -> Value {
    let mut value = json!({
        "from": line.from.as_str(),
        "text": line.text,
        "at": rfc3339(line.at),
    });
    if let Some(kind) = &line.kind {
        value["kind"] = json!(kind);
    }
    if let Some(agent) = &line.agent {
        value["agent"] = json!(agent);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse_buyer_frame(text, 10).unwrap_err().code
    }

    #[test]
    fn valid_messages_parse_and_ignore_unknown_fields() {
        assert_eq!(
            parse_buyer_frame(r#"{"type":"message","text":"在吗","id":"c-1","x":1}"#, 10),
            Ok(BuyerFrame::Message {
                text: "在吗".into(),
                id: Some(Value::from("c-1"))
            })
        );
    }

    #[test]
    fn agent_frames_parse_and_name_what_is_missing() {
        assert_eq!(
            parse_agent_frame(r#"{"type":"claim","handoff":"h1"}"#, 10),
            Ok(AgentFrame::Claim {
                handoff: "h1".into()
            })
        );
        let error = parse_agent_frame(r#"{"type":"reply","text":"好的"}"#, 10).unwrap_err();
        assert!(error.message.contains("`conversation`"), "{error:?}");
        let error = parse_agent_frame(
            r#"{"type":"reply","conversation":"c","text":"一二三四五六七八九十一"}"#,
            10,
        )
        .unwrap_err();
        assert_eq!(error.code, ErrorCode::TooLarge);
        assert_eq!(
            parse_agent_frame(r#"{"type":"more_cases","after":"0.1.h","limit":20}"#, 10),
            Ok(AgentFrame::MoreCases {
                after: Some("0.1.h".into()),
                limit: Some(20)
            })
        );
        assert_eq!(
            parse_agent_frame(r#"{"type":"more_cases"}"#, 10),
            Ok(AgentFrame::MoreCases {
                after: None,
                limit: None
            })
        );
        for bad in [
            r#"{"type":"more_cases","after":5}"#,
            r#"{"type":"more_cases","limit":0}"#,
            r#"{"type":"more_cases","limit":"9"}"#,
        ] {
            assert_eq!(
                parse_agent_frame(bad, 10).unwrap_err().code,
                ErrorCode::BadRequest,
                "{bad}"
            );
        }
        assert_eq!(
            parse_agent_frame(r#"{"type":"message","text":"x"}"#, 10)
                .unwrap_err()
                .code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn each_mistake_has_its_code() {
        assert_eq!(code("not json"), ErrorCode::BadRequest);
        assert_eq!(code("[1,2]"), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"text":"hi"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"type":"shout","text":"hi"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(code(r#"{"type":"message"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"type":"message","text":5}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"message","text":"一二三四五六七八九十一"}"#),
            ErrorCode::TooLarge
        );
    }

    /// A client that numbers its messages learns which one a mistake was found in.
    #[test]
    fn a_mistake_in_a_message_with_an_id_answers_that_id() {
        let too_long = r#"{"type":"message","text":"一二三四五六七八九十一","id":"c-9"}"#;
        let error = parse_buyer_frame(too_long, 10).unwrap_err();
        assert_eq!(error.in_reply_to, Some(Value::from("c-9")));
        let error = parse_buyer_frame(r#"{"type":"message","id":7}"#, 10).unwrap_err();
        assert_eq!(error.in_reply_to, Some(Value::from(7)));
        let error = parse_buyer_frame(r#"{"type":"message"}"#, 10).unwrap_err();
        assert_eq!(error.in_reply_to, None);
        let frame = ServerFrame::Error {
            code: ErrorCode::Unavailable,
            message: "again",
            in_reply_to: Some(&Value::from("c-9")),
        };
        assert_eq!(
            frame.to_json(),
            r#"{"type":"error","code":"unavailable","message":"again","in_reply_to":"c-9"}"#
        );
    }
}
