//! One buyer's websocket: `/ws/buyer?shop=…&buyer=…`.
//!
//! Each connection runs two tasks joined by a bounded queue: this one reads frames, answers
//! them one at a time (so replies keep the order of questions) and queues the replies; a
//! writer task drains the queue into the socket. A client that stops reading fills the queue
//! and is dropped instead of growing memory. What the buyer's messages do to the conversation
//! is the [`dialogue`](crate::dialogue)'s business; this module renders what it says into
//! frames, which it hands over only once the step is committed.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::App;
use super::outbound::{Closed, Outbound};
use super::rate::{Key, Rate};
use super::wire::{BuyerFrame, ErrorCode, ServerFrame, parse_buyer_frame};
use crate::clock::rfc3339;
use crate::desk::{BuyerPush, Pushes};
use crate::dialogue::{Arrival, BuyerSession, CaseUpdate, NotOpened, ToBuyer};
use crate::reply::ReplyKind;
use crate::shop::Shop;
use crate::store::BuyerMessage;

/// Longest buyer id accepted; ids come from the shop's own systems and are short.
const MAX_BUYER_ID: usize = 128;
#[derive(Deserialize)]
pub struct BuyerQuery {
    shop: Option<String>,
    buyer: Option<String>,
    /// The shop backend's signed buyer token, for shops with a secret.
    token: Option<String>,
}

pub async fn upgrade(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<BuyerQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    // Followed from before the shop is looked up, so a reload that removes it right after
    // still reaches this connection.
    let swaps = app.rules.swaps();
    let shop_id = query.shop.unwrap_or_else(|| "default".to_string());
    let Some(shop) = app.rules.catalog().get(&shop_id).cloned() else {
        return (StatusCode::NOT_FOUND, format!("unknown shop `{shop_id}`\n")).into_response();
    };
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if !shop.widget.allows_origin(origin) {
        return (
            StatusCode::FORBIDDEN,
            "this page's origin may not open the shop's chat\n",
        )
            .into_response();
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
    if let Err(refused) =
        shop.widget
            .verify(&shop_id, &buyer, query.token.as_deref(), app.clock.now())
    {
        return (StatusCode::UNAUTHORIZED, format!("{refused}\n")).into_response();
    }
    let conn_id = app.next_connection_id();
    let span = tracing::info_span!("buyer", conn_id, shop = %shop_id);
    let address = app.client_address(remote, &headers);
    let run =
        move |app, stream, outbound| session(app, shop_id, buyer, address, swaps, stream, outbound);
    super::accept_socket(app, remote, &headers, ws, span, super::Side::Buyer, run)
}

async fn session(
    app: Arc<App>,
    shop_id: String,
    buyer: String,
    address: std::net::IpAddr,
    mut swaps: tokio::sync::watch::Receiver<u64>,
    mut stream: SplitStream<WebSocket>,
    outbound: Outbound,
) {
    let connection = Connection {
        app,
        buyer_bucket: Key::BuyerMessages {
            shop: shop_id.clone(),
            buyer,
        },
        address_bucket: Key::AddressMessages(crate::desk::intake::group(address)),
        shop_id,
        address,
        outbound,
    };
    // Opening and answering are boxed: a task is as large as its largest state, and most
    // connections spend their life idle in `read_loop`, which is small without them.
    if let Ok((mut conversation, mut pushes)) = Box::pin(connection.open()).await {
        connection
            .read_loop(
                &mut conversation,
                &mut stream,
                &mut pushes.inbox,
                &mut swaps,
            )
            .await;
    }
}

/// The socket side of one buyer's connection; the conversation itself is a [`BuyerSession`].
struct Connection {
    app: Arc<App>,
    shop_id: String,
    /// Where the buyer connects from, as the limits count it.
    address: std::net::IpAddr,
    /// The buyer's own message bucket, shared by all their connections (it names the buyer).
    buyer_bucket: Key,
    /// The message bucket of everyone behind the buyer's address.
    address_bucket: Key,
    outbound: Outbound,
}

impl Connection {
    /// The current rules of this connection's shop; a reload is picked up on the next message.
    fn shop(&self) -> Option<Arc<Shop>> {
        self.app.rules.catalog().get(&self.shop_id).cloned()
    }

    /// The current rules of this connection's shop, or, when a reload removed the shop, the
    /// connection closed with the reason.
    async fn served_shop(&self) -> Result<Arc<Shop>, Closed> {
        match self.shop() {
            Some(shop) => Ok(shop),
            None => {
                self.outbound
                    .close(close_code::AWAY, super::SHOP_NOT_SERVED)
                    .await;
                Err(Closed)
            }
        }
    }

    /// Opens the conversation and sends the buyer what their arrival brings: the welcome,
    /// agent replies written while they were away, and their place in the queue.
    async fn open(&self) -> Result<(BuyerSession, Pushes), Closed> {
        let Key::BuyerMessages { buyer, .. } = &self.buyer_bucket else {
            unreachable!("a buyer's bucket names the buyer")
        };
        let now = self.app.clock.now();
        let app = &self.app;
        let new_conversations = Key::AddressConversations(crate::desk::intake::group(self.address));
        let may_start = || {
            let rate = Rate::per_minute(app.limits.conversations_per_address_per_minute);
            app.buckets.take(&[(&new_conversations, rate)])
        };
        let opened = BuyerSession::open(
            app.store.clone(),
            app.desk.clone(),
            Arrival {
                shop: &self.shop_id,
                buyer,
                address: self.address,
                at: now,
            },
            app.limits.store_retry,
            may_start,
        )
        .await;
        let (mut conversation, pushes) = match opened {
            Ok(opened) => opened,
            Err(NotOpened::TooManyNew) => {
                // Counted in `/metrics`; a log line per refusal would let a flood fill the disk.
                app.metrics
                    .conversations_refused
                    .with_label_values(&[&self.shop_id])
                    .inc();
                self.outbound
                    .send_error(
                        ErrorCode::RateLimited,
                        "too many new conversations from your network; please try again in a \
                         minute",
                    )
                    .await?;
                self.outbound
                    .close(close_code::AGAIN, "too many new conversations")
                    .await;
                return Err(Closed);
            }
            Err(NotOpened::Store(e)) => {
                tracing::error!(error = %e, "cannot open the conversation");
                self.outbound
                    .send_error(
                        ErrorCode::Unavailable,
                        "the service cannot take messages right now; please try again shortly",
                    )
                    .await?;
                self.outbound
                    .close(close_code::ERROR, "store unavailable")
                    .await;
                return Err(Closed);
            }
        };
        let shop = self.served_shop().await?;
        let greeting = conversation.greet(&shop, now).await;
        self.send(&conversation, greeting, None, now).await?;
        Ok((conversation, pushes))
    }

    async fn read_loop(
        &self,
        conversation: &mut BuyerSession,
        stream: &mut SplitStream<WebSocket>,
        pushes: &mut mpsc::Receiver<BuyerPush>,
        swaps: &mut tokio::sync::watch::Receiver<u64>,
    ) {
        let limits = self.app.limits.clone();
        let mut ping = tokio::time::interval(limits.ping_interval);
        ping.tick().await;
        let mut last_heard = Instant::now();
        let shutdown = self.app.shutdown.clone();
        loop {
            let frame = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.outbound.close(close_code::AWAY, "the service is shutting down").await;
                    return;
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= limits.idle_timeout {
                        tracing::debug!("closing a dead connection");
                        self.outbound.close(close_code::AWAY, "no answer to pings").await;
                        return;
                    }
                    if self.outbound.queue(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(()) = swaps.changed() => {
                    // Rules changed: a connection to a shop no longer served goes now, not at
                    // its next message.
                    if self.served_shop().await.is_err() {
                        return;
                    }
                    continue;
                }
                push = pushes.recv() => {
                    let Some(push) = push else { return };
                    if Box::pin(self.on_push(conversation, push)).await.is_err() {
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
                    // Boxed, like the other rare paths: an idle session's future stays small.
                    Box::pin(
                        self.outbound
                            .close_after(error, self.app.limits.max_frame_bytes),
                    )
                    .await;
                    return;
                }
                Some(Ok(Message::Text(text))) => {
                    Box::pin(self.on_text(conversation, text.as_str())).await
                }
                Some(Ok(Message::Binary(_))) => {
                    self.outbound
                        .send_error(
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

    async fn on_text(&self, conversation: &mut BuyerSession, text: &str) -> Result<(), Closed> {
        let started = Instant::now();
        let parsed = parse_buyer_frame(text, self.app.limits.max_text_chars);
        let too_many = "too many messages; please wait a moment before sending more";
        let Some(BuyerFrame::Message { text, id }) = self
            .outbound
            .admit(parsed, || self.within_rate(), too_many, BuyerFrame::id)
            .await?
        else {
            return Ok(());
        };
        let shop = self.served_shop().await?;
        self.app
            .metrics
            .buyer_messages
            .with_label_values(&[&self.shop_id])
            .inc();
        let now = self.app.clock.now();
        let message = BuyerMessage {
            text,
            client_id: id.as_ref().map(client_id),
        };
        let out = conversation.buyer_wrote(&shop, message, now).await;
        let result = self.send(conversation, out, id.as_ref(), now).await;
        self.app
            .metrics
            .reply_latency
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Takes a token from the buyer's bucket and from their address's, which outlive this
    /// connection: reconnecting does not refill them.
    fn within_rate(&self) -> bool {
        let limits = &self.app.limits;
        self.app.buckets.take(&[
            (
                &self.buyer_bucket,
                Rate::new(limits.messages_per_second, limits.message_burst),
            ),
            (
                &self.address_bucket,
                Rate::new(
                    limits.messages_per_address_per_second,
                    limits.message_burst_per_address,
                ),
            ),
        ])
    }

    /// Something happened outside this conversation's loop: an agent wrote, the queue moved.
    async fn on_push(
        &self,
        conversation: &mut BuyerSession,
        push: BuyerPush,
    ) -> Result<(), Closed> {
        let shop = self.served_shop().await?;
        let now = self.app.clock.now();
        let out = conversation.on_push(&shop, push, now).await;
        self.send(conversation, out, None, now).await
    }

    /// Renders what the conversation says into frames and queues them; `in_reply_to` is the
    /// id of the buyer's message they answer.
    async fn send(
        &self,
        conversation: &BuyerSession,
        out: Vec<ToBuyer>,
        in_reply_to: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<(), Closed> {
        let id = conversation.conversation_id();
        let at = rfc3339(now);
        let mut delivered = Vec::new();
        for item in &out {
            let frame = match item {
                ToBuyer::Reply(reply) => {
                    let intent = reply.intent.as_deref();
                    self.count_reply(reply.kind, intent);
                    ServerFrame::Reply {
                        kind: reply.kind.as_str(),
                        intent,
                        text: &reply.text,
                        in_reply_to,
                        conversation: id,
                        at: &at,
                    }
                    .to_json()
                }
                ToBuyer::AgentMessage {
                    seq,
                    agent_name,
                    text,
                    at,
                } => {
                    self.count_reply(ReplyKind::Agent, None);
                    delivered.push(*seq);
                    ServerFrame::AgentReply {
                        kind: ReplyKind::Agent.as_str(),
                        agent: agent_name,
                        text,
                        conversation: id,
                        at: &rfc3339(*at),
                        id: *seq,
                    }
                    .to_json()
                }
                ToBuyer::Case(update) => {
                    let (status, notice, agent, text) = match update {
                        CaseUpdate::Queued { notice, text } => {
                            ("queued", Some(notice), None, Some(text.as_str()))
                        }
                        CaseUpdate::Claimed { agent_name, text } => (
                            "claimed",
                            None,
                            Some(agent_name.as_str()),
                            Some(text.as_str()),
                        ),
                        CaseUpdate::Resolved => ("resolved", None, None, None),
                    };
                    ServerFrame::Queue {
                        status,
                        ahead: notice.map(|n| n.ahead),
                        wait_seconds: notice.and_then(|n| n.wait_seconds),
                        agent,
                        text,
                        in_reply_to,
                        conversation: id,
                        at: &at,
                    }
                    .to_json()
                }
                ToBuyer::HandoffRefused => {
                    self.outbound
                        .send_error_to(
                            ErrorCode::RateLimited,
                            "too many requests for a human right now; please try again in a \
                             minute",
                            in_reply_to,
                        )
                        .await?;
                    continue;
                }
                ToBuyer::NotSaved => {
                    self.outbound
                        .send_error_to(
                            ErrorCode::Unavailable,
                            "your message could not be saved; please send it again",
                            in_reply_to,
                        )
                        .await?;
                    continue;
                }
            };
            self.outbound.queue(Message::text(frame)).await?;
        }
        conversation.delivered(delivered).await;
        Ok(())
    }

    fn count_reply(&self, kind: ReplyKind, intent: Option<&str>) {
        self.app
            .metrics
            .replies
            .with_label_values(&[&self.shop_id, kind.as_str(), intent.unwrap_or("")])
            .inc();
    }
}

/// The client's message id as stored: strings as they are, other JSON values as JSON.
fn client_id(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
