//! Webhooks against a real local HTTP receiver, and the service figures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{PATIENCE, Setup, TestApp};

/// One request the receiver got.
#[derive(Debug)]
pub struct Received {
    pub key: String,
    pub event: String,
    pub signature_ok: bool,
    pub body: Value,
}

/// Serves a webhook receiver on `listener` that reports every request it accepts.
pub fn receiver(
    listener: tokio::net::TcpListener,
    secret: &'static str,
) -> mpsc::UnboundedReceiver<Received> {
    let (tx, rx) = mpsc::unbounded_channel();
    let tx = Arc::new(tx);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let body_text = String::from_utf8(body.to_vec()).unwrap();
                let timestamp: i64 = header("x-autoresponder-timestamp").parse().unwrap();
                let expected = autoresponder::webhook::signature(secret, timestamp, &body_text);
                let _ = tx.send(Received {
                    key: header("idempotency-key"),
                    event: header("x-autoresponder-event"),
                    signature_ok: header("x-autoresponder-signature") == expected,
                    body: serde_json::from_str(&body_text).unwrap(),
                });
                StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    rx
}

#[tokio::test]
async fn events_wait_for_a_receiver_that_is_down_and_arrive_signed_once_it_is_up() {
    // Reserve a port, then leave it closed: the receiver is down.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let hook =
        format!("\n[[webhook]]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"s3cret\"\n");
    let app = TestApp::launch(Setup::staffed(&hook)).await;
    let mut mei = app.agent("mei").await;
    let mut buyer = app.buyer("hooked").await;
    buyer.until(|f| f["kind"] == "welcome").await;
    buyer.ask("你们是骗子，我要投诉", "1", "handoff").await;
    let case = mei.next_of("handoff").await;
    let id = case["handoff"]["id"].as_str().unwrap().to_string();
    mei.send_json(json!({"type": "claim", "handoff": id})).await;
    mei.next_of("claimed").await;
    mei.send_json(json!({"type": "resolve", "handoff": id}))
        .await;
    mei.next_of("resolved").await;

    // Deliveries fail and are retried while the receiver is down. Nothing signals a refused
    // connection to the test, so it watches the outbox (bounded by PATIENCE).
    let failed_once = || -> bool {
        let attempts: Vec<i64> =
            app.query("SELECT attempts FROM outbox WHERE delivered_at IS NULL");
        attempts.len() == 3 && attempts.iter().all(|&a| a >= 1)
    };
    tokio::time::timeout(PATIENCE, async {
        while !failed_once() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the deliveries are attempted and fail");
    // …and all arrive once it is up.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let mut received = receiver(listener, "s3cret");
    let mut by_event: BTreeMap<String, Vec<Received>> = BTreeMap::new();
    while by_event.len() < 3 {
        let request = received.recv().await.unwrap();
        by_event
            .entry(request.event.clone())
            .or_default()
            .push(request);
    }
    let events: BTreeSet<&str> = by_event.keys().map(String::as_str).collect();
    assert_eq!(
        events,
        BTreeSet::from(["handoff.claimed", "handoff.created", "handoff.resolved"])
    );
    for (event, requests) in &by_event {
        // At least once, and a repeat carries the same idempotency key.
        let keys: BTreeSet<&str> = requests.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys.len(), 1, "{event}: {requests:?}");
        for request in requests {
            assert!(
                request.signature_ok,
                "{event} is signed with the shop's secret"
            );
            assert_eq!(request.body["event"], event.as_str());
            assert_eq!(request.body["id"], request.key.as_str());
            assert_eq!(request.body["handoff"]["id"], id.as_str());
        }
    }
    let created = &by_event["handoff.created"][0].body;
    assert_eq!(created["handoff"]["priority"], "high");
    assert_eq!(created["handoff"]["message"], "你们是骗子，我要投诉");
    assert_eq!(by_event["handoff.claimed"][0].body["agent"]["id"], "mei");
    app.shutdown().await;
}

#[tokio::test]
async fn the_service_figures_need_an_agent_token_and_count_bot_and_humans() {
    let app = TestApp::staffed().await;
    assert_eq!(app.http_get("/api/stats?shop=default").await.0, 401);
    assert_eq!(
        app.http_get("/api/stats?shop=default&token=wrong").await.0,
        401
    );

    let mut mei = app.agent("mei").await;
    let mut happy = app.buyer("stats-happy").await;
    happy.until(|f| f["kind"] == "welcome").await;
    happy.ask("包邮吗", "1", "answer").await;
    let mut upset = app.buyer("stats-upset").await;
    upset.until(|f| f["kind"] == "welcome").await;
    let replies = upset.ask("我要退货", "1", "handoff").await;
    let conversation = replies[0]["conversation"].as_str().unwrap().to_string();
    let case = mei.next_of("handoff").await;
    mei.send_json(json!({"type": "claim", "handoff": case["handoff"]["id"]}))
        .await;
    mei.next_of("claimed").await;
    app.clock.advance(chrono::Duration::seconds(30));
    mei.send_json(
        json!({"type": "reply", "conversation": conversation, "text": "您好，我来帮您办理退货"}),
    )
    .await;
    mei.next_of("sent").await;

    let (status, body) = app
        .http_get("/api/stats?shop=default&token=token-mei")
        .await;
    assert_eq!(status, 200, "{body}");
    let stats: Value = serde_json::from_str(&body).unwrap();
    let figures = &stats["figures"];
    assert_eq!(figures["conversations"], 2);
    assert_eq!(figures["buyer_messages"], 2);
    assert_eq!(figures["agent_replies"], 1);
    assert_eq!(figures["handoff_rate"], 0.5);
    assert_eq!(figures["bot_resolution_rate"], 0.5);
    assert_eq!(figures["human_first_response_seconds"], 30.0);
    // Two welcomes, two answers, one agent reply, for two buyer messages.
    assert_eq!(figures["reply_ratio"], 2.5);
    assert_eq!(stats["queue_length"], 0);
    assert_eq!(stats["agents_online"], 1);

    let metrics = app.fresh_kpis().await;
    for line in [
        "autoresponder_queue_length{shop=\"default\"} 0",
        "autoresponder_agents_online{shop=\"default\"} 1",
        "autoresponder_kpi{figure=\"handoff_rate\",shop=\"default\"} 0.5",
        "autoresponder_human_first_response_seconds_count{shop=\"default\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    app.shutdown().await;
}
