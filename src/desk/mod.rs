//! The human side of the service: the live queue of handoffs per shop, agents' presence and
//! consoles, and the links to buyers' connections that agent replies and queue updates reach.
//!
//! The store is the truth (a claim is one conditional UPDATE, so a race has one winner); the
//! desk mirrors the open cases in memory so that positions, staffing and fan-out need no
//! database round trip. Each shop has its own short mutex, never held across an await; the
//! buyer message path reads only atomics (`staffing`).

pub mod frames;
pub mod queue;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::shop::staff::AgentAccount;
use crate::shop::{Catalog, Shop};
use crate::store::{
    AgentMessage, ClaimOutcome, Handoff, HandoffStatus, Note, ResolveOutcome, Store, StoreError,
};
use crate::telemetry::Metrics;
use crate::webhook;
use queue::{AgentLink, AgentLive, ShopQueue};
pub use queue::{Presence, Standing};

/// Frames waiting for one agent console; one that falls this far behind is disconnected and
/// rebuilds its view when it reconnects.
const AGENT_INBOX: usize = 4096;
/// Pushes waiting for one buyer connection.
const BUYER_INBOX: usize = 64;

/// What a buyer's connection is told from outside its own conversation loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyerPush {
    /// An agent wrote; stored as message `seq`.
    AgentMessage {
        seq: i64,
        agent_name: String,
        text: String,
        at: DateTime<Utc>,
    },
    /// The buyer's place in the queue changed.
    Queued(QueueNotice),
    Claimed {
        agent_name: String,
    },
    Resolved {
        handoff: String,
    },
}

/// A queued buyer's place, and a rough wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueNotice {
    pub ahead: usize,
    /// None while no agent is taking cases.
    pub wait_seconds: Option<u64>,
}

/// What the humans' side means for the bot's away and busy notices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Staffing {
    /// The shop has agents but none is at the desk.
    pub unstaffed: bool,
    /// Agents are there but the queue per available agent is over the shop's limit.
    pub overloaded: bool,
}

/// Why an agent's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct ShopDesk {
    queue: Mutex<ShopQueue>,
    /// How long a case takes from claim to resolve, learned (milliseconds; 0 = not yet).
    handle_ms: AtomicU64,
    present: AtomicUsize,
    available: AtomicUsize,
    queued: AtomicUsize,
}

struct BuyerLink {
    id: u64,
    pushes: mpsc::Sender<BuyerPush>,
}

pub struct Desk {
    store: Arc<dyn Store>,
    clock: SharedClock,
    metrics: Metrics,
    shops: DashMap<String, Arc<ShopDesk>>,
    /// Live buyer connections by conversation.
    buyers: DashMap<String, Vec<BuyerLink>>,
    next_link: AtomicU64,
    /// Woken when events were written to the webhook outbox.
    pub outbox: Arc<Notify>,
}

impl Desk {
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, metrics: Metrics) -> Arc<Desk> {
        Arc::new(Desk {
            store,
            clock,
            metrics,
            shops: DashMap::new(),
            buyers: DashMap::new(),
            next_link: AtomicU64::new(1),
            outbox: Arc::new(Notify::new()),
        })
    }

    fn shop_desk(&self, shop: &str) -> Arc<ShopDesk> {
        if let Some(desk) = self.shops.get(shop) {
            return desk.clone();
        }
        self.shops
            .entry(shop.to_string())
            .or_insert_with(|| {
                Arc::new(ShopDesk {
                    queue: Mutex::new(ShopQueue::default()),
                    handle_ms: AtomicU64::new(0),
                    present: AtomicUsize::new(0),
                    available: AtomicUsize::new(0),
                    queued: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    fn lock(desk: &ShopDesk) -> MutexGuard<'_, ShopQueue> {
        desk.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the open cases after a start (or a crash). Cases held by agents who are not
    /// connected, which after a start is all of them, return to the queue after the grace
    /// period unless their agent comes back.
    pub async fn restore(self: &Arc<Self>, catalog: &Catalog) -> Result<(), StoreError> {
        let open = self.store.open_handoffs(None).await?;
        let mut holders = Vec::new();
        for handoff in open {
            let desk = self.shop_desk(&handoff.shop);
            // The borrow of `queue` must end before the next shop's lock.
            let mut queue = Self::lock(&desk);
            match (handoff.status, handoff.claimed_by.clone()) {
                (HandoffStatus::Claimed, Some(agent)) => {
                    let key = (handoff.shop.clone(), agent.clone());
                    if !holders.contains(&key) {
                        holders.push(key);
                    }
                    queue.hold(handoff, agent);
                }
                _ => queue.enqueue(handoff),
            }
        }
        let shops: Vec<String> = self.shops.iter().map(|e| e.key().clone()).collect();
        for shop in shops {
            let desk = self.shop_desk(&shop);
            let queue = Self::lock(&desk);
            self.refresh(&shop, &desk, &queue);
        }
        for (shop_id, agent) in holders {
            if let Some(shop) = catalog.get(&shop_id) {
                let desk = self.shop_desk(&shop_id);
                let mut queue = Self::lock(&desk);
                self.start_grace(shop, &mut queue, &agent);
            }
        }
        Ok(())
    }

    /// The humans' side as the bot's away/busy notices need it; reads only atomics.
    pub fn staffing(&self, shop: &Shop) -> Staffing {
        if !shop.staff.is_staffed() {
            return Staffing::default();
        }
        let Some(desk) = self.shops.get(&*shop.id).map(|d| d.clone()) else {
            return Staffing {
                unstaffed: true,
                overloaded: false,
            };
        };
        let present = desk.present.load(Ordering::Relaxed);
        let available = desk.available.load(Ordering::Relaxed);
        let queued = desk.queued.load(Ordering::Relaxed);
        Staffing {
            unstaffed: present == 0,
            overloaded: present > 0
                && (available == 0 || queued > available * shop.staff.queue_per_agent),
        }
    }

    /// Where the open case of a conversation stands, if it has one.
    pub fn standing(&self, shop: &Shop, conversation: &str) -> Option<(String, Standing)> {
        let desk = self.shop_desk(&shop.id);
        let queue = Self::lock(&desk);
        let id = queue.open_case_of(conversation)?.to_string();
        let standing = queue.standing(&id)?;
        Some((id, standing))
    }

    pub fn notice(&self, shop: &Shop, ahead: usize) -> QueueNotice {
        let desk = self.shop_desk(&shop.id);
        notice(shop, &desk, ahead)
    }

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
    fn push_buyer(&self, conversation: &str, push: BuyerPush) {
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
    async fn announce(&self, shop: &Shop, handoff: &Handoff) {
        let frame = match self.handoff_frame(handoff).await {
            Ok(frame) => frame,
            Err(e) => {
                tracing::error!(error = %e, "cannot load a handoff's transcript");
                return;
            }
        };
        let desk = self.shop_desk(&shop.id);
        let queue = Self::lock(&desk);
        if queue.is_queued(&handoff.id) {
            broadcast(&queue, &frame);
        }
    }

    async fn handoff_frame(&self, handoff: &Handoff) -> Result<Arc<str>, StoreError> {
        let transcript = self.store.transcript(&handoff.conversation).await?;
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

    /// Registers an agent console; frames for it arrive on the receiver, and the token is
    /// cancelled if the console falls so far behind that frames were lost (it must then
    /// reconnect to rebuild its view). The caller then sends `welcome_agent`.
    pub fn attach_agent(
        self: &Arc<Self>,
        shop: &Shop,
        agent: &AgentAccount,
    ) -> (u64, mpsc::Receiver<Arc<str>>, CancellationToken) {
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        let lagged = CancellationToken::new();
        let (frames_tx, inbox) = mpsc::channel(AGENT_INBOX);
        let desk = self.shop_desk(&shop.id);
        let mut queue = Self::lock(&desk);
        let live = queue
            .agents
            .entry(agent.id.clone())
            .or_insert_with(|| AgentLive {
                name: agent.name.clone(),
                status: Presence::Online,
                links: Vec::new(),
                grace: None,
            });
        if let Some(grace) = live.grace.take() {
            grace.cancel();
        }
        let first = !live.connected();
        let status = live.status;
        if first {
            // The others hear of it; the new console learns everyone's status from `hello`.
            let frame: Arc<str> = frames::presence(&agent.id, &agent.name, Some(status)).into();
            broadcast(&queue, &frame);
        }
        let live = queue.agents.get_mut(&agent.id).expect("inserted above");
        live.links.push(AgentLink {
            id,
            frames: frames_tx,
            lagged: lagged.clone(),
        });
        self.refresh(&shop.id, &desk, &queue);
        drop(queue);
        (id, inbox, lagged)
    }

    /// Sends a newly attached console its `hello`, every queued case and the cases it holds.
    pub async fn welcome_agent(&self, shop: &Shop, agent: &AgentAccount, link: u64) {
        let desk = self.shop_desk(&shop.id);
        let (hello, cases) = {
            let queue = Self::lock(&desk);
            let status = queue
                .agents
                .get(&agent.id)
                .map_or(Presence::Online, |a| a.status);
            let agents: Vec<serde_json::Value> = shop
                .staff
                .agents
                .iter()
                .map(|a| {
                    let live = queue.agents.get(&a.id).filter(|l| l.connected());
                    serde_json::json!({
                        "id": a.id,
                        "name": a.name,
                        "status": live.map_or("offline", |l| l.status.as_str()),
                    })
                })
                .collect();
            let hello = serde_json::json!({
                "type": "hello",
                "agent": {"id": agent.id, "name": agent.name},
                "shop": &*shop.id,
                "shop_name": shop.name,
                "status": status.as_str(),
                "agents": agents,
            });
            let mut cases: Vec<Handoff> = queue.queued().map(|c| c.handoff.clone()).collect();
            cases.extend(queue.claimed_by(&agent.id).map(|c| c.handoff.clone()));
            (hello.to_string(), cases)
        };
        self.send_to_link(&desk, &agent.id, link, hello.into());
        for handoff in cases {
            let Ok(frame) = self.handoff_frame(&handoff).await else {
                continue;
            };
            let queue = Self::lock(&desk);
            let current = queue.standing(&handoff.id);
            let still_relevant = match current {
                Some(Standing::Queued { .. }) => handoff.status == HandoffStatus::Queued,
                Some(Standing::Claimed { agent: holder }) => {
                    holder == agent.id && handoff.status == HandoffStatus::Claimed
                }
                None => false,
            };
            if still_relevant {
                drop(queue);
                self.send_to_link(&desk, &agent.id, link, frame);
            }
        }
    }

    fn send_to_link(&self, desk: &ShopDesk, agent: &str, link: u64, frame: Arc<str>) {
        let queue = Self::lock(desk);
        if let Some(live) = queue.agents.get(agent)
            && let Some(l) = live.links.iter().find(|l| l.id == link)
        {
            l.send(&frame);
        }
    }

    /// A console closed. When it was the agent's last, the agent is offline, and the cases
    /// they hold return to the queue unless they are back within the grace period.
    pub fn detach_agent(self: &Arc<Self>, shop: &Arc<Shop>, agent: &str, link: u64) {
        let desk = self.shop_desk(&shop.id);
        let mut queue = Self::lock(&desk);
        let Some(live) = queue.agents.get_mut(agent) else {
            return;
        };
        live.links.retain(|l| l.id != link);
        if live.connected() {
            return;
        }
        let frame: Arc<str> = frames::presence(agent, &live.name.clone(), None).into();
        broadcast(&queue, &frame);
        self.refresh(&shop.id, &desk, &queue);
        if queue.holds_anything(agent) {
            self.start_grace(shop, &mut queue, agent);
        }
        self.tell_positions(shop, &desk, &mut queue);
    }

    fn start_grace(self: &Arc<Self>, shop: &Arc<Shop>, queue: &mut ShopQueue, agent: &str) {
        let token = CancellationToken::new();
        let live = queue
            .agents
            .entry(agent.to_string())
            .or_insert_with(|| AgentLive {
                name: shop
                    .staff
                    .agent(agent)
                    .map_or_else(|| agent.to_string(), |a| a.name.clone()),
                status: Presence::Online,
                links: Vec::new(),
                grace: None,
            });
        if let Some(old) = live.grace.replace(token.clone()) {
            old.cancel();
        }
        let desk = self.clone();
        let (shop, agent) = (shop.clone(), agent.to_string());
        tokio::spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = tokio::time::sleep(shop.staff.grace) => desk.requeue_agent(&shop, &agent).await,
            }
        });
    }

    /// The grace period ran out: the agent's cases go back to the queue and everyone hears.
    async fn requeue_agent(&self, shop: &Shop, agent: &str) {
        let shop_id = &*shop.id;
        let desk = self.shop_desk(shop_id);
        {
            let queue = Self::lock(&desk);
            if queue.agents.get(agent).is_some_and(AgentLive::connected) {
                return;
            }
        }
        let requeued = match self.store.requeue(shop_id, agent).await {
            Ok(requeued) => requeued,
            Err(e) => {
                tracing::error!(error = %e, agent, "cannot return an agent's cases to the queue");
                return;
            }
        };
        tracing::info!(
            agent,
            cases = requeued.len(),
            "returned an absent agent's cases to the queue"
        );
        {
            let mut queue = Self::lock(&desk);
            queue.requeue(requeued.clone());
            if let Some(live) = queue.agents.get_mut(agent) {
                live.grace = None;
            }
            self.refresh(shop_id, &desk, &queue);
        }
        for handoff in &requeued {
            if let Ok(frame) = self.handoff_frame(handoff).await {
                let queue = Self::lock(&desk);
                if queue.is_queued(&handoff.id) {
                    broadcast(&queue, &frame);
                }
            }
        }
        let mut queue = Self::lock(&desk);
        self.tell_positions(shop, &desk, &mut queue);
    }

    pub fn set_presence(&self, shop: &Shop, agent: &str, status: Presence) {
        let desk = self.shop_desk(&shop.id);
        let mut queue = Self::lock(&desk);
        let Some(live) = queue.agents.get_mut(agent) else {
            return;
        };
        live.status = status;
        let frame: Arc<str> = frames::presence(agent, &live.name.clone(), Some(status)).into();
        broadcast(&queue, &frame);
        self.refresh(&shop.id, &desk, &queue);
        self.tell_positions(shop, &desk, &mut queue);
    }

    pub async fn claim(
        &self,
        shop: &Shop,
        agent: &AgentAccount,
        handoff: &str,
    ) -> Result<(), DeskError> {
        let now = self.clock.now();
        let known = {
            let desk = self.shop_desk(&shop.id);
            let queue = Self::lock(&desk);
            queue.standing(handoff).is_some()
        };
        if !known {
            return Err(DeskError::NotFound(format!(
                "no open case {handoff} in this shop"
            )));
        }
        let events = webhook::events_for(shop, "handoff.claimed", now, |body| {
            body["handoff"] = serde_json::json!({"id": handoff});
            body["agent"] = serde_json::json!({"id": agent.id, "name": agent.name});
        });
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
        // Only a case open in this agent's own shop: ids are not secrets between shops.
        let known = {
            let desk = self.shop_desk(&shop.id);
            let queue = Self::lock(&desk);
            queue.standing(handoff).is_some()
        };
        if !known {
            return Err(DeskError::NotFound(format!(
                "no open case {handoff} in this shop"
            )));
        }
        let events = webhook::events_for(shop, "handoff.resolved", now, |body| {
            body["handoff"] = serde_json::json!({"id": handoff});
            body["agent"] = serde_json::json!({"id": agent.id, "name": agent.name});
        });
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

    /// Per shop: queued cases and seconds the oldest has waited, for `/metrics`.
    pub fn queue_gauges(&self) -> Vec<(String, usize, f64)> {
        let now = self.clock.now();
        self.shops
            .iter()
            .map(|entry| {
                let queue = Self::lock(entry.value());
                let wait = queue
                    .oldest()
                    .map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0));
                (entry.key().clone(), queue.queue_len(), wait)
            })
            .collect()
    }

    /// Queue length and longest wait of one shop.
    pub fn queue_summary(&self, shop: &str) -> (usize, f64, usize) {
        let now = self.clock.now();
        let desk = self.shop_desk(shop);
        let queue = Self::lock(&desk);
        let wait = queue
            .oldest()
            .map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0));
        (queue.queue_len(), wait, queue.presence_counts().0)
    }

    /// Updates the lock-free counts and gauges after a change.
    fn refresh(&self, shop: &str, desk: &ShopDesk, queue: &ShopQueue) {
        let (present, available) = queue.presence_counts();
        desk.present.store(present, Ordering::Relaxed);
        desk.available.store(available, Ordering::Relaxed);
        desk.queued.store(queue.queue_len(), Ordering::Relaxed);
        self.metrics
            .queue_length
            .with_label_values(&[shop])
            .set(queue.queue_len() as i64);
        self.metrics
            .agents_online
            .with_label_values(&[shop])
            .set(present as i64);
    }

    /// Tells each queued buyer whose place changed where they are now.
    fn tell_positions(&self, shop: &Shop, desk: &ShopDesk, queue: &mut ShopQueue) {
        for (conversation, ahead) in queue.changed_places() {
            self.push_buyer(&conversation, BuyerPush::Queued(notice(shop, desk, ahead)));
        }
    }
}

/// A buyer's place and a rough wait: the cases up to theirs, shared among the agents taking
/// cases, times how long a case takes (learned from resolved cases, else the shop's guess).
fn notice(shop: &Shop, desk: &ShopDesk, ahead: usize) -> QueueNotice {
    let available = desk.available.load(Ordering::Relaxed);
    let learned = desk.handle_ms.load(Ordering::Relaxed);
    let handle = if learned > 0 {
        learned as f64 / 1000.0
    } else {
        shop.staff.handle_time.as_secs_f64()
    };
    let wait_seconds = (available > 0).then(|| {
        let rounds = (ahead + 1) as f64 / available as f64;
        (rounds * handle).round() as u64
    });
    QueueNotice {
        ahead,
        wait_seconds,
    }
}

/// Moves the learned case length a fifth of the way towards a case just resolved.
fn learn_handle_time(desk: &ShopDesk, took: Duration) {
    let took = took.as_millis().clamp(1, u128::from(u32::MAX)) as u64;
    let old = desk.handle_ms.load(Ordering::Relaxed);
    let new = if old == 0 { took } else { (old * 4 + took) / 5 };
    desk.handle_ms.store(new, Ordering::Relaxed);
}

fn send_links(links: &[AgentLink], frame: &Arc<str>) {
    for link in links {
        link.send(frame);
    }
}

fn broadcast(queue: &ShopQueue, frame: &Arc<str>) {
    for link in queue.all_links() {
        link.send(frame);
    }
}

/// How long to wait before checking escalations again.
pub const ESCALATION_CHECK: Duration = Duration::from_secs(1);
