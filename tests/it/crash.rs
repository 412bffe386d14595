//! A crash (`kill -9`) while 1,000 buyers are being handed off and five agents are claiming
//! their cases: after a restart every handoff a buyer was told of is there (with its webhook
//! event), no case is claimed by two agents, and every claim an agent was told of stands.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::helpers::{Client, PATIENCE, repo_path};

const BUYERS: usize = 1000;
const AGENTS: [&str; 5] = ["a1", "a2", "a3", "a4", "a5"];

/// The shipped shop with five agents, and a webhook to a receiver that is never up (so every
/// event stays in the outbox, where the test can count it).
fn intents(dir: &Path) -> std::path::PathBuf {
    let shop = shipped_shop(dir);
    let dead_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut agents = format!(
        "grace_seconds = 600\n[[webhook]]\nurl = \"http://127.0.0.1:{dead_port}/hook\"\n\
         events = [\"handoff.created\"]\n"
    );
    for id in AGENTS {
        let hash = hex::encode(autoresponder::shop::staff::token_hash(&format!(
            "token-{id}"
        )));
        agents.push_str(&format!(
            "[[agent]]\nid = \"{id}\"\nname = \"{id}\"\ntoken_sha256 = \"{hash}\"\n"
        ));
    }
    std::fs::write(shop.join("agents.toml"), agents).unwrap();
    let intents = dir.join("intents");
    // Agents here are programs claiming as fast as they can, and every buyer (a thousand
    // asking for a human in three seconds) comes from 127.0.0.1; real consoles and crowds
    // stay limited.
    std::fs::write(
        dir.join("config.toml"),
        "[limits]\nagent_frames_per_second = 100000.0\nagent_frame_burst = 100000\n\
         messages_per_second = 100.0\nmax_connections_per_address = 10000\n\
         messages_per_address_per_second = 100000.0\nmessage_burst_per_address = 100000\n\
         conversations_per_address_per_minute = 100000.0\n\
         max_http_connections_per_address = 20000\n\
         handoffs_per_address_per_minute = 100000.0\nhandoffs_per_shop_per_minute = 100000.0\n",
    )
    .unwrap();
    intents
}

/// Copies the shipped `default` shop to `dir/intents/default` (agents and config are each
/// test's own); returns the shop's folder.
pub fn shipped_shop(dir: &Path) -> std::path::PathBuf {
    let shop = dir.join("intents/default");
    std::fs::create_dir_all(&shop).unwrap();
    for file in std::fs::read_dir(repo_path("intents/default")).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, shop.join(file.file_name().unwrap())).unwrap();
    }
    shop
}

/// Starts the real binary on a free port with `dir/intents`, `dir/config.toml` and `database`
/// (a SQLite file or a PostgreSQL URL), and returns it with its address.
pub async fn start_service(dir: &Path, database: impl AsRef<std::ffi::OsStr>) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoresponder"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(database)
        .arg("--intents")
        .arg(dir.join("intents"))
        .arg("--index")
        .arg(repo_path("index"))
        .arg("--config")
        .arg(dir.join("config.toml"))
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

async fn connect(url: &str) -> Option<Client> {
    let (socket, _) = tokio_tungstenite::connect_async(url).await.ok()?;
    Some(Client::from_socket(socket))
}

/// What an agent was told: (handoff, agent named in the `claimed` frame).
type Claimed = (String, String);

/// An agent program: claims every case it is shown, reports every `claimed` frame it hears.
async fn agent(address: String, id: &'static str, claims: mpsc::UnboundedSender<Claimed>) {
    let Some(mut console) = connect(&format!("ws://{address}/ws/agent?token=token-{id}")).await
    else {
        return;
    };
    while let Some(frame) = console.try_frame().await {
        match frame["type"].as_str() {
            Some("handoff") if frame["handoff"]["status"] == "queued" => {
                let claim = json!({"type": "claim", "handoff": frame["handoff"]["id"]});
                if console.try_send_json(claim).await.is_err() {
                    return;
                }
            }
            Some("claimed") => {
                let _ = claims.send((
                    frame["handoff"].as_str().unwrap().to_string(),
                    frame["agent"].as_str().unwrap().to_string(),
                ));
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoffs_and_claims_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    intents(dir.path());
    let database = dir.path().join("crash.db");
    let (mut child, address) = start_service(dir.path(), &database).await;

    let address_for_buyers = address.clone();
    let (claims_tx, mut claims_rx) = mpsc::unbounded_channel::<Claimed>();
    let mut agents = Vec::new();
    for id in AGENTS {
        agents.push(tokio::spawn(agent(address.clone(), id, claims_tx.clone())));
    }
    drop(claims_tx);

    // Buyers arrive over about three seconds, as a sale-night crowd does, so that handoffs
    // are still being created while the agents claim; each reports the conversation of its
    // handoff reply.
    let (told, mut told_rx) = mpsc::unbounded_channel::<String>();
    let arrivals = tokio::spawn(async move {
        let mut buyers = Vec::new();
        let mut pace = tokio::time::interval(std::time::Duration::from_millis(3));
        for b in 0..BUYERS {
            pace.tick().await;
            let url = format!("ws://{address_for_buyers}/ws/buyer?buyer=crash-{b}");
            let told = told.clone();
            buyers.push(tokio::spawn(async move {
                let Some(mut client) = connect(&url).await else {
                    return;
                };
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
        buyers
    });

    // Kill the service mid-stream: buyers still arriving, claims under way.
    let mut acknowledged = HashSet::new();
    let mut claimed: Vec<Claimed> = Vec::new();
    let mut claimed_cases = HashSet::new();
    while acknowledged.len() < 2 * BUYERS / 3 || claimed_cases.len() < 50 {
        tokio::select! {
            Some(conversation) = told_rx.recv() => { acknowledged.insert(conversation); }
            Some(claim) = claims_rx.recv() => {
                claimed_cases.insert(claim.0.clone());
                claimed.push(claim);
            }
            _ = tokio::time::sleep(PATIENCE) => panic!(
                "stalled: {} handoffs told, {} claims heard", acknowledged.len(), claimed.len()
            ),
        }
    }
    let told_at_kill = acknowledged.len();
    child.start_kill().unwrap(); // SIGKILL: no shutdown code runs.
    child.wait().await.unwrap();
    while let Some(conversation) = told_rx.recv().await {
        acknowledged.insert(conversation);
    }
    while let Some(claim) = claims_rx.recv().await {
        claimed.push(claim);
    }
    for task in arrivals.await.unwrap().into_iter().chain(agents) {
        let _ = task.await;
    }

    let connection = rusqlite::Connection::open(&database).unwrap();
    let rows = |sql: &str| -> Vec<(String, Option<String>)> {
        let mut query = connection.prepare(sql).unwrap();
        query
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // Every handoff a buyer was told of is in the store, once, with its webhook event.
    let stored = rows("SELECT conversation, claimed_by FROM handoffs");
    let conversations: HashSet<&String> = stored.iter().map(|(c, _)| c).collect();
    assert_eq!(
        stored.len(),
        conversations.len(),
        "no conversation handed off twice"
    );
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|c| !conversations.contains(c))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged handoffs lost: {lost:?}",
        lost.len()
    );
    let events = rows("SELECT event, NULL FROM outbox");
    assert_eq!(events.len(), stored.len(), "one created event per handoff");

    // No case was claimed by two agents, and every claim announced stands in the store.
    let holders: HashMap<String, Option<String>> = rows("SELECT id, claimed_by FROM handoffs")
        .into_iter()
        .collect();
    let mut announced: HashMap<&str, &str> = HashMap::new();
    for (handoff, agent) in &claimed {
        let first = announced.entry(handoff).or_insert(agent);
        assert_eq!(
            first, agent,
            "case {handoff} announced as claimed by two agents"
        );
        assert_eq!(
            holders.get(handoff.as_str()).cloned().flatten().as_deref(),
            Some(agent.as_str()),
            "the claim of {handoff} was announced but not stored"
        );
    }
    assert!(announced.len() >= 50);
    eprintln!(
        "killed with {told_at_kill} buyers told; then {} told, {} stored, {} claims announced",
        acknowledged.len(),
        stored.len(),
        announced.len()
    );
    drop(connection);

    // After a restart each agent gets back exactly the cases it holds, and buyers carry on.
    let (_child, address) = start_service(dir.path(), &database).await;
    let held_by_a1 = holders
        .values()
        .filter(|h| h.as_deref() == Some("a1"))
        .count();
    let mut a1 = connect(&format!("ws://{address}/ws/agent?token=token-a1"))
        .await
        .unwrap();
    assert_eq!(a1.frame().await["type"], "hello");
    let queued = holders.values().filter(|h| h.is_none()).count();
    // Its own cases, then the top of the queue, up to the frame that ends the page.
    let (page, before) = a1.until(|f| f["type"] == "queue_page").await;
    let restored = before
        .iter()
        .filter(|f| f["type"] == "handoff" && f["handoff"]["status"] == "claimed")
        .inspect(|f| assert_eq!(f["handoff"]["claimed_by"], "a1"))
        .count();
    assert_eq!(restored, held_by_a1);
    assert_eq!(page["queued"], queued, "{page}");

    // A buyer still queued is reminded of their place, not handed off again; one who never
    // got through is handed off now.
    let waiting: Option<String> = rusqlite::Connection::open(&database)
        .unwrap()
        .query_row(
            "SELECT buyer FROM handoffs WHERE status = 'queued' ORDER BY buyer LIMIT 1",
            [],
            |r| r.get(0),
        )
        .ok();
    let (name, expected) = match &waiting {
        Some(name) => (name.clone(), "queue"),
        None => (format!("crash-{}", BUYERS - 1), "reply"),
    };
    let mut buyer = connect(&format!("ws://{address}/ws/buyer?buyer={name}"))
        .await
        .unwrap();
    buyer.say("转人工", "again").await;
    let (frame, _) = buyer.until(|f| f["in_reply_to"] == "again").await;
    assert_eq!(frame["type"], expected, "{frame}");
    let count: i64 = rusqlite::Connection::open(&database)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM handoffs WHERE buyer = ?1",
            [&name],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 1, "one open handoff per conversation");
}
