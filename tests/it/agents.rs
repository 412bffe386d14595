//! Human agents end to end, with real websocket clients on both sides: the claim race, the
//! grace-period requeue, queue positions, replies to an offline buyer, presence-driven
//! away/busy, and escalation.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Client, GRACE, Setup, TestApp, advance_timers};

/// A buyer who complains and has read the handoff notice and their place in the queue;
/// returns the buyer and their conversation id.
pub async fn complaining_buyer(app: &TestApp, name: &str, text: &str) -> (Client, String) {
    let mut buyer = app.buyer(name).await;
    buyer.until(|f| f["kind"] == "welcome").await;
    let replies = buyer.ask(text, "h", "handoff").await;
    let conversation = replies[0]["conversation"].as_str().unwrap().to_string();
    let place = buyer.next_of("queue").await;
    assert_eq!(place["status"], "queued", "{place}");
    (buyer, conversation)
}

/// The `handoff` frame an agent receives for a conversation.
pub async fn handoff_for(agent: &mut Client, conversation: &str) -> Value {
    agent
        .until(|f| f["type"] == "handoff" && f["handoff"]["conversation"] == conversation)
        .await
        .0
}

#[tokio::test]
async fn of_two_agents_racing_for_a_case_exactly_one_wins() {
    let app = TestApp::staffed().await;
    let mut mei = app.agent("mei").await;
    let mut lan = app.agent("lan").await;
    let (_buyer, conversation) =
        complaining_buyer(&app, "race", "你们卖假货，我要投诉到12315！").await;
    let seen_by_mei = handoff_for(&mut mei, &conversation).await;
    let seen_by_lan = handoff_for(&mut lan, &conversation).await;
    let case = seen_by_mei["handoff"]["id"].as_str().unwrap().to_string();
    assert_eq!(seen_by_lan["handoff"]["id"], case.as_str());
    assert_eq!(seen_by_mei["handoff"]["priority"], "high");
    assert_eq!(seen_by_mei["handoff"]["intent"], "complaint");
    let transcript = seen_by_mei["handoff"]["transcript"].as_array().unwrap();
    assert!(
        transcript
            .iter()
            .any(|l| l["from"] == "buyer" && l["text"] == "你们卖假货，我要投诉到12315！"),
        "{transcript:?}"
    );

    // Both click at once.
    let claim = json!({"type": "claim", "handoff": case});
    tokio::join!(mei.send_json(claim.clone()), lan.send_json(claim));
    let outcome = |frames: &[Value]| -> (bool, Option<String>) {
        let lost = frames
            .iter()
            .any(|f| f["type"] == "error" && f["code"] == "conflict");
        let winner = frames
            .iter()
            .find(|f| f["type"] == "claimed")
            .map(|f| f["agent"].as_str().unwrap().to_string());
        (lost, winner)
    };
    let mut mei_frames = vec![];
    let mut lan_frames = vec![];
    // Each console hears who won; exactly one also gets a conflict error.
    while outcome(&mei_frames).1.is_none() {
        mei_frames.push(mei.frame().await);
    }
    while outcome(&lan_frames).1.is_none() {
        lan_frames.push(lan.frame().await);
    }
    let winner = outcome(&mei_frames).1.unwrap();
    assert_eq!(outcome(&lan_frames).1.unwrap(), winner);
    let (loser, loser_frames) = if winner == "mei" {
        (&mut lan, &mut lan_frames)
    } else {
        (&mut mei, &mut mei_frames)
    };
    if !outcome(loser_frames).0 {
        let error = loser.next_of("error").await;
        assert_eq!(error["code"], "conflict");
    }
    let stored: Vec<String> = app.query("SELECT claimed_by FROM handoffs");
    assert_eq!(stored, [winner]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_buyer_talks_to_the_agent_who_claimed_and_the_bot_comes_back_after_resolve() {
    let app = TestApp::staffed().await;
    let mut mei = app.agent("mei").await;
    let (mut buyer, conversation) = complaining_buyer(
        &app,
        "talk",
        "订单3856214790123456789的衣服破了个洞，我要退货",
    )
    .await;
    let case = handoff_for(&mut mei, &conversation).await;
    assert_eq!(
        case["handoff"]["order_numbers"],
        json!(["3856214790123456789"])
    );
    let id = case["handoff"]["id"].as_str().unwrap().to_string();
    mei.send_json(json!({"type": "claim", "handoff": id})).await;
    let claimed = mei.next_of("claimed").await;
    assert_eq!(claimed["agent"], "mei");
    let joined = buyer.next_of("queue").await;
    assert_eq!(
        (&joined["status"], &joined["agent"]),
        (&"claimed".into(), &"小美".into())
    );

    // While the agent has it, the bot is silent and the agent sees what the buyer writes.
    buyer.say("包邮吗", "q1").await;
    let forwarded = mei.next_of("buyer_message").await;
    assert_eq!(forwarded["text"], "包邮吗");
    assert_eq!(forwarded["conversation"], conversation.as_str());
    mei.send_json(json!({"type": "reply", "conversation": conversation, "text": "您好，我是小美，马上为您处理", "id": "a-1"}))
        .await;
    let sent = mei.next_of("sent").await;
    assert_eq!(sent["id"], "a-1");
    let reply = buyer.frame().await; // nothing from the bot came before it
    assert_eq!(
        (&reply["type"], &reply["kind"], &reply["agent"]),
        (&"reply".into(), &"agent".into(), &"小美".into())
    );
    assert_eq!(reply["text"], "您好，我是小美，马上为您处理");

    // A note about the buyer is kept for next time.
    mei.send_json(json!({"type": "note", "conversation": conversation, "text": "平时穿M码"}))
        .await;
    assert_eq!(mei.next_of("note").await["text"], "平时穿M码");

    mei.send_json(json!({"type": "resolve", "handoff": id}))
        .await;
    assert_eq!(mei.next_of("resolved").await["handoff"], id.as_str());
    assert_eq!(buyer.next_of("queue").await["status"], "resolved");
    let replies = buyer.ask("包邮吗", "q2", "answer").await;
    assert_eq!(replies.last().unwrap()["intent"], "free_shipping");

    // Next time this buyer is handed off, the agent sees the earlier case and the note.
    buyer.ask("转人工", "again", "handoff").await;
    let next = handoff_for(&mut mei, &conversation).await;
    let profile = &next["handoff"]["buyer_profile"];
    assert_eq!(profile["previous_handoffs"][0]["id"], id.as_str());
    assert_eq!(profile["notes"][0]["text"], "平时穿M码");
    app.shutdown().await;
}

#[tokio::test]
async fn an_agent_reply_reaches_an_offline_buyer_on_reconnect_once() {
    let app = TestApp::staffed().await;
    let mut mei = app.agent("mei").await;
    let (buyer, conversation) = complaining_buyer(&app, "offline", "我要换货").await;
    let case = handoff_for(&mut mei, &conversation).await;
    mei.send_json(json!({"type": "claim", "handoff": case["handoff"]["id"]}))
        .await;
    mei.next_of("claimed").await;
    drop(buyer);
    mei.send_json(
        json!({"type": "reply", "conversation": conversation, "text": "换货已经为您登记好了"}),
    )
    .await;
    mei.next_of("sent").await;

    let mut back = app.buyer("offline").await;
    let reply = back.until(|f| f["kind"] == "agent").await.0;
    assert_eq!(reply["text"], "换货已经为您登记好了");
    let status = back.next_of("queue").await;
    assert_eq!(status["status"], "claimed");
    drop(back);

    // Delivered once: the next connection does not get it again.
    let mut again = app.buyer("offline").await;
    let status = again.frame().await;
    assert_eq!(
        status["type"], "queue",
        "only the status, no repeated reply: {status}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_agent_who_leaves_loses_their_cases_to_the_queue_after_the_grace_period() {
    let app = TestApp::staffed().await;
    let mut mei = app.agent("mei").await;
    let mut lan = app.agent("lan").await;
    let (mut buyer, conversation) = complaining_buyer(&app, "grace", "我要退款").await;
    let case = handoff_for(&mut mei, &conversation).await;
    let id = case["handoff"]["id"].as_str().unwrap().to_string();
    mei.send_json(json!({"type": "claim", "handoff": id})).await;
    mei.next_of("claimed").await;
    lan.next_of("claimed").await;
    buyer.next_of("queue").await; // claimed

    // Mei leaves; her grace period is running once the others hear she is offline. Time
    // moves on tokio's clock only when the test moves it (`TIMING` is room for the real time
    // the test itself takes).
    drop(mei);
    let offline = lan
        .until(|f| f["type"] == "presence" && f["agent"] == "mei")
        .await
        .0;
    assert_eq!(offline["status"], "offline");
    advance_timers(GRACE - TIMING).await;
    assert_eq!(still_held(&app, &mut lan, &conversation).await, ["mei"]);
    // Past the grace period the case is back, and the others hear of it.
    advance_timers(TIMING).await;
    let back = handoff_for(&mut lan, &conversation).await;
    assert_eq!(back["handoff"]["requeued"], true);
    assert_eq!(back["handoff"]["status"], "queued");
    let place = buyer.next_of("queue").await;
    assert_eq!(
        (&place["status"], &place["ahead"]),
        (&"queued".into(), &0.into())
    );
    let status: Vec<String> = app.query("SELECT status FROM handoffs");
    assert_eq!(status, ["queued"]);

    // An agent who comes back within the grace period, however late in it, keeps their case,
    // also once it is over.
    lan.send_json(json!({"type": "claim", "handoff": id})).await;
    lan.next_of("claimed").await;
    let mut mei = app.agent("mei").await;
    drop(lan);
    mei.until(|f| f["type"] == "presence" && f["agent"] == "lan" && f["status"] == "offline")
        .await;
    advance_timers(GRACE - TIMING).await;
    let mut lan = app.agent("lan").await;
    let restored = handoff_for(&mut lan, &conversation).await;
    assert_eq!(restored["handoff"]["status"], "claimed");
    assert_eq!(restored["handoff"]["claimed_by"], "lan");
    advance_timers(TIMING).await;
    assert_eq!(still_held(&app, &mut lan, &conversation).await, ["lan"]);
    app.shutdown().await;
}

/// Room left in a jump of tokio's clock for the real time a test takes between a timer's
/// start and the jump.
const TIMING: Duration = Duration::from_secs(5);

/// Who holds the conversation's case, after a round trip through the store (a note by
/// `console`): a requeue started before it would be committed by then.
async fn still_held(app: &TestApp, console: &mut Client, conversation: &str) -> Vec<String> {
    console
        .send_json(json!({"type": "note", "conversation": conversation, "text": "还在处理"}))
        .await;
    console.next_of("note").await;
    app.query("SELECT claimed_by FROM handoffs WHERE status = 'claimed'")
}

#[tokio::test]
async fn queued_buyers_learn_their_place_as_the_queue_moves() {
    let app = TestApp::staffed().await;
    let mut mei = app.agent("mei").await;
    let (_first, first) = complaining_buyer(&app, "q-first", "我要退货").await;
    let (_second, _) = complaining_buyer(&app, "q-second", "我要换货").await;
    let (mut third, _) = complaining_buyer(&app, "q-third", "我要退款").await;
    // A complaint jumps the queue: the normal cases move back one place.
    let (_angry, _) = complaining_buyer(&app, "q-angry", "垃圾店，骗子，我要投诉").await;
    let moved = third.next_of("queue").await;
    assert_eq!(moved["ahead"], 3, "{moved}");

    let case = handoff_for(&mut mei, &first).await;
    mei.send_json(json!({"type": "claim", "handoff": case["handoff"]["id"]}))
        .await;
    let moved = third.next_of("queue").await;
    assert_eq!(moved["ahead"], 2, "{moved}");
    assert!(moved["wait_seconds"].as_u64().unwrap() > 0);
    assert!(moved["text"].as_str().unwrap().contains("前面还有 2 位"));
    // A buyer who writes while queued is told their place again, and the agents see it.
    third.say("还要等多久", "w").await;
    let place = third.next_of("queue").await;
    assert_eq!(
        (&place["ahead"], &place["in_reply_to"]),
        (&2.into(), &"w".into())
    );
    let seen = mei.next_of("buyer_message").await;
    assert_eq!(seen["text"], "还要等多久");
    app.shutdown().await;
}

#[tokio::test]
async fn away_and_busy_follow_the_agents_presence_and_queue() {
    let app = TestApp::staffed().await;
    // In service hours, but no agent is online: away, then the answer.
    let mut early = app.buyer("p-early").await;
    early.until(|f| f["kind"] == "welcome").await;
    let replies = early.ask("包邮吗", "1", "answer").await;
    assert_eq!(replies[0]["kind"], "away", "{replies:?}");

    // An agent comes online: no away notice for the next buyer.
    let mut mei = app.agent("mei").await;
    let mut calm = app.buyer("p-calm").await;
    calm.until(|f| f["kind"] == "welcome").await;
    let replies = calm.ask("包邮吗", "1", "answer").await;
    assert_eq!(replies.len(), 1, "{replies:?}");

    // Three cases for one agent is over the test shop's limit of two: busy.
    for name in ["p-a", "p-b", "p-c"] {
        complaining_buyer(&app, name, "我要退货").await;
    }
    let mut late = app.buyer("p-late").await;
    late.until(|f| f["kind"] == "welcome").await;
    let replies = late.ask("包邮吗", "1", "answer").await;
    assert_eq!(replies[0]["kind"], "busy", "{replies:?}");

    // The agent steps away: nobody is at the desk, away again.
    mei.send_json(json!({"type": "presence", "status": "away"}))
        .await;
    mei.until(|f| f["type"] == "presence" && f["status"] == "away")
        .await;
    let mut later = app.buyer("p-later").await;
    later.until(|f| f["kind"] == "welcome").await;
    let replies = later.ask("包邮吗", "1", "answer").await;
    assert_eq!(replies[0]["kind"], "away", "{replies:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_complaint_left_waiting_is_announced_again() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!(
        "\n[[webhook]]\nurl = \"http://{}/hook\"\nsecret = \"k\"\nevents = [\"handoff.escalated\"]\n",
        listener.local_addr().unwrap()
    );
    let mut received = crate::webhooks::receiver(listener, "k");
    let app = TestApp::launch(Setup::staffed(&hook)).await;
    let mut mei = app.agent("mei").await;
    let (_buyer, conversation) = complaining_buyer(&app, "esc", "你们就是骗子，我要投诉").await;
    let first = handoff_for(&mut mei, &conversation).await;
    assert_eq!(first["handoff"]["escalated"], false);
    // Escalation is after 60 s in the test shop; the shop clock moves, no one waits.
    app.clock.advance(chrono::Duration::seconds(61));
    let again = handoff_for(&mut mei, &conversation).await;
    assert_eq!(again["handoff"]["escalated"], true);
    assert_eq!(again["handoff"]["id"], first["handoff"]["id"]);
    let stored: Vec<Option<String>> = app.query("SELECT escalated_at FROM handoffs");
    assert!(stored[0].is_some());
    // The shop's robot is told too.
    let event = received.recv().await.unwrap();
    assert_eq!(event.event, "handoff.escalated");
    assert!(event.signature_ok);
    assert_eq!(event.body["handoff"]["id"], first["handoff"]["id"]);
    app.shutdown().await;
}

#[tokio::test]
async fn agents_need_a_valid_token_and_errors_name_the_problem() {
    let app = TestApp::launch(Setup::staffed("")).await;
    assert_eq!(app.refused_upgrade("/ws/agent").await, 401);
    assert_eq!(
        app.refused_upgrade("/ws/agent?token=token-nobody").await,
        401
    );
    let mut mei = app.agent("mei").await;
    mei.send_json(json!({"type": "claim", "handoff": "no-such-case"}))
        .await;
    assert_eq!(mei.next_of("error").await["code"], "not_found");
    mei.send_json(json!({"type": "reply", "conversation": "c", "text": "hi"}))
        .await;
    assert_eq!(mei.next_of("error").await["code"], "not_found");
    mei.send_json(json!({"type": "resolve", "handoff": "another-shops-case"}))
        .await;
    assert_eq!(mei.next_of("error").await["code"], "not_found");
    mei.send_json(json!({"type": "dance"})).await;
    assert_eq!(mei.next_of("error").await["code"], "bad_request");
    app.shutdown().await;
}
