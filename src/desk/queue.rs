//! One shop's live human side, in memory: the queue in order, the claimed cases, and the
//! agents with their presence and open consoles. The store holds the truth; this mirror
//! answers "who is ahead of me" and "who must hear of this" without a database round trip.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::AgentPush;
use crate::intents::HandoffPriority;
use crate::store::{Handoff, HandoffStatus};

/// An agent's chosen status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Taking cases.
    Online,
    /// At the desk but not taking new cases.
    Busy,
    /// Logged in, not at the desk.
    Away,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Online => "online",
            Presence::Busy => "busy",
            Presence::Away => "away",
        }
    }

    pub fn parse(text: &str) -> Option<Presence> {
        match text {
            "online" => Some(Presence::Online),
            "busy" => Some(Presence::Busy),
            "away" => Some(Presence::Away),
            _ => None,
        }
    }
}

/// One open console of an agent.
pub struct AgentLink {
    pub id: u64,
    pub pushes: mpsc::Sender<Arc<AgentPush>>,
    /// Cancelled when a frame could not be queued: the console must reconnect.
    pub lagged: CancellationToken,
}

impl AgentLink {
    /// Queues a frame without waiting; a console too far behind is told to reconnect rather
    /// than making the whole shop wait for it.
    pub fn send(&self, push: &Arc<AgentPush>) {
        if self.pushes.try_send(push.clone()).is_err() {
            self.lagged.cancel();
        }
    }
}

pub struct AgentLive {
    pub name: String,
    pub status: Presence,
    /// Counts changes of `status` across the nodes: the highest count is the latest choice.
    pub status_version: u64,
    /// This node's open consoles of the agent.
    pub links: Vec<AgentLink>,
    /// Consoles open on other nodes sharing the store, by node.
    pub elsewhere: HashMap<String, usize>,
    /// Cancels the timer that returns this agent's cases to the queue.
    pub grace: Option<CancellationToken>,
}

impl AgentLive {
    pub fn new(name: String) -> AgentLive {
        AgentLive {
            name,
            status: Presence::Online,
            status_version: 0,
            links: Vec::new(),
            elsewhere: HashMap::new(),
            grace: None,
        }
    }

    /// A console of the agent is open here or on another node.
    pub fn connected(&self) -> bool {
        !self.links.is_empty() || self.elsewhere.values().any(|&consoles| consoles > 0)
    }

    /// What the agent's colleagues are shown: their status, or offline.
    pub fn shown_status(&self) -> Option<Presence> {
        self.connected().then_some(self.status)
    }
}

/// A case as the queue keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub handoff: Handoff,
    /// The `ahead` the buyer was last told, to tell only changes.
    pub told_ahead: Option<usize>,
    /// When an agent took it (by this process), to learn how long a case takes.
    pub claimed_at: Option<DateTime<Utc>>,
}

/// An open case and who holds it, as one comparable string.
pub fn case_key(id: &str, holder: Option<&str>) -> String {
    match holder {
        Some(agent) => format!("{id} claimed {agent}"),
        None => format!("{id} queued"),
    }
}

type Key = (u8, DateTime<Utc>, String);

/// A place in the queue's order: the page of queued cases a console asks for starts after
/// it. It names the last case of the previous page by its order (priority, age, id), not by
/// its id alone, so a case claimed or resolved meanwhile does not lose the console its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCursor(Key);

impl QueueCursor {
    pub fn after(handoff: &Handoff) -> QueueCursor {
        QueueCursor(key(handoff))
    }

    /// The cursor as clients carry it: `<rank>.<created, µs since the epoch>.<case id>`.
    pub fn token(&self) -> String {
        let (rank, created_at, id) = &self.0;
        format!("{rank}.{}.{id}", created_at.timestamp_micros())
    }

    /// Reads a cursor written by [`QueueCursor::token`]; `None` when it is not one.
    pub fn parse(token: &str) -> Option<QueueCursor> {
        let mut parts = token.splitn(3, '.');
        let rank: u8 = parts.next()?.parse().ok()?;
        let micros: i64 = parts.next()?.parse().ok()?;
        let id = parts.next()?;
        if rank > 1 || id.is_empty() {
            return None;
        }
        let created_at = DateTime::from_timestamp_micros(micros)?;
        Some(QueueCursor((rank, created_at, id.to_string())))
    }
}

fn key(handoff: &Handoff) -> Key {
    let rank = match handoff.priority {
        HandoffPriority::High => 0,
        HandoffPriority::Normal => 1,
    };
    (rank, handoff.created_at, handoff.id.clone())
}

#[derive(Default)]
pub struct ShopQueue {
    /// Queued cases: high priority first, then oldest first.
    order: BTreeSet<Key>,
    queued: HashMap<String, Case>,
    /// Claimed cases and the agent holding each.
    claimed: HashMap<String, (Case, String)>,
    /// The open case of each conversation.
    by_conversation: HashMap<String, String>,
    pub agents: HashMap<String, AgentLive>,
}

/// Where an open case stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Queued { ahead: usize },
    Claimed { agent: String },
}

impl ShopQueue {
    pub fn enqueue(&mut self, handoff: Handoff) {
        self.by_conversation
            .insert(handoff.conversation.clone(), handoff.id.clone());
        self.order.insert(key(&handoff));
        self.queued.insert(
            handoff.id.clone(),
            Case {
                handoff,
                told_ahead: None,
                claimed_at: None,
            },
        );
    }

    pub fn hold(&mut self, handoff: Handoff, agent: String) {
        self.by_conversation
            .insert(handoff.conversation.clone(), handoff.id.clone());
        self.claimed.insert(
            handoff.id.clone(),
            (
                Case {
                    handoff,
                    told_ahead: None,
                    claimed_at: None,
                },
                agent,
            ),
        );
    }

    /// Moves a queued case to `agent`.
    pub fn claim(&mut self, id: &str, agent: &str, at: DateTime<Utc>) -> Option<&Case> {
        let mut case = self.queued.remove(id)?;
        case.claimed_at = Some(at);
        self.order.remove(&key(&case.handoff));
        case.handoff.status = HandoffStatus::Claimed;
        case.handoff.claimed_by = Some(agent.to_string());
        self.claimed
            .insert(id.to_string(), (case, agent.to_string()));
        self.claimed.get(id).map(|(case, _)| case)
    }

    /// Records that `agent` holds a case, whether this view had it queued, held by someone
    /// else, or not at all (a claim heard from another node).
    pub fn set_claimed(&mut self, mut handoff: Handoff, agent: &str, at: DateTime<Utc>) {
        if self.claim(&handoff.id, agent, at).is_some() {
            return;
        }
        handoff.status = HandoffStatus::Claimed;
        handoff.claimed_by = Some(agent.to_string());
        let id = handoff.id.clone();
        self.hold(handoff, agent.to_string());
        if let Some((case, _)) = self.claimed.get_mut(&id) {
            case.claimed_at = Some(at);
        }
    }

    /// Takes an open case as the store has it: held by its agent when claimed, else queued.
    pub fn insert(&mut self, handoff: Handoff) {
        match (handoff.status, handoff.claimed_by.clone()) {
            (HandoffStatus::Claimed, Some(agent)) => self.hold(handoff, agent),
            _ => self.enqueue(handoff),
        }
    }

    /// Replaces every case with the store's open ones, keeping the agents: the view is
    /// rebuilt after notices from other nodes may have been missed.
    pub fn replace_cases(&mut self, open: Vec<Handoff>) {
        self.order.clear();
        self.queued.clear();
        self.claimed.clear();
        self.by_conversation.clear();
        for handoff in open {
            self.insert(handoff);
        }
    }

    /// Every open case as a key (`case_key`), to compare the view with the store.
    pub fn case_keys(&self) -> impl Iterator<Item = String> + '_ {
        let queued = self.queued.keys().map(|id| case_key(id, None));
        let claimed = self
            .claimed
            .iter()
            .map(|(id, (_, agent))| case_key(id, Some(agent)));
        queued.chain(claimed)
    }

    /// Agents holding cases who have no console open anywhere.
    pub fn absent_holders(&self) -> Vec<String> {
        let mut absent: Vec<String> = self
            .claimed
            .values()
            .map(|(_, agent)| agent)
            .filter(|agent| !self.agents.get(*agent).is_some_and(AgentLive::connected))
            .cloned()
            .collect();
        absent.sort();
        absent.dedup();
        absent
    }

    /// Forgets a case (resolved), queued or claimed.
    pub fn close(&mut self, id: &str) -> Option<Case> {
        let case = if let Some(case) = self.queued.remove(id) {
            self.order.remove(&key(&case.handoff));
            case
        } else {
            self.claimed.remove(id)?.0
        };
        if self
            .by_conversation
            .get(&case.handoff.conversation)
            .map(String::as_str)
            == Some(id)
        {
            self.by_conversation.remove(&case.handoff.conversation);
        }
        Some(case)
    }

    /// Puts cases back in the queue (their agent left).
    pub fn requeue(&mut self, handoffs: Vec<Handoff>) {
        for handoff in handoffs {
            self.claimed.remove(&handoff.id);
            self.enqueue(handoff);
        }
    }

    pub fn mark_escalated(&mut self, id: &str) {
        if let Some(case) = self.queued.get_mut(id) {
            case.handoff.escalated = true;
        }
    }

    pub fn standing(&self, id: &str) -> Option<Standing> {
        if let Some((_, agent)) = self.claimed.get(id) {
            return Some(Standing::Claimed {
                agent: agent.clone(),
            });
        }
        let case = self.queued.get(id)?;
        let ahead = self.order.range(..key(&case.handoff)).count();
        Some(Standing::Queued { ahead })
    }

    pub fn open_case_of(&self, conversation: &str) -> Option<&str> {
        self.by_conversation.get(conversation).map(String::as_str)
    }

    pub fn queued(&self) -> impl Iterator<Item = &Case> {
        self.order
            .iter()
            .filter_map(|(_, _, id)| self.queued.get(id))
    }

    /// Up to `limit` queued cases in order, starting after `after` (from the top without
    /// one). Costs the page, not the queue.
    pub fn queued_page(&self, after: Option<&QueueCursor>, limit: usize) -> Vec<Handoff> {
        use std::ops::Bound;
        let start = match after {
            Some(cursor) => Bound::Excluded(&cursor.0),
            None => Bound::Unbounded,
        };
        self.order
            .range((start, Bound::Unbounded))
            .filter_map(|(_, _, id)| self.queued.get(id))
            .take(limit)
            .map(|case| case.handoff.clone())
            .collect()
    }

    /// Records that the buyer of `id` was told `ahead`; false when they already knew.
    pub fn tell(&mut self, id: &str, ahead: usize) -> bool {
        match self.queued.get_mut(id) {
            Some(case) if case.told_ahead != Some(ahead) => {
                case.told_ahead = Some(ahead);
                true
            }
            _ => false,
        }
    }

    /// Records every queued case's current place; returns the conversations whose place
    /// changed since their buyer was last told, with the new place. One pass, no allocation
    /// for cases that did not move.
    pub fn changed_places(&mut self) -> Vec<(String, usize)> {
        let mut changed = Vec::new();
        for (ahead, (_, _, id)) in self.order.iter().enumerate() {
            if let Some(case) = self.queued.get_mut(id)
                && case.told_ahead != Some(ahead)
            {
                case.told_ahead = Some(ahead);
                changed.push((case.handoff.conversation.clone(), ahead));
            }
        }
        changed
    }

    /// Marks the first agent reply of a claimed case; true the first time.
    pub fn first_reply(&mut self, id: &str) -> bool {
        match self.claimed.get_mut(id) {
            Some((case, _)) if case.told_ahead != Some(usize::MAX) => {
                // A claimed case has no place to tell; the slot remembers the first reply.
                case.told_ahead = Some(usize::MAX);
                true
            }
            _ => false,
        }
    }

    pub fn is_queued(&self, id: &str) -> bool {
        self.queued.contains_key(id)
    }

    pub fn claimed_case(&self, id: &str) -> Option<(&Case, &str)> {
        self.claimed.get(id).map(|(c, a)| (c, a.as_str()))
    }

    pub fn claimed_by<'a>(&'a self, agent: &'a str) -> impl Iterator<Item = &'a Case> + 'a {
        self.claimed
            .values()
            .filter(move |(_, a)| a == agent)
            .map(|(c, _)| c)
    }

    pub fn holds_anything(&self, agent: &str) -> bool {
        self.claimed.values().any(|(_, a)| a == agent)
    }

    pub fn queue_len(&self) -> usize {
        self.queued.len()
    }

    /// The longest-waiting queued case's creation time: the first of each priority in the
    /// order, so a scrape of `/metrics` costs the same however long the queue.
    pub fn oldest(&self) -> Option<DateTime<Utc>> {
        let first_high = self.order.first().map(|(_, at, _)| *at);
        let normal_start = (1, DateTime::<Utc>::MIN_UTC, String::new());
        let first_normal = self
            .order
            .range(normal_start..)
            .next()
            .map(|(_, at, _)| *at);
        first_high.into_iter().chain(first_normal).min()
    }

    /// Agents at the desk (online or busy), and those taking cases (online).
    pub fn presence_counts(&self) -> (usize, usize) {
        let present = self
            .agents
            .values()
            .filter(|a| a.connected() && a.status != Presence::Away)
            .count();
        let available = self
            .agents
            .values()
            .filter(|a| a.connected() && a.status == Presence::Online)
            .count();
        (present, available)
    }

    /// Every open console of the shop.
    pub fn all_links(&self) -> impl Iterator<Item = &AgentLink> {
        self.agents.values().flat_map(|a| a.links.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff(id: &str, priority: HandoffPriority, minute: u32) -> Handoff {
        Handoff {
            id: id.into(),
            shop: "s".into(),
            conversation: format!("c-{id}"),
            buyer: format!("b-{id}"),
            intent: "x".into(),
            priority,
            status: HandoffStatus::Queued,
            created_at: DateTime::parse_from_rfc3339(&format!("2026-11-11T00:{minute:02}:00Z"))
                .unwrap()
                .to_utc(),
            claimed_by: None,
            escalated: false,
            requeued: false,
        }
    }

    fn ahead(queue: &ShopQueue, id: &str) -> usize {
        match queue.standing(id) {
            Some(Standing::Queued { ahead }) => ahead,
            other => panic!("{id} is {other:?}"),
        }
    }

    #[test]
    fn high_priority_goes_first_then_the_oldest() {
        let mut queue = ShopQueue::default();
        queue.enqueue(handoff("old", HandoffPriority::Normal, 1));
        queue.enqueue(handoff("new", HandoffPriority::Normal, 5));
        queue.enqueue(handoff("angry", HandoffPriority::High, 9));
        let order: Vec<&str> = queue.queued().map(|c| c.handoff.id.as_str()).collect();
        assert_eq!(order, ["angry", "old", "new"]);
        assert_eq!(ahead(&queue, "new"), 2);

        queue.claim("angry", "mei", Utc::now()).unwrap();
        assert_eq!(ahead(&queue, "new"), 1);
        assert_eq!(
            queue.standing("angry"),
            Some(Standing::Claimed {
                agent: "mei".into()
            })
        );
        assert!(
            queue.claim("angry", "lan", Utc::now()).is_none(),
            "claimed once only"
        );

        let back = queue.close("angry").unwrap().handoff;
        queue.requeue(vec![back]);
        assert_eq!(ahead(&queue, "new"), 2, "a requeued case keeps its place");
        assert_eq!(queue.open_case_of("c-old"), Some("old"));
        queue.close("old");
        assert_eq!(queue.open_case_of("c-old"), None);
        assert_eq!(queue.queue_len(), 2);
    }

    #[test]
    fn pages_follow_the_order_and_survive_a_claim_of_their_last_case() {
        let mut queue = ShopQueue::default();
        for (minute, id) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            queue.enqueue(handoff(id, HandoffPriority::Normal, minute as u32));
        }
        let ids = |page: &[Handoff]| page.iter().map(|h| h.id.clone()).collect::<Vec<_>>();
        let first = queue.queued_page(None, 2);
        assert_eq!(ids(&first), ["a", "b"]);
        let cursor = QueueCursor::after(first.last().unwrap());
        let token = cursor.token();
        assert_eq!(QueueCursor::parse(&token), Some(cursor.clone()));
        queue.claim("b", "mei", Utc::now());
        let second = queue.queued_page(QueueCursor::parse(&token).as_ref(), 2);
        assert_eq!(ids(&second), ["c", "d"]);
        for bad in [
            "",
            "x",
            "2.0.a",
            "1.x.a",
            "1.0.",
            "0.99999999999999999999.a",
        ] {
            assert_eq!(QueueCursor::parse(bad), None, "{bad}");
        }
    }
}
