//! One step of a conversation as data: what to commit, and what follows the commit.

use chrono::{DateTime, Utc};

use crate::conversation::ConversationState;
use crate::reply::Reply;
use crate::responder::{self, HandoffRequest};
use crate::shop::Shop;
use crate::staffing::Staffing;
use crate::store::{BuyerMessage, Conversation, Exchange, Handoff, HandoffStatus};
use crate::webhook;

/// Where the conversation stands with the humans when the buyer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Humans {
    /// No case is open: the bot answers, with away and busy notices as staffing says.
    Bot(Staffing),
    /// The conversation's case is open: the bot stays silent and the agents hear the buyer.
    Case,
}

/// A step to commit: nothing of it may be sent or announced before the store has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub exchange: Exchange,
    pub after: AfterCommit,
}

/// What a step does once its exchange is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterCommit {
    /// The conversation's state from now on.
    pub state: ConversationState,
    /// The bot's replies, to send.
    pub replies: Vec<Reply>,
    /// The case this step opened, for the desk.
    pub handoff: Option<Handoff>,
    /// The buyer's text, for the agents holding (or waiting for) the conversation's case.
    pub to_agents: Option<String>,
}

/// The welcome for a buyer who (re)connects, if one is due today.
pub fn welcome(shop: &Shop, conversation: &Conversation, now: DateTime<Utc>) -> Option<Step> {
    let mut state = conversation.state.clone();
    let welcome = responder::welcome(shop, &mut state, now)?;
    Some(Step {
        exchange: exchange(
            conversation,
            None,
            vec![welcome.clone()],
            state.clone(),
            now,
        ),
        after: AfterCommit {
            state,
            replies: vec![welcome],
            handoff: None,
            to_agents: None,
        },
    })
}

/// A buyer's message: with the humans it is only stored and passed on; otherwise the bot
/// answers, and a request for a human opens a case.
pub fn buyer_wrote(
    shop: &Shop,
    conversation: &Conversation,
    message: BuyerMessage,
    humans: Humans,
    now: DateTime<Utc>,
) -> Step {
    let mut state = conversation.state.clone();
    let staffing = match humans {
        Humans::Case => {
            let text = message.text.clone();
            let mut exchange =
                exchange(conversation, Some(message), Vec::new(), state.clone(), now);
            exchange.to_agents = true;
            return Step {
                exchange,
                after: AfterCommit {
                    state,
                    replies: Vec::new(),
                    handoff: None,
                    to_agents: Some(text),
                },
            };
        }
        Humans::Bot(staffing) => staffing,
    };
    // A case the conversation still names is over (resolved meanwhile).
    state.open_handoff = None;
    let response = responder::respond_staffed(shop, &mut state, &message.text, now, staffing);
    let handoff = response.handoff.map(|request| {
        let handoff = new_case(conversation, &request, now);
        state.open_handoff = Some(handoff.id.clone());
        handoff
    });
    let events = match &handoff {
        Some(handoff) => webhook::handoff_created(shop, handoff, &message.text, now),
        None => Vec::new(),
    };
    let mut exchange = exchange(
        conversation,
        Some(message),
        response.replies.clone(),
        state.clone(),
        now,
    );
    exchange.handoff = handoff.clone();
    exchange.unmatched = response.unmatched;
    exchange.events = events;
    Step {
        exchange,
        after: AfterCommit {
            state,
            replies: response.replies,
            handoff,
            to_agents: None,
        },
    }
}

/// A case as it is opened: queued, created now.
fn new_case(conversation: &Conversation, request: &HandoffRequest, now: DateTime<Utc>) -> Handoff {
    Handoff {
        id: uuid::Uuid::now_v7().to_string(),
        shop: conversation.shop.clone(),
        conversation: conversation.id.clone(),
        buyer: conversation.buyer.clone(),
        intent: request.intent.to_string(),
        priority: request.priority,
        status: HandoffStatus::Queued,
        created_at: now,
        claimed_by: None,
        escalated: false,
        requeued: false,
    }
}

fn exchange(
    conversation: &Conversation,
    buyer_message: Option<BuyerMessage>,
    replies: Vec<Reply>,
    state: ConversationState,
    now: DateTime<Utc>,
) -> Exchange {
    Exchange {
        conversation: conversation.id.clone(),
        shop: conversation.shop.clone(),
        buyer: conversation.buyer.clone(),
        buyer_message,
        replies,
        state,
        handoff: None,
        unmatched: None,
        events: Vec::new(),
        to_agents: false,
        at: now,
    }
}
