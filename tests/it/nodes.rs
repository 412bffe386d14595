//! Two service nodes sharing one PostgreSQL database, in one test process: a buyer on one
//! node and the agents on the other talk as if on one machine; a node that falls silent; a
//! node whose view drifted from the store. (`cluster.rs` runs two real processes and kills
//! one.)

use std::time::Duration;

use autoresponder::store::{ClaimOutcome, Store};
use serde_json::json;

use crate::agents::{complaining_buyer, handoff_for};
use crate::helpers::{GRACE, Incoming, NODE_TIMEOUT, Setup, TestApp, advance_timers, kinds};
use crate::pg::PgDatabase;

/// Two nodes of the staffed test shop on a fresh database.
async fn two_nodes(db: &PgDatabase) -> (TestApp, TestApp) {
    let node = || {
        TestApp::launch(Setup {
            database: Some(db.database()),
            ..Setup::staffed("")
        })
    };
    let (mut a, mut b) = (node().await, node().await);
    a.ready().await;
    b.ready().await;
    (a, b)
}

#[tokio::test]
async fn a_buyer_on_one_node_and_an_agent_on_the_other_talk_through_a_case() {
    let db = PgDatabase::create().await;
    let (a, b) = two_nodes(&db).await;
    let mut mei = b.agent("mei").await;
    let (mut buyer, conversation) =
        complaining_buyer(&a, "across", "订单3856214790123456789破了，我要退货").await;

    // The agent on node B hears of the case node A created, with the transcript.
    let case = handoff_for(&mut mei, &conversation).await;
    assert_eq!(case["handoff"]["status"], "queued");
    assert_eq!(
        case["handoff"]["order_numbers"],
        json!(["3856214790123456789"])
    );
    let id = case["handoff"]["id"].as_str().unwrap().to_string();
    mei.send_json(json!({"type": "claim", "handoff": id})).await;
    assert_eq!(mei.next_of("claimed").await["agent"], "mei");
    let joined = buyer.next_of("queue").await;
    assert_eq!(
        (&joined["status"], &joined["agent"]),
        (&"claimed".into(), &"小美".into())
    );

    // What the buyer writes on A reaches the agent on B; the bot stays silent.
    buyer.say("什么时候能退", "q1").await;
    let forwarded = mei.next_of("buyer_message").await;
    assert_eq!(
        (&forwarded["text"], &forwarded["handoff"]),
        (&"什么时候能退".into(), &id.as_str().into())
    );
    // What the agent writes on B reaches the buyer on A.
    mei.send_json(json!({"type": "reply", "conversation": conversation, "text": "已为您登记退货", "id": "a1"}))
        .await;
    assert_eq!(mei.next_of("sent").await["id"], "a1");
    let reply = buyer.frame().await;
    assert_eq!(
        (&reply["kind"], &reply["agent"], &reply["text"]),
        (&"agent".into(), &"小美".into(), &"已为您登记退货".into())
    );
    // A note on B is heard by a colleague's console on A.
    let mut lan = a.agent("lan").await;
    mei.send_json(json!({"type": "note", "conversation": conversation, "text": "平时穿M码"}))
        .await;
    assert_eq!(lan.next_of("note").await["text"], "平时穿M码");

    // Resolved on B: the buyer on A has the bot back.
    mei.send_json(json!({"type": "resolve", "handoff": id}))
        .await;
    assert_eq!(lan.next_of("resolved").await["handoff"], id.as_str());
    assert_eq!(buyer.next_of("queue").await["status"], "resolved");
    let replies = buyer.ask("包邮吗", "q2", "answer").await;
    assert_eq!(replies.last().unwrap()["intent"], "free_shipping");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn of_two_agents_on_two_nodes_racing_for_a_case_exactly_one_wins() {
    let db = PgDatabase::create().await;
    let (a, b) = two_nodes(&db).await;
    let mut mei = a.agent("mei").await;
    let mut lan = b.agent("lan").await;
    let (_buyer, conversation) = complaining_buyer(&a, "race", "质量太差了，我要投诉").await;
    let case = handoff_for(&mut mei, &conversation).await;
    handoff_for(&mut lan, &conversation).await;
    let claim = json!({"type": "claim", "handoff": case["handoff"]["id"]});
    tokio::join!(mei.send_json(claim.clone()), lan.send_json(claim));

    // Each console hears one winner, the same; the other agent also hears `conflict`.
    let (won_a, skipped_a) = mei.until(|f| f["type"] == "claimed").await;
    let (won_b, skipped_b) = lan.until(|f| f["type"] == "claimed").await;
    assert_eq!(won_a["agent"], won_b["agent"]);
    let winner = won_a["agent"].as_str().unwrap();
    let (loser, skipped) = if winner == "mei" {
        (&mut lan, skipped_b)
    } else {
        (&mut mei, skipped_a)
    };
    let conflict = match skipped.into_iter().find(|f| f["type"] == "error") {
        Some(error) => error,
        None => loser.next_of("error").await,
    };
    assert_eq!(conflict["code"], "conflict", "{conflict}");
    let holders = db
        .texts("SELECT claimed_by FROM handoffs WHERE status = 'claimed'")
        .await;
    assert_eq!(holders, [winner]);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn presence_counts_agents_on_every_node() {
    let db = PgDatabase::create().await;
    let (a, b) = two_nodes(&db).await;
    // Lan is logged in on A but away: nobody is at the desk, so A's buyers get `away`.
    let mut lan = a.agent("lan").await;
    lan.send_json(json!({"type": "presence", "status": "away"}))
        .await;
    lan.until(|f| f["type"] == "presence" && f["agent"] == "lan" && f["status"] == "away")
        .await;
    let mut early = a.buyer("p-early").await;
    early.until(|f| f["kind"] == "welcome").await;
    let replies = early.ask("包邮吗", "1", "answer").await;
    assert_eq!(kinds(&replies), [("away", ""), ("answer", "free_shipping")]);

    // Mei comes online on B: A hears of it (lan's console sees it), and A's buyers are
    // answered without the away notice.
    let mut mei = b.agent("mei").await;
    let online = lan
        .until(|f| f["type"] == "presence" && f["agent"] == "mei")
        .await
        .0;
    assert_eq!(online["status"], "online");
    let mut calm = a.buyer("p-calm").await;
    calm.until(|f| f["kind"] == "welcome").await;
    let replies = calm.ask("包邮吗", "1", "answer").await;
    assert_eq!(kinds(&replies), [("answer", "free_shipping")]);

    // Mei's status chosen on B is what A shows; and when she leaves B, A knows she is gone.
    mei.send_json(json!({"type": "presence", "status": "busy"}))
        .await;
    let busy = lan
        .until(|f| f["type"] == "presence" && f["agent"] == "mei")
        .await
        .0;
    assert_eq!(busy["status"], "busy");
    drop(mei);
    let gone = lan
        .until(|f| f["type"] == "presence" && f["agent"] == "mei")
        .await
        .0;
    assert_eq!(gone["status"], "offline");
    let mut later = a.buyer("p-later").await;
    later.until(|f| f["kind"] == "welcome").await;
    let replies = later.ask("包邮吗", "1", "answer").await;
    assert_eq!(replies[0]["kind"], "away");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_conversation_is_the_same_whichever_node_the_buyer_reconnects_to() {
    let db = PgDatabase::create().await;
    let (a, b) = two_nodes(&db).await;
    let mut buyer = a.buyer("roamer").await;
    buyer.until(|f| f["kind"] == "welcome").await;
    let first = buyer.ask("能便宜点吗", "1", "answer").await;
    drop(buyer);

    // On B: no second welcome today, and the bargaining ladder climbs on.
    let mut buyer = b.buyer("roamer").await;
    let second = buyer.ask("能便宜点吗", "2", "answer").await;
    assert_eq!(
        second[0]["in_reply_to"], "2",
        "no welcome again: {second:?}"
    );
    assert_eq!(first[0]["conversation"], second[0]["conversation"]);
    assert_ne!(
        first.last().unwrap()["text"],
        second.last().unwrap()["text"],
        "the next step of the ladder"
    );
    // Handed off on B; back on A the bot stays silent and the buyer hears their place.
    buyer.ask("我要退货", "3", "handoff").await;
    assert_eq!(buyer.next_of("queue").await["status"], "queued");
    drop(buyer);
    let mut buyer = a.buyer("roamer").await;
    let place = buyer.next_of("queue").await;
    assert_eq!(place["status"], "queued", "{place}");
    buyer.say("在吗", "4").await;
    let answer = buyer.frame().await;
    assert_eq!(
        (&answer["type"], &answer["in_reply_to"]),
        (&"queue".into(), &"4".into()),
        "only the queue place, no bot reply: {answer}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_node_that_lost_the_other_nodes_notices_rebuilds_its_view() {
    let db = PgDatabase::create().await;
    let (a, b) = two_nodes(&db).await;
    let mut mei = a.agent("mei").await;
    // The connections listening for notices are cut, as by a database restart.
    let cut = db
        .count(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND query = 'LISTEN autoresponder'",
        )
        .await;
    assert_eq!(cut, 2, "one listener per node");
    let (_buyer, conversation) = complaining_buyer(&b, "meanwhile", "我要退款").await;

    // Node A noticed the gap: its consoles are asked to reconnect, and what they are sent then
    // comes from the store, the case created meanwhile included.
    let closed = loop {
        match mei.next().await {
            crate::helpers::Incoming::Closed(frame) => break frame,
            crate::helpers::Incoming::Frame(_) => continue,
        }
    };
    assert_eq!(closed.map(|c| u16::from(c.code)), Some(1013));
    let mut mei = a.agent("mei").await;
    let case = handoff_for(&mut mei, &conversation).await;
    assert_eq!(case["handoff"]["status"], "queued");
    // And it follows the other node again.
    let (_second, later) = complaining_buyer(&b, "after", "我要换货").await;
    handoff_for(&mut mei, &later).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_node_that_falls_silent_loses_its_agents_and_their_cases_return_after_the_grace() {
    let db = PgDatabase::create().await;
    let mut a = TestApp::launch(Setup {
        database: Some(db.database()),
        ..Setup::staffed("")
    })
    .await;
    a.ready().await;
    let mut mei = a.agent("mei").await;
    let (mut buyer, conversation) = complaining_buyer(&a, "orphan", "我要退款").await;
    let case = handoff_for(&mut mei, &conversation).await;
    let id = case["handoff"]["id"].as_str().unwrap().to_string();

    // The other node is the test: it says lan has a console open there, and she takes the
    // case. Then it says nothing more, as a node that died.
    let other = db.store().await;
    let lan_there = json!({"agents": [{"shop": "default", "agent": "lan", "consoles": 1,
        "status": "online", "status_version": 1}]});
    other.signal(lan_there.to_string()).await.unwrap();
    let online = mei
        .until(|f| f["type"] == "presence" && f["agent"] == "lan")
        .await
        .0;
    assert_eq!(online["status"], "online");
    let claimed = other.claim(&id, "lan", a.clock_now(), vec![]).await;
    assert!(
        matches!(claimed, Ok(ClaimOutcome::Claimed(_))),
        "{claimed:?}"
    );
    assert_eq!(mei.next_of("claimed").await["agent"], "lan");
    assert_eq!(buyer.next_of("queue").await["status"], "claimed");

    // Past the node timeout (on tokio's clock, moved by the test) lan is offline here…
    advance_timers(NODE_TIMEOUT + Duration::from_millis(1)).await;
    let gone = mei
        .until(|f| f["type"] == "presence" && f["agent"] == "lan")
        .await
        .0;
    assert_eq!(gone["status"], "offline");
    // …and past her grace period her case is back in the queue.
    advance_timers(GRACE).await;
    let back = handoff_for(&mut mei, &conversation).await;
    assert_eq!(
        (&back["handoff"]["status"], &back["handoff"]["requeued"]),
        (&"queued".into(), &true.into())
    );
    assert_eq!(buyer.next_of("queue").await["status"], "queued");
    a.shutdown().await;
}

#[tokio::test]
async fn a_node_whose_view_differs_from_the_store_twice_in_a_row_rebuilds_it() {
    let db = PgDatabase::create().await;
    let mut a = TestApp::launch(Setup {
        database: Some(db.database()),
        ..Setup::staffed("")
    })
    .await;
    a.ready().await;
    let mut mei = a.agent("mei").await;
    let (_buyer, conversation) = complaining_buyer(&a, "drift", "我要退款").await;
    handoff_for(&mut mei, &conversation).await;
    // The case is closed behind the node's back, as by a notice that never came.
    let closed = db
        .count(
            "WITH closed AS (UPDATE handoffs SET status = 'resolved', resolved_at = now()
             RETURNING id) SELECT count(*) FROM closed",
        )
        .await;
    assert_eq!(closed, 1);

    // The node compares its view with the store every 30 s (`RECONCILE_EVERY`); the same
    // difference twice in a row rebuilds the view, and its consoles are asked to reconnect.
    advance_timers(Duration::from_secs(2 * 30)).await;
    let closed = loop {
        match mei.next().await {
            Incoming::Closed(frame) => break frame,
            Incoming::Frame(_) => continue,
        }
    };
    assert_eq!(closed.map(|c| u16::from(c.code)), Some(1013));
    // The closed case is gone from the view: the next buyer has nobody ahead.
    let mut next = a.buyer("after-drift").await;
    next.until(|f| f["kind"] == "welcome").await;
    next.ask("我要换货", "1", "handoff").await;
    let place = next.next_of("queue").await;
    assert_eq!(
        (&place["status"], &place["ahead"]),
        (&"queued".into(), &0.into())
    );
    a.shutdown().await;
}
