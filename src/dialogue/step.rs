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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::reply::ReplyKind;
    use crate::shop::{FaqSource, load_shop};

    fn shop() -> Shop {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents/default");
        load_shop("default", &folder, FaqSource::default()).unwrap()
    }

    fn conversation(state: ConversationState) -> Conversation {
        Conversation {
            id: "c1".into(),
            shop: "default".into(),
            buyer: "b1".into(),
            state,
        }
    }

    fn message(text: &str) -> BuyerMessage {
        BuyerMessage {
            text: text.into(),
            client_id: Some("m1".into()),
        }
    }

    #[test]
    fn a_request_for_a_human_opens_one_case_named_in_the_state_it_commits() {
        let shop = shop();
        let now = Utc::now();
        let bot = Humans::Bot(Staffing::default());
        let step = buyer_wrote(
            &shop,
            &conversation(Default::default()),
            message("转人工"),
            bot,
            now,
        );
        let case = step.exchange.handoff.as_ref().expect("a case");
        assert_eq!(step.after.handoff.as_ref(), Some(case));
        assert_eq!(step.exchange.state.open_handoff.as_ref(), Some(&case.id));
        assert_eq!(step.after.state, step.exchange.state);
        assert_eq!(
            (
                case.status,
                &*case.conversation,
                &*case.buyer,
                case.created_at
            ),
            (HandoffStatus::Queued, "c1", "b1", now)
        );
        assert!(
            step.after
                .replies
                .iter()
                .any(|r| r.kind == ReplyKind::Handoff)
        );
        assert_eq!(step.exchange.replies, step.after.replies);
        assert!(!step.exchange.to_agents);
    }

    #[test]
    fn with_the_humans_a_message_is_only_stored_and_passed_to_the_agents() {
        let shop = shop();
        let state = ConversationState {
            open_handoff: Some("h1".into()),
            ..Default::default()
        };
        let step = buyer_wrote(
            &shop,
            &conversation(state),
            message("包邮吗"),
            Humans::Case,
            Utc::now(),
        );
        assert!(step.exchange.replies.is_empty() && step.after.replies.is_empty());
        assert!(step.exchange.to_agents);
        assert_eq!(step.after.to_agents.as_deref(), Some("包邮吗"));
        assert_eq!(step.after.state.open_handoff.as_deref(), Some("h1"));
        assert_eq!(step.exchange.handoff, None);
    }

    #[test]
    fn a_case_the_desk_no_longer_has_open_is_forgotten_and_the_bot_answers() {
        let shop = shop();
        let state = ConversationState {
            open_handoff: Some("h1".into()),
            ..Default::default()
        };
        let bot = Humans::Bot(Staffing::default());
        let step = buyer_wrote(
            &shop,
            &conversation(state),
            message("包邮吗"),
            bot,
            Utc::now(),
        );
        assert_eq!(step.after.state.open_handoff, None);
        assert!(!step.after.replies.is_empty());
    }
}
