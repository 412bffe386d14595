//! One buyer's websocket: `/ws/buyer?shop=…&buyer=…`.
//!
//! Each connection runs two tasks joined by a bounded queue: this one reads frames, answers
//! them one at a time (so replies keep the order of questions) and queues the replies; a
//! writer task drains the queue into the socket. A client that stops reading fills the queue
//! and is dropped instead of growing memory. Every reply is sent only after the buyer's
//! message, the replies and any handoff are committed to the store.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::App;
use super::rate::RateLimiter;
use super::wire::{BuyerFrame, ErrorCode, ServerFrame, parse_buyer_frame};
use crate::conversation::ConversationState;
use crate::responder::{self, Reply};
use crate::shop::Shop;
use crate::store::{Conversation, Exchange, NewHandoff, OutgoingMessage};

/// Longest buyer id accepted; ids come from the shop's own systems and are short.
const MAX_BUYER_ID: usize = 128;
/// How long a reply may wait for room in a client's outbound queue before the client is
/// treated as not reading.
const OUTBOUND_WAIT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
pub struct BuyerQuery {
    shop: Option<String>,
    buyer: Option<String>,
}

pub async fn upgrade(
    State(app): State<Arc<App>>,
    Query(query): Query<BuyerQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let shop_id = query.shop.unwrap_or_else(|| "default".to_string());
    if app.catalog.load().get(&shop_id).is_none() {
        return (StatusCode::NOT_FOUND, format!("unknown shop `{shop_id}`\n")).into_response();
    }
    let buyer = match query.buyer {
        Some(b) if !b.is_empty() && b.len() <= MAX_BUYER_ID => b,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                format!("`buyer` is required: 1 to {MAX_BUYER_ID} bytes identifying the buyer\n"),
            )
                .into_response();
        }
    };
    let limits = &app.limits;
    ws.read_buffer_size(limits.socket_buffer_bytes)
        .write_buffer_size(limits.socket_buffer_bytes)
        .max_write_buffer_size(limits.socket_buffer_bytes + 2 * limits.max_frame_bytes)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| {
            let tracker = app.tracker.clone();
            let conn_id = app.next_connection_id();
            let span = tracing::info_span!("buyer", conn_id, shop = %shop_id);
            tracker.track_future(session(app, shop_id, buyer, socket).instrument(span))
        })
}

/// Decrements the connection gauge however the session ends.
struct ConnectionGuard(prometheus::IntGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn session(app: Arc<App>, shop_id: String, buyer: String, socket: WebSocket) {
    let gauge = app.metrics.connections.with_label_values(&["buyer"]);
    gauge.inc();
    let _guard = ConnectionGuard(gauge);
    let (sink, mut stream) = socket.split();
    let (outbound, queue) = mpsc::channel(app.limits.outbound_queue);
    let writer = tokio::spawn(write_frames(sink, queue));
    let mut connection = Connection {
        app: app.clone(),
        shop_id,
        outbound,
        conversation: None,
    };
    if connection.open(&buyer).await.is_ok() {
        connection.read_loop(&mut stream).await;
    }
    drop(connection);
    // The writer ends once the queue is drained (the close frame included).
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

async fn write_frames(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Message>,
) {
    while let Some(message) = queue.recv().await {
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Why the connection should stop.
struct Closed;

/// What one step of the conversation produced, to be stored and then sent.
#[derive(Default)]
struct Outcome {
    /// The buyer's text and the client's id for it; absent for the welcome.
    buyer_message: Option<(String, Option<Value>)>,
    replies: Vec<Reply>,
    handoff: Option<NewHandoff>,
    /// The canonical text of a question nothing answered.
    unmatched: Option<String>,
}

struct Connection {
    app: Arc<App>,
    shop_id: String,
    outbound: mpsc::Sender<Message>,
    conversation: Option<Conversation>,
}

impl Connection {
    /// The current rules of this connection's shop; a reload is picked up on the next message.
    fn shop(&self) -> Option<Arc<Shop>> {
        self.app.catalog.load().get(&self.shop_id).cloned()
    }

    async fn open(&mut self, buyer: &str) -> Result<(), Closed> {
        let now = self.app.clock.now();
        let conversation = match self
            .app
            .store
            .open_conversation(&self.shop_id, buyer, now)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot open the conversation");
                self.send_error(
                    ErrorCode::Unavailable,
                    "the service cannot take messages right now; please try again shortly",
                )
                .await?;
                self.close(close_code::ERROR, "store unavailable").await;
                return Err(Closed);
            }
        };
        self.conversation = Some(conversation);
        let Some(shop) = self.shop() else {
            return Err(Closed);
        };
        let conversation = self.conversation.as_mut().expect("just opened");
        let mut state = conversation.state.clone();
        if let Some(welcome) = responder::welcome(&shop, &mut state, now) {
            let outcome = Outcome {
                replies: vec![welcome],
                ..Outcome::default()
            };
            self.commit_and_send(&shop, state, outcome, now).await?;
        }
        Ok(())
    }

    async fn read_loop(&mut self, stream: &mut futures_util::stream::SplitStream<WebSocket>) {
        let limits = self.app.limits.clone();
        let mut limiter = RateLimiter::new(limits.messages_per_second, limits.message_burst);
        let mut ping = tokio::time::interval(limits.ping_interval);
        ping.tick().await;
        let mut last_heard = Instant::now();
        let shutdown = self.app.shutdown.clone();
        loop {
            let frame = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.close(close_code::AWAY, "the service is shutting down").await;
                    return;
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= limits.idle_timeout {
                        tracing::debug!("closing a dead connection");
                        self.close(close_code::AWAY, "no answer to pings").await;
                        return;
                    }
                    if self.queue(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                    continue;
                }
                frame = stream.next() => frame,
            };
            last_heard = Instant::now();
            let result = match frame {
                None => return,
                Some(Err(error)) => {
                    self.on_socket_error(error).await;
                    return;
                }
                Some(Ok(Message::Text(text))) => self.on_text(text.as_str(), &mut limiter).await,
                Some(Ok(Message::Binary(_))) => {
                    self.send_error(
                        ErrorCode::BadRequest,
                        "binary frames are not accepted; send JSON in text frames",
                    )
                    .await
                }
                Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
            };
            if result.is_err() {
                return;
            }
        }
    }

    async fn on_socket_error(&mut self, error: axum::Error) {
        use tokio_tungstenite::tungstenite::Error as WsError;
        let inner = error.into_inner();
        match inner.downcast_ref::<WsError>() {
            Some(WsError::Capacity(e)) => {
                tracing::info!(error = %e, "closing a connection that sent an oversized frame");
                self.app
                    .metrics
                    .errors
                    .with_label_values(&[ErrorCode::TooLarge.as_str()])
                    .inc();
                let reason = format!(
                    "frames are limited to {} bytes",
                    self.app.limits.max_frame_bytes
                );
                self.close(close_code::SIZE, &reason).await;
            }
            Some(WsError::Protocol(e)) => {
                tracing::info!(error = %e, "closing a connection that broke the protocol");
                self.close(close_code::PROTOCOL, "websocket protocol error")
                    .await;
            }
            _ => tracing::debug!(error = %inner, "the connection failed"),
        }
    }

    async fn on_text(&mut self, text: &str, limiter: &mut RateLimiter) -> Result<(), Closed> {
        let started = Instant::now();
        let (text, id) = match parse_buyer_frame(text, self.app.limits.max_text_chars) {
            Ok(BuyerFrame::Message { text, id }) => (text, id),
            Err(e) => return self.send_error(e.code, &e.message).await,
        };
        if !limiter.allow() {
            return self
                .send_error(
                    ErrorCode::RateLimited,
                    "too many messages; please wait a moment before sending more",
                )
                .await;
        }
        let Some(shop) = self.shop() else {
            return Err(Closed);
        };
        self.app
            .metrics
            .buyer_messages
            .with_label_values(&[&self.shop_id])
            .inc();
        let now = self.app.clock.now();
        let conversation = self.conversation.as_ref().expect("opened before reading");
        let mut state = conversation.state.clone();
        let response = responder::respond(&shop, &mut state, &text, now);
        let handoff = response.handoff.map(|h| {
            let id = uuid::Uuid::now_v7().to_string();
            state.open_handoff = Some(id.clone());
            NewHandoff {
                id,
                intent: h.intent.to_string(),
                priority: h.priority,
            }
        });
        let outcome = Outcome {
            buyer_message: Some((text, id)),
            replies: response.replies,
            handoff,
            unmatched: response.unmatched,
        };
        let result = self.commit_and_send(&shop, state, outcome, now).await;
        self.app
            .metrics
            .reply_latency
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Stores the exchange, then queues its replies; if storing fails the buyer is told to
    /// send again and the conversation state is left as it was.
    async fn commit_and_send(
        &mut self,
        shop: &Shop,
        state: ConversationState,
        outcome: Outcome,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Closed> {
        let Outcome {
            buyer_message,
            replies,
            handoff,
            unmatched,
        } = outcome;
        let conversation = self.conversation.as_ref().expect("opened");
        let in_reply_to = buyer_message.as_ref().and_then(|(_, id)| id.clone());
        let handoff_intent = handoff.as_ref().map(|h| (h.intent.clone(), h.priority));
        let exchange = Exchange {
            conversation: conversation.id.clone(),
            shop: self.shop_id.clone(),
            buyer: conversation.buyer.clone(),
            buyer_message: buyer_message.map(|(text, id)| (text, id.map(|v| client_id(&v)))),
            replies: replies
                .iter()
                .map(|r| OutgoingMessage {
                    kind: r.kind.as_str(),
                    intent: r.intent.as_deref().map(str::to_string),
                    text: r.text.clone(),
                })
                .collect(),
            state: state.clone(),
            handoff,
            unmatched,
            at: now,
        };
        if let Err(e) = self.app.store.record(exchange).await {
            tracing::error!(error = %e, "cannot store a message");
            return self
                .send_error(
                    ErrorCode::Unavailable,
                    "your message could not be saved; please send it again",
                )
                .await;
        }
        let conversation = self.conversation.as_mut().expect("opened");
        conversation.state = state;
        if let Some((intent, priority)) = handoff_intent {
            tracing::info!(%intent, priority = priority.as_str(), "handed off");
            self.app
                .metrics
                .handoffs
                .with_label_values(&[&*shop.id, intent.as_str(), priority.as_str()])
                .inc();
        }
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let conversation_id = self.conversation.as_ref().expect("opened").id.clone();
        for reply in &replies {
            let intent = reply.intent.as_deref();
            self.app
                .metrics
                .replies
                .with_label_values(&[&*shop.id, reply.kind.as_str(), intent.unwrap_or("")])
                .inc();
            let frame = ServerFrame::Reply {
                kind: reply.kind.as_str(),
                intent,
                text: &reply.text,
                in_reply_to: in_reply_to.as_ref(),
                conversation: &conversation_id,
                at: &at,
            };
            self.queue(Message::text(frame.to_json())).await?;
        }
        Ok(())
    }

    async fn send_error(&self, code: ErrorCode, message: &str) -> Result<(), Closed> {
        self.app
            .metrics
            .errors
            .with_label_values(&[code.as_str()])
            .inc();
        let frame = ServerFrame::Error { code, message };
        self.queue(Message::text(frame.to_json())).await
    }

    async fn close(&self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.queue(Message::Close(Some(frame))).await;
    }

    /// Queues a frame for the writer; a client whose queue stays full is dropped.
    async fn queue(&self, message: Message) -> Result<(), Closed> {
        match self.outbound.send_timeout(message, OUTBOUND_WAIT).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                tracing::info!("dropping a client that does not read its socket");
                Err(Closed)
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Closed),
        }
    }
}

/// The client's message id as stored: strings as they are, other JSON values as JSON.
fn client_id(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
