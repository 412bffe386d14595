//! The desk and buyers' connections: links that agent messages and queue places reach, new
//! handoffs announced to the agents, and buyers' messages while their case is open.
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{
    AgentPush, BUYER_INBOX, BuyerLink, BuyerPush, Desk, QUEUE_PAGE, QueueNotice, Standing,
    TRANSCRIPT_LINES, broadcast, notice, send_links,
};
use crate::shop::Shop;
use crate::store::{Handoff, StoreError};

/// A buyer connection's registration with the desk.
pub struct Pushes {
    /// Which link this is, to detach it.
    pub link: u64,
    /// What the desk tells the connection.
    pub inbox: mpsc::Receiver<BuyerPush>,
}

impl Desk {
    /// Registers a buyer connection; pushes for the conversation arrive in its inbox.
    pub fn attach_buyer(&self, conversation: &str) -> Pushes {
        let link = self.next_link.fetch_add(1, Ordering::Relaxed);
        let (pushes, inbox) = mpsc::channel(BUYER_INBOX);
        self.buyers
            .entry(conversation.to_string())
            .or_default()
            .push(BuyerLink { id: link, pushes });
        Pushes { link, inbox }
    }

    pub fn detach_buyer(&self, conversation: &str, id: u64) {
        if let dashmap::Entry::Occupied(mut links) = self.buyers.entry(conversation.to_string()) {
            links.get_mut().retain(|l| l.id != id);
            if links.get().is_empty() {
                links.remove();
            }
        }
    }

    /// Tells every live connection of a conversation; a connection whose inbox is full misses
    /// it (stored agent messages still reach it on reconnect).
    pub(super) fn push_buyer(&self, conversation: &str, push: BuyerPush) {
        if let Some(links) = self.buyers.get(conversation) {
            for link in links.iter() {
                let _ = link.pushes.try_send(push.clone());
            }
        }
    }

    /// A case this node opened is committed: the webhook dispatcher wakes, the case is
    /// counted and queued. Returns its place, which its own buyer is told by their connection.
    pub async fn handoff_committed(self: &Arc<Self>, shop: &Shop, handoff: Handoff) -> QueueNotice {
        tracing::info!(
            handoff = %handoff.id,
            intent = %handoff.intent,
            priority = handoff.priority.as_str(),
            "handed off"
        );
        self.metrics
            .handoffs
            .with_label_values(&[&*shop.id, &handoff.intent, handoff.priority.as_str()])
            .inc();
        self.outbox.notify_one();
        self.handoff_created(shop, handoff).await
    }

    /// A handoff was committed (here or on another node): queue it, tell the agents and the
    /// buyers behind it. Returns the new case's place.
    pub async fn handoff_created(self: &Arc<Self>, shop: &Shop, handoff: Handoff) -> QueueNotice {
        let desk = self.shop_desk(&shop.id);
        let ahead = {
            let mut queue = Self::lock(&desk);
            queue.enqueue(handoff.clone());
            let ahead = match queue.standing(&handoff.id) {
                Some(Standing::Queued { ahead }) => ahead,
                _ => 0,
            };
            queue.tell(&handoff.id, ahead);
            self.refresh(&shop.id, &desk, &queue);
            ahead
        };
        self.announce(shop, &handoff).await;
        let mut queue = Self::lock(&desk);
        self.tell_positions(shop, &desk, &mut queue);
        notice(shop, &desk, ahead)
    }

    /// Sends a queued case to every console of the shop, if it is still queued by then.
    pub(super) async fn announce(&self, shop: &Shop, handoff: &Handoff) {
        // A node serving only buyers (its agents are on other nodes) reads nothing.
        let desk = self.shop_desk(&shop.id);
        if Self::lock(&desk).all_links().next().is_none() {
            return;
        }
        let frame = match self.handoff_frame(handoff).await {
            Ok(frame) => frame,
            Err(e) => {
                tracing::error!(error = %e, "cannot load a handoff's transcript");
                return;
            }
        };
        let queue = Self::lock(&desk);
        if queue.is_queued(&handoff.id) {
            broadcast(&queue, &frame);
        }
    }

    pub(super) async fn handoff_frame(
        &self,
        handoff: &Handoff,
    ) -> Result<Arc<AgentPush>, StoreError> {
        let transcript = self
            .store
            .transcript(&handoff.conversation, TRANSCRIPT_LINES)
            .await?;
        let profile = self
            .store
            .buyer_profile(&handoff.shop, &handoff.buyer, &handoff.id)
            .await?;
        Ok(Arc::new(AgentPush::handoff(
            handoff.clone(),
            transcript,
            profile,
        )))
    }

    /// A buyer wrote while their conversation is with the humans: the agent holding it (or,
    /// while queued in the top page of the queue, every agent) sees the message. Messages of
    /// cases further down are not pushed (a console is sent only the top page, and a flood
    /// of queued buyers writing must not bury it); the claimer gets the whole transcript.
    /// Returns where the case stands.
    pub fn buyer_wrote(
        &self,
        shop: &Shop,
        conversation: &str,
        text: &str,
        at: DateTime<Utc>,
    ) -> Option<Standing> {
        let desk = self.shop_desk(&shop.id);
        let queue = Self::lock(&desk);
        let id = queue.open_case_of(conversation)?.to_string();
        let standing = queue.standing(&id)?;
        let frame = Arc::new(AgentPush::BuyerMessage {
            handoff: id.clone(),
            conversation: conversation.to_string(),
            text: text.to_string(),
            at,
        });
        match &standing {
            Standing::Claimed { agent } => {
                if let Some(live) = queue.agents.get(agent) {
                    send_links(&live.links, &frame);
                }
            }
            Standing::Queued { ahead } if *ahead < QUEUE_PAGE => broadcast(&queue, &frame),
            Standing::Queued { .. } => {}
        }
        Some(standing)
    }
}
