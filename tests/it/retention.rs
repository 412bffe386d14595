//! Retention: the background sweep deletes what is older than the shop keeps, never an open
//! case, and counts what it deleted.

use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, TestApp};

/// The service's counter of rows deleted from `table`, as `/metrics` shows it.
async fn deleted(app: &TestApp, table: &str) -> u64 {
    let (_, body) = app.http_get("/metrics").await;
    let series = format!("autoresponder_retention_deleted_rows_total{{table=\"{table}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn the_sweep_deletes_what_the_shop_no_longer_keeps_but_never_an_open_case() {
    let app = TestApp::staffed().await;
    // This shop keeps 30 days.
    let shop_file = app.intents.join("default/shop.toml");
    let mut text = std::fs::read_to_string(&shop_file).unwrap();
    text.push_str("\n[retention]\ndays = 30\n");
    std::fs::write(&shop_file, text).unwrap();
    let bearer = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let (code, body) = app.http("POST", "/api/admin/reload", &[&bearer]).await;
    assert_eq!(code, 200, "{body}");

    let mut old = app.buyer("old").await.welcomed().await;
    old.ask("有发票吗", "1", "answer").await;
    let mut waiting = app.buyer("waiting").await.welcomed().await;
    waiting.ask("我要退货", "1", "handoff").await;
    drop((old, waiting));

    // Thirty-one days later, a new buyer writes; then the sweep runs.
    app.clock.advance(chrono::Duration::days(31));
    let mut new = app.buyer("new").await.welcomed().await;
    new.ask("有发票吗", "1", "answer").await;
    drop(new);
    app.fresh_sweep().await;

    let buyers: Vec<String> = app.query("SELECT buyer FROM conversations ORDER BY buyer");
    assert_eq!(buyers, ["new", "waiting"]);
    let old_lines: Vec<i64> = app.query(
        "SELECT COUNT(*) FROM messages WHERE conversation NOT IN (SELECT id FROM conversations)",
    );
    assert_eq!(old_lines, [0]);
    let waiting_lines: Vec<i64> = app.query(
        "SELECT COUNT(*) FROM messages m JOIN conversations c ON c.id = m.conversation
         WHERE c.buyer = 'waiting'",
    );
    assert!(
        waiting_lines[0] >= 2,
        "the open case's conversation is whole"
    );
    assert!(deleted(&app, "messages").await >= 3);
    assert_eq!(deleted(&app, "conversations").await, 1);

    // The open case is still there for an agent to take.
    let cases: Vec<String> = app.query("SELECT id FROM handoffs WHERE status = 'queued'");
    assert_eq!(cases.len(), 1);
    let mut mei = app.agent("mei").await;
    mei.send_json(json!({"type": "claim", "handoff": cases[0]}))
        .await;
    let claimed = mei.next_of("claimed").await;
    assert_eq!(claimed["agent"], "mei");
    app.shutdown().await;
}
