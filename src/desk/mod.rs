//! The human side of the service: the live queue of handoffs per shop, agents' presence and
//! consoles, and the links to buyers' connections that agent replies and queue updates reach.
//!
//! The store is the truth (a claim is one conditional UPDATE, so a race has one winner); the
//! desk mirrors the open cases in memory so that positions, staffing and fan-out need no
//! database round trip. Each shop has its own short mutex, never held across an await; the
//! buyer message path reads only atomics (`staffing`).

mod agents;
mod buyers;
mod cases;
mod cluster;
pub mod intake;
mod pushes;
pub mod queue;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tokio::sync::{Notify, mpsc};

use crate::clock::SharedClock;
use crate::shop::{Catalog, Shop};
use crate::staffing::Staffing;
use crate::store::{Handoff, Store, StoreError};
use crate::telemetry::Metrics;
pub use agents::Console;
pub use buyers::Pushes;
pub use cluster::CatalogNow;
use intake::{Bucket, Intake, IntakeLimits, Refusal};
pub use pushes::{AgentPush, AgentStatus, BuyerPush, TRANSCRIPT_LINES};
use queue::{AgentLink, ShopQueue};
pub use queue::{Presence, QueueCursor, Standing};

/// Frames waiting for one agent console; one that falls this far behind is disconnected and
/// rebuilds its view when it reconnects.
const AGENT_INBOX: usize = 4096;
/// Queued cases a console is sent on connect, and per page when it asks for more: however
/// long the queue, a console's welcome is a few dozen frames.
pub const QUEUE_PAGE: usize = 50;
/// The most queued cases one page may hold when a console names its own page size.
pub const MAX_QUEUE_PAGE: usize = 200;
/// Pushes waiting for one buyer connection.
const BUYER_INBOX: usize = 64;

/// A queued buyer's place, and a rough wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueNotice {
    pub ahead: usize,
    /// None while no agent is taking cases.
    pub wait_seconds: Option<u64>,
}

/// A shop's queue at a glance.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSummary {
    pub shop: String,
    /// Cases waiting for an agent.
    pub queued: usize,
    /// How long the oldest of them has waited.
    pub longest_wait_seconds: f64,
    /// Agents at the desk (online or busy).
    pub agents_online: usize,
}

impl QueueSummary {
    fn of(shop: &str, queue: &ShopQueue, now: DateTime<Utc>) -> QueueSummary {
        let longest_wait_seconds = queue
            .oldest()
            .map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0));
        QueueSummary {
            shop: shop.to_string(),
            queued: queue.queue_len(),
            longest_wait_seconds,
            agents_online: queue.presence_counts().0,
        }
    }
}

/// Why an agent's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// The request itself is malformed (a cursor the service never gave out).
    #[error("{0}")]
    BadRequest(String),
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
    /// How many new cases the shop may still take at once (`intake`).
    intake: Mutex<Bucket>,
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
    /// Woken when this node's agents' consoles or statuses change, so the other nodes hear at
    /// once rather than at the next heartbeat.
    presence_changed: Notify,
    /// When each other node sharing the store was last heard from.
    nodes: Mutex<HashMap<String, tokio::time::Instant>>,
    /// How fast new cases may be opened, per address and per shop.
    intake: Intake,
}

impl Desk {
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        metrics: Metrics,
        intake: IntakeLimits,
    ) -> Arc<Desk> {
        Arc::new(Desk {
            store,
            clock,
            metrics,
            shops: DashMap::new(),
            buyers: DashMap::new(),
            next_link: AtomicU64::new(1),
            outbox: Arc::new(Notify::new()),
            presence_changed: Notify::new(),
            nodes: Mutex::new(HashMap::new()),
            intake: Intake::new(intake),
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
                    intake: self.intake.shop_bucket(),
                })
            })
            .clone()
    }

    fn lock(desk: &ShopDesk) -> MutexGuard<'_, ShopQueue> {
        desk.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the open cases after a start (or a crash). Cases held by agents who are not
    /// connected, which after a start is all of them, return to the queue after the grace
    /// period unless their agent comes back (to this node or another).
    pub async fn restore(self: &Arc<Self>, catalog: &Catalog) -> Result<(), StoreError> {
        let open = self.store.open_handoffs(None).await?;
        self.replace_cases(catalog, open);
        Ok(())
    }

    /// Makes the live view of every shop the store's open cases, keeping agents and their
    /// consoles, and starts the grace period of each holder who is connected nowhere.
    fn replace_cases(self: &Arc<Self>, catalog: &Catalog, open: Vec<Handoff>) {
        let mut by_shop: HashMap<String, Vec<Handoff>> = HashMap::new();
        for handoff in open {
            by_shop
                .entry(handoff.shop.clone())
                .or_default()
                .push(handoff);
        }
        for shop_id in self.shop_ids_and(by_shop.keys()) {
            let desk = self.shop_desk(&shop_id);
            let mut queue = Self::lock(&desk);
            queue.replace_cases(by_shop.remove(&shop_id).unwrap_or_default());
            self.refresh(&shop_id, &desk, &queue);
            let Some(shop) = catalog.get(&shop_id) else {
                continue;
            };
            self.start_absent_graces(shop, &mut queue);
            self.tell_positions(shop, &desk, &mut queue);
        }
    }

    /// The shops this desk has a view of, and `others`, each once.
    fn shop_ids_and<'a>(&self, others: impl Iterator<Item = &'a String>) -> Vec<String> {
        let mut shops: Vec<String> = self.shops.iter().map(|e| e.key().clone()).collect();
        shops.extend(others.cloned());
        shops.sort();
        shops.dedup();
        shops
    }

    /// Starts the grace period of each agent who holds cases, is connected nowhere, and has
    /// none running yet.
    fn start_absent_graces(self: &Arc<Self>, shop: &Arc<Shop>, queue: &mut ShopQueue) {
        for agent in queue.absent_holders() {
            let waiting = queue.agents.get(&agent).is_some_and(|a| a.grace.is_some());
            if !waiting {
                self.start_grace(shop, queue, &agent);
            }
        }
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

    /// Whether a buyer at `address` may open a new case in `shop` now; a refusal is counted
    /// in `/metrics`, so a flood shows there.
    pub fn admit_handoff(&self, shop: &Shop, address: std::net::IpAddr) -> Result<(), Refusal> {
        let desk = self.shop_desk(&shop.id);
        let admitted = self.intake.admit(address, &desk.intake);
        if let Err(refusal) = admitted {
            self.metrics
                .handoffs_refused
                .with_label_values(&[&*shop.id, refusal.as_str()])
                .inc();
        }
        admitted
    }

    /// Where the open case of a conversation stands, if it has one.
    pub fn standing(&self, shop: &Shop, conversation: &str) -> Option<Standing> {
        let desk = self.shop_desk(&shop.id);
        let queue = Self::lock(&desk);
        let id = queue.open_case_of(conversation)?;
        queue.standing(id)
    }

    /// Where the open case `handoff` of a conversation stands. A case the store has but this
    /// node's view does not know yet (another node created it a moment ago) is taken into
    /// the view; `None` when the store has it closed.
    pub async fn open_case(
        &self,
        shop: &Shop,
        conversation: &str,
        handoff: &str,
    ) -> Option<Standing> {
        if let Some(standing) = self.standing(shop, conversation) {
            return Some(standing);
        }
        let open = match self.store.open_handoffs(Some(&shop.id)).await {
            Ok(open) => open,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look up a buyer's open case");
                return None;
            }
        };
        let case = open.into_iter().find(|h| h.id == handoff)?;
        let desk = self.shop_desk(&shop.id);
        let mut queue = Self::lock(&desk);
        if queue.standing(&case.id).is_none() {
            queue.insert(case);
            self.refresh(&shop.id, &desk, &queue);
        }
        queue.standing(handoff)
    }

    pub fn notice(&self, shop: &Shop, ahead: usize) -> QueueNotice {
        let desk = self.shop_desk(&shop.id);
        notice(shop, &desk, ahead)
    }

    /// Every shop's queue, for `/metrics`.
    pub fn queue_summaries(&self) -> Vec<QueueSummary> {
        let now = self.clock.now();
        self.shops
            .iter()
            .map(|entry| QueueSummary::of(entry.key(), &Self::lock(entry.value()), now))
            .collect()
    }

    /// One shop's queue, for `/api/stats`.
    pub fn queue_summary(&self, shop: &str) -> QueueSummary {
        let desk = self.shop_desk(shop);
        let queue = Self::lock(&desk);
        QueueSummary::of(shop, &queue, self.clock.now())
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

fn send_links(links: &[AgentLink], frame: &Arc<AgentPush>) {
    for link in links {
        link.send(frame);
    }
}

fn broadcast(queue: &ShopQueue, frame: &Arc<AgentPush>) {
    for link in queue.all_links() {
        link.send(frame);
    }
}
