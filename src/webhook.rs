//! Webhooks: handoff events POSTed to the URLs a shop configures, signed with HMAC-SHA256.
//!
//! Events are written to the store's outbox in the same transaction as what caused them (see
//! `desk`), so a crash or a receiver that is down loses none. The [`Dispatcher`] delivers
//! them at least once: each attempt has a timeout, a failure is retried with exponential
//! backoff, and every request carries the event's id as `Idempotency-Key` so a receiver can
//! drop repeats.
//!
//! Headers: `X-Autoresponder-Event` (the event name), `X-Autoresponder-Timestamp` (Unix
//! seconds), and, when the webhook has a secret, `X-Autoresponder-Signature:
//! sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::rfc3339;
use crate::shop::Shop;
use crate::shop::staff::{AgentAccount, WebhookFormat};
use crate::store::{Handoff, OutboxEvent, OutboxItem, Store};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// How deliveries are attempted.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// One attempt's limit, connection included.
    pub timeout: Duration,
    /// The wait after the first failure; doubled after each further one…
    pub first_retry: Duration,
    /// …up to this.
    pub max_retry: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            timeout: Duration::from_secs(5),
            first_retry: Duration::from_secs(2),
            max_retry: Duration::from_secs(600),
        }
    }
}

/// The event `name` for every webhook of `shop` that wants it. `fill` adds the event's own
/// fields to the common body (`id`, `event`, `shop`, `at`).
fn events_for(
    shop: &Shop,
    name: &str,
    at: DateTime<Utc>,
    fill: impl FnOnce(&mut Value),
) -> Vec<OutboxEvent> {
    let hooks: Vec<_> = shop
        .staff
        .webhooks
        .iter()
        .filter(|h| h.wants(name))
        .collect();
    if hooks.is_empty() {
        return Vec::new();
    }
    let id = uuid::Uuid::now_v7().to_string();
    let mut body = json!({
        "id": id,
        "event": name,
        "shop": &*shop.id,
        "shop_name": shop.name,
        "at": rfc3339(at),
    });
    fill(&mut body);
    let summary = summary(shop, name, &body);
    hooks
        .into_iter()
        .enumerate()
        .map(|(i, hook)| {
            let body = match hook.format {
                WebhookFormat::Json => {
                    let mut body = body.clone();
                    body["text"] = json!(summary);
                    body
                }
                WebhookFormat::Robot => json!({"msgtype": "text", "text": {"content": summary}}),
                WebhookFormat::Slack => json!({"text": summary}),
            };
            OutboxEvent {
                // One row per receiver, each retried on its own; the event id is shared.
                id: format!("{id}#{i}"),
                shop: shop.id.to_string(),
                url: hook.url.clone(),
                event: name.to_string(),
                body: body.to_string(),
            }
        })
        .collect()
}

/// The `handoff.created` events of a case the buyer's `message` opened.
pub fn handoff_created(
    shop: &Shop,
    handoff: &Handoff,
    message: &str,
    at: DateTime<Utc>,
) -> Vec<OutboxEvent> {
    events_for(shop, "handoff.created", at, |body| {
        body["handoff"] = handoff_json(handoff);
        body["handoff"]["message"] = json!(message);
    })
}

/// The `handoff.escalated` events of a high-priority case that waited too long.
pub fn handoff_escalated(shop: &Shop, handoff: &Handoff, at: DateTime<Utc>) -> Vec<OutboxEvent> {
    events_for(shop, "handoff.escalated", at, |body| {
        body["handoff"] = handoff_json(handoff);
    })
}

/// The events `name` of an agent's action (a claim, a resolve) on the case `handoff`.
pub fn agent_acted(
    shop: &Shop,
    name: &str,
    at: DateTime<Utc>,
    handoff: &str,
    agent: &AgentAccount,
) -> Vec<OutboxEvent> {
    events_for(shop, name, at, |body| {
        body["handoff"] = json!({"id": handoff});
        body["agent"] = json!({"id": agent.id, "name": agent.name});
    })
}

fn handoff_json(handoff: &Handoff) -> Value {
    json!({
        "id": handoff.id,
        "conversation": handoff.conversation,
        "buyer": handoff.buyer,
        "intent": handoff.intent,
        "priority": handoff.priority.as_str(),
        "created_at": rfc3339(handoff.created_at),
    })
}

/// One line a person reads in a group chat.
fn summary(shop: &Shop, name: &str, body: &Value) -> String {
    let handoff = &body["handoff"];
    let who = handoff["buyer"].as_str().unwrap_or("");
    let intent = handoff["intent"].as_str().unwrap_or("");
    let agent = body["agent"]["name"].as_str().unwrap_or("");
    let id = handoff["id"].as_str().unwrap_or("");
    match name {
        "handoff.created" => {
            let urgent = if handoff["priority"] == "high" {
                "【高优先级】"
            } else {
                ""
            };
            format!(
                "{urgent}{}：买家 {who} 需要人工客服（{intent}），请尽快接待。",
                shop.name
            )
        }
        "handoff.escalated" => format!(
            "【催办】{}：买家 {who} 的高优先级会话（{intent}）等待过久，请立即接待。",
            shop.name
        ),
        "handoff.claimed" => format!("{}：客服 {agent} 已接待会话 {id}。", shop.name),
        _ => format!("{}：客服 {agent} 已处理完会话 {id}。", shop.name),
    }
}

pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Looks up the current secret of a shop's webhook URL (secrets are not stored in the outbox).
pub type SecretOf = Arc<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

/// Delivers the outbox until shutdown.
pub struct Dispatcher {
    pub store: Arc<dyn Store>,
    pub wake: Arc<Notify>,
    pub settings: WebhookSettings,
    pub secret_of: SecretOf,
    pub shutdown: CancellationToken,
}

/// Deliveries in flight at once.
const CONCURRENCY: usize = 8;
/// Rows fetched per round.
const BATCH: usize = 64;
/// Look at the outbox at least this often, in case a wake-up was missed.
const IDLE_CHECK: Duration = Duration::from_secs(30);

impl Dispatcher {
    pub async fn run(self) {
        let client = match reqwest::Client::builder()
            .timeout(self.settings.timeout)
            .connect_timeout(self.settings.timeout)
            .user_agent(concat!("autoresponder/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the webhook client; webhooks are off");
                return;
            }
        };
        loop {
            // Delivery times are the machine's real time, not the shop's business clock.
            let now = Utc::now();
            let due = match self.store.outbox_due(now, BATCH, self.lease()).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the webhook outbox");
                    Vec::new()
                }
            };
            if due.is_empty() {
                let next = self.store.outbox_next_due().await.ok().flatten();
                let wait = next
                    .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                    .unwrap_or(IDLE_CHECK)
                    .min(IDLE_CHECK);
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            let deliveries = futures_util::stream::iter(due)
                .map(|item| self.deliver(&client, item))
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<()>>();
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = deliveries => {}
            }
        }
    }

    /// How long a node keeps the events it took: long enough to try each of them once (a
    /// batch is delivered `CONCURRENCY` at a time, each within the timeout). A node that dies
    /// meanwhile leaves them to the others when the lease ends.
    fn lease(&self) -> Duration {
        let rounds = BATCH.div_ceil(CONCURRENCY) as u32 + 1;
        self.settings.timeout.saturating_mul(rounds)
    }

    async fn deliver(&self, client: &reqwest::Client, item: OutboxItem) {
        let timestamp = Utc::now().timestamp();
        let key = item.id.split('#').next().unwrap_or(&item.id).to_string();
        let mut request = client
            .post(&item.url)
            .header("content-type", "application/json")
            .header("idempotency-key", &key)
            .header("x-autoresponder-event", &item.event)
            .header("x-autoresponder-timestamp", timestamp.to_string());
        if let Some(secret) = (self.secret_of)(&item.shop, &item.url) {
            request = request.header(
                "x-autoresponder-signature",
                signature(&secret, timestamp, &item.body),
            );
        }
        let result = request.body(item.body.clone()).send().await;
        let failure = match result {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("the receiver answered {}", response.status())),
            Err(e) => Some(format!("the request failed: {e}")),
        };
        let stored = match &failure {
            None => self.store.outbox_delivered(&item.id, Utc::now()).await,
            Some(error) => {
                let wait = backoff(&self.settings, item.attempts);
                tracing::info!(url = %item.url, attempts = item.attempts + 1, %error,
                    retry_in_ms = wait.as_millis() as u64, "webhook delivery failed");
                let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                self.store.outbox_failed(&item.id, next, error).await
            }
        };
        if let Err(e) = stored {
            tracing::warn!(error = %e, "cannot record a webhook delivery");
        }
    }
}

/// The wait after `attempts` failed attempts: doubling from `first_retry`, capped.
pub fn backoff(settings: &WebhookSettings, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.min(20));
    settings
        .first_retry
        .saturating_mul(factor)
        .min(settings.max_retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = WebhookSettings {
            timeout: Duration::from_secs(1),
            first_retry: Duration::from_millis(100),
            max_retry: Duration::from_millis(1000),
        };
        let waits: Vec<u128> = (0..6).map(|a| backoff(&settings, a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_and_body() {
        // Computed independently with: printf '1700000000.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature("key", 1_700_000_000, "{}"),
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }
}
