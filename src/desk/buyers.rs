//! The desk and buyers' connections: links that agent messages and queue places reach, new
//! handoffs announced to the agents, and buyers' messages while their case is open.
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{
    BUYER_INBOX, BuyerLink, BuyerPush, Desk, QueueNotice, Standing, broadcast, frames, notice,
    send_links,
};
use crate::shop::Shop;
use crate::store::{Handoff, StoreError};

impl Desk {
    /// Registers a buyer connection; pushes for the conversation arrive on the receiver.
    pub fn attach_buyer(&self, conversation: &str) -> (u64, mpsc::Receiver<BuyerPush>) {
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        let (pushes, inbox) = mpsc::channel(BUYER_INBOX);
        self.buyers
            .entry(conversation.to_string())
            .or_default()
            .push(BuyerLink { id, pushes });
        (id, inbox)
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

    /// A buyer's handoff was committed: queue it, tell the agents and the buyers behind it.
    /// Returns the new case's place, which its own buyer is told by their connection.
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

    pub(super) async fn handoff_frame(&self, handoff: &Handoff) -> Result<Arc<str>, StoreError> {
        let transcript = self
            .store
            .transcript(&handoff.conversation, frames::TRANSCRIPT_LINES)
            .await?;
        let profile = self
            .store
            .buyer_profile(&handoff.shop, &handoff.buyer, &handoff.id)
            .await?;
        Ok(frames::handoff(handoff, &transcript, &profile).into())
    }

    /// A buyer wrote while their conversation is with the humans: the agent holding it (or,
    /// while queued, every agent) sees the message. Returns where the case stands.
    pub fn buyer_wrote(
        &self,
        shop: &Shop,
        conversation: &str,
        text: &str,
        at: DateTime<Utc>,
    ) -> Option<(String, Standing)> {
        let desk = self.shop_desk(&shop.id);
        let queue = Self::lock(&desk);
        let id = queue.open_case_of(conversation)?.to_string();
        let standing = queue.standing(&id)?;
        let frame: Arc<str> = frames::buyer_message(&id, conversation, text, at).into();
        match &standing {
            Standing::Claimed { agent } => {
                if let Some(live) = queue.agents.get(agent) {
                    send_links(&live.links, &frame);
                }
            }
            Standing::Queued { .. } => broadcast(&queue, &frame),
        }
        Some((id, standing))
    }
}
