//! A flood of handoffs: a console still connects and works with a huge queue, and creating
//! cases is limited per address and per shop.

use std::path::Path;
use std::time::{Duration, Instant};

use autoresponder::config::Database;
use autoresponder::store::{SqliteStore, Store};
use serde_json::{Value, json};

use crate::helpers::{ON_DUTY, Setup, TestApp, at};

/// Writes `count` queued cases straight into a fresh SQLite file, one conversation each, in
/// one transaction: far faster than `count` buyers asking for a human. Every case is normal
/// priority, a second apart, except the newest, which is high priority and so first; it is
/// opened at the test clock's now, so that escalation does not announce it again mid-test.
/// A staffed service over a fresh SQLite file with `count` cases queued (see [`seed_queue`]).
async fn launch_with_queue(path: &Path, count: usize) -> TestApp {
    seed_queue(path, count).await;
    let mut app = TestApp::launch(Setup {
        database: Some(Database::Sqlite(path.to_path_buf())),
        ..Setup::staffed("")
    })
    .await;
    app.ready().await;
    app
}

async fn seed_queue(path: &Path, count: usize) {
    let store = SqliteStore::open(path, Duration::from_secs(5)).unwrap();
    store.close().await;
    let mut connection = rusqlite::Connection::open(path).unwrap();
    let transaction = connection.transaction().unwrap();
    {
        let mut conversation = transaction
            .prepare(
                "INSERT INTO conversations (id, shop, buyer, state, created_at, updated_at)
                 VALUES (?1, 'default', ?2, ?3, ?4, ?4)",
            )
            .unwrap();
        let mut handoff = transaction
            .prepare(
                "INSERT INTO handoffs (id, shop, conversation, buyer, intent, priority, status,
                                       created_at)
                 VALUES (?1, 'default', ?2, ?3, 'human', ?4, 'queued', ?5)",
            )
            .unwrap();
        let start = at("2026-11-20T00:00:00Z");
        for i in 0..count {
            let (id, conversation_id, buyer) = (
                format!("h-{i:06}"),
                format!("c-{i:06}"),
                format!("b-{i:06}"),
            );
            let newest = i + 1 == count;
            let created = match newest {
                true => at(ON_DUTY),
                false => start + chrono::Duration::seconds(i as i64),
            };
            let created = created.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
            let state = json!({"open_handoff": id}).to_string();
            let priority = if newest { "high" } else { "normal" };
            conversation
                .execute(rusqlite::params![conversation_id, buyer, state, created])
                .unwrap();
            handoff
                .execute(rusqlite::params![
                    id,
                    conversation_id,
                    buyer,
                    priority,
                    created
                ])
                .unwrap();
        }
    }
    transaction.commit().unwrap();
}

/// Reads a console's frames up to the `queue_page` that ends a page; returns it and the
/// ids of the `handoff` frames before it, in order.
async fn page(console: &mut crate::helpers::Client) -> (Value, Vec<String>) {
    let (page, before) = console.until(|f| f["type"] == "queue_page").await;
    let ids = before
        .iter()
        .filter(|f| f["type"] == "handoff")
        .map(|f| f["handoff"]["id"].as_str().unwrap().to_string())
        .collect();
    (page, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_connects_and_claims_with_a_hundred_thousand_cases_queued() {
    const QUEUED: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flood.db");
    let seeding = Instant::now();
    seed_queue(&path, QUEUED).await;
    eprintln!("seeded {QUEUED} cases in {:?}", seeding.elapsed());
    let mut app = TestApp::launch(Setup {
        database: Some(Database::Sqlite(path)),
        ..Setup::staffed("")
    })
    .await;
    app.ready().await;

    let connecting = Instant::now();
    let mut mei = app.agent("mei").await;
    let (top, ids) = page(&mut mei).await;
    eprintln!("saw the top of the queue after {:?}", connecting.elapsed());
    assert_eq!(top["queued"], QUEUED, "{top}");
    assert_eq!(top["sent"], 50, "{top}");
    assert_eq!(ids.len(), 50);
    assert_eq!(
        ids[0],
        format!("h-{:06}", QUEUED - 1),
        "high priority first"
    );
    assert_eq!(ids[1], "h-000000", "then the oldest");
    assert_eq!(ids[49], "h-000048");

    mei.send_json(json!({"type": "claim", "handoff": "h-000000"}))
        .await;
    let claimed = mei
        .until(|f| f["type"] == "claimed" && f["handoff"] == "h-000000")
        .await
        .0;
    assert_eq!(claimed["agent"], "mei");
    // Printed, not asserted: a wall-clock bound on a shared 2-core machine would be flaky.
    // Each frame above is guarded by the client's patience (10 s).
    eprintln!(
        "connected, saw the top of the queue and claimed in {:?}",
        connecting.elapsed()
    );

    // The next page starts after the first, though its last case moved meanwhile.
    let next = top["next"].as_str().unwrap().to_string();
    mei.send_json(json!({"type": "more_cases", "after": next, "limit": 20}))
        .await;
    let (second, ids) = page(&mut mei).await;
    assert_eq!(second["queued"], QUEUED - 1, "{second}");
    assert_eq!(second["sent"], 20);
    assert_eq!(ids.first().unwrap(), "h-000049");
    assert_eq!(ids.last().unwrap(), "h-000068");

    mei.send_json(json!({"type": "more_cases", "after": "not-a-cursor"}))
        .await;
    let error = mei.next_of("error").await;
    assert_eq!(error["code"], "bad_request", "{error}");

    // A second console is not pushed out either, and the first keeps working.
    let mut lan = app.agent("lan").await;
    assert_eq!(page(&mut lan).await.0["queued"], QUEUED - 1);
    mei.send_json(json!({"type": "resolve", "handoff": "h-000000"}))
        .await;
    mei.until(|f| f["type"] == "resolved" && f["handoff"] == "h-000000")
        .await;
    app.shutdown().await;
}

/// The end of the queue has no `next`, and a page never runs past it.
#[tokio::test]
async fn the_last_page_says_there_is_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let app = launch_with_queue(&dir.path().join("few.db"), 3).await;
    let mut mei = app.agent("mei").await;
    let (top, ids) = page(&mut mei).await;
    assert_eq!(ids, ["h-000002", "h-000000", "h-000001"]);
    assert_eq!(
        (top["queued"].as_u64(), top["next"].clone()),
        (Some(3), Value::Null)
    );
    mei.send_json(json!({"type": "more_cases", "limit": 2}))
        .await;
    let (first_two, ids) = page(&mut mei).await;
    assert_eq!(ids, ["h-000002", "h-000000"]);
    let next = first_two["next"].as_str().unwrap().to_string();
    mei.send_json(json!({"type": "more_cases", "after": next, "limit": 2}))
        .await;
    let (rest, ids) = page(&mut mei).await;
    assert_eq!(ids, ["h-000001"]);
    assert_eq!(rest["next"], Value::Null);
    app.shutdown().await;
}

/// A buyer at `client` (as the load balancer names it) who asks for a human; returns the
/// frames answering the request, up to the handoff notice or an error.
async fn asks_for_a_human(app: &TestApp, client: &str, buyer: &str) -> Value {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = app
        .url(&format!("/ws/buyer?shop=default&buyer={buyer}"))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("x-forwarded-for", client.parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut buyer = crate::helpers::Client::from_socket(socket).welcomed().await;
    buyer.say("转人工", "h").await;
    buyer
        .until(|f| f["type"] == "error" || f["kind"] == "handoff")
        .await
        .0
}

fn refused(app_metrics: &str, limit: &str) -> u64 {
    let line =
        format!("autoresponder_handoffs_refused_total{{limit=\"{limit}\",shop=\"default\"}}");
    app_metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Fresh buyer ids cost nothing: one address inventing buyers gets only its budget of new
/// cases, other addresses keep theirs until the shop's budget is spent, and every refusal
/// shows in `/metrics`.
#[tokio::test]
async fn new_cases_are_limited_per_address_and_per_shop() {
    let mut setup = Setup::staffed("");
    setup.limits.trust_forwarded_for = true;
    setup.limits.handoffs_per_address_per_minute = 3.0;
    setup.limits.handoffs_per_shop_per_minute = 5.0;
    let mut app = TestApp::launch(setup).await;
    app.ready().await;
    let flooder = "203.0.113.7";
    for i in 0..3 {
        let answer = asks_for_a_human(&app, flooder, &format!("flood-{i}")).await;
        assert_eq!(answer["kind"], "handoff", "{answer}");
    }
    let answer = asks_for_a_human(&app, flooder, "flood-3").await;
    assert_eq!(answer["code"], "rate_limited", "{answer}");
    // The same /64 of IPv6 is one address.
    let answer = asks_for_a_human(&app, "2001:db8::1", "v6-a").await;
    assert_eq!(answer["kind"], "handoff", "{answer}");
    let answer = asks_for_a_human(&app, "2001:db8::1", "v6-b").await;
    assert_eq!(answer["kind"], "handoff", "{answer}");
    let answer = asks_for_a_human(&app, "2001:db8::2", "v6-c").await;
    assert_eq!(
        answer["code"], "rate_limited",
        "the shop's budget of 5 is spent"
    );
    let answer = asks_for_a_human(&app, "198.51.100.9", "honest").await;
    assert_eq!(answer["code"], "rate_limited", "{answer}");
    let queued: Vec<i64> = app.query("SELECT COUNT(*) FROM handoffs");
    assert_eq!(queued, [5], "refused requests open no case");
    let (_, metrics) = app.http_get("/metrics").await;
    assert_eq!(refused(&metrics, "address"), 1, "{metrics}");
    assert_eq!(refused(&metrics, "shop"), 2, "{metrics}");

    // Time refills the budgets: a minute later the honest buyer gets a human.
    crate::helpers::advance_timers(Duration::from_secs(60)).await;
    let answer = asks_for_a_human(&app, "198.51.100.9", "honest-again").await;
    assert_eq!(answer["kind"], "handoff", "{answer}");
    app.shutdown().await;
}

/// Buyers far down a long queue who write do not flood the consoles: only cases in the top
/// page (the part a console was sent) have their messages pushed.
#[tokio::test]
async fn only_the_top_page_of_the_queue_pushes_buyer_messages() {
    let dir = tempfile::tempdir().unwrap();
    let app = launch_with_queue(&dir.path().join("sixty.db"), 60).await;
    let mut mei = app.agent("mei").await;
    page(&mut mei).await;
    // b-000055 is 56th in line (the high-priority case is first), b-000001 third.
    for (buyer, text) in [("b-000055", "还要等多久"), ("b-000001", "在吗")] {
        let mut client = app.buyer(buyer).await;
        client.say(text, "w").await;
        let place = client
            .until(|f| f["type"] == "queue" && f["in_reply_to"] == "w")
            .await
            .0;
        assert_eq!(place["status"], "queued", "{place}");
    }
    let heard = mei.next_of("buyer_message").await;
    assert_eq!(heard["conversation"], "c-000001", "{heard}");
    assert_eq!(heard["text"], "在吗");
    app.shutdown().await;
}
