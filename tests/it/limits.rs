//! Bad input: every error code, oversized frames, floods and dead connections.

use std::time::Duration;

use autoresponder::config::Limits;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Incoming, PATIENCE, TestApp};

async fn expect_error(buyer: &mut crate::helpers::Client, code: &str) -> String {
    let frame = buyer.frame().await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], code, "{frame}");
    frame["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn malformed_frames_get_bad_request_and_the_connection_stays_open() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("mallory").await.welcomed().await;
    buyer.send_raw(Message::text("hello?")).await;
    expect_error(&mut buyer, "bad_request").await;
    buyer.send_json(json!({"text": "没有类型"})).await;
    assert!(
        expect_error(&mut buyer, "bad_request")
            .await
            .contains("type")
    );
    buyer.send_json(json!({"type": "dance"})).await;
    assert!(
        expect_error(&mut buyer, "bad_request")
            .await
            .contains("dance")
    );
    buyer.send_json(json!({"type": "message", "id": "x"})).await;
    assert!(
        expect_error(&mut buyer, "bad_request")
            .await
            .contains("text")
    );
    buyer
        .send_raw(Message::binary(vec![0xff, 0x00, 0x13]))
        .await;
    expect_error(&mut buyer, "bad_request").await;

    // After all that the conversation goes on.
    let replies = buyer.ask("有发票吗", "ok", "answer").await;
    assert_eq!(replies[0]["intent"], "invoice");
    app.shutdown().await;
}

#[tokio::test]
async fn long_texts_get_too_large_and_oversized_frames_close_with_1009() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("trudy").await.welcomed().await;
    // 2,001 characters: over the text limit but well inside the frame limit.
    buyer.say(&"长".repeat(2001), "long").await;
    expect_error(&mut buyer, "too_large").await;
    // Exactly at the limit is fine.
    buyer.say(&"长".repeat(2000), "fits").await;
    assert_eq!(buyer.frame().await["in_reply_to"], "fits");

    // A 1 MiB frame is over the websocket limit: the server closes with 1009.
    buyer.say(&"x".repeat(1 << 20), "huge").await;
    match buyer.next().await {
        Incoming::Closed(Some(frame)) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    // The service itself is fine.
    let mut other = app.buyer("victor").await.welcomed().await;
    assert_eq!(
        other.ask("在吗", "1", "answer").await[0]["intent"],
        "greeting"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_flooding_connection_is_rate_limited_while_others_are_answered() {
    let app = TestApp::start().await;
    let mut flooder = app.buyer("flood").await.welcomed().await;
    let mut calm = app.buyer("calm").await.welcomed().await;
    let sent = 40;
    for i in 0..sent {
        flooder.say("包邮吗", &format!("f{i}")).await;
    }
    let mut answered = 0;
    let mut limited = 0;
    for _ in 0..sent {
        let frame = flooder.frame().await;
        match (frame["type"].as_str(), frame["code"].as_str()) {
            (Some("reply"), _) => answered += 1,
            (Some("error"), Some("rate_limited")) => limited += 1,
            _ => panic!("unexpected {frame}"),
        }
    }
    assert_eq!(
        answered + limited,
        sent,
        "every message got exactly one answer"
    );
    assert!(limited > 0, "the flood was limited");
    assert!(answered >= 10, "the burst allowance was honoured");
    // The calm buyer is not affected by the other's flood.
    let replies = calm.ask("包邮吗", "c", "answer").await;
    assert_eq!(replies[0]["intent"], "free_shipping");
    app.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_never_answers_pings_is_closed() {
    let app = TestApp::start_with(Limits {
        ping_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(200),
        ..Limits::default()
    })
    .await;
    // A raw TCP client does the upgrade and then never answers a ping; the server must give
    // up on it and close the socket, which the read below sees as end of stream.
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let request = "GET /ws/buyer?buyer=ghost HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received))
        .await
        .expect("the server closes a dead connection")
        .unwrap();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    // Server frames: 0x89 is a ping, 0x88 a close.
    assert!(received.contains(&0x89), "it was pinged");
    assert!(received.contains(&0x88), "it got a close frame");
    app.shutdown().await;
}

#[tokio::test]
async fn a_database_that_goes_away_gets_unavailable_and_nothing_is_acknowledged() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("wendy").await.welcomed().await;

    // Someone else holds the database's write lock: the service cannot commit.
    let blocker = rusqlite::Connection::open(&app.database).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    buyer.say("我要退货", "lost").await;
    let frame = buyer.frame().await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], "unavailable", "{frame}");
    assert_eq!(frame["in_reply_to"], "lost", "{frame}");
    assert!(frame["message"].as_str().unwrap().contains("again"));
    blocker.execute_batch("ROLLBACK").unwrap();

    // Nothing was acknowledged, so nothing half-written is there; the resend goes through.
    let stored: Vec<i64> = app.query("SELECT COUNT(*) FROM handoffs");
    assert_eq!(stored, [0]);
    let replies = buyer.ask("我要退货", "again", "handoff").await;
    assert_eq!(replies[0]["intent"], "after_sale");
    let stored: Vec<i64> = app.query("SELECT COUNT(*) FROM handoffs");
    assert_eq!(stored, [1]);
    let buyer_lines: Vec<String> =
        app.query("SELECT text FROM messages WHERE sender = 'buyer' ORDER BY seq");
    assert_eq!(buyer_lines, ["我要退货"]);
    app.shutdown().await;
}

#[tokio::test]
async fn readyz_fails_while_the_store_cannot_commit_and_recovers() {
    let app = TestApp::start().await;
    let (status, body) = app.http_get("/readyz").await;
    assert_eq!((status, body.as_str()), (200, "store: ok\nshutdown: ok\n"));

    // Someone else holds the database's write lock: reads still work, commits do not.
    let blocker = rusqlite::Connection::open(&app.database).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // Past the time a check's result is reused.
    crate::helpers::advance_timers(Duration::from_secs(2)).await;
    let (status, body) = app.http_get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("store: failed: cannot commit"), "{body}");
    assert!(body.contains("locked"), "{body}");
    // Liveness is another question: the process answers.
    assert_eq!(app.http_get("/healthz").await, (200, "ok\n".to_string()));

    blocker.execute_batch("ROLLBACK").unwrap();
    crate::helpers::advance_timers(Duration::from_secs(2)).await;
    let (status, body) = app.http_get("/readyz").await;
    assert_eq!((status, body.as_str()), (200, "store: ok\nshutdown: ok\n"));
    app.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_caps_are_refused_before_the_upgrade() {
    let app = TestApp::start_with(Limits {
        max_connections_per_address: 2,
        ..Limits::default()
    })
    .await;
    let first = app.buyer("cap-1").await.welcomed().await;
    let _second = app.buyer("cap-2").await.welcomed().await;
    assert_eq!(app.refused_upgrade("/ws/buyer?buyer=cap-3").await, 503);
    let (status, body) = app.http_get("/healthz").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "ok\n"),
        "plain HTTP is not capped"
    );

    // A place is given back when a connection ends (the server notices the close first).
    drop(first);
    tokio::time::timeout(crate::helpers::PATIENCE, async {
        loop {
            match tokio_tungstenite::connect_async(app.url("/ws/buyer?buyer=cap-3")).await {
                Ok(_) => return,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the freed place is taken");
    app.shutdown().await;
}

#[tokio::test]
async fn behind_a_load_balancer_connections_are_counted_by_the_client_it_names() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = TestApp::start_with(Limits {
        max_connections_per_address: 1,
        trust_forwarded_for: true,
        ..Limits::default()
    })
    .await;
    let from = |client: &'static str, buyer: &str| {
        let mut request = app
            .url(&format!("/ws/buyer?buyer={buyer}"))
            .into_client_request()
            .unwrap();
        // As nginx sends it: what the client claimed, then the address nginx saw.
        let forwarded = format!("198.51.100.1, {client}");
        request
            .headers_mut()
            .insert("x-forwarded-for", forwarded.parse().unwrap());
        request
    };
    // Every connection comes from the balancer's address (127.0.0.1), yet each client gets
    // its own place, and a second connection of one client is over its cap.
    let (_one, _) = tokio_tungstenite::connect_async(from("203.0.113.1", "lb-1"))
        .await
        .unwrap();
    let (_two, _) = tokio_tungstenite::connect_async(from("203.0.113.2", "lb-2"))
        .await
        .unwrap();
    match tokio_tungstenite::connect_async(from("203.0.113.1", "lb-3")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503)
        }
        other => panic!("expected a 503 for the client's second connection: {other:?}"),
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_shop_with_a_secret_takes_only_signed_buyers_from_its_own_pages() {
    use autoresponder::shop::widget::sign;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = TestApp::start().await;
    let shop_file = app.intents.join("default/shop.toml");
    let mut text = std::fs::read_to_string(&shop_file).unwrap();
    text.push_str("\n[widget]\nsecret = \"k\"\norigins = [\"https://shop.example.com\"]\n");
    std::fs::write(&shop_file, text).unwrap();
    let bearer = format!("Authorization: Bearer {}", crate::helpers::ADMIN_TOKEN);
    let (code, body) = app.http("POST", "/api/admin/reload", &[&bearer]).await;
    assert_eq!(code, 200, "{body}");

    let refused = |path: String, origin: Option<&'static str>| {
        let url = app.url(&path);
        async move {
            let mut request = url.into_client_request().unwrap();
            if let Some(origin) = origin {
                request
                    .headers_mut()
                    .insert("origin", origin.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(request).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    Some(response.status().as_u16())
                }
                Err(other) => panic!("{other}"),
                Ok(_) => None,
            }
        }
    };
    let now = app.clock_now().timestamp();
    let good = sign("k", "default", "alice", now + 600);
    let page = Some("https://shop.example.com");
    assert_eq!(
        refused(format!("/ws/buyer?buyer=alice&token={good}"), None).await,
        Some(403)
    );
    assert_eq!(
        refused(
            format!("/ws/buyer?buyer=alice&token={good}"),
            Some("https://evil.example")
        )
        .await,
        Some(403)
    );
    assert_eq!(
        refused("/ws/buyer?buyer=alice".into(), page).await,
        Some(401)
    );
    assert_eq!(
        refused(format!("/ws/buyer?buyer=bob&token={good}"), page).await,
        Some(401)
    );
    let expired = sign("k", "default", "alice", now - 1);
    assert_eq!(
        refused(format!("/ws/buyer?buyer=alice&token={expired}"), page).await,
        Some(401)
    );
    assert_eq!(
        refused(format!("/ws/buyer?buyer=alice&token={good}"), page).await,
        None
    );
    app.shutdown().await;
}

/// The next frame that is not a welcome (a returning buyer may or may not be greeted again).
async fn after_any_welcome(buyer: &mut crate::helpers::Client) -> serde_json::Value {
    loop {
        let frame = buyer.frame().await;
        if frame["kind"] != "welcome" {
            return frame;
        }
    }
}

#[tokio::test]
async fn reconnecting_does_not_reset_a_buyers_rate_limit() {
    // A token a minute: no refill to speak of while the test runs, only the bursts count.
    let app = TestApp::start_with(Limits {
        messages_per_second: 1.0 / 60.0,
        message_burst: 3,
        messages_per_address_per_second: 1.0 / 60.0,
        message_burst_per_address: 5,
        ..Limits::default()
    })
    .await;
    let mut buyer = app.buyer("hopper").await.welcomed().await;
    for i in 0..3 {
        let replies = buyer.ask("包邮吗", &format!("h{i}"), "answer").await;
        assert_eq!(replies[0]["intent"], "free_shipping");
    }
    buyer.say("包邮吗", "over").await;
    expect_error(&mut buyer, "rate_limited").await;

    // A new connection of the same buyer finds the same empty bucket.
    drop(buyer);
    let mut again = app.buyer("hopper").await;
    again.say("包邮吗", "fresh?").await;
    let frame = after_any_welcome(&mut again).await;
    assert_eq!(frame["code"], "rate_limited", "{frame}");

    // Another buyer from the same address has their own bucket, within the address's.
    let mut neighbour = app.buyer("neighbour").await.welcomed().await;
    for i in 0..2 {
        let replies = neighbour.ask("包邮吗", &format!("n{i}"), "answer").await;
        assert_eq!(replies[0]["intent"], "free_shipping");
    }
    // The address's burst (5) is spent now, whoever asks and however they connect.
    neighbour.say("包邮吗", "n2").await;
    expect_error(&mut neighbour, "rate_limited").await;
    let mut newcomer = app.buyer("newcomer").await.welcomed().await;
    newcomer.say("包邮吗", "x").await;
    expect_error(&mut newcomer, "rate_limited").await;

    // Time refills the buckets as before (a jump shorter than the idle timeout).
    crate::helpers::advance_timers(Duration::from_secs(61)).await;
    let replies = again.ask("包邮吗", "later", "answer").await;
    assert_eq!(replies[0]["intent"], "free_shipping");
    app.shutdown().await;
}

#[tokio::test]
async fn new_conversations_per_address_are_limited_before_anything_is_stored() {
    let app = TestApp::start_with(Limits {
        conversations_per_address_per_minute: 3.0,
        ..Limits::default()
    })
    .await;
    let first = app.buyer("fresh-0").await.welcomed().await;
    for i in 1..3 {
        app.buyer(&format!("fresh-{i}")).await.welcomed().await;
    }
    // A fourth fresh buyer id from the same address: told why, closed with 1013.
    let mut refused = app.buyer("fresh-3").await;
    expect_error(&mut refused, "rate_limited").await;
    match refused.next().await {
        Incoming::Closed(Some(frame)) => assert_eq!(u16::from(frame.code), 1013),
        other => panic!("expected close 1013, got {other:?}"),
    }
    let stored: Vec<String> = app.query("SELECT buyer FROM conversations ORDER BY buyer");
    assert_eq!(stored, ["fresh-0", "fresh-1", "fresh-2"]);
    let (_, metrics) = app.http_get("/metrics").await;
    assert!(
        metrics.contains("autoresponder_conversations_refused_total{shop=\"default\"} 1"),
        "{metrics}"
    );

    // Buyers the shop knows still come back, and the open conversations go on.
    drop(first);
    let mut back = app.buyer("fresh-0").await;
    back.say("包邮吗", "back").await;
    let frame = after_any_welcome(&mut back).await;
    assert_eq!(frame["intent"], "free_shipping", "{frame}");

    // A third of a minute later there is room for one more.
    crate::helpers::advance_timers(Duration::from_secs(20)).await;
    app.buyer("fresh-3").await.welcomed().await;
    let mut over = app.buyer("fresh-4").await;
    expect_error(&mut over, "rate_limited").await;
    app.shutdown().await;
}

#[tokio::test]
async fn agents_have_their_own_connection_cap_that_buyers_cannot_fill() {
    use crate::agents::{complaining_buyer, handoff_for};
    let app = TestApp::launch(crate::helpers::Setup {
        limits: Limits {
            max_connections_per_address: 2,
            max_agent_connections_per_address: 1,
            ..Limits::default()
        },
        ..crate::helpers::Setup::staffed("")
    })
    .await;
    // Buyers from the office's address fill their cap; one of them wants a human.
    let (_complaining, conversation) =
        complaining_buyer(&app, "office-1", "质量太差了，我要投诉").await;
    let _other = app.buyer("office-2").await.welcomed().await;
    assert_eq!(app.refused_upgrade("/ws/buyer?buyer=office-3").await, 503);

    // An agent from that same address still connects and claims: the buyers' places are
    // not the agents'. Before, the console counted against the buyers' cap and got 503.
    let mut mei = app.agent("mei").await;
    let case = handoff_for(&mut mei, &conversation).await;
    mei.send_json(serde_json::json!({"type": "claim", "handoff": case["handoff"]["id"]}))
        .await;
    assert_eq!(mei.next_of("claimed").await["agent"], "mei");

    // Agents have a cap of their own, and the agent did not take a buyer's place.
    assert_eq!(app.refused_upgrade("/ws/agent?token=token-lan").await, 503);
    assert_eq!(app.refused_upgrade("/ws/buyer?buyer=office-3").await, 503);
    drop(mei);
    tokio::time::timeout(crate::helpers::PATIENCE, async {
        loop {
            let url = app.url("/ws/agent?token=token-lan");
            match tokio_tungstenite::connect_async(url).await {
                Ok(_) => return,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the agent's freed place is taken");
    app.shutdown().await;
}
