//! One buyer: a websocket of its own, closed loop. It sends a message with a fresh `id`, waits
//! for the first `reply` or `queue` frame whose `in_reply_to` is that id (or an error frame),
//! records the latency, and sends the next. After a handoff, while an agent is at work, it
//! waits for its case to be resolved before writing again, as a buyer waiting for a human.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::mix::Rng;
use crate::run_context::Ctx;
use crate::socket::{Socket, buyer_url, connect};

/// What one buyer did in a run.
#[derive(Default)]
pub struct BuyerOutcome {
    pub sent: u64,
    pub answered: u64,
    /// Sent and never answered (timeout or the connection died): must stay 0.
    pub unanswered: u64,
    /// Outstanding when the service was killed on purpose; not a loss.
    pub cut_by_kill: u64,
    pub connect_error: Option<String>,
    /// The conversation of every `handoff` reply received.
    pub handoffs_told: Vec<String>,
    /// Handoffs whose case was not resolved within the answer timeout.
    pub unresolved_handoffs: u64,
    /// What became of each unanswered message, for finding out why.
    pub lost: Vec<String>,
}

enum Answer {
    Frame { kind: String, conversation: String },
    Error(String),
    Closed,
    TimedOut,
}

/// The frames a buyer received since its last message, to explain a loss.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn push(&mut self, frame: &str) {
        if self.0.len() < 8 {
            self.0.push(frame.chars().take(160).collect());
        }
    }
}

pub async fn run(ctx: Arc<Ctx>, index: usize) -> BuyerOutcome {
    let mut outcome = BuyerOutcome::default();
    let mut rng = Rng::new(
        ctx.seed
            .wrapping_add((index as u64).wrapping_mul(0x2545_F491)),
    );
    let mut seq = 0u64;
    for round in 0.. {
        let buyer = match ctx.conversation {
            0 => format!("lg-{}-{index}", ctx.run_id),
            _ => format!("lg-{}-{index}-{round}", ctx.run_id),
        };
        let said_all = converse(&ctx, index, &buyer, &mut rng, &mut seq, &mut outcome).await;
        if !said_all {
            break;
        }
    }
    outcome
}

/// One buyer's conversation on a connection of its own. Returns true when the buyer said
/// all it had to say (`--conversation` messages) and the next buyer takes its place.
async fn converse(
    ctx: &Ctx,
    index: usize,
    buyer: &str,
    rng: &mut Rng,
    seq: &mut u64,
    outcome: &mut BuyerOutcome,
) -> bool {
    let base = &ctx.urls[index % ctx.urls.len()];
    let mut socket = match connect(&buyer_url(base, &ctx.shop, buyer), ctx.socket).await {
        Ok(socket) => socket,
        Err(e) => {
            outcome.connect_error = Some(e);
            return false;
        }
    };
    let mut said = 0;
    let mut said_all = false;
    while ctx.may_send() {
        if let Some(pacer) = &ctx.pacer {
            pacer.wait().await;
            if Instant::now() >= ctx.deadline || ctx.killed() {
                break;
            }
        }
        let (_, text) = ctx.mix.draw(rng);
        *seq += 1;
        let id = format!("{index}-{seq}");
        let frame = json!({"type": "message", "text": text, "id": id}).to_string();
        let sent_at = Instant::now();
        if socket.send(Message::text(frame)).await.is_err() {
            // Nothing was sent, so nothing is lost; the connection is gone.
            if !ctx.killed() {
                outcome.connect_error = Some("the connection closed".into());
            }
            break;
        }
        outcome.sent += 1;
        let mut seen = Seen::default();
        let answered = answer(&mut socket, &id, ctx.answer_timeout, &mut seen).await;
        let lost = |why: &str, seen: &Seen| {
            format!(
                "{why}: message {id} ({text}) from {buyer}, after {:?}; frames since: {:?}",
                sent_at.elapsed(),
                seen.0
            )
        };
        match answered {
            Answer::Frame {
                mut kind,
                mut conversation,
            } => {
                let now = Instant::now();
                outcome.answered += 1;
                ctx.recorder.answer(now - sent_at, ctx.measuring(now));
                // An away or busy notice comes first and the reply proper follows: only it
                // says whether the conversation went to the humans.
                while kind == "away" || kind == "busy" {
                    match answer(&mut socket, &id, ctx.answer_timeout, &mut seen).await {
                        Answer::Frame {
                            kind: next,
                            conversation: of,
                        } => (kind, conversation) = (next, of),
                        _ => {
                            outcome.lost.push(lost("no reply after the notice", &seen));
                            outcome.unanswered += 1;
                            break;
                        }
                    }
                }
                if kind == "handoff" {
                    outcome.handoffs_told.push(conversation);
                    if ctx.agent
                        && !resolved(&mut socket, ctx.answer_timeout).await
                        && !ctx.killed()
                    {
                        outcome.unresolved_handoffs += 1;
                    }
                }
            }
            Answer::Error(code) => {
                outcome.answered += 1;
                ctx.recorder.error(&code, ctx.measuring(Instant::now()));
            }
            Answer::Closed | Answer::TimedOut if ctx.killed() => {
                outcome.cut_by_kill += 1;
                break;
            }
            Answer::Closed => {
                outcome.unanswered += 1;
                outcome.lost.push(lost("the connection closed", &seen));
                outcome.connect_error = Some("the connection closed".into());
                break;
            }
            Answer::TimedOut => {
                outcome.unanswered += 1;
                outcome.lost.push(lost("no answer in time", &seen));
                break;
            }
        }
        said += 1;
        if ctx.conversation > 0 && said >= ctx.conversation {
            said_all = true;
            break;
        }
    }
    let _ = socket.close(None).await;
    said_all
}

/// Reads until the answer to message `id`; other frames (welcome, queue places, later frames
/// answering an older id) are skipped.
async fn answer(socket: &mut Socket, id: &str, timeout: Duration, seen: &mut Seen) -> Answer {
    let until = Instant::now() + timeout;
    loop {
        let frame = match tokio::time::timeout_at(until, socket.next()).await {
            Err(_) => return Answer::TimedOut,
            Ok(None | Some(Err(_))) => return Answer::Closed,
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            Message::Text(text) => text,
            Message::Close(_) => return Answer::Closed,
            _ => continue,
        };
        seen.push(&text);
        // Most frames carry `in_reply_to`; a cheap look first spares parsing the others.
        let answers_it = text.contains(id);
        if !answers_it && !text.contains("\"error\"") {
            continue;
        }
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match value["type"].as_str() {
            Some("error") => {
                return Answer::Error(value["code"].as_str().unwrap_or("unknown").to_string());
            }
            Some("reply" | "queue") if value["in_reply_to"].as_str() == Some(id) => {
                return Answer::Frame {
                    kind: value["kind"].as_str().unwrap_or("queue").to_string(),
                    conversation: value["conversation"].as_str().unwrap_or("").to_string(),
                };
            }
            _ => {}
        }
    }
}

/// Waits for the `queue` frame saying the agent resolved the case.
async fn resolved(socket: &mut Socket, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    loop {
        let frame = match tokio::time::timeout_at(until, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return false,
            Ok(Some(Ok(_))) => continue,
        };
        if !frame.contains("resolved") {
            continue;
        }
        if let Ok(value) = serde_json::from_str::<Value>(&frame)
            && value["type"] == "queue"
            && value["status"] == "resolved"
        {
            return true;
        }
    }
}
