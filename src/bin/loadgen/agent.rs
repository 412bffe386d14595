//! One agent console that claims every handoff it is shown and resolves it at once, so a
//! handed-off buyer gets the bot back and the queue never grows during a long run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::socket::{connect, socket_config};

#[derive(Default)]
pub struct AgentStats {
    pub claims: AtomicU64,
    pub resolves: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct AgentSummary {
    pub claimed: u64,
    pub resolved: u64,
    pub errors: BTreeMap<String, u64>,
}

impl AgentStats {
    pub fn summary(&self) -> AgentSummary {
        AgentSummary {
            claimed: self.claims.load(Ordering::Relaxed),
            resolved: self.resolves.load(Ordering::Relaxed),
            errors: self.errors.lock().map(|e| e.clone()).unwrap_or_default(),
        }
    }
}

/// Runs the console until `stop`; `ready` is told once the desk greeted it (the shop is
/// staffed from then on) or why it could not connect.
pub async fn run(
    base: String,
    token: String,
    stats: Arc<AgentStats>,
    ready: oneshot::Sender<Result<(), String>>,
    stop: CancellationToken,
) {
    let url = format!("{base}/ws/agent?token={token}");
    let mut socket = match connect(&url, socket_config(64 * 1024, 1024 * 1024)).await {
        Ok(socket) => socket,
        Err(e) => {
            let _ = ready.send(Err(format!("the agent console cannot connect: {e}")));
            return;
        }
    };
    let mut ready = Some(ready);
    let mut me = String::new();
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => break,
            frame = socket.next() => frame,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            Some(Ok(_)) => continue,
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let reply = match value["type"].as_str() {
            Some("hello") => {
                me = value["agent"]["id"].as_str().unwrap_or("").to_string();
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
                None
            }
            Some("handoff") if value["handoff"]["status"].as_str() != Some("claimed") => {
                Some(json!({"type": "claim", "handoff": value["handoff"]["id"]}))
            }
            Some("claimed") if value["agent"].as_str() == Some(me.as_str()) => {
                stats.claims.fetch_add(1, Ordering::Relaxed);
                Some(json!({"type": "resolve", "handoff": value["handoff"]}))
            }
            Some("resolved") => {
                stats.resolves.fetch_add(1, Ordering::Relaxed);
                None
            }
            Some("error") => {
                let code = value["code"].as_str().unwrap_or("unknown").to_string();
                if let Ok(mut errors) = stats.errors.lock() {
                    *errors.entry(code).or_default() += 1;
                }
                None
            }
            _ => None,
        };
        if let Some(reply) = reply
            && socket.send(Message::text(reply.to_string())).await.is_err()
        {
            break;
        }
    }
    if let Some(ready) = ready.take() {
        let _ = ready.send(Err("the agent console closed before it was greeted".into()));
    }
    let _ = socket.close(None).await;
}
