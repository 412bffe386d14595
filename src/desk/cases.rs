//! What agents do with cases: claim, reply, note, resolve; and escalation of cases left
//! waiting too long.
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{BuyerPush, Desk, DeskError, broadcast, frames, learn_handle_time, send_links};
use crate::shop::staff::AgentAccount;
use crate::shop::{Catalog, Shop};
use crate::store::{AgentMessage, ClaimOutcome, Handoff, Note, ResolveOutcome};
use crate::webhook;

impl Desk {
    /// Agents act only on cases open in their own shop: ids are not secrets between shops.
    fn open_in(&self, shop: &Shop, handoff: &str) -> Result<(), DeskError> {
        let desk = self.shop_desk(&shop.id);
        if Self::lock(&desk).standing(handoff).is_some() {
            Ok(())
        } else {
            Err(DeskError::NotFound(format!(
                "no open case {handoff} in this shop"
            )))
        }
    }

    pub async fn claim(
        &self,
        shop: &Shop,
        agent: &AgentAccount,
        handoff: &str,
    ) -> Result<(), DeskError> {
        let now = self.clock.now();
        self.open_in(shop, handoff)?;
        let events = agent_event(shop, "handoff.claimed", now, handoff, agent);
        let outcome = self.store.claim(handoff, &agent.id, now, events).await?;
        let claimed = match outcome {
            ClaimOutcome::Claimed(h) => h,
            ClaimOutcome::Conflict { by } => {
                return Err(DeskError::Conflict(match by {
                    Some(by) => format!("case {handoff} is already claimed by {by}"),
                    None => format!("case {handoff} is closed"),
                }));
            }
            ClaimOutcome::NotFound => {
                return Err(DeskError::NotFound(format!("no case {handoff}")));
            }
        };
        self.outbox.notify_one();
        // The claimer gets the case as it is now (messages written while it was queued
        // included), then everyone hears who took it.
        let fresh = self.handoff_frame(&claimed).await.ok();
        let desk = self.shop_desk(&shop.id);
        let mut queue = Self::lock(&desk);
        queue.claim(handoff, &agent.id, now);
        if let (Some(frame), Some(live)) = (fresh, queue.agents.get(&agent.id)) {
            send_links(&live.links, &frame);
        }
        let frame: Arc<str> =
            frames::claimed(handoff, &claimed.conversation, &agent.id, &agent.name).into();
        broadcast(&queue, &frame);
        self.push_buyer(
            &claimed.conversation,
            BuyerPush::Claimed {
                agent_name: agent.name.clone(),
            },
        );
        self.refresh(&shop.id, &desk, &queue);
        self.tell_positions(shop, &desk, &mut queue);
        Ok(())
    }

    pub async fn resolve(
        &self,
        shop: &Shop,
        agent: &AgentAccount,
        handoff: &str,
    ) -> Result<(), DeskError> {
        let now = self.clock.now();
        self.open_in(shop, handoff)?;
        let events = agent_event(shop, "handoff.resolved", now, handoff, agent);
        let resolved = match self.store.resolve(handoff, &agent.id, now, events).await? {
            ResolveOutcome::Resolved(h) => h,
            ResolveOutcome::Conflict { by } => {
                return Err(DeskError::Conflict(match by {
                    Some(by) => format!("case {handoff} is held by {by}"),
                    None => format!("case {handoff} is already resolved"),
                }));
            }
            ResolveOutcome::NotFound => {
                return Err(DeskError::NotFound(format!("no case {handoff}")));
            }
        };
        self.outbox.notify_one();
        let desk = self.shop_desk(&shop.id);
        let mut queue = Self::lock(&desk);
        if let Some(started) = queue.close(handoff).and_then(|c| c.claimed_at) {
            learn_handle_time(&desk, (now - started).to_std().unwrap_or_default());
        }
        let frame: Arc<str> = frames::resolved(handoff, &resolved.conversation).into();
        broadcast(&queue, &frame);
        self.push_buyer(
            &resolved.conversation,
            BuyerPush::Resolved {
                handoff: handoff.to_string(),
            },
        );
        self.refresh(&shop.id, &desk, &queue);
        self.tell_positions(shop, &desk, &mut queue);
        Ok(())
    }

    /// Stores an agent's message to the buyer of a conversation the agent holds, and
    /// delivers it if the buyer is connected.
    pub async fn agent_reply(
        &self,
        shop: &Shop,
        agent: &AgentAccount,
        conversation: &str,
        text: &str,
    ) -> Result<DateTime<Utc>, DeskError> {
        let desk = self.shop_desk(&shop.id);
        let case = {
            let queue = Self::lock(&desk);
            queue
                .open_case_of(conversation)
                .and_then(|id| queue.claimed_case(id))
                .filter(|(_, holder)| *holder == agent.id)
                .map(|(case, _)| case.handoff.clone())
        };
        let Some(case) = case else {
            return Err(DeskError::NotFound(format!(
                "you hold no case in conversation {conversation}; claim it first"
            )));
        };
        let at = self.clock.now();
        let seq = self
            .store
            .agent_message(AgentMessage {
                conversation: conversation.to_string(),
                agent_id: agent.id.clone(),
                agent_name: agent.name.clone(),
                text: text.to_string(),
                at,
            })
            .await?;
        if Self::lock(&desk).first_reply(&case.id) {
            self.metrics
                .human_first_response
                .with_label_values(&[&*shop.id])
                .observe((at - case.created_at).as_seconds_f64().max(0.0));
        }
        self.push_buyer(
            conversation,
            BuyerPush::AgentMessage {
                seq,
                agent_name: agent.name.clone(),
                text: text.to_string(),
                at,
            },
        );
        Ok(at)
    }

    /// Adds a note about the buyer of a conversation with an open case; every console hears.
    pub async fn add_note(
        &self,
        shop: &Shop,
        agent: &AgentAccount,
        conversation: &str,
        text: &str,
    ) -> Result<(), DeskError> {
        let desk = self.shop_desk(&shop.id);
        let buyer = {
            let queue = Self::lock(&desk);
            let id = queue.open_case_of(conversation).map(str::to_string);
            id.and_then(|id| {
                queue
                    .claimed_case(&id)
                    .map(|(c, _)| c.handoff.buyer.clone())
                    .or_else(|| {
                        queue
                            .queued()
                            .find(|c| c.handoff.id == id)
                            .map(|c| c.handoff.buyer.clone())
                    })
            })
        };
        let Some(buyer) = buyer else {
            return Err(DeskError::NotFound(format!(
                "no open case in conversation {conversation}"
            )));
        };
        let at = self.clock.now();
        self.store
            .add_note(Note {
                shop: shop.id.to_string(),
                buyer: buyer.clone(),
                agent: agent.id.clone(),
                text: text.to_string(),
                at,
            })
            .await?;
        let frame: Arc<str> = frames::note(conversation, &buyer, text, &agent.id, at).into();
        broadcast(&Self::lock(&desk), &frame);
        Ok(())
    }

    /// Announces again every high-priority case waiting longer than its shop allows, once,
    /// and tells the webhooks.
    pub async fn escalate_due(&self, catalog: &Catalog) {
        let now = self.clock.now();
        let shops: Vec<String> = self.shops.iter().map(|e| e.key().clone()).collect();
        for shop_id in shops {
            let Some(shop) = catalog.get(&shop_id) else {
                continue;
            };
            let desk = self.shop_desk(&shop_id);
            let due: Vec<Handoff> = {
                let queue = Self::lock(&desk);
                let wait = chrono::Duration::from_std(shop.staff.escalate_after)
                    .unwrap_or(chrono::Duration::MAX);
                queue
                    .queued()
                    .filter(|c| {
                        c.handoff.priority == crate::intents::HandoffPriority::High
                            && !c.handoff.escalated
                            && c.handoff.created_at + wait <= now
                    })
                    .map(|c| c.handoff.clone())
                    .collect()
            };
            for handoff in due {
                let events = webhook::events_for(shop, "handoff.escalated", now, |body| {
                    body["handoff"] = webhook::handoff_json(&handoff);
                });
                match self.store.escalate(&handoff.id, now, events).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot escalate a case");
                        continue;
                    }
                }
                self.outbox.notify_one();
                tracing::warn!(handoff = %handoff.id, "a high-priority case waited too long");
                Self::lock(&desk).mark_escalated(&handoff.id);
                let escalated = Handoff {
                    escalated: true,
                    ..handoff
                };
                self.announce(shop, &escalated).await;
            }
        }
    }
}

/// The webhook events of an agent's action on a case.
fn agent_event(
    shop: &Shop,
    name: &str,
    at: DateTime<Utc>,
    handoff: &str,
    agent: &AgentAccount,
) -> Vec<crate::store::OutboxEvent> {
    webhook::events_for(shop, name, at, |body| {
        body["handoff"] = serde_json::json!({"id": handoff});
        body["agent"] = serde_json::json!({"id": agent.id, "name": agent.name});
    })
}
