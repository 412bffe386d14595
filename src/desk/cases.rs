//! What agents do with cases: claim, reply, note, resolve; and escalation of cases left
//! waiting too long.
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::agents::agent_name;
use super::{AgentPush, BuyerPush, Desk, DeskError, broadcast, learn_handle_time, send_links};
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
        let events = webhook::agent_acted(shop, "handoff.claimed", now, handoff, agent);
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
        self.claimed(shop, &claimed, now).await;
        Ok(())
    }

    /// A case was claimed (here or on another node): the view follows; the claimer's consoles
    /// here get the case as it is now (messages written while it was queued included), every
    /// console hears who took it, and the buyer's connections learn their agent.
    pub(super) async fn claimed(&self, shop: &Shop, claimed: &Handoff, at: DateTime<Utc>) {
        let Some(agent) = claimed.claimed_by.as_deref() else {
            return;
        };
        let name = agent_name(shop, agent);
        let desk = self.shop_desk(&shop.id);
        let has_consoles = Self::lock(&desk)
            .agents
            .get(agent)
            .is_some_and(|a| !a.links.is_empty());
        let fresh = match has_consoles {
            true => self.handoff_frame(claimed).await.ok(),
            false => None,
        };
        let mut queue = Self::lock(&desk);
        queue.set_claimed(claimed.clone(), agent, at);
        if let (Some(frame), Some(live)) = (fresh, queue.agents.get(agent)) {
            send_links(&live.links, &frame);
        }
        let frame = Arc::new(AgentPush::Claimed {
            handoff: claimed.id.clone(),
            conversation: claimed.conversation.clone(),
            agent: agent.to_string(),
            agent_name: name.clone(),
        });
        broadcast(&queue, &frame);
        self.push_buyer(
            &claimed.conversation,
            BuyerPush::Claimed { agent_name: name },
        );
        self.refresh(&shop.id, &desk, &queue);
        self.tell_positions(shop, &desk, &mut queue);
    }

    pub async fn resolve(
        &self,
        shop: &Shop,
        agent: &AgentAccount,
        handoff: &str,
    ) -> Result<(), DeskError> {
        let now = self.clock.now();
        self.open_in(shop, handoff)?;
        let events = webhook::agent_acted(shop, "handoff.resolved", now, handoff, agent);
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
        self.resolved(shop, &resolved, now);
        Ok(())
    }

    /// A case is over (here or on another node): the view forgets it and learns how long it
    /// took, every console hears, and the buyer's connections give the bot back.
    pub(super) fn resolved(&self, shop: &Shop, resolved: &Handoff, at: DateTime<Utc>) {
        let desk = self.shop_desk(&shop.id);
        let mut queue = Self::lock(&desk);
        if let Some(started) = queue.close(&resolved.id).and_then(|c| c.claimed_at) {
            learn_handle_time(&desk, (at - started).to_std().unwrap_or_default());
        }
        let frame = Arc::new(AgentPush::Resolved {
            handoff: resolved.id.clone(),
            conversation: resolved.conversation.clone(),
        });
        broadcast(&queue, &frame);
        self.push_buyer(
            &resolved.conversation,
            BuyerPush::Resolved {
                handoff: resolved.id.clone(),
            },
        );
        self.refresh(&shop.id, &desk, &queue);
        self.tell_positions(shop, &desk, &mut queue);
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
        let note = Note {
            shop: shop.id.to_string(),
            buyer: buyer.clone(),
            agent: agent.id.clone(),
            text: text.to_string(),
            at,
        };
        self.store.add_note(note.clone(), conversation).await?;
        self.noted(shop, conversation, &note);
        Ok(())
    }

    /// A note was added (here or on another node): every console hears.
    pub(super) fn noted(&self, shop: &Shop, conversation: &str, note: &Note) {
        let frame = Arc::new(AgentPush::Note {
            conversation: conversation.to_string(),
            buyer: note.buyer.clone(),
            text: note.text.clone(),
            agent: note.agent.clone(),
            at: note.at,
        });
        broadcast(&Self::lock(&self.shop_desk(&shop.id)), &frame);
    }

    /// Looks for cases to escalate every `every`, until shutdown.
    pub async fn escalate_every(
        self: Arc<Self>,
        every: std::time::Duration,
        catalog: super::CatalogNow,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.escalate_due(&catalog()).await;
        }
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
                let events = webhook::handoff_escalated(shop, &handoff, now);
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
                let escalated = Handoff {
                    escalated: true,
                    ..handoff
                };
                self.escalated(shop, &escalated).await;
            }
        }
    }
}

impl Desk {
    /// A case was escalated (here or on another node): it is announced again.
    pub(super) async fn escalated(&self, shop: &Shop, handoff: &Handoff) {
        Self::lock(&self.shop_desk(&shop.id)).mark_escalated(&handoff.id);
        self.announce(shop, handoff).await;
    }
}
