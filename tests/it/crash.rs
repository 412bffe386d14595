//! A crash (`kill -9`) while buyers are being handed off loses no handoff they were told of.

use std::collections::HashSet;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::helpers::{Client, PATIENCE, repo_path};

/// Starts the real binary on a free port and returns it with its address.
async fn start_service(database: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoresponder"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(database)
        .arg("--intents")
        .arg(repo_path("intents"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("the service reports its address")
        .unwrap()
        .expect("a line on stdout");
    let address = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_handoff_a_buyer_was_told_of_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("crash.db");
    let (mut child, address) = start_service(&database).await;

    // Buyers hand off concurrently; each reports the conversation of every handoff reply.
    let buyers = 300;
    let (told, mut told_rx) = mpsc::unbounded_channel::<String>();
    let mut tasks = Vec::new();
    for b in 0..buyers {
        let url = format!("ws://{address}/ws/buyer?buyer=crash-{b}");
        let told = told.clone();
        tasks.push(tokio::spawn(async move {
            let Ok((socket, _)) = tokio_tungstenite::connect_async(&url).await else {
                return;
            };
            let mut client = Client::from_socket(socket);
            let message = if b % 3 == 0 {
                "转人工"
            } else {
                "我要退货，质量太差了"
            };
            if client.try_say(message, "h").await.is_err() {
                return;
            }
            while let Some(frame) = client.try_frame().await {
                if frame["kind"] == "handoff" {
                    let _ = told.send(frame["conversation"].as_str().unwrap().to_string());
                    return;
                }
            }
        }));
    }
    drop(told);

    // Kill the service mid-stream, once a good share of buyers were told.
    let mut acknowledged = HashSet::new();
    while acknowledged.len() < buyers / 3 {
        let conversation = tokio::time::timeout(PATIENCE, told_rx.recv())
            .await
            .expect("handoffs are being made")
            .expect("buyers are still running");
        acknowledged.insert(conversation);
    }
    child.start_kill().unwrap(); // SIGKILL: no shutdown code runs.
    child.wait().await.unwrap();
    while let Some(conversation) = told_rx.recv().await {
        acknowledged.insert(conversation);
    }
    for task in tasks {
        let _ = task.await;
    }

    // Every handoff a buyer was told of is in the store, once.
    let connection = rusqlite::Connection::open(&database).unwrap();
    let mut query = connection
        .prepare("SELECT conversation FROM handoffs")
        .unwrap();
    let stored: Vec<String> = query
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let stored_set: HashSet<_> = stored.iter().cloned().collect();
    assert_eq!(
        stored.len(),
        stored_set.len(),
        "no conversation was handed off twice"
    );
    let lost: Vec<_> = acknowledged.difference(&stored_set).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged handoffs lost: {lost:?}",
        lost.len()
    );
    assert!(acknowledged.len() >= buyers / 3);

    // The service restarts on the same file and the conversations go on where they were.
    drop(query);
    drop(connection);
    let (_child, address) = start_service(&database).await;
    let (socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{address}/ws/buyer?buyer=crash-0"))
            .await
            .unwrap();
    let mut client = Client::from_socket(socket);
    client.say("转人工", "again").await;
    let mut frame = client.frame().await;
    while frame["kind"] == "welcome" || frame["type"] == "queue" && frame["in_reply_to"].is_null() {
        frame = client.frame().await;
    }
    // Handed off before the crash: reminded of the place in the queue; otherwise: handed off.
    assert!(
        frame["kind"] == "handoff" || frame["type"] == "queue",
        "{frame}"
    );
    let count: i64 = rusqlite::Connection::open(&database)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM handoffs h JOIN conversations c ON c.id = h.conversation
             WHERE c.buyer = 'crash-0'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(count <= 1, "an open handoff is not queued twice");
}
