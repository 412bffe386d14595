//! The desk and agents' consoles: attaching and detaching them, presence, what a console
//! is sent when it connects, and the grace period that returns an absent agent's cases.
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::queue::{AgentLink, AgentLive, ShopQueue};
use super::{
    AGENT_INBOX, AgentPush, AgentStatus, Desk, DeskError, MAX_QUEUE_PAGE, Presence, QUEUE_PAGE,
    QueueCursor, ShopDesk, Standing, broadcast,
};
use crate::shop::Shop;
use crate::shop::staff::AgentAccount;
use crate::store::{Handoff, HandoffStatus};

/// An agent console's registration with the desk.
pub struct Console {
    /// Which link this is, to detach it and to send it its welcome.
    pub link: u64,
    /// What the desk sends the console.
    pub inbox: mpsc::Receiver<Arc<AgentPush>>,
    /// Cancelled if the console fell so far behind that frames were lost: it must then
    /// reconnect to rebuild its view.
    pub lagged: CancellationToken,
}

impl Desk {
    /// Registers an agent console. The caller then sends `welcome_agent`.
    pub fn attach_agent(self: &Arc<Self>, shop: &Shop, agent: &AgentAccount) -> Console {
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        let lagged = CancellationToken::new();
        let (frames_tx, inbox) = mpsc::channel(AGENT_INBOX);
        let desk = self.shop_desk(&shop.id);
        let mut queue = Self::lock(&desk);
        let live = queue
            .agents
            .entry(agent.id.clone())
            .or_insert_with(|| AgentLive::new(agent.name.clone()));
        if let Some(grace) = live.grace.take() {
            grace.cancel();
        }
        let first = !live.connected();
        let status = live.status;
        if first {
            // The others hear of it; the new console learns everyone's status from `hello`.
            let frame = Arc::new(AgentPush::Presence {
                agent: agent.id.clone(),
                name: agent.name.clone(),
                status: Some(status),
            });
            broadcast(&queue, &frame);
        }
        let live = queue.agents.get_mut(&agent.id).expect("inserted above");
        live.links.push(AgentLink {
            id,
            pushes: frames_tx,
            lagged: lagged.clone(),
        });
        self.refresh(&shop.id, &desk, &queue);
        drop(queue);
        self.presence_changed.notify_one();
        Console {
            link: id,
            inbox,
            lagged,
        }
    }

    /// Sends a newly attached console its `hello`, the top page of the queue (not the whole
    /// queue: a flood of cases must not bury a console) and the cases it holds.
    pub async fn welcome_agent(&self, shop: &Shop, agent: &AgentAccount, link: u64) {
        let desk = self.shop_desk(&shop.id);
        let (hello, held) = {
            let queue = Self::lock(&desk);
            let status = queue
                .agents
                .get(&agent.id)
                .map_or(Presence::Online, |a| a.status);
            let agents = shop
                .staff
                .agents
                .iter()
                .map(|a| AgentStatus {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    status: queue
                        .agents
                        .get(&a.id)
                        .filter(|l| l.connected())
                        .map(|l| l.status),
                })
                .collect();
            let hello = AgentPush::Hello {
                agent: agent.id.clone(),
                name: agent.name.clone(),
                shop: shop.id.to_string(),
                shop_name: shop.name.clone(),
                status,
                agents,
            };
            let held: Vec<Handoff> = queue
                .claimed_by(&agent.id)
                .map(|c| c.handoff.clone())
                .collect();
            (hello, held)
        };
        self.send_to_link(&desk, &agent.id, link, Arc::new(hello));
        self.send_cases(&desk, &agent.id, link, held).await;
        self.send_queue_page(shop, &agent.id, link, None, QUEUE_PAGE)
            .await;
    }

    /// Sends a console a page of the queue: up to `limit` queued cases after `after` (from
    /// the top without one), then a `QueuePage` saying where the next page starts.
    pub async fn queue_page(
        &self,
        shop: &Shop,
        agent: &str,
        link: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(), DeskError> {
        let after = match after {
            Some(token) => Some(QueueCursor::parse(token).ok_or_else(|| {
                DeskError::BadRequest("`after` is not a cursor this service gave out".into())
            })?),
            None => None,
        };
        let limit = limit.clamp(1, MAX_QUEUE_PAGE);
        self.send_queue_page(shop, agent, link, after, limit).await;
        Ok(())
    }

    async fn send_queue_page(
        &self,
        shop: &Shop,
        agent: &str,
        link: u64,
        after: Option<QueueCursor>,
        limit: usize,
    ) {
        let desk = self.shop_desk(&shop.id);
        let page = Self::lock(&desk).queued_page(after.as_ref(), limit);
        let next = page.last().map(QueueCursor::after);
        let sent = page.len();
        self.send_cases(&desk, agent, link, page).await;
        let queued = Self::lock(&desk).queue_len();
        // A short page is the end of the queue.
        let next = next.filter(|_| sent == limit).map(|cursor| cursor.token());
        let frame = Arc::new(AgentPush::QueuePage { queued, sent, next });
        self.send_to_link(&desk, agent, link, frame);
    }

    /// Sends a console each case (with its transcript) that is still as it was when listed:
    /// queued, or held by this agent.
    async fn send_cases(&self, desk: &ShopDesk, agent: &str, link: u64, cases: Vec<Handoff>) {
        for handoff in cases {
            let Ok(frame) = self.handoff_frame(&handoff).await else {
                continue;
            };
            let queue = Self::lock(desk);
            let current = queue.standing(&handoff.id);
            let still_relevant = match current {
                Some(Standing::Queued { .. }) => handoff.status == HandoffStatus::Queued,
                Some(Standing::Claimed { agent: holder }) => {
                    holder == agent && handoff.status == HandoffStatus::Claimed
                }
                None => false,
            };
            if still_relevant {
                drop(queue);
                self.send_to_link(desk, agent, link, frame);
            }
        }
    }

    pub(super) fn send_to_link(
        &self,
        desk: &ShopDesk,
        agent: &str,
        link: u64,
        frame: Arc<AgentPush>,
    ) {
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
        self.presence_changed.notify_one();
        if live.connected() {
            return;
        }
        let name = live.name.clone();
        // The grace period starts before anyone hears the agent is offline: whoever saw the
        // presence frame can count on it running.
        if queue.holds_anything(agent) {
            self.start_grace(shop, &mut queue, agent);
        }
        let frame = Arc::new(AgentPush::Presence {
            agent: agent.to_string(),
            name,
            status: None,
        });
        broadcast(&queue, &frame);
        self.refresh(&shop.id, &desk, &queue);
        self.tell_positions(shop, &desk, &mut queue);
    }

    /// Starts (or restarts) `agent`'s grace period: unless cancelled (the agent is back, here
    /// or on another node), their cases return to the queue when it runs out.
    ///
    /// Desk timers (this one, the heartbeat and node timeout in `cluster.rs`) are plain
    /// `tokio::time` timers, each with its deadline fixed when it is armed. Tests move tokio's
    /// clock past a deadline (pause, `advance`, resume: `tests/it/helpers.rs`) instead of
    /// waiting for it, and a timer armed before the jump fires however late its task is first
    /// polled. Not `start_paused`: a test service waits on real sockets, the SQLite writer's
    /// thread and PostgreSQL, and a paused clock jumps to the next timer whenever every task
    /// is idle, so deadlines would pass at random.
    pub(super) fn start_grace(
        self: &Arc<Self>,
        shop: &Arc<Shop>,
        queue: &mut ShopQueue,
        agent: &str,
    ) {
        let token = CancellationToken::new();
        let live = queue
            .agents
            .entry(agent.to_string())
            .or_insert_with(|| AgentLive::new(agent_name(shop, agent)));
        if let Some(old) = live.grace.replace(token.clone()) {
            old.cancel();
        }
        let deadline = tokio::time::Instant::now() + shop.staff.grace;
        let desk = self.clone();
        let (shop, agent) = (shop.clone(), agent.to_string());
        tokio::spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = tokio::time::sleep_until(deadline) => desk.requeue_agent(&shop, &agent).await,
            }
        });
    }

    /// The grace period ran out: the agent's cases go back to the queue and everyone hears.
    pub(super) async fn requeue_agent(&self, shop: &Shop, agent: &str) {
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
        self.requeued(shop, agent, requeued).await;
    }

    /// Cases went back to the queue (here or on another node): the view follows, and every
    /// console hears of them again.
    pub(super) async fn requeued(&self, shop: &Shop, agent: &str, requeued: Vec<Handoff>) {
        let desk = self.shop_desk(&shop.id);
        {
            let mut queue = Self::lock(&desk);
            queue.requeue(requeued.clone());
            if let Some(grace) = queue.agents.get_mut(agent).and_then(|a| a.grace.take()) {
                grace.cancel();
            }
            self.refresh(&shop.id, &desk, &queue);
        }
        for handoff in &requeued {
            self.announce(shop, handoff).await;
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
        live.status_version += 1;
        self.presence_changed.notify_one();
        let frame = Arc::new(AgentPush::Presence {
            agent: agent.to_string(),
            name: live.name.clone(),
            status: Some(status),
        });
        broadcast(&queue, &frame);
        self.refresh(&shop.id, &desk, &queue);
        self.tell_positions(shop, &desk, &mut queue);
    }
}

/// An agent's display name, or their id when the shop's files no longer list them.
pub(super) fn agent_name(shop: &Shop, agent: &str) -> String {
    shop.staff
        .agent(agent)
        .map_or_else(|| agent.to_string(), |a| a.name.clone())
}
