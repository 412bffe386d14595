//! The buyer websocket end to end: each reply kind, state across reconnects, and storage.

use crate::helpers::{Incoming, TestApp, at, kinds};

#[tokio::test]
async fn a_buyer_is_welcomed_once_a_day_and_answered() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("alice").await;
    let welcome = buyer.frame().await;
    assert_eq!(welcome["type"], "reply");
    assert_eq!(welcome["kind"], "welcome");
    assert!(welcome["in_reply_to"].is_null());
    assert!(
        welcome["conversation"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert!(
        welcome["at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-26T02:00:00")
    );

    let replies = buyer.ask("親，在嗎？包郵嗎", "c-1", "answer").await;
    assert_eq!(kinds(&replies), [("answer", "free_shipping")]);
    assert_eq!(replies[0]["conversation"], welcome["conversation"]);
    drop(buyer);

    // The same buyer on the same day is not welcomed again; the next message is answered.
    let mut again = app.buyer("alice").await;
    let replies = again.ask("什么时候发货", "c-2", "answer").await;
    assert_eq!(kinds(&replies), [("answer", "shipping_time")]);
    assert_eq!(replies[0]["conversation"], welcome["conversation"]);

    // The next day it is.
    app.clock.set(at("2026-11-27T10:00:00+08:00"));
    let next_day = app.buyer("alice").await;
    next_day.welcomed().await;
    app.shutdown().await;
}

#[tokio::test]
async fn two_questions_in_one_message_get_two_answers() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("bob").await.welcomed().await;
    buyer.say("包邮吗？什么时候发货", "m").await;
    let first = buyer.frame().await;
    let second = buyer.frame().await;
    assert_eq!(
        kinds(&[first.clone(), second.clone()]),
        [("answer", "free_shipping"), ("answer", "shipping_time")]
    );
    assert_eq!(first["in_reply_to"], "m");
    assert_eq!(second["in_reply_to"], "m");
    app.shutdown().await;
}

#[tokio::test]
async fn shipping_time_follows_the_region_and_the_cut_off() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("carol").await.welcomed().await;
    // 10:00 on a Thursday: before the 16:00 cut-off, so it leaves today.
    let to_shanghai = buyer.ask("发到上海要几天", "1", "answer").await;
    let text = to_shanghai[0]["text"].as_str().unwrap();
    assert!(text.contains("1-2"), "{text}");
    assert!(text.contains("当天"), "{text}");

    let to_xinjiang = buyer.ask("新疆多久能到", "2", "answer").await;
    let text = to_xinjiang[0]["text"].as_str().unwrap();
    assert!(text.contains("5-7"), "{text}");

    // 16:30: after the cut-off, it leaves the next working day.
    app.clock.set(at("2026-11-26T16:30:00+08:00"));
    let late = buyer.ask("什么时候发货", "3", "answer").await;
    let text = late[0]["text"].as_str().unwrap();
    assert!(text.contains("下一个工作日"), "{text}");
    assert!(!text.contains("当天"), "{text}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_bargaining_ladder_climbs_and_survives_a_reconnect() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("dave").await.welcomed().await;
    let first = buyer.ask("能便宜点吗", "1", "answer").await;
    let second = buyer.ask("再便宜一点嘛", "2", "answer").await;
    assert_eq!(first[0]["intent"], "bargain");
    assert_ne!(first[0]["text"], second[0]["text"]);
    drop(buyer);

    let mut back = app.buyer("dave").await;
    let mut texts = vec![first[0]["text"].clone(), second[0]["text"].clone()];
    for id in ["3", "4", "5"] {
        let reply = back.ask("便宜点呗", id, "answer").await;
        assert_eq!(reply[0]["intent"], "bargain");
        texts.push(reply[0]["text"].clone());
    }
    // refuse → value → concession → member, then it stays on the member step (whose
    // variants may rotate) instead of starting over.
    let distinct: std::collections::HashSet<_> = texts[..4].iter().collect();
    assert_eq!(distinct.len(), 4, "each step says something new: {texts:?}");
    assert_ne!(texts[4], texts[0], "the ladder does not restart: {texts:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn variants_rotate_so_the_same_wording_is_not_sent_twice_in_a_row() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("erin").await.welcomed().await;
    let mut previous = String::new();
    for id in 0..4 {
        let reply = buyer.ask("是正品吗", &id.to_string(), "answer").await;
        let text = reply[0]["text"].as_str().unwrap().to_string();
        assert_ne!(text, previous);
        previous = text;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn away_is_sent_once_per_away_period_and_handoffs_wait_for_agents() {
    let app = TestApp::start().await;
    app.clock.set(at("2026-11-26T12:10:00+08:00")); // lunch break
    let mut buyer = app.buyer("frank").await.welcomed().await;
    let replies = buyer.ask("包邮吗", "1", "answer").await;
    assert_eq!(kinds(&replies), [("away", ""), ("answer", "free_shipping")]);
    assert!(
        replies[0]["text"].as_str().unwrap().contains("13:00"),
        "{}",
        replies[0]
    );

    // Still the same break: no second notice.
    let replies = buyer.ask("是正品吗", "2", "answer").await;
    assert_eq!(kinds(&replies), [("answer", "authenticity")]);

    // Night: a new away period; a handoff made now is kept for the morning.
    app.clock.set(at("2026-11-26T23:30:00+08:00"));
    let replies = buyer.ask("我要退货", "3", "handoff").await;
    assert_eq!(kinds(&replies), [("handoff", "after_sale")]);
    let text = replies[0]["text"].as_str().unwrap();
    assert!(
        text.contains("09:00"),
        "the buyer is told when agents are back: {text}"
    );
    let stored: Vec<String> = app.query("SELECT intent FROM handoffs");
    assert_eq!(stored, ["after_sale"]);
    app.shutdown().await;
}

#[tokio::test]
async fn busy_is_sent_once_during_a_peak_window() {
    let app = TestApp::start().await;
    // 00:05 on 11 November is inside the peak but outside service hours: nobody is on duty,
    // so the buyer hears `away`, not `busy`.
    app.clock.set(at("2026-11-11T00:05:00+08:00"));
    let mut buyer = app.buyer("grace").await.welcomed().await;
    let replies = buyer.ask("有货吗", "0", "answer").await;
    assert_eq!(kinds(&replies), [("away", ""), ("answer", "stock")]);

    app.clock.set(at("2026-11-11T10:00:00+08:00"));
    let replies = buyer.ask("有货吗", "1", "answer").await;
    assert_eq!(kinds(&replies), [("busy", ""), ("answer", "stock")]);
    let replies = buyer.ask("有货吗", "2", "answer").await;
    assert_eq!(kinds(&replies), [("answer", "stock")]);
    app.shutdown().await;
}

#[tokio::test]
async fn handoffs_are_stored_before_the_buyer_is_told_and_not_duplicated() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("heidi").await.welcomed().await;
    let replies = buyer
        .ask("质量太差了，贴上第二天就破了", "1", "handoff")
        .await;
    let intent = replies[0]["intent"].as_str().unwrap().to_string();
    assert!(["complaint", "after_sale"].contains(&intent.as_str()));
    // The reply came after the commit, so the row is there now.
    let stored: Vec<String> = app.query("SELECT intent FROM handoffs");
    assert_eq!(stored, [intent]);
    // Then the buyer learns their place in the queue.
    let place = buyer.frame().await;
    assert_eq!(
        (&place["type"], &place["status"], &place["in_reply_to"]),
        (&"queue".into(), &"queued".into(), &"1".into())
    );
    assert_eq!(place["ahead"], 0);

    // The conversation now waits for a human: the bot stays silent, no second case is
    // queued, and the buyer is only reminded of their place.
    buyer.say("不行，转人工", "2").await;
    let place = buyer.frame().await;
    assert_eq!(
        (&place["type"], &place["in_reply_to"]),
        (&"queue".into(), &"2".into())
    );
    let count: Vec<i64> = app.query("SELECT COUNT(*) FROM handoffs");
    assert_eq!(count, [1]);

    // Every message in and out is in the transcript, in order.
    let senders: Vec<String> = app.query("SELECT sender FROM messages ORDER BY seq");
    assert_eq!(senders, ["bot", "buyer", "bot", "buyer"]);
    app.shutdown().await;
}

#[tokio::test]
async fn negations_and_policy_questions_are_not_handed_off() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("ivan").await.welcomed().await;
    let replies = buyer.ask("支持七天无理由退换吗", "1", "answer").await;
    assert_eq!(kinds(&replies), [("answer", "return_policy")]);
    let replies = buyer.ask("不用转人工了", "2", "fallback").await;
    assert_eq!(kinds(&replies), [("fallback", "")]);
    let replies = buyer.ask("今天天气真好", "3", "fallback").await;
    assert_eq!(kinds(&replies), [("fallback", "")]);
    let count: Vec<i64> = app.query("SELECT COUNT(*) FROM handoffs");
    assert_eq!(count, [0]);
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_shops_and_missing_buyers_are_refused_before_the_upgrade() {
    let app = TestApp::start().await;
    assert_eq!(
        app.refused_upgrade("/ws/buyer?shop=nope&buyer=x").await,
        404
    );
    assert_eq!(app.refused_upgrade("/ws/buyer?shop=default").await, 400);
    let long_id = "b".repeat(200);
    assert_eq!(
        app.refused_upgrade(&format!("/ws/buyer?buyer={long_id}"))
            .await,
        400
    );
    // `shop` left out means the shop `default`.
    crate::helpers::Client::connect(&app.url("/ws/buyer?buyer=x"))
        .await
        .welcomed()
        .await;
    app.shutdown().await;
}

#[tokio::test]
async fn health_and_metrics_are_served() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("judy").await.welcomed().await;
    buyer.ask("我要退货", "1", "handoff").await;
    let (status, body) = app.http_get("/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, metrics) = app.http_get("/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        "autoresponder_connections{side=\"buyer\"} 1",
        "autoresponder_buyer_messages_total{shop=\"default\"} 1",
        "autoresponder_replies_total{intent=\"after_sale\",kind=\"handoff\",shop=\"default\"} 1",
        "autoresponder_handoffs_total{intent=\"after_sale\",priority=\"normal\",shop=\"default\"} 1",
        "autoresponder_reply_latency_seconds_count 1",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn shutdown_sends_close_frames_and_keeps_what_was_acknowledged() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("ken").await.welcomed().await;
    buyer.ask("我要换货", "1", "handoff").await;
    assert_eq!(buyer.frame().await["type"], "queue");
    let database = app.database.clone();
    let address = app.address;
    let (stop_done, shutdown) = tokio::join!(
        async {
            match buyer.next().await {
                Incoming::Closed(Some(frame)) => frame,
                other => panic!("expected a close frame, got {other:?}"),
            }
        },
        app.shutdown()
    );
    let _dir = shutdown;
    assert_eq!(u16::from(stop_done.code), 1001);
    // The listener is gone and the handoff is on disk.
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
    let connection = rusqlite::Connection::open(database).unwrap();
    let count: i64 = connection
        .query_row("SELECT COUNT(*) FROM handoffs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_short_follow_up_is_answered_in_the_topic_of_the_answer_before_it() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("erin").await.welcomed().await;
    let to_jiangsu = buyer.ask("发江苏几天到", "1", "answer").await;
    assert_eq!(kinds(&to_jiangsu), [("answer", "shipping_time")]);
    assert!(to_jiangsu[0]["text"].as_str().unwrap().contains("1-2"));

    let to_xinjiang = buyer.ask("那新疆呢？", "2", "answer").await;
    assert_eq!(kinds(&to_xinjiang), [("answer", "shipping_time")]);
    let text = to_xinjiang[0]["text"].as_str().unwrap();
    assert!(text.contains("偏远地区") && text.contains("5-7"), "{text}");
    drop(buyer);

    // The topic is stored with the conversation: a buyer who reconnects keeps it.
    app.clock.set(at("2026-11-26T10:02:00+08:00"));
    let mut again = app.buyer("erin").await;
    let to_tibet = again.ask("西藏也是吗", "3", "answer").await;
    assert_eq!(kinds(&to_tibet), [("answer", "shipping_time")]);

    // Long after the answer, the same words ask nothing.
    app.clock.set(at("2026-11-26T10:30:00+08:00"));
    let late = again.ask("那上海呢", "4", "fallback").await;
    assert_eq!(kinds(&late), [("fallback", "")]);
    app.shutdown().await;
}
