//! The JSON frames of the wire contract (`shared/protocol.md`). Only `transport` knows them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Stable error codes clients branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    TooLarge,
    RateLimited,
    Unavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
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

/// A frame the client got wrong, with the code and message to send back.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
}

impl FrameError {
    fn bad_request(message: impl Into<String>) -> FrameError {
        FrameError {
            code: ErrorCode::BadRequest,
            message: message.into(),
        }
    }
}

pub fn parse_buyer_frame(text: &str, max_text_chars: usize) -> Result<BuyerFrame, FrameError> {
    let raw: RawFrame = serde_json::from_str(text)
        .map_err(|e| FrameError::bad_request(format!("a frame must be one JSON object: {e}")))?;
    match raw.kind.as_deref() {
        None => Err(FrameError::bad_request("the frame has no `type`")),
        Some("message") => {
            let text = raw
                .text
                .ok_or_else(|| FrameError::bad_request("a `message` frame needs `text`"))?;
            if text.chars().count() > max_text_chars {
                return Err(FrameError {
                    code: ErrorCode::TooLarge,
                    message: format!("a message may be at most {max_text_chars} characters"),
                });
            }
            Ok(BuyerFrame::Message { text, id: raw.id })
        }
        Some(other) => Err(FrameError::bad_request(format!(
            "unknown frame type `{other}`; buyers send `message`"
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
    Error {
        code: ErrorCode,
        message: &'a str,
    },
}

impl ServerFrame<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialise")
    }
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
}
