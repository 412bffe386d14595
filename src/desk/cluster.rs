//! The desk across nodes sharing one store: each node's live view follows the changes the
//! others commit, and the nodes tell each other which agents are connected where.
//!
//! - **Changes** (a handoff created, claimed, resolved…) arrive from the store's feed in
//!   commit order and are applied exactly as the node that made them applied them itself:
//!   the queue moves, this node's consoles and buyers' connections hear.
//! - **Presence**: every heartbeat, and at once when it changes, a node sends the whole list
//!   of agents with consoles open on it. A node's list replaces what was known of that node,
//!   so a lost signal is repaired by the next one, and statuses carry a version so the latest
//!   choice wins whichever node it was made on.
//! - **Node loss**: a node not heard from for the node timeout is gone. Its agents' consoles
//!   no longer count, and cases held by agents connected nowhere start the grace period
//!   here, after which they return to the queue (every surviving node may try; the store's
//!   conditional requeue lets one of them do it).
//! - **Gaps**: when notices may have been missed the view is rebuilt from the store, this
//!   node's consoles are asked to reconnect and its buyers' connections re-read what they
//!   should have.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::agents::agent_name;
use super::queue::{AgentLive, case_key};
use super::{AgentPush, BuyerPush, Desk, Presence};
use crate::config::ClusterSettings;
use crate::shop::Catalog;
use crate::store::{Change, Feed};

/// What a node tells the others about itself.
#[derive(Debug, Default, Serialize, Deserialize)]
struct NodeState {
    agents: Vec<AgentHere>,
}

/// An agent with consoles open on the sending node.
#[derive(Debug, Serialize, Deserialize)]
struct AgentHere {
    shop: String,
    agent: String,
    consoles: usize,
    status: String,
    status_version: u64,
}

/// How often a node compares its live view with the store.
const RECONCILE_EVERY: Duration = Duration::from_secs(30);

/// The current catalogue, read at each use so that reloaded rules apply.
pub type CatalogNow = Arc<dyn Fn() -> Arc<Catalog> + Send + Sync>;

impl Desk {
    /// Applies the other nodes' changes and signals until the feed ends or shutdown.
    pub async fn follow(
        self: Arc<Self>,
        mut feed: mpsc::Receiver<Feed>,
        catalog: CatalogNow,
        shutdown: CancellationToken,
    ) {
        loop {
            let item = tokio::select! {
                _ = shutdown.cancelled() => return,
                item = feed.recv() => item,
            };
            match item {
                None => return,
                Some(Feed::Change(change)) => {
                    // The node that wrote its webhook events may die before sending them.
                    self.outbox.notify_one();
                    self.apply(&catalog(), change).await;
                }
                Some(Feed::Signal { node, payload }) => self.heard(&catalog(), &node, &payload),
                Some(Feed::Gap) => self.rebuild(&catalog()).await,
            }
        }
    }

    /// Tells the other nodes this node's agents every heartbeat and on every change, and
    /// notices the nodes that fell silent, until shutdown. The heartbeat, the node timeout
    /// (from when a node was last heard) and the reconcile period are on tokio's clock, which
    /// tests move past them (see `Desk::start_grace`).
    pub async fn keep_in_touch(
        self: Arc<Self>,
        settings: ClusterSettings,
        catalog: CatalogNow,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(settings.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
        reconcile.tick().await;
        let mut suspect = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = self.presence_changed.notified() => {}
                _ = reconcile.tick() => {
                    self.reconcile(&catalog(), &mut suspect).await;
                    continue;
                }
            }
            let state = serde_json::to_string(&self.node_state()).expect("states encode");
            if let Err(e) = self.store.signal(state).await {
                tracing::warn!(error = %e, "cannot tell the other nodes this node's agents");
            }
            self.forget_silent_nodes(&catalog(), settings.node_timeout);
        }
    }

    /// Another node committed `change`: follow it as that node did.
    async fn apply(self: &Arc<Self>, catalog: &Catalog, change: Change) {
        let shop_of = |id: &str| catalog.get(id).cloned();
        let now = self.clock.now();
        match change {
            Change::HandoffCreated { handoff } => {
                if let Some(shop) = shop_of(&handoff.shop) {
                    self.handoff_created(&shop, handoff).await;
                }
            }
            Change::BuyerWrote {
                shop,
                conversation,
                text,
                at,
            } => {
                if let Some(shop) = shop_of(&shop) {
                    self.buyer_wrote(&shop, &conversation, &text, at);
                }
            }
            Change::Claimed { handoff } => {
                if let Some(shop) = shop_of(&handoff.shop) {
                    self.claimed(&shop, &handoff, now).await;
                }
            }
            Change::Resolved { handoff } => {
                if let Some(shop) = shop_of(&handoff.shop) {
                    self.resolved(&shop, &handoff, now);
                }
            }
            Change::Requeued {
                shop,
                agent,
                handoffs,
            } => {
                if let Some(shop) = shop_of(&shop) {
                    self.requeued(&shop, &agent, handoffs).await;
                }
            }
            Change::Escalated { handoff } => {
                if let Some(shop) = shop_of(&handoff.shop) {
                    self.escalated(&shop, &handoff).await;
                }
            }
            Change::AgentWrote {
                conversation,
                seq,
                agent_name,
                text,
                at,
            } => self.push_buyer(
                &conversation,
                BuyerPush::AgentMessage {
                    seq,
                    agent_name,
                    text,
                    at,
                },
            ),
            Change::NoteAdded { conversation, note } => {
                if let Some(shop) = shop_of(&note.shop) {
                    self.noted(&shop, &conversation, &note);
                }
            }
        }
    }

    /// This node's agents with consoles open, for the others.
    fn node_state(&self) -> NodeState {
        let mut state = NodeState::default();
        for entry in self.shops.iter() {
            let queue = Self::lock(entry.value());
            for (id, live) in &queue.agents {
                if live.links.is_empty() {
                    continue;
                }
                state.agents.push(AgentHere {
                    shop: entry.key().clone(),
                    agent: id.clone(),
                    consoles: live.links.len(),
                    status: live.status.as_str().to_string(),
                    status_version: live.status_version,
                });
            }
        }
        state
    }

    /// Another node said which agents are connected to it.
    fn heard(self: &Arc<Self>, catalog: &Catalog, node: &str, payload: &str) {
        let state: NodeState = match serde_json::from_str(payload) {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(error = %e, node, "an unreadable signal from another node");
                return;
            }
        };
        let first = self
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.to_string(), Instant::now())
            .is_none();
        if first {
            // A node just started (or came back): it hears this node's agents now, not at the
            // next heartbeat, before its grace timers for their cases run out.
            tracing::info!(node, "another node shares the store");
            self.presence_changed.notify_one();
        }
        let mut by_shop: HashMap<String, Vec<AgentHere>> = HashMap::new();
        for here in state.agents {
            by_shop.entry(here.shop.clone()).or_default().push(here);
        }
        for shop_id in self.shop_ids_and(by_shop.keys()) {
            let Some(shop) = catalog.get(&shop_id) else {
                continue;
            };
            let here = by_shop.remove(&shop_id).unwrap_or_default();
            self.update_elsewhere(shop, node, &here);
        }
    }

    /// Sets what is known of `node`'s consoles for each agent of `shop` (`here`: the agents
    /// with consoles open there; any other has none), and tells this node's consoles of
    /// every agent whose shown status changed.
    fn update_elsewhere(
        self: &Arc<Self>,
        shop: &Arc<crate::shop::Shop>,
        node: &str,
        here: &[AgentHere],
    ) {
        let desk = self.shop_desk(&shop.id);
        let mut queue = Self::lock(&desk);
        for listed in here {
            queue
                .agents
                .entry(listed.agent.clone())
                .or_insert_with(|| AgentLive::new(agent_name(shop, &listed.agent)));
        }
        let mut changed = Vec::new();
        for (id, live) in queue.agents.iter_mut() {
            let before = live.shown_status();
            match here.iter().find(|h| h.agent == *id) {
                Some(listed) => {
                    live.elsewhere.insert(node.to_string(), listed.consoles);
                    if listed.status_version > live.status_version {
                        live.status = Presence::parse(&listed.status).unwrap_or(Presence::Online);
                        live.status_version = listed.status_version;
                    }
                }
                None => {
                    live.elsewhere.remove(node);
                }
            }
            let after = live.shown_status();
            if after.is_some()
                && let Some(grace) = live.grace.take()
            {
                grace.cancel();
            }
            if before != after {
                changed.push((id.clone(), live.name.clone(), after));
            }
        }
        if changed.is_empty() {
            return;
        }
        // Grace periods start before the consoles hear who went offline (as in `detach_agent`).
        self.start_absent_graces(shop, &mut queue);
        for (id, name, status) in &changed {
            let frame = Arc::new(AgentPush::Presence {
                agent: id.clone(),
                name: name.clone(),
                status: *status,
            });
            super::broadcast(&queue, &frame);
        }
        self.refresh(&shop.id, &desk, &queue);
        self.tell_positions(shop, &desk, &mut queue);
    }

    /// Forgets the nodes not heard from within `timeout`: their consoles no longer count.
    fn forget_silent_nodes(self: &Arc<Self>, catalog: &Catalog, timeout: std::time::Duration) {
        let silent: Vec<String> = {
            let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            let silent: Vec<String> = nodes
                .iter()
                .filter(|(_, heard)| heard.elapsed() > timeout)
                .map(|(node, _)| node.clone())
                .collect();
            for node in &silent {
                nodes.remove(node);
            }
            silent
        };
        for node in silent {
            tracing::warn!(node, "another node fell silent; its agents are offline");
            let shops: Vec<String> = self.shops.iter().map(|e| e.key().clone()).collect();
            for shop_id in shops {
                if let Some(shop) = catalog.get(&shop_id) {
                    self.update_elsewhere(shop, &node, &[]);
                }
            }
        }
    }

    /// Compares the live view with the store's open cases. A difference can be a change
    /// still on its way, so only one seen twice in a row (`suspect` holds the last one)
    /// rebuilds the view.
    async fn reconcile(
        self: &Arc<Self>,
        catalog: &Catalog,
        suspect: &mut Option<BTreeSet<String>>,
    ) {
        let Ok(open) = self.store.open_handoffs(None).await else {
            return;
        };
        let stored: BTreeSet<String> = open
            .iter()
            .map(|h| {
                let claimed = h.status == crate::store::HandoffStatus::Claimed;
                case_key(&h.id, h.claimed_by.as_deref().filter(|_| claimed))
            })
            .collect();
        let mut seen = BTreeSet::new();
        for entry in self.shops.iter() {
            seen.extend(Self::lock(entry.value()).case_keys());
        }
        let differs: BTreeSet<String> = stored.symmetric_difference(&seen).cloned().collect();
        if differs.is_empty() {
            *suspect = None;
        } else if suspect.as_ref() == Some(&differs) {
            tracing::warn!(
                cases = differs.len(),
                "the live queue differs from the store"
            );
            *suspect = None;
            self.rebuild_from(catalog, open);
        } else {
            *suspect = Some(differs);
        }
    }

    /// Notices from other nodes may have been missed: rebuild the view from the store, have
    /// this node's consoles reconnect (they rebuild theirs from what they are sent then), and
    /// have its buyers' connections re-read what they should have.
    async fn rebuild(self: &Arc<Self>, catalog: &Catalog) {
        tracing::warn!("rebuilding the live queue from the store after missed notices");
        match self.store.open_handoffs(None).await {
            Ok(open) => self.rebuild_from(catalog, open),
            Err(e) => tracing::error!(error = %e, "cannot rebuild the live queue"),
        }
    }

    /// Makes the view the store's `open` cases, and has this node's consoles and buyers'
    /// connections catch up.
    fn rebuild_from(self: &Arc<Self>, catalog: &Catalog, open: Vec<crate::store::Handoff>) {
        self.replace_cases(catalog, open);
        for entry in self.shops.iter() {
            let queue = Self::lock(entry.value());
            for link in queue.all_links() {
                link.lagged.cancel();
            }
        }
        let conversations: Vec<String> = self.buyers.iter().map(|e| e.key().clone()).collect();
        for conversation in conversations {
            self.push_buyer(&conversation, BuyerPush::Recheck);
        }
    }
}
