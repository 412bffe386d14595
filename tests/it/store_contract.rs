//! The store's contract (`src/store/mod.rs`), checked against both backends: every case runs
//! once on a SQLite file and once on a fresh PostgreSQL database, so they cannot drift.
//! Cases only one backend has (PostgreSQL's leases and its feed between nodes) come after.

use std::sync::Arc;
use std::time::Duration;

use autoresponder::conversation::{Answered, ConversationState, Topic};
use autoresponder::intents::HandoffPriority;
use autoresponder::reply::{Reply, ReplyKind};
use autoresponder::store::{
    AgentMessage, BuyerMessage, Change, ClaimOutcome, Conversation, Exchange, Expired, Feed,
    Handoff, HandoffStatus, Note, OutboxEvent, Recorded, ResolveOutcome, SqliteStore, SqliteTuning,
    Store, StoreError, UNMATCHED_MAX_CHARS,
};
use chrono::{DateTime, Utc};

use crate::helpers::{PATIENCE, at};
use crate::pg::{PgDatabase, as_store};

/// A backend under test, and what reopening it needs.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(PgDatabase),
}

impl Backend {
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(dir) => Arc::new(
                SqliteStore::open(&dir.path().join("s.db"), Duration::from_secs(1)).unwrap(),
            ),
            Backend::Postgres(db) => as_store(db.store().await),
        }
    }
}

/// Instantiates each contract case for both backends.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let backend = super::Backend::Sqlite(tempfile::tempdir().unwrap());
                    super::$case(&backend).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let backend = super::Backend::Postgres(crate::pg::PgDatabase::create().await);
                    super::$case(&backend).await;
                }
            )*
        }
    };
}

contract!(
    an_exchange_is_stored_whole_and_the_buyer_continues_after_a_reopen,
    an_exchange_for_a_missing_conversation_writes_nothing,
    concurrent_exchanges_are_each_written_whole,
    a_handoff_is_claimed_once_resolved_by_its_holder_and_gives_the_bot_back,
    of_many_racing_claims_exactly_one_wins,
    agent_messages_wait_until_delivered,
    escalation_happens_once_and_only_while_queued,
    the_outbox_keeps_events_until_delivered_and_retries_failures,
    a_buyer_profile_has_earlier_cases_and_notes,
    figures_count_messages_replies_and_handoffs,
    a_closed_store_refuses_calls,
    the_topic_of_the_last_answer_survives_a_reopen,
    the_commit_check_commits_until_the_store_is_closed,
    a_resent_message_is_stored_once_and_gets_its_first_answer,
    finding_a_conversation_stores_nothing,
    retention_deletes_what_is_old_but_never_an_open_case,
    unmatched_questions_are_truncated_and_trimmed_to_the_most_recent,
);

const NOW: &str = "2026-11-11T00:05:00+08:00";

/// A buyer message sent again with its id and text (its first commit went through, but the
/// answer was lost) is recognised: nothing is written twice, and the resend gets the replies
/// and state the first one left. The same id with another text, or past the resend window,
/// is a new message; so is the same text under another id. A resend whose first went to the
/// agents (no bot reply) gets no reply, and a handoff path resend writes no second case.
async fn a_resent_message_is_stored_once_and_gets_its_first_answer(backend: &Backend) {
    let store = backend.open().await;
    let conversation = store
        .open_conversation("default", "resender", at(NOW))
        .await
        .unwrap();
    let mut first = exchange(&conversation, "包邮吗", at(NOW));
    first.state.bargain_step = 3;
    let id = first.buyer_message.as_ref().unwrap().client_id.clone();
    assert_eq!(store.record(first.clone()).await.unwrap(), Recorded::New);

    // The resend, a moment later, as the session steps it again: another state, another
    // answer, which must not be stored.
    let mut resend = exchange(
        &conversation,
        "包邮吗",
        at(NOW) + chrono::TimeDelta::seconds(3),
    );
    resend.buyer_message.as_mut().unwrap().client_id = id.clone();
    resend.state.bargain_step = 4;
    resend.replies.truncate(1);
    match store.record(resend.clone()).await.unwrap() {
        Recorded::Resent { replies, state } => {
            assert_eq!(replies, first.replies, "the first answer, in order");
            assert_eq!(state.bargain_step, 3, "the state the first left");
        }
        Recorded::New => panic!("a resend was written again"),
    }
    let lines = store.transcript(&conversation.id, 100).await.unwrap();
    assert_eq!(lines.len(), 3, "one message and its two replies: {lines:?}");
    let unmatched = store.unmatched("default", 10).await.unwrap();
    assert_eq!(unmatched[0].count, 1, "the resend is not counted again");

    // Another text under the same id (a client numbering per connection), the same text
    // under another id, and the same message long after: new messages.
    let mut reused = exchange(&conversation, "什么时候发货", at(NOW));
    reused.buyer_message.as_mut().unwrap().client_id = id.clone();
    assert_eq!(store.record(reused).await.unwrap(), Recorded::New);
    let other_id = exchange(&conversation, "包邮吗", at(NOW));
    assert_eq!(store.record(other_id).await.unwrap(), Recorded::New);
    let mut much_later = resend.clone();
    much_later.at = at(NOW) + autoresponder::store::RESEND_WINDOW + chrono::TimeDelta::seconds(4);
    assert_eq!(store.record(much_later).await.unwrap(), Recorded::New);
    let lines = store.transcript(&conversation.id, 100).await.unwrap();
    assert_eq!(lines.len(), 3 + 3 + 3 + 2);

    // With the humans: the message is only stored (and, through its own transaction on a
    // shared store, announced); its resend gets no reply and writes nothing.
    let mut to_agents = exchange(&conversation, "人呢", at(NOW));
    to_agents.replies.clear();
    to_agents.unmatched = None;
    to_agents.to_agents = true;
    assert_eq!(
        store.record(to_agents.clone()).await.unwrap(),
        Recorded::New
    );
    match store.record(to_agents).await.unwrap() {
        Recorded::Resent { replies, .. } => assert_eq!(replies, []),
        Recorded::New => panic!("a resend to the agents was written again"),
    }

    // A message that opened a case: the resend opens no second one.
    let mut handing_off = exchange(&conversation, "我要投诉", at(NOW));
    handing_off.state.open_handoff = Some("h-resent".into());
    handing_off.handoff = Some(new_case(
        &conversation,
        "h-resent",
        "complaint",
        HandoffPriority::High,
    ));
    assert_eq!(
        store.record(handing_off.clone()).await.unwrap(),
        Recorded::New
    );
    let mut again = handing_off;
    again.handoff.as_mut().unwrap().id = "h-resent-2".into();
    assert!(matches!(
        store.record(again).await.unwrap(),
        Recorded::Resent { .. }
    ));
    let cases = store.handoffs(Some("default")).await.unwrap();
    assert_eq!(cases.len(), 1, "{cases:?}");
    let lines = store.transcript(&conversation.id, 100).await.unwrap();
    assert_eq!(lines.len(), 11 + 1 + 3);
    store.close().await;
}

/// A buyer message and the bot's two replies, the message with a client id of its own (the
/// same id and text again would be a resend).
fn exchange(conversation: &Conversation, text: &str, at_: DateTime<Utc>) -> Exchange {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Exchange {
        conversation: conversation.id.clone(),
        shop: conversation.shop.clone(),
        buyer: conversation.buyer.clone(),
        buyer_message: Some(BuyerMessage {
            text: text.to_string(),
            client_id: Some(format!("c-{id}")),
        }),
        replies: vec![
            Reply {
                kind: ReplyKind::Away,
                intent: None,
                text: "稍后回复您".into(),
            },
            Reply {
                kind: ReplyKind::Fallback,
                intent: None,
                text: "让我帮您确认一下".into(),
            },
        ],
        state: ConversationState::default(),
        handoff: None,
        unmatched: Some(text.to_string()),
        events: Vec::new(),
        to_agents: false,
        at: at_,
    }
}

/// A case opened in `conversation` at `NOW`, as the conversation step makes one.
fn new_case(
    conversation: &Conversation,
    id: &str,
    intent: &str,
    priority: HandoffPriority,
) -> Handoff {
    Handoff {
        id: id.into(),
        shop: conversation.shop.clone(),
        conversation: conversation.id.clone(),
        buyer: conversation.buyer.clone(),
        intent: intent.into(),
        priority,
        status: HandoffStatus::Queued,
        created_at: at(NOW),
        claimed_by: None,
        escalated: false,
        requeued: false,
    }
}

/// Opens a conversation and records a handoff in it; returns the conversation.
async fn handed_off(store: &dyn Store, buyer: &str, handoff: &str) -> Conversation {
    let conversation = store
        .open_conversation("default", buyer, at(NOW))
        .await
        .unwrap();
    let mut handing_off = exchange(&conversation, "我要投诉", at(NOW));
    handing_off.state.open_handoff = Some(handoff.into());
    handing_off.handoff = Some(new_case(
        &conversation,
        handoff,
        "complaint",
        HandoffPriority::High,
    ));
    handing_off.unmatched = None;
    store.record(handing_off).await.unwrap();
    conversation
}

fn event(id: &str) -> OutboxEvent {
    OutboxEvent {
        id: id.into(),
        shop: "default".into(),
        url: "http://127.0.0.1:9/hook".into(),
        event: "handoff.claimed".into(),
        body: format!("{{\"id\":\"{id}\"}}"),
    }
}

async fn finding_a_conversation_stores_nothing(backend: &Backend) {
    let store = backend.open().await;
    let missing = store
        .find_conversation("default", "stranger")
        .await
        .unwrap();
    assert_eq!(missing, None);
    assert_eq!(
        store
            .find_conversation("default", "stranger")
            .await
            .unwrap(),
        None,
        "looking did not create it"
    );
    let handed = handed_off(store.as_ref(), "known", "h-find").await;
    let found = store
        .find_conversation("default", "known")
        .await
        .unwrap()
        .expect("an opened conversation is found");
    assert_eq!(found.id, handed.id);
    assert_eq!(found.state.open_handoff.as_deref(), Some("h-find"));
    assert_eq!(
        store.find_conversation("other", "known").await.unwrap(),
        None,
        "shops do not share buyers"
    );
    // The case resolved: the conversation found no longer names it.
    store
        .claim("h-find", "mei", at(NOW), Vec::new())
        .await
        .unwrap();
    store
        .resolve("h-find", "mei", at(NOW), Vec::new())
        .await
        .unwrap();
    let found = store.find_conversation("default", "known").await.unwrap();
    assert_eq!(found.unwrap().state.open_handoff, None);
    store.close().await;
}

async fn an_exchange_is_stored_whole_and_the_buyer_continues_after_a_reopen(backend: &Backend) {
    let store = backend.open().await;
    let conversation = store
        .open_conversation("default", "b", at(NOW))
        .await
        .unwrap();
    let mut first = exchange(&conversation, "在吗", at(NOW));
    first.state.bargain_step = 2;
    store.record(first).await.unwrap();
    store
        .record(exchange(&conversation, "在吗", at(NOW)))
        .await
        .unwrap();
    store.close().await;

    let reopened = backend.open().await;
    let again = reopened
        .open_conversation("default", "b", at(NOW))
        .await
        .unwrap();
    assert_eq!(again.id, conversation.id, "the same buyer continues");
    let other = reopened
        .open_conversation("default", "someone-else", at(NOW))
        .await
        .unwrap();
    assert_ne!(other.id, conversation.id);
    let lines = reopened.transcript(&again.id, 100).await.unwrap();
    let texts: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l.from.as_str(), l.text.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            ("buyer", "在吗"),
            ("bot", "稍后回复您"),
            ("bot", "让我帮您确认一下"),
            ("buyer", "在吗"),
            ("bot", "稍后回复您"),
            ("bot", "让我帮您确认一下"),
        ],
        "in order, each buyer message before its replies"
    );
    assert!(lines.windows(2).all(|w| w[0].seq < w[1].seq));
    // Readers may take only the end of a long conversation, still oldest first.
    let last: Vec<i64> = reopened
        .transcript(&again.id, 2)
        .await
        .unwrap()
        .iter()
        .map(|l| l.seq)
        .collect();
    assert_eq!(last, [lines[4].seq, lines[5].seq]);
    assert_eq!(lines[1].kind.as_deref(), Some("away"));
    assert_eq!(lines[0].at, at(NOW));
    let unmatched = reopened.unmatched("default", 10).await.unwrap();
    assert_eq!(
        (unmatched[0].text.as_str(), unmatched[0].count),
        ("在吗", 2)
    );
    assert!(
        reopened
            .unmatched("other-shop", 10)
            .await
            .unwrap()
            .is_empty()
    );
    reopened.close().await;
}

/// A short follow-up after a reconnect (or on another node) is still read in the topic of
/// the answer before it: the topic is stored with the state.
async fn the_topic_of_the_last_answer_survives_a_reopen(backend: &Backend) {
    let store = backend.open().await;
    let conversation = store
        .open_conversation("default", "b", at(NOW))
        .await
        .unwrap();
    let topic = Topic::new(
        vec![
            Answered::Intent("shipping_time".into()),
            Answered::Faq("invoice_title".into()),
        ],
        "发江苏几天到",
        at(NOW),
    );
    let mut answered = exchange(&conversation, "发江苏几天到", at(NOW));
    answered.state.topic = Some(topic.clone());
    store.record(answered).await.unwrap();
    store.close().await;

    let reopened = backend.open().await;
    let again = reopened
        .open_conversation("default", "b", at(NOW))
        .await
        .unwrap();
    assert_eq!(again.state.topic, Some(topic));
    reopened.close().await;
}

async fn an_exchange_for_a_missing_conversation_writes_nothing(backend: &Backend) {
    let store = backend.open().await;
    let real = store
        .open_conversation("default", "b", at(NOW))
        .await
        .unwrap();
    let ghost = Conversation {
        id: "no-such-conversation".into(),
        ..real.clone()
    };
    for with_handoff in [false, true] {
        let mut lost = exchange(&ghost, "我要退货", at(NOW));
        if with_handoff {
            lost.handoff = Some(new_case(
                &ghost,
                "h-ghost",
                "return",
                HandoffPriority::Normal,
            ));
            lost.events = vec![event("e-ghost")];
        }
        assert!(matches!(
            store.record(lost).await,
            Err(StoreError::Corrupt(_))
        ));
    }
    assert!(store.transcript(&ghost.id, 100).await.unwrap().is_empty());
    assert!(store.handoffs(None).await.unwrap().is_empty());
    assert!(store.unmatched("default", 10).await.unwrap().is_empty());
    let due = store
        .outbox_due(Utc::now(), 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(due.is_empty(), "no event of a write that failed: {due:?}");
    store.close().await;
}

async fn concurrent_exchanges_are_each_written_whole(backend: &Backend) {
    let store = backend.open().await;
    let mut conversations = Vec::new();
    for buyer in 0..25 {
        conversations.push(
            store
                .open_conversation("default", &format!("crowd-{buyer}"), at(NOW))
                .await
                .unwrap(),
        );
    }
    // Two exchanges for every conversation and one for a conversation that does not exist,
    // all at once: backends gather such bursts into shared commits.
    let mut writes = Vec::new();
    for (i, conversation) in conversations.iter().enumerate() {
        for round in 0..2 {
            let mut exchange = exchange(conversation, "在吗", at(NOW));
            exchange.state.bargain_step = round + 1;
            exchange.replies[1].text = format!("答复 {i}-{round}");
            let store = store.clone();
            writes.push(tokio::spawn(async move { store.record(exchange).await }));
        }
    }
    let ghost = Conversation {
        id: "no-such-conversation".into(),
        ..conversations[0].clone()
    };
    let lost = {
        let store = store.clone();
        tokio::spawn(async move { store.record(exchange(&ghost, "在吗", at(NOW))).await })
    };
    for write in writes {
        write.await.unwrap().unwrap();
    }
    assert!(matches!(lost.await.unwrap(), Err(StoreError::Corrupt(_))));
    for (i, conversation) in conversations.iter().enumerate() {
        let lines = store.transcript(&conversation.id, 100).await.unwrap();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts.len(), 6, "{texts:?}");
        // Each exchange's lines stay together and in order, whichever was written first.
        for exchange in texts.chunks(3) {
            assert_eq!(exchange[..2], ["在吗", "稍后回复您"], "{texts:?}");
            assert!(exchange[2].starts_with(&format!("答复 {i}-")), "{texts:?}");
        }
        let reopened = store
            .open_conversation("default", &conversation.buyer, at(NOW))
            .await
            .unwrap();
        assert!(matches!(reopened.state.bargain_step, 1 | 2));
    }
    let unmatched = store.unmatched("default", 10).await.unwrap();
    assert_eq!(
        (unmatched[0].text.as_str(), unmatched[0].count),
        ("在吗", 50),
        "the ghost's question is not counted"
    );
    store.close().await;
}

async fn a_handoff_is_claimed_once_resolved_by_its_holder_and_gives_the_bot_back(
    backend: &Backend,
) {
    let store = backend.open().await;
    let conversation = handed_off(&*store, "b", "h1").await;
    let reopened = store
        .open_conversation("default", "b", at(NOW))
        .await
        .unwrap();
    assert_eq!(reopened.state.open_handoff.as_deref(), Some("h1"));
    let open = store.open_handoffs(Some("default")).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].status, open[0].priority, open[0].intent.as_str()),
        (HandoffStatus::Queued, HandoffPriority::High, "complaint")
    );
    assert_eq!(open[0].created_at, at(NOW));
    assert!(store.open_handoffs(Some("other")).await.unwrap().is_empty());

    // Two agents race: exactly one wins.
    let (a, b) = tokio::join!(
        store.claim("h1", "mei", at(NOW), Vec::new()),
        store.claim("h1", "lan", at(NOW), Vec::new())
    );
    let (winner, loser) = match (a.unwrap(), b.unwrap()) {
        (ClaimOutcome::Claimed(h), ClaimOutcome::Conflict { by }) => (h, by),
        (ClaimOutcome::Conflict { by }, ClaimOutcome::Claimed(h)) => (h, by),
        other => panic!("expected one winner: {other:?}"),
    };
    assert_eq!(winner.claimed_by, loser, "the loser is told who won");
    let holder = winner.claimed_by.clone().unwrap();
    let other = if holder == "mei" { "lan" } else { "mei" };
    assert_eq!(winner.status, HandoffStatus::Claimed);
    assert_eq!(
        store
            .claim("nope", "mei", at(NOW), Vec::new())
            .await
            .unwrap(),
        ClaimOutcome::NotFound
    );
    assert!(matches!(
        store
            .resolve("h1", other, at(NOW), Vec::new())
            .await
            .unwrap(),
        ResolveOutcome::Conflict { .. }
    ));

    // The holder leaves: the case goes back to the queue, marked.
    let requeued = store.requeue("default", &holder).await.unwrap();
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].status, HandoffStatus::Queued);
    assert!(store.requeue("default", &holder).await.unwrap().is_empty());
    let open = store.open_handoffs(Some("default")).await.unwrap();
    assert_eq!(open[0].status, HandoffStatus::Queued);
    assert!(open[0].requeued);
    assert_eq!(open[0].claimed_by, None);

    assert!(matches!(
        store.claim("h1", other, at(NOW), Vec::new()).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    let resolved = store
        .resolve("h1", other, at(NOW), Vec::new())
        .await
        .unwrap();
    let ResolveOutcome::Resolved(resolved) = resolved else {
        panic!("the holder resolves: {resolved:?}");
    };
    assert_eq!(resolved.status, HandoffStatus::Resolved);
    assert!(matches!(
        store
            .resolve("h1", other, at(NOW), Vec::new())
            .await
            .unwrap(),
        ResolveOutcome::Conflict { .. }
    ));
    assert!(store.open_handoffs(None).await.unwrap().is_empty());
    assert_eq!(store.handoffs(None).await.unwrap().len(), 1);
    let reopened = store
        .open_conversation("default", "b", at(NOW))
        .await
        .unwrap();
    assert_eq!(reopened.id, conversation.id);
    assert_eq!(
        reopened.state.open_handoff, None,
        "the bot has the buyer back"
    );
    store.close().await;
}

async fn of_many_racing_claims_exactly_one_wins(backend: &Backend) {
    let store = backend.open().await;
    for case in 0..5 {
        handed_off(&*store, &format!("b{case}"), &format!("h{case}")).await;
    }
    // Every case is claimed by 12 agents at once (over several connections, for PostgreSQL).
    let mut races = Vec::new();
    for case in 0..5 {
        for agent in 0..12 {
            let store = store.clone();
            races.push(tokio::spawn(async move {
                let outcome = store
                    .claim(
                        &format!("h{case}"),
                        &format!("a{agent}"),
                        at(NOW),
                        Vec::new(),
                    )
                    .await
                    .unwrap();
                (case, outcome)
            }));
        }
    }
    let mut winners = vec![Vec::new(); 5];
    for race in races {
        let (case, outcome) = race.await.unwrap();
        match outcome {
            ClaimOutcome::Claimed(h) => winners[case].push(h.claimed_by.unwrap()),
            ClaimOutcome::Conflict { by } => assert!(by.is_some()),
            ClaimOutcome::NotFound => panic!("h{case} exists"),
        }
    }
    let stored = store.open_handoffs(None).await.unwrap();
    for (case, won) in winners.iter().enumerate() {
        assert_eq!(won.len(), 1, "h{case}: {won:?}");
        let row = stored.iter().find(|h| h.id == format!("h{case}")).unwrap();
        assert_eq!(row.claimed_by.as_ref(), Some(&won[0]), "the store agrees");
    }
    store.close().await;
}

async fn agent_messages_wait_until_delivered(backend: &Backend) {
    let store = backend.open().await;
    let conversation = handed_off(&*store, "b", "h1").await;
    let mut seqs = Vec::new();
    for text in ["您好，我是小兰", "已为您登记退货"] {
        seqs.push(
            store
                .agent_message(AgentMessage {
                    conversation: conversation.id.clone(),
                    agent_id: "lan".into(),
                    agent_name: "小兰".into(),
                    text: text.into(),
                    at: at(NOW),
                })
                .await
                .unwrap(),
        );
    }
    assert!(seqs[0] < seqs[1]);
    let pending = store.pending_messages(&conversation.id).await.unwrap();
    let texts: Vec<&str> = pending.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(texts, ["您好，我是小兰", "已为您登记退货"]);
    assert_eq!(pending[0].agent_name, "小兰");
    store.mark_delivered(vec![seqs[0]]).await.unwrap();
    let pending = store.pending_messages(&conversation.id).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].seq, seqs[1]);
    let transcript = store.transcript(&conversation.id, 100).await.unwrap();
    let last = transcript.last().unwrap();
    assert_eq!(
        (last.from.as_str(), last.agent.as_deref()),
        ("agent", Some("小兰"))
    );
    assert!(matches!(
        store
            .agent_message(AgentMessage {
                conversation: "nope".into(),
                agent_id: "lan".into(),
                agent_name: "小兰".into(),
                text: "x".into(),
                at: at(NOW),
            })
            .await,
        Err(StoreError::Corrupt(_))
    ));
    store.close().await;
}

async fn escalation_happens_once_and_only_while_queued(backend: &Backend) {
    let store = backend.open().await;
    handed_off(&*store, "b1", "h1").await;
    handed_off(&*store, "b2", "h2").await;
    assert!(
        store
            .escalate("h1", at(NOW), vec![event("esc-1")])
            .await
            .unwrap()
    );
    assert!(
        !store
            .escalate("h1", at(NOW), vec![event("esc-1b")])
            .await
            .unwrap()
    );
    store.claim("h2", "mei", at(NOW), Vec::new()).await.unwrap();
    assert!(!store.escalate("h2", at(NOW), Vec::new()).await.unwrap());
    let open = store.open_handoffs(None).await.unwrap();
    assert!(open.iter().find(|h| h.id == "h1").unwrap().escalated);
    assert!(!open.iter().find(|h| h.id == "h2").unwrap().escalated);
    let due = store
        .outbox_due(Utc::now(), 10, Duration::from_secs(60))
        .await
        .unwrap();
    let ids: Vec<&str> = due.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        ["esc-1"],
        "only the escalation that happened wrote its event"
    );
    store.close().await;
}

async fn the_outbox_keeps_events_until_delivered_and_retries_failures(backend: &Backend) {
    let store = backend.open().await;
    handed_off(&*store, "b", "h1").await;
    store
        .claim("h1", "mei", at(NOW), vec![event("e1"), event("e2")])
        .await
        .unwrap();
    // A repeated event id (a retried write) is kept once.
    store
        .resolve("h1", "mei", at(NOW), vec![event("e2"), event("e3")])
        .await
        .unwrap();
    let now = Utc::now();
    let lease = Duration::from_millis(1);
    let due = store.outbox_due(now, 10, lease).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["e1", "e2", "e3"], "oldest first, each once");
    assert_eq!(due[0].body, "{\"id\":\"e1\"}");
    assert_eq!(due[0].attempts, 0);

    store.outbox_delivered("e1", now).await.unwrap();
    let later = now + chrono::Duration::seconds(30);
    store.outbox_failed("e2", later, "refused").await.unwrap();
    store
        .outbox_failed("e3", now - chrono::Duration::seconds(1), "refused")
        .await
        .unwrap();
    let due = store
        .outbox_due(now + chrono::Duration::seconds(1), 10, lease)
        .await
        .unwrap();
    let ids: Vec<(&str, u32)> = due.iter().map(|d| (d.id.as_str(), d.attempts)).collect();
    assert_eq!(ids, [("e3", 1)], "e1 is delivered, e2 waits for its retry");
    store.outbox_delivered("e3", now).await.unwrap();
    let next = store.outbox_next_due().await.unwrap().unwrap();
    assert!(
        (next - later).num_milliseconds().abs() < 5,
        "{next} vs {later}"
    );
    store.outbox_delivered("e2", now).await.unwrap();
    assert_eq!(store.outbox_next_due().await.unwrap(), None);
    store.close().await;
}

async fn a_buyer_profile_has_earlier_cases_and_notes(backend: &Backend) {
    let store = backend.open().await;
    let conversation = handed_off(&*store, "b", "h1").await;
    store.claim("h1", "mei", at(NOW), Vec::new()).await.unwrap();
    store
        .resolve("h1", "mei", at(NOW), Vec::new())
        .await
        .unwrap();
    for text in ["穿 M 码", "喜欢蓝色"] {
        let note = Note {
            shop: "default".into(),
            buyer: "b".into(),
            agent: "mei".into(),
            text: text.into(),
            at: at(NOW),
        };
        store.add_note(note, &conversation.id).await.unwrap();
    }
    let mut second = exchange(&conversation, "又坏了", at(NOW));
    second.handoff = Some(new_case(
        &conversation,
        "h2",
        "quality",
        HandoffPriority::Normal,
    ));
    store.record(second).await.unwrap();
    let profile = store.buyer_profile("default", "b", "h2").await.unwrap();
    let earlier: Vec<(&str, HandoffStatus)> = profile
        .previous_handoffs
        .iter()
        .map(|h| (h.id.as_str(), h.status))
        .collect();
    assert_eq!(earlier, [("h1", HandoffStatus::Resolved)]);
    let notes: Vec<&str> = profile.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(notes, ["穿 M 码", "喜欢蓝色"]);
    let stranger = store.buyer_profile("default", "x", "").await.unwrap();
    assert!(stranger.previous_handoffs.is_empty() && stranger.notes.is_empty());
    store.close().await;
}

async fn figures_count_messages_replies_and_handoffs(backend: &Backend) {
    let store = backend.open().await;
    let since = at("2026-11-10T00:00:00+08:00");
    let quiet = store
        .open_conversation("default", "quiet", at(NOW))
        .await
        .unwrap();
    // A question answered two seconds later, in its own conversation.
    let mut answered = exchange(&quiet, "包邮吗", at(NOW));
    answered.replies.truncate(1);
    store.record(answered).await.unwrap();
    let conversation = handed_off(&*store, "b", "h1").await;
    store
        .agent_message(AgentMessage {
            conversation: conversation.id.clone(),
            agent_id: "mei".into(),
            agent_name: "小美".into(),
            text: "您好".into(),
            at: at(NOW) + chrono::Duration::seconds(20),
        })
        .await
        .unwrap();
    let stats = store.stats("default", since).await.unwrap();
    assert_eq!(stats.conversations, 2);
    assert_eq!(stats.buyer_messages, 2);
    assert_eq!(stats.bot_replies, 3);
    assert_eq!(stats.agent_replies, 1);
    assert_eq!(stats.handoffs, 1);
    assert_eq!(stats.handoff_rate, 0.5);
    assert_eq!(stats.reply_ratio, 2.0);
    assert_eq!(stats.human_first_response_seconds, Some(20.0));
    let later = store
        .stats("default", at(NOW) + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!((later.buyer_messages, later.handoffs), (0, 0));
    store.close().await;
}

async fn a_closed_store_refuses_calls(backend: &Backend) {
    let store = backend.open().await;
    let conversation = store
        .open_conversation("default", "b", at(NOW))
        .await
        .unwrap();
    store.close().await;
    assert!(matches!(
        store.record(exchange(&conversation, "late", at(NOW))).await,
        Err(StoreError::Unavailable(_))
    ));
    store.close().await; // a second close is harmless
    let reopened = backend.open().await;
    assert!(
        reopened
            .transcript(&conversation.id, 100)
            .await
            .unwrap()
            .is_empty()
    );
    reopened.close().await;
}

/// `/readyz`'s check: a real commit, again and again (the row is updated, not added), and an
/// error once the store cannot commit.
async fn the_commit_check_commits_until_the_store_is_closed(backend: &Backend) {
    let store = backend.open().await;
    store.check_commit().await.unwrap();
    store.check_commit().await.unwrap();
    store.close().await;
    assert!(matches!(
        store.check_commit().await,
        Err(StoreError::Unavailable(_))
    ));
}

/// The next item of a feed, skipping signals.
async fn next_change(feed: &mut tokio::sync::mpsc::Receiver<Feed>) -> Change {
    loop {
        let item = tokio::time::timeout(PATIENCE, feed.recv())
            .await
            .expect("a notice arrives")
            .expect("the feed is open");
        if let Feed::Change(change) = item {
            return change;
        }
    }
}

#[tokio::test]
async fn postgres_nodes_hear_each_others_changes_in_commit_order_and_not_their_own() {
    let db = PgDatabase::create().await;
    let (one, two) = (db.store().await, db.store().await);
    let mut feed_one = one
        .subscribe()
        .await
        .unwrap()
        .expect("a shared store has a feed");
    let mut feed_two = two.subscribe().await.unwrap().unwrap();

    let conversation = handed_off(&*one, "b", "h1").await;
    let claim = two.claim("h1", "mei", at(NOW), Vec::new()).await.unwrap();
    assert!(matches!(claim, ClaimOutcome::Claimed(_)));
    // A buyer message too large for one NOTIFY still arrives, through the spill table.
    let long = "很".repeat(4000);
    let mut to_agents = exchange(&conversation, &long, at(NOW));
    to_agents.replies.clear();
    to_agents.unmatched = None;
    to_agents.to_agents = true;
    one.record(to_agents).await.unwrap();
    two.signal("{\"agents\":[]}".into()).await.unwrap();
    two.resolve("h1", "mei", at(NOW), Vec::new()).await.unwrap();

    match next_change(&mut feed_two).await {
        Change::HandoffCreated { handoff } => {
            assert_eq!(
                (handoff.id.as_str(), handoff.status),
                ("h1", HandoffStatus::Queued)
            );
            assert_eq!(handoff.conversation, conversation.id);
        }
        other => panic!("expected the new handoff first: {other:?}"),
    }
    match next_change(&mut feed_two).await {
        Change::BuyerWrote {
            text,
            conversation: c,
            ..
        } => {
            assert_eq!((text.len(), c), (long.len(), conversation.id.clone()));
        }
        other => panic!("node two made the claim itself, then hears the message: {other:?}"),
    }
    match next_change(&mut feed_one).await {
        Change::Claimed { handoff } => assert_eq!(handoff.claimed_by.as_deref(), Some("mei")),
        other => panic!("node one hears the claim: {other:?}"),
    }
    match tokio::time::timeout(PATIENCE, feed_one.recv())
        .await
        .unwrap()
        .unwrap()
    {
        Feed::Signal { node, payload } => {
            assert_eq!(
                (node.as_str(), payload.as_str()),
                (two.node(), "{\"agents\":[]}")
            );
        }
        other => panic!("the signal comes before the resolve: {other:?}"),
    }
    match next_change(&mut feed_one).await {
        Change::Resolved { handoff } => assert_eq!(handoff.status, HandoffStatus::Resolved),
        other => panic!("then the resolve: {other:?}"),
    }
}

#[tokio::test]
async fn postgres_leases_each_due_event_to_one_node_until_its_lease_ends() {
    let db = PgDatabase::create().await;
    let (one, two) = (db.store().await, db.store().await);
    handed_off(&*one, "b", "h1").await;
    one.claim("h1", "mei", at(NOW), vec![event("e1")])
        .await
        .unwrap();
    let now = Utc::now();
    let lease = Duration::from_secs(30);
    let taken = one.outbox_due(now, 10, lease).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(
        two.outbox_due(now, 10, lease).await.unwrap().is_empty(),
        "another node does not send it meanwhile"
    );
    // The first node died without recording the delivery: once the lease ends it is due
    // again, for whoever looks.
    let after = now + chrono::Duration::seconds(31);
    let retaken = two.outbox_due(after, 10, lease).await.unwrap();
    assert_eq!(retaken.len(), 1);
    assert_eq!(retaken[0].id, "e1");
}

/// SQLite copies its log into the database file on a thread of its own, not on the writer
/// (whose automatic checkpoint is off): the messages waiting for a commit never wait for a
/// checkpoint's `fsync`s.
#[tokio::test]
async fn sqlite_checkpoints_the_log_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path, Duration::from_secs(1)).unwrap();
    let file_pages = || std::fs::metadata(&path).map_or(0, |m| m.len() / 4096);
    let before = file_pages();
    // Each commit writes a few pages of log: a few hundred in all, far below the point where
    // the log is rewound.
    for buyer in 0..100 {
        let conversation = store
            .open_conversation("default", &format!("b{buyer}"), at(NOW))
            .await
            .unwrap();
        store
            .record(exchange(&conversation, "包邮吗", at(NOW)))
            .await
            .unwrap();
    }
    let copied = async {
        while file_pages() < before + 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PATIENCE, copied)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the database file has {} pages, {before} before the writes",
                file_pages()
            )
        });
    let wal = std::fs::metadata(path.with_extension("db-wal"))
        .unwrap()
        .len()
        / 4096;
    assert!(wal < 4000, "the log has {wal} pages");
    store.close().await;
}

/// The log is rewound to its start once it is past the store's rewind size, so it does not
/// grow without end, although the writer's automatic checkpoint is off. Each rewind starts
/// the log file afresh with the next checkpoint sequence number in its header (bytes 12–15).
#[tokio::test]
async fn sqlite_rewinds_its_log_once_it_is_long() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let tuning = SqliteTuning { rewind_pages: 50 };
    let store = SqliteStore::open_tuned(&path, Duration::from_secs(1), tuning).unwrap();
    let wal = path.with_extension("db-wal");
    let rewinds = || {
        use std::io::Read;
        let mut header = [0u8; 16];
        std::fs::File::open(&wal)
            .and_then(|mut f| f.read_exact(&mut header))
            .map_or(0, |()| {
                u32::from_be_bytes(header[12..16].try_into().unwrap())
            })
    };
    let conversation = store
        .open_conversation("default", "b", at(NOW))
        .await
        .unwrap();
    let first = rewinds();
    let deadline = std::time::Instant::now() + PATIENCE;
    // One commit at a time, each about three pages of log, until it was rewound three times.
    let mut exchanges = 0;
    while rewinds() < first + 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "after {exchanges} exchanges the log has {} pages and was rewound {} times",
            std::fs::metadata(&wal).map_or(0, |m| m.len() / 4096),
            rewinds() - first
        );
        store
            .record(exchange(&conversation, "包邮吗", at(NOW)))
            .await
            .unwrap();
        exchanges += 1;
    }
    let written = store
        .transcript(&conversation.id, 3 * exchanges + 1)
        .await
        .unwrap()
        .len();
    assert_eq!(written, 3 * exchanges, "every message is stored");
    store.close().await;
}

/// Deletes everything of `shop` older than `before`, table by table, in batches of two (so
/// that batching itself is exercised); returns the rows deleted per table.
async fn sweep_expired(store: &dyn Store, shop: &str, before: DateTime<Utc>) -> Vec<usize> {
    let mut deleted = Vec::new();
    for table in Expired::ALL {
        let mut total = 0;
        loop {
            let n = store.delete_expired(table, shop, before, 2).await.unwrap();
            assert!(n <= 2, "{table:?} deleted {n} in one batch of 2");
            total += n;
            if n < 2 {
                break;
            }
        }
        deleted.push(total);
    }
    deleted
}

async fn retention_deletes_what_is_old_but_never_an_open_case(backend: &Backend) {
    let store = backend.open().await;
    let old = at("2026-01-01T00:00:00Z");
    let recent = at("2026-11-01T00:00:00Z");
    let cutoff = at("2026-06-01T00:00:00Z");

    // An old conversation of three exchanges (nine messages) with a webhook event, and a
    // note about its buyer.
    let gone = store
        .open_conversation("default", "gone", old)
        .await
        .unwrap();
    for _ in 0..3 {
        let mut e = exchange(&gone, "在吗", old);
        e.events = vec![event(&format!("ev-{}", uuid_like()))];
        store.record(e).await.unwrap();
    }
    store
        .add_note(
            Note {
                shop: "default".into(),
                buyer: "gone".into(),
                agent: "mei".into(),
                text: "老顾客".into(),
                at: old,
            },
            &gone.id,
        )
        .await
        .unwrap();
    // An old case, resolved long ago.
    let done = store
        .open_conversation("default", "done", old)
        .await
        .unwrap();
    let mut handing_off = exchange(&done, "我要投诉", old);
    handing_off.state.open_handoff = Some("h-done".into());
    handing_off.handoff = Some(new_case(
        &done,
        "h-done",
        "complaint",
        HandoffPriority::High,
    ));
    handing_off.unmatched = None;
    store.record(handing_off).await.unwrap();
    store.claim("h-done", "mei", old, Vec::new()).await.unwrap();
    store
        .resolve("h-done", "mei", old, Vec::new())
        .await
        .unwrap();
    // An old case still open: it and its conversation stay, whatever their age.
    let waiting = store
        .open_conversation("default", "waiting", old)
        .await
        .unwrap();
    let mut handing_off = exchange(&waiting, "我要投诉", old);
    handing_off.state.open_handoff = Some("h-open".into());
    handing_off.handoff = Some(new_case(
        &waiting,
        "h-open",
        "complaint",
        HandoffPriority::High,
    ));
    handing_off.unmatched = None;
    store.record(handing_off).await.unwrap();
    // A recent conversation, and an old one that went on recently.
    let fresh = store
        .open_conversation("default", "fresh", recent)
        .await
        .unwrap();
    store
        .record(exchange(&fresh, "有货吗", recent))
        .await
        .unwrap();
    let returning = store
        .open_conversation("default", "returning", old)
        .await
        .unwrap();
    store
        .record(exchange(&returning, "还在吗", old))
        .await
        .unwrap();
    store
        .record(exchange(&returning, "发货了吗", recent))
        .await
        .unwrap();
    // Another shop keeps its own: nothing of it goes with this shop's sweep.
    let elsewhere = store.open_conversation("other", "gone", old).await.unwrap();
    store
        .record(exchange(&elsewhere, "在吗", old))
        .await
        .unwrap();

    let deleted = sweep_expired(store.as_ref(), "default", cutoff).await;
    let by_table: Vec<(&str, usize)> = Expired::ALL
        .iter()
        .map(|t| t.as_str())
        .zip(deleted)
        .collect();
    assert_eq!(
        by_table,
        [
            // gone 9, done 3, returning's first exchange 3
            ("messages", 15),
            ("handoffs", 1),
            ("notes", 1),
            // "在吗" and "还在吗" were last asked long ago; "有货吗" and "发货了吗" recently
            ("unmatched", 2),
            ("outbox", 3),
            ("conversations", 2),
        ]
    );
    for (buyer, kept) in [
        ("gone", false),
        ("done", false),
        ("waiting", true),
        ("fresh", true),
        ("returning", true),
    ] {
        let found = store.find_conversation("default", buyer).await.unwrap();
        assert_eq!(found.is_some(), kept, "{buyer}");
    }
    let open = store.open_handoffs(Some("default")).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, "h-open");
    assert_eq!(store.handoffs(Some("default")).await.unwrap().len(), 1);
    assert_eq!(store.transcript(&waiting.id, 100).await.unwrap().len(), 3);
    let returning_lines = store.transcript(&returning.id, 100).await.unwrap();
    assert_eq!(returning_lines.len(), 3);
    assert_eq!(returning_lines[0].text, "发货了吗");
    assert_eq!(store.transcript(&elsewhere.id, 100).await.unwrap().len(), 3);
    let profile = store.buyer_profile("default", "gone", "").await.unwrap();
    assert!(profile.notes.is_empty());
    let mut left: Vec<String> = store
        .unmatched("default", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.text)
        .collect();
    left.sort();
    assert_eq!(left, ["发货了吗", "有货吗"]);

    // A second sweep finds nothing more; the open case is still there to claim.
    let again = sweep_expired(store.as_ref(), "default", cutoff).await;
    assert!(again.iter().all(|&n| n == 0), "{again:?}");
    let claimed = store
        .claim("h-open", "lan", recent, Vec::new())
        .await
        .unwrap();
    assert!(matches!(claimed, ClaimOutcome::Claimed(_)), "{claimed:?}");
    store.close().await;
}

/// A different id each call, for events that must not collide.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

async fn unmatched_questions_are_truncated_and_trimmed_to_the_most_recent(backend: &Backend) {
    let store = backend.open().await;
    let conversation = store
        .open_conversation("default", "asker", at(NOW))
        .await
        .unwrap();
    let long = "长".repeat(2000);
    store
        .record(exchange(&conversation, &long, at(NOW)))
        .await
        .unwrap();
    store
        .record(exchange(&conversation, &long, at(NOW)))
        .await
        .unwrap();
    let stored = store.unmatched("default", 10).await.unwrap();
    assert_eq!(stored.len(), 1, "the same long text counts as one question");
    assert_eq!(stored[0].text.chars().count(), UNMATCHED_MAX_CHARS);
    assert_eq!(stored[0].count, 2);

    // Five more questions, each seen a minute after the one before.
    for n in 0..5 {
        let seen = at(NOW) + chrono::Duration::minutes(n + 1);
        store
            .record(exchange(&conversation, &format!("问题{n}"), seen))
            .await
            .unwrap();
    }
    let mut trimmed = 0;
    loop {
        let n = store.trim_unmatched("default", 3, 1).await.unwrap();
        assert!(n <= 1);
        trimmed += n;
        if n == 0 {
            break;
        }
    }
    assert_eq!(trimmed, 3, "six questions, three kept");
    let mut kept: Vec<String> = store
        .unmatched("default", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.text)
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        ["问题2", "问题3", "问题4"],
        "the most recently seen stay"
    );
    store.close().await;
}
