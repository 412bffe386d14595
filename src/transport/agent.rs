//! One agent console's websocket: `/ws/agent`, authenticated by the agent's token.
//!
//! Like the buyer side, a writer task drains a bounded queue into the socket. The desk sends
//! this console its frames (new cases, claims, buyer messages…) through an inbox; the loop
//! forwards them and serves the agent's own frames one at a time.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde::Deserialize;
use tokio::time::Instant;

use super::App;
use super::auth::{self, AgentIdentity};
use super::outbound::{Closed, Outbound};
use super::rate::RateLimiter;
use super::wire::{AgentFrame, ErrorCode, ServerFrame, parse_agent_frame};
use crate::desk::{DeskError, Presence};
use crate::shop::Shop;

#[derive(Deserialize)]
pub struct AgentQuery {
    token: Option<String>,
}

pub async fn upgrade(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<AgentQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    // Subscribed before the token is checked, so a reload that revokes it right after the
    // check still reaches this console.
    let swaps = app.rules.swaps();
    let identity = match auth::agent(&app, &headers, query.token.as_deref()) {
        Ok(identity) => identity,
        Err(refused) => return refused.into_response(),
    };
    let span = tracing::info_span!(
        "agent",
        shop = %identity.shop.id,
        agent = %identity.agent.id
    );
    let run = move |app, stream, outbound| session(app, identity, swaps, stream, outbound);
    super::accept_socket(app, remote, &headers, ws, span, super::Side::Agent, run)
}

async fn session(
    app: Arc<App>,
    identity: AgentIdentity,
    mut swaps: tokio::sync::watch::Receiver<u64>,
    mut stream: SplitStream<WebSocket>,
    outbound: Outbound,
) {
    let AgentIdentity { shop, agent } = identity;
    let crate::desk::Console {
        link,
        mut inbox,
        lagged,
    } = app.desk.attach_agent(&shop, &agent);
    tracing::info!("agent connected");
    let mut console = Console {
        app: app.clone(),
        shop_id: shop.id.to_string(),
        agent,
        link,
        outbound,
    };
    console
        .app
        .desk
        .welcome_agent(&shop, &console.agent, link)
        .await;

    let limits = app.limits.clone();
    let mut limiter = RateLimiter::new(limits.agent_frames_per_second, limits.agent_frame_burst);
    let mut ping = tokio::time::interval(limits.ping_interval);
    ping.tick().await;
    let mut last_heard = Instant::now();
    loop {
        let result = tokio::select! {
            _ = app.shutdown.cancelled() => {
                console.outbound.close(close_code::AWAY, "the service is shutting down").await;
                break;
            }
            Ok(()) = swaps.changed() => {
                match console.still_allowed() {
                    Ok(()) => Ok(()),
                    Err((code, reason)) => {
                        tracing::info!(reason, "closing an agent console after a reload");
                        console.outbound.close(code, reason).await;
                        break;
                    }
                }
            }
            _ = lagged.cancelled() => {
                console.outbound.close(close_code::AGAIN, "reconnect to refresh the queue").await;
                break;
            }
            frame = inbox.recv() => match frame {
                Some(push) => console.outbound.queue(Message::text(super::wire::agent_push(&push))).await,
                None => break,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= limits.idle_timeout {
                    console.outbound.close(close_code::AWAY, "no answer to pings").await;
                    break;
                }
                console.outbound.queue(Message::Ping(Default::default())).await
            }
            frame = stream.next() => {
                last_heard = Instant::now();
                match frame {
                    None | Some(Ok(Message::Close(_))) => break,
                    Some(Err(error)) => {
                        console.outbound.close_after(error, limits.max_frame_bytes).await;
                        break;
                    }
                    Some(Ok(Message::Text(text))) => console.on_text(text.as_str(), &mut limiter).await,
                    Some(Ok(Message::Binary(_))) => {
                        console
                            .outbound
                            .send_error(ErrorCode::BadRequest, "send JSON in text frames")
                            .await
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                }
            }
        };
        if result.is_err() {
            break;
        }
    }
    let current = console.shop().unwrap_or(shop);
    app.desk.detach_agent(&current, &console.agent.id, link);
    tracing::info!("agent disconnected");
}

struct Console {
    app: Arc<App>,
    shop_id: String,
    agent: crate::shop::staff::AgentAccount,
    /// This console's link at the desk, where the pages of the queue it asks for are sent.
    link: u64,
    outbound: Outbound,
}

impl Console {
    /// The shop's current rules (a reload is picked up on the next frame).
    fn shop(&self) -> Option<Arc<Shop>> {
        self.app.rules.catalog().get(&self.shop_id).cloned()
    }

    /// Whether the rules now serving still let this console in: its shop is still served
    /// (else 1001, as for its buyers), and its agent is still listed with the token the
    /// console logged in with (else 1008: log in again). Refused, the close code and reason.
    fn still_allowed(&self) -> Result<(), (u16, &'static str)> {
        let Some(shop) = self.shop() else {
            return Err((close_code::AWAY, super::SHOP_NOT_SERVED));
        };
        match shop.staff.agent(&self.agent.id) {
            Some(current) if current.same_token(&self.agent) => Ok(()),
            _ => Err((
                close_code::POLICY,
                "your agent token was revoked; log in again",
            )),
        }
    }

    async fn on_text(&mut self, text: &str, limiter: &mut RateLimiter) -> Result<(), Closed> {
        let parsed = parse_agent_frame(text, self.app.limits.max_text_chars);
        let too_many = "too many frames; slow down a little";
        let Some(frame) = self
            .outbound
            .admit(parsed, || limiter.allow(), too_many, |_| None)
            .await?
        else {
            return Ok(());
        };
        let Some(shop) = self.shop() else {
            self.outbound
                .close(close_code::AWAY, super::SHOP_NOT_SERVED)
                .await;
            return Err(Closed);
        };
        let desk = self.app.desk.clone();
        let result = match frame {
            AgentFrame::Presence { status } => match Presence::parse(&status) {
                Some(status) => {
                    desk.set_presence(&shop, &self.agent.id, status);
                    Ok(())
                }
                None => {
                    return self
                        .outbound
                        .send_error(ErrorCode::BadRequest, "`status` is online, away or busy")
                        .await;
                }
            },
            AgentFrame::Claim { handoff } => desk.claim(&shop, &self.agent, &handoff).await,
            AgentFrame::MoreCases { after, limit } => {
                let limit = limit.unwrap_or(crate::desk::QUEUE_PAGE);
                desk.queue_page(&shop, &self.agent.id, self.link, after.as_deref(), limit)
                    .await
            }
            AgentFrame::Resolve { handoff } => desk.resolve(&shop, &self.agent, &handoff).await,
            AgentFrame::Note { conversation, text } => {
                desk.add_note(&shop, &self.agent, &conversation, &text)
                    .await
            }
            AgentFrame::Reply {
                conversation,
                text,
                id,
            } => match desk
                .agent_reply(&shop, &self.agent, &conversation, &text)
                .await
            {
                Ok(at) => {
                    let at = crate::clock::rfc3339(at);
                    let frame = ServerFrame::Sent {
                        conversation: &conversation,
                        text: &text,
                        at: &at,
                        id: id.as_ref(),
                    };
                    return self.outbound.queue(Message::text(frame.to_json())).await;
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => Ok(()),
            Err(DeskError::Conflict(message)) => {
                self.outbound
                    .send_error(ErrorCode::Conflict, &message)
                    .await
            }
            Err(DeskError::BadRequest(message)) => {
                self.outbound
                    .send_error(ErrorCode::BadRequest, &message)
                    .await
            }
            Err(DeskError::NotFound(message)) => {
                self.outbound
                    .send_error(ErrorCode::NotFound, &message)
                    .await
            }
            Err(DeskError::Store(e)) => {
                tracing::error!(error = %e, "an agent's request could not be stored");
                self.outbound
                    .send_error(
                        ErrorCode::Unavailable,
                        "that could not be saved; please try again",
                    )
                    .await
            }
        }
    }
}
