//! One buyer's conversation while they are connected: the steps run against the store and the
//! desk, and what the buyer is to be sent as a result.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::step::{self, Humans, Step};
use crate::desk::{BuyerPush, Desk, Pushes, QueueNotice, Standing};
use crate::reply::Reply;
use crate::responder::{self, CaseNotice};
use crate::shop::Shop;
use crate::store::{BuyerMessage, Conversation, Exchange, Recorded, Store, StoreError};

/// Something the buyer is to be sent, before transport renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToBuyer {
    /// The bot's reply.
    Reply(Reply),
    /// A human agent's message, stored as number `seq`.
    AgentMessage {
        seq: i64,
        agent_name: String,
        text: String,
        at: DateTime<Utc>,
    },
    /// Where the buyer's case stands with the humans.
    Case(CaseUpdate),
    /// The buyer's message could not be stored: it was not answered, and should be sent
    /// again.
    NotSaved,
    /// The message asked for a human, but too many cases were opened lately (from the
    /// buyer's address or in the shop): nothing was stored; it may be sent again later.
    HandoffRefused,
}

/// A change in the buyer's case, with what the buyer reads about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseUpdate {
    Queued { notice: QueueNotice, text: String },
    Claimed { agent_name: String, text: String },
    Resolved,
}

/// Why a buyer's conversation was not opened.
#[derive(Debug)]
pub enum NotOpened {
    /// The store failed.
    Store(StoreError),
    /// The buyer is new to the shop and their address opened too many conversations lately:
    /// nothing was stored.
    TooManyNew,
}

impl From<StoreError> for NotOpened {
    fn from(error: StoreError) -> Self {
        NotOpened::Store(error)
    }
}

/// One live buyer's conversation. Dropping it detaches the buyer from the desk.
pub struct BuyerSession {
    store: Arc<dyn Store>,
    desk: Arc<Desk>,
    conversation: Conversation,
    /// Which desk link this connection is, to detach it.
    link: u64,
    /// Where the buyer connects from, for the desk's limit on new cases per address.
    address: IpAddr,
    /// The highest agent message sent to this buyer, so a repeat push is dropped.
    delivered_up_to: i64,
    /// How long a step the store cannot commit is tried again before the buyer is told.
    store_retry: Duration,
}

/// The first wait before a commit is tried again, doubled after each failure up to
/// [`RETRY_MAX`]: a restarting database is back in a second or two, and a few hundred
/// waiting buyers must not hammer it meanwhile.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_millis(800);

/// A buyer connecting: who, to which shop, from where, and when.
pub struct Arrival<'a> {
    pub shop: &'a str,
    pub buyer: &'a str,
    pub address: IpAddr,
    pub at: DateTime<Utc>,
}

impl BuyerSession {
    /// Opens (or continues) the buyer's conversation and links it to the desk before anything
    /// is read, so no push between now and then is missed. The pushes arrive in the inbox of
    /// the returned [`Pushes`]. A buyer new to the shop is let in only if `may_start` says
    /// so; it is asked before anything is stored. A step the store cannot commit is tried
    /// again for `store_retry`.
    pub async fn open(
        store: Arc<dyn Store>,
        desk: Arc<Desk>,
        arrival: Arrival<'_>,
        store_retry: Duration,
        may_start: impl FnOnce() -> bool,
    ) -> Result<(BuyerSession, Pushes), NotOpened> {
        let Arrival {
            shop,
            buyer,
            address,
            at: now,
        } = arrival;
        let conversation = match store.find_conversation(shop, buyer).await? {
            Some(conversation) => conversation,
            None if may_start() => store.open_conversation(shop, buyer, now).await?,
            None => return Err(NotOpened::TooManyNew),
        };
        let pushes = desk.attach_buyer(&conversation.id);
        let session = BuyerSession {
            store,
            desk,
            conversation,
            link: pushes.link,
            address,
            delivered_up_to: 0,
            store_retry,
        };
        Ok((session, pushes))
    }

    pub fn conversation_id(&self) -> &str {
        &self.conversation.id
    }

    /// What a buyer who just connected is sent: the welcome if one is due, agent messages
    /// written while they were away, and where their case stands.
    pub async fn greet(&mut self, shop: &Shop, now: DateTime<Utc>) -> Vec<ToBuyer> {
        let mut out = Vec::new();
        if let Some(welcome) = step::welcome(shop, &self.conversation, now) {
            self.commit(shop, welcome, &mut out).await;
        }
        self.catch_up(shop, now, &mut out).await;
        out
    }

    /// Runs a buyer's message: stored, then answered by the bot or passed to the agents.
    pub async fn buyer_wrote(
        &mut self,
        shop: &Shop,
        message: BuyerMessage,
        now: DateTime<Utc>,
    ) -> Vec<ToBuyer> {
        let humans = match &self.conversation.state.open_handoff {
            Some(handoff) => {
                let open = self
                    .desk
                    .open_case(shop, &self.conversation.id, handoff)
                    .await;
                open.map_or_else(|| Humans::Bot(self.desk.staffing(shop)), |_| Humans::Case)
            }
            None => Humans::Bot(self.desk.staffing(shop)),
        };
        let step = step::buyer_wrote(shop, &self.conversation, message, humans, now);
        if step.after.handoff.is_some()
            && let Err(refusal) = self.desk.admit_handoff(shop, self.address)
        {
            // Counted in `/metrics`; a log line per refusal would let a flood fill the disk.
            tracing::debug!(
                limit = refusal.as_str(),
                "refused a new case: too many lately"
            );
            return vec![ToBuyer::HandoffRefused];
        }
        let mut out = Vec::with_capacity(step.after.replies.len() + 1);
        self.commit(shop, step, &mut out).await;
        out
    }

    /// Something happened outside this conversation's loop: an agent wrote, the queue moved.
    pub async fn on_push(
        &mut self,
        shop: &Shop,
        push: BuyerPush,
        now: DateTime<Utc>,
    ) -> Vec<ToBuyer> {
        let mut out = Vec::new();
        match push {
            BuyerPush::AgentMessage {
                seq,
                agent_name,
                text,
                at,
            } => self.agent_message(seq, agent_name, text, at, &mut out),
            BuyerPush::Queued(notice) => out.push(queued(shop, notice, now)),
            BuyerPush::Claimed { agent_name } => out.push(claimed(shop, agent_name, now)),
            BuyerPush::Resolved { handoff } => {
                let state = &mut self.conversation.state;
                if state.open_handoff.as_deref() == Some(handoff.as_str()) {
                    state.open_handoff = None;
                }
                out.push(ToBuyer::Case(CaseUpdate::Resolved));
            }
            BuyerPush::Recheck => self.catch_up(shop, now, &mut out).await,
        }
        out
    }

    /// Records that agent messages were handed to the buyer's socket. At least once: if this
    /// is lost, the buyer gets them again on reconnect.
    pub async fn delivered(&self, seqs: Vec<i64>) {
        if seqs.is_empty() {
            return;
        }
        if let Err(e) = self.store.mark_delivered(seqs).await {
            tracing::warn!(error = %e, "cannot mark an agent reply as delivered");
        }
    }

    /// Stores a step, then says what follows; if storing fails the buyer is told to send
    /// again and the conversation stays as it was. A resend is answered as the first was.
    async fn commit(&mut self, shop: &Shop, step: Step, out: &mut Vec<ToBuyer>) {
        let Step { exchange, after } = step;
        let at = exchange.at;
        match self.record(exchange).await {
            Ok(Recorded::New) => {}
            Ok(Recorded::Resent { replies, state }) => {
                self.conversation.state = state;
                out.extend(replies.into_iter().map(ToBuyer::Reply));
                // With the humans, a message was answered with the buyer's place in the
                // queue. The desk takes the case from the store if the first try opened it
                // and its commit's answer was lost.
                if let Some(handoff) = self.conversation.state.open_handoff.clone() {
                    let standing = self
                        .desk
                        .open_case(shop, &self.conversation.id, &handoff)
                        .await;
                    if let Some(Standing::Queued { ahead }) = standing {
                        out.push(queued(shop, self.desk.notice(shop, ahead), at));
                    }
                }
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store a message");
                out.push(ToBuyer::NotSaved);
                return;
            }
        }
        self.conversation.state = after.state;
        out.extend(after.replies.into_iter().map(ToBuyer::Reply));
        if let Some(handoff) = after.handoff {
            // The buyer was told; now the agents hear, and the buyer learns their place.
            let notice = self.desk.handoff_committed(shop, handoff).await;
            out.push(queued(shop, notice, at));
        }
        if let Some(text) = after.to_agents {
            let standing = self
                .desk
                .buyer_wrote(shop, &self.conversation.id, &text, at);
            if let Some(Standing::Queued { ahead }) = standing {
                out.push(queued(shop, self.desk.notice(shop, ahead), at));
            }
        }
    }

    /// Records an exchange, trying again while the store is unavailable, for up to
    /// `store_retry`. Trying again is safe even when a commit whose answer was lost went
    /// through: the store then recognises the buyer's message as a resend.
    async fn record(&self, exchange: Exchange) -> Result<Recorded, StoreError> {
        let deadline = tokio::time::Instant::now() + self.store_retry;
        let mut wait = RETRY_FIRST;
        loop {
            match self.store.record(exchange.clone()).await {
                Err(StoreError::Unavailable(e))
                    if tokio::time::Instant::now() + wait < deadline =>
                {
                    tracing::debug!(error = %e, retry_in = ?wait, "cannot store a message yet");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
                result => return result,
            }
        }
    }

    /// Sends what waited for the buyer in the store: agent messages not yet delivered, and
    /// where their case stands.
    async fn catch_up(&mut self, shop: &Shop, now: DateTime<Utc>, out: &mut Vec<ToBuyer>) {
        match self.store.pending_messages(&self.conversation.id).await {
            Ok(pending) => {
                for message in pending {
                    self.agent_message(
                        message.seq,
                        message.agent_name,
                        message.text,
                        message.at,
                        out,
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot load agent replies for a buyer"),
        }
        let Some(handoff) = self.conversation.state.open_handoff.clone() else {
            return;
        };
        let standing = self
            .desk
            .open_case(shop, &self.conversation.id, &handoff)
            .await;
        match standing {
            Some(Standing::Queued { ahead }) => {
                out.push(queued(shop, self.desk.notice(shop, ahead), now))
            }
            Some(Standing::Claimed { agent }) => {
                let name = shop
                    .staff
                    .agent(&agent)
                    .map_or(agent.as_str(), |a| a.name.as_str());
                out.push(claimed(shop, name.to_string(), now));
            }
            None => {}
        }
    }

    fn agent_message(
        &mut self,
        seq: i64,
        agent_name: String,
        text: String,
        at: DateTime<Utc>,
        out: &mut Vec<ToBuyer>,
    ) {
        if seq <= self.delivered_up_to {
            return;
        }
        self.delivered_up_to = seq;
        out.push(ToBuyer::AgentMessage {
            seq,
            agent_name,
            text,
            at,
        });
    }
}

impl Drop for BuyerSession {
    fn drop(&mut self) {
        self.desk.detach_buyer(&self.conversation.id, self.link);
    }
}

fn queued(shop: &Shop, notice: QueueNotice, now: DateTime<Utc>) -> ToBuyer {
    let case = CaseNotice::Queued {
        ahead: notice.ahead,
        wait_seconds: notice.wait_seconds,
    };
    let text = responder::case_text(shop, case, now);
    ToBuyer::Case(CaseUpdate::Queued { notice, text })
}

fn claimed(shop: &Shop, agent_name: String, now: DateTime<Utc>) -> ToBuyer {
    let text = responder::case_text(shop, CaseNotice::Claimed { agent: &agent_name }, now);
    ToBuyer::Case(CaseUpdate::Claimed { agent_name, text })
}
