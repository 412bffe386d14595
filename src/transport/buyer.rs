//! One buyer's websocket: `/ws/buyer?shop=…&buyer=…`.
//!
//! Each connection runs two tasks joined by a bounded queue: this one reads frames, answers
//! them one at a time (so replies keep the order of questions) and queues the replies; a
//! writer task drains the queue into the socket. A client that stops reading fills the queue
//! and is dropped instead of growing memory. Every reply is sent only after the buyer's
//! message, the replies and any handoff are committed to the store.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::App;
use super::outbound::{self, Closed, ConnectionGuard, Outbound};
use super::rate::RateLimiter;
use super::wire::{BuyerFrame, ErrorCode, ServerFrame, parse_buyer_frame};
use crate::conversation::ConversationState;
use crate::desk::{BuyerPush, QueueNotice, Standing};
use crate::responder::{self, Reply, ReplyKind};
use crate::shop::Shop;
use crate::store::{Conversation, Exchange, Handoff, HandoffStatus, NewHandoff, OutgoingMessage};
use crate::webhook;

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
    let shop_id = query.shop.unwrap_or_else(|| "default".to_string());
    let Some(shop) = app.catalog.load().get(&shop_id).cloned() else {
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
    let slot = match app.connection_slot(remote, &headers) {
        Ok(slot) => slot,
        Err(full) => return full.into_response(),
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
            let connection = async move {
                session(app, shop_id, buyer, socket).await;
                drop(slot);
            };
            tracker.track_future(connection.instrument(span))
        })
}

async fn session(app: Arc<App>, shop_id: String, buyer: String, socket: WebSocket) {
    let _counted = ConnectionGuard::new(&app.metrics, "buyer");
    let (sink, mut stream) = socket.split();
    let (outbound, writer) = Outbound::start(
        sink,
        app.limits.outbound_queue,
        app.limits.outbound_wait,
        app.metrics.clone(),
    );
    let mut connection = Connection {
        app: app.clone(),
        shop_id,
        outbound,
        conversation: None,
        delivered_up_to: 0,
    };
    // Opening and answering are boxed: a task is as large as its largest state, and most
    // connections spend their life idle in `read_loop`, which is small without them.
    if let Ok(mut pushes) = Box::pin(connection.open(&buyer)).await {
        connection.read_loop(&mut stream, &mut pushes.1).await;
        let conversation = connection.conversation.as_ref().expect("opened");
        app.desk.detach_buyer(&conversation.id, pushes.0);
    }
    drop(connection);
    // The writer ends once the queue is drained (the close frame included), or is aborted.
    outbound::finish(writer).await;
}

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
    outbound: Outbound,
    conversation: Option<Conversation>,
    /// The highest agent message sent to this connection, so a repeat push is dropped.
    delivered_up_to: i64,
}

/// This connection's registration with the desk: its id and the pushes it receives.
type Pushes = (u64, mpsc::Receiver<BuyerPush>);

impl Connection {
    /// The current rules of this connection's shop; a reload is picked up on the next message.
    fn shop(&self) -> Option<Arc<Shop>> {
        self.app.catalog.load().get(&self.shop_id).cloned()
    }

    /// Opens the conversation, registers with the desk, welcomes the buyer and sends what
    /// waited for them: agent replies written while they were away, and their place in the
    /// queue.
    async fn open(&mut self, buyer: &str) -> Result<Pushes, Closed> {
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
        // Registered before anything is read, so no push between now and then is missed.
        let pushes = self.app.desk.attach_buyer(&conversation.id);
        self.conversation = Some(conversation);
        let opened = self.welcome_back(now).await;
        if opened.is_err() {
            let conversation = self.conversation.as_ref().expect("opened");
            self.app.desk.detach_buyer(&conversation.id, pushes.0);
        }
        opened.map(|()| pushes)
    }

    async fn welcome_back(&mut self, now: chrono::DateTime<chrono::Utc>) -> Result<(), Closed> {
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
        self.catch_up(&shop).await
    }

    /// Sends what waited for the buyer in the store: agent replies not yet delivered, and
    /// where their case stands.
    async fn catch_up(&mut self, shop: &Shop) -> Result<(), Closed> {
        let conversation_id = self.conversation.as_ref().expect("opened").id.clone();
        match self.app.store.pending_messages(&conversation_id).await {
            Ok(pending) => {
                for message in pending {
                    self.deliver_agent_message(
                        message.seq,
                        &message.agent_name,
                        &message.text,
                        message.at,
                    )
                    .await?;
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot load agent replies for a buyer"),
        }
        let open_handoff = self
            .conversation
            .as_ref()
            .expect("opened")
            .state
            .open_handoff
            .clone();
        let standing = match open_handoff {
            Some(handoff) => {
                self.app
                    .desk
                    .open_case(shop, &conversation_id, &handoff)
                    .await
            }
            None => None,
        };
        if let Some(standing) = standing {
            self.send_standing(shop, standing, None).await?;
        }
        Ok(())
    }

    /// Sends an agent's stored message once, and records that the buyer's widget has it.
    async fn deliver_agent_message(
        &mut self,
        seq: i64,
        agent_name: &str,
        text: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Closed> {
        if seq <= self.delivered_up_to {
            return Ok(());
        }
        self.delivered_up_to = seq;
        let conversation = self.conversation.as_ref().expect("opened").id.clone();
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let frame = ServerFrame::AgentReply {
            kind: ReplyKind::Agent.as_str(),
            agent: agent_name,
            text,
            conversation: &conversation,
            at: &at,
            id: seq,
        };
        self.outbound.queue(Message::text(frame.to_json())).await?;
        self.app
            .metrics
            .replies
            .with_label_values(&[&self.shop_id, ReplyKind::Agent.as_str(), ""])
            .inc();
        // At least once: if this is lost, the buyer gets the message again on reconnect.
        if let Err(e) = self.app.store.mark_delivered(vec![seq]).await {
            tracing::warn!(error = %e, "cannot mark an agent reply as delivered");
        }
        Ok(())
    }

    /// Tells the buyer where their case stands with the humans.
    async fn send_standing(
        &self,
        shop: &Shop,
        standing: Standing,
        in_reply_to: Option<&Value>,
    ) -> Result<(), Closed> {
        match standing {
            Standing::Queued { ahead } => {
                let notice = self.app.desk.notice(shop, ahead);
                self.send_queue_notice(notice, in_reply_to).await
            }
            Standing::Claimed { agent } => {
                let name = shop
                    .staff
                    .agent(&agent)
                    .map_or(agent.as_str(), |a| a.name.as_str());
                self.send_claimed(name, in_reply_to).await
            }
        }
    }

    async fn send_queue_notice(
        &self,
        notice: QueueNotice,
        in_reply_to: Option<&Value>,
    ) -> Result<(), Closed> {
        let text = queue_text(notice);
        self.send_queue_frame("queued", Some(notice), None, Some(&text), in_reply_to)
            .await
    }

    async fn send_claimed(&self, agent: &str, in_reply_to: Option<&Value>) -> Result<(), Closed> {
        let text = format!("客服{agent}已为您接入，请问有什么可以帮您？");
        self.send_queue_frame("claimed", None, Some(agent), Some(&text), in_reply_to)
            .await
    }

    async fn send_queue_frame(
        &self,
        status: &str,
        notice: Option<QueueNotice>,
        agent: Option<&str>,
        text: Option<&str>,
        in_reply_to: Option<&Value>,
    ) -> Result<(), Closed> {
        let conversation = &self.conversation.as_ref().expect("opened").id;
        let at = self
            .app
            .clock
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let frame = ServerFrame::Queue {
            status,
            ahead: notice.map(|n| n.ahead),
            wait_seconds: notice.and_then(|n| n.wait_seconds),
            agent,
            text,
            in_reply_to,
            conversation,
            at: &at,
        };
        self.outbound.queue(Message::text(frame.to_json())).await
    }

    /// Something happened outside this conversation's loop: an agent wrote, the queue moved.
    async fn on_push(&mut self, push: BuyerPush) -> Result<(), Closed> {
        match push {
            BuyerPush::AgentMessage {
                seq,
                agent_name,
                text,
                at,
            } => {
                self.deliver_agent_message(seq, &agent_name, &text, at)
                    .await
            }
            BuyerPush::Queued(notice) => self.send_queue_notice(notice, None).await,
            BuyerPush::Claimed { agent_name } => self.send_claimed(&agent_name, None).await,
            BuyerPush::Resolved { handoff } => {
                let conversation = self.conversation.as_mut().expect("opened");
                if conversation.state.open_handoff.as_deref() == Some(handoff.as_str()) {
                    conversation.state.open_handoff = None;
                }
                self.send_queue_frame("resolved", None, None, None, None)
                    .await
            }
            BuyerPush::Recheck => match self.shop() {
                Some(shop) => self.catch_up(&shop).await,
                None => Err(Closed),
            },
        }
    }

    async fn read_loop(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        pushes: &mut mpsc::Receiver<BuyerPush>,
    ) {
        let limits = self.app.limits.clone();
        let mut limiter = RateLimiter::new(limits.messages_per_second, limits.message_burst);
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
                push = pushes.recv() => {
                    let Some(push) = push else { return };
                    if Box::pin(self.on_push(push)).await.is_err() {
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
                    Box::pin(self.on_text(text.as_str(), &mut limiter)).await
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

    async fn on_text(&mut self, text: &str, limiter: &mut RateLimiter) -> Result<(), Closed> {
        let started = Instant::now();
        let (text, id) = match parse_buyer_frame(text, self.app.limits.max_text_chars) {
            Ok(BuyerFrame::Message { text, id }) => (text, id),
            Err(e) => return self.outbound.send_error(e.code, &e.message).await,
        };
        if !limiter.allow() {
            return self
                .outbound
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
        let with_the_humans = match &state.open_handoff {
            Some(handoff) => {
                let desk = &self.app.desk;
                desk.open_case(&shop, &conversation.id, handoff)
                    .await
                    .is_some()
            }
            None => false,
        };
        let result = if with_the_humans {
            self.with_the_humans(&shop, state, text, id, now).await
        } else {
            // A handoff the store no longer has open is over (resolved meanwhile).
            state.open_handoff = None;
            let staffing = self.app.desk.staffing(&shop);
            let response = responder::respond_staffed(&shop, &mut state, &text, now, staffing);
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
            self.commit_and_send(&shop, state, outcome, now).await
        };
        self.app
            .metrics
            .reply_latency
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// The conversation is with the humans: the bot stays silent. The message is stored, the
    /// agent holding the case sees it (every agent, while it is queued), and a queued buyer
    /// is told their place.
    async fn with_the_humans(
        &mut self,
        shop: &Shop,
        state: ConversationState,
        text: String,
        id: Option<Value>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Closed> {
        let conversation = self.conversation.as_ref().expect("opened");
        let exchange = Exchange {
            conversation: conversation.id.clone(),
            shop: self.shop_id.clone(),
            buyer: conversation.buyer.clone(),
            buyer_message: Some((text.clone(), id.as_ref().map(client_id))),
            replies: Vec::new(),
            state,
            handoff: None,
            unmatched: None,
            events: Vec::new(),
            to_agents: true,
            at: now,
        };
        if !self.store(exchange).await? {
            return Ok(());
        }
        let conversation_id = self.conversation.as_ref().expect("opened").id.clone();
        match self
            .app
            .desk
            .buyer_wrote(shop, &conversation_id, &text, now)
        {
            Some((_, Standing::Queued { ahead })) => {
                let notice = self.app.desk.notice(shop, ahead);
                self.send_queue_notice(notice, id.as_ref()).await
            }
            _ => Ok(()),
        }
    }

    /// Stores an exchange; when the store cannot, the buyer is told to send the message
    /// again and `false` comes back.
    async fn store(&self, exchange: Exchange) -> Result<bool, Closed> {
        match self.app.store.record(exchange).await {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::error!(error = %e, "cannot store a message");
                self.outbound
                    .send_error(
                        ErrorCode::Unavailable,
                        "your message could not be saved; please send it again",
                    )
                    .await?;
                Ok(false)
            }
        }
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
        let new_handoff = handoff.as_ref().map(|h| Handoff {
            id: h.id.clone(),
            shop: self.shop_id.clone(),
            conversation: conversation.id.clone(),
            buyer: conversation.buyer.clone(),
            intent: h.intent.clone(),
            priority: h.priority,
            status: HandoffStatus::Queued,
            created_at: now,
            claimed_by: None,
            escalated: false,
            requeued: false,
        });
        let events = new_handoff.as_ref().map_or_else(Vec::new, |h| {
            webhook::events_for(shop, "handoff.created", now, |body| {
                body["handoff"] = webhook::handoff_json(h);
                if let Some((text, _)) = &buyer_message {
                    body["handoff"]["message"] = serde_json::json!(text);
                }
            })
        });
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
            events,
            to_agents: false,
            at: now,
        };
        if !self.store(exchange).await? {
            return Ok(());
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
            self.outbound.queue(Message::text(frame.to_json())).await?;
        }
        if let Some(handoff) = new_handoff {
            // The buyer was told; now the agents hear, and the buyer learns their place.
            self.app.desk.outbox.notify_one();
            let notice = self.app.desk.handoff_created(shop, handoff).await;
            self.send_queue_notice(notice, in_reply_to.as_ref()).await?;
        }
        Ok(())
    }
}

/// The client's message id as stored: strings as they are, other JSON values as JSON.
fn client_id(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a queued buyer reads about their wait.
fn queue_text(notice: QueueNotice) -> String {
    let place = match notice.ahead {
        0 => "您已排在第一位".to_string(),
        n => format!("前面还有 {n} 位"),
    };
    match notice.wait_seconds {
        Some(seconds) => {
            let minutes = seconds.div_ceil(60).max(1);
            format!("{place}，预计等待约 {minutes} 分钟，客服会按顺序为您服务，感谢您的耐心。")
        }
        None => format!("{place}，客服上线后会按顺序第一时间为您处理。"),
    }
}
