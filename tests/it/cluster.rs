//! Two service processes on one PostgreSQL database, driven across by real websocket clients:
//! a claim race between agents on different nodes, a conversation that crosses nodes, then
//! `kill -9` of one node mid-conversation. Its buyer carries on at the other node with the
//! whole transcript, its agent's case returns to the queue after the grace period, and every
//! webhook event committed is delivered.

use std::collections::HashSet;
use std::path::Path;

use serde_json::{Value, json};

use crate::agents::handoff_for;
use crate::crash::{shipped_shop, start_service};
use crate::helpers::{Client, PATIENCE};
use crate::pg::PgDatabase;

/// The shipped shop with agents mei and lan (token `token-<id>`), a one-second grace period
/// and a webhook; nodes that hear each other ten times a second and give up on a silent one
/// after a second.
fn setup(dir: &Path, hook: &str) {
    let shop = shipped_shop(dir);
    let mut agents = format!(
        "grace_seconds = 1\nescalate_after_seconds = 600\n[[webhook]]\nurl = \"{hook}\"\n\
         secret = \"k\"\nevents = [\"handoff.created\", \"handoff.claimed\"]\n"
    );
    for (id, name) in [("mei", "小美"), ("lan", "小兰")] {
        let hash = hex::encode(autoresponder::shop::staff::token_hash(&format!(
            "token-{id}"
        )));
        agents.push_str(&format!(
            "[[agent]]\nid = \"{id}\"\nname = \"{name}\"\ntoken_sha256 = \"{hash}\"\n"
        ));
    }
    std::fs::write(shop.join("agents.toml"), agents).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "[cluster]\nheartbeat_ms = 100\nnode_timeout_ms = 1000\n\
         [webhooks]\ntimeout_ms = 500\nfirst_retry_ms = 100\nmax_retry_ms = 1000\n",
    )
    .unwrap();
}

async fn agent(address: &str, id: &str) -> (Client, Value) {
    let mut console = Client::connect(&format!("ws://{address}/ws/agent?token=token-{id}")).await;
    let hello = console.frame().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    (console, hello)
}

/// Waits until `console` knows `other` is online (from its hello or a presence frame).
async fn until_online(console: &mut Client, hello: &Value, other: &str) {
    let listed = hello["agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == other && a["status"] == "online");
    if !listed {
        console
            .until(|f| f["type"] == "presence" && f["agent"] == other && f["status"] == "online")
            .await;
    }
}

async fn buyer(address: &str, name: &str) -> Client {
    Client::connect(&format!(
        "ws://{address}/ws/buyer?shop=default&buyer={name}"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_serve_as_one_and_losing_one_loses_nothing() {
    let db = PgDatabase::create().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let mut received = crate::webhooks::receiver(listener, "k");
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), &hook);
    let (mut node_a, a) = start_service(dir.path(), &db.url).await;
    let (_node_b, b) = start_service(dir.path(), &db.url).await;

    // Lan works on node A, mei on node B; each node learns of the other's agent.
    let (mut lan, _) = agent(&a, "lan").await;
    let (mut mei, hello) = agent(&b, "mei").await;
    until_online(&mut mei, &hello, "lan").await;
    lan.until(|f| f["type"] == "presence" && f["agent"] == "mei")
        .await;

    // Alice, on A, complains; both agents see her case and click at once.
    let mut alice = buyer(&a, "alice").await;
    alice.until(|f| f["kind"] == "welcome").await;
    let told = alice.ask("质量太差了，我要投诉", "a1", "handoff").await;
    let alice_conversation = told[0]["conversation"].as_str().unwrap().to_string();
    assert_eq!(alice.next_of("queue").await["status"], "queued");
    let case = handoff_for(&mut mei, &alice_conversation).await;
    handoff_for(&mut lan, &alice_conversation).await;
    let alice_case = case["handoff"]["id"].as_str().unwrap().to_string();
    let claim = json!({"type": "claim", "handoff": alice_case});
    tokio::join!(mei.send_json(claim.clone()), lan.send_json(claim));
    let won_b = mei.until(|f| f["type"] == "claimed").await.0;
    let won_a = lan.until(|f| f["type"] == "claimed").await.0;
    assert_eq!(won_a["agent"], won_b["agent"], "both nodes name one winner");
    let winner = won_a["agent"].as_str().unwrap().to_string();
    let holders = db
        .texts("SELECT claimed_by FROM handoffs WHERE status = 'claimed'")
        .await;
    assert_eq!(holders, std::slice::from_ref(&winner), "the store agrees");
    assert_eq!(alice.next_of("queue").await["status"], "claimed");

    // Bob, on B, asks for a human and lan (on A) takes him: A's agent holds a case.
    let mut bob = buyer(&b, "bob").await;
    bob.until(|f| f["kind"] == "welcome").await;
    let told = bob.ask("转人工", "b1", "handoff").await;
    let bob_conversation = told[0]["conversation"].as_str().unwrap().to_string();
    assert_eq!(bob.next_of("queue").await["status"], "queued");
    let bob_case = handoff_for(&mut lan, &bob_conversation).await["handoff"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    lan.send_json(json!({"type": "claim", "handoff": bob_case}))
        .await;
    lan.until(|f| f["type"] == "claimed" && f["handoff"] == bob_case.as_str())
        .await;
    assert_eq!(bob.next_of("queue").await["status"], "claimed");

    // Mid-conversation: Alice writes on A, her agent (on either node) hears and answers.
    alice.say("什么时候能处理好", "a2").await;
    let holder = if winner == "mei" { &mut mei } else { &mut lan };
    let heard = holder.next_of("buyer_message").await;
    assert_eq!(heard["text"], "什么时候能处理好");
    holder
        .send_json(json!({"type": "reply", "conversation": alice_conversation, "text": "已经在加急处理了"}))
        .await;
    holder.next_of("sent").await;
    let answer = alice.until(|f| f["kind"] == "agent").await.0;
    assert_eq!(answer["text"], "已经在加急处理了");

    // Node A dies: no shutdown code runs, its sockets just close.
    node_a.start_kill().unwrap();
    node_a.wait().await.unwrap();
    assert!(alice.try_frame().await.is_none(), "alice's node is gone");
    assert!(lan.try_frame().await.is_none(), "lan's node is gone");

    // Alice reconnects through the other node and carries on. (Her case is still claimed;
    // or, when lan held it and B gave lan up already, back in the queue: these are real
    // processes on the real clock.)
    let mut alice = buyer(&b, "alice").await;
    let status = alice.next_of("queue").await;
    let alice_requeued = winner == "lan" && status["status"] == "queued";
    if !alice_requeued {
        assert_eq!(status["status"], "claimed", "{status}");
    }
    alice.say("好的，谢谢", "a3").await;
    if winner == "mei" {
        assert_eq!(mei.next_of("buyer_message").await["text"], "好的，谢谢");
    }

    // B stops hearing from A, lan is offline, and after the grace period her cases are back
    // in the queue (Alice's too if lan had won it), each with its whole transcript.
    let mut expected_back = vec![bob_case.clone()];
    if winner == "lan" {
        expected_back.push(alice_case.clone());
    }
    let mut back = Vec::new();
    while back.len() < expected_back.len() {
        let frame = mei.next_of("handoff").await;
        let id = frame["handoff"]["id"].as_str().unwrap().to_string();
        if frame["handoff"]["requeued"] == true && expected_back.contains(&id) {
            assert_eq!(frame["handoff"]["status"], "queued");
            back.push(frame);
        }
    }
    let bobs = back
        .iter()
        .find(|f| f["handoff"]["id"] == bob_case.as_str())
        .unwrap();
    let transcript: Vec<&str> = bobs["handoff"]["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["text"].as_str().unwrap())
        .collect();
    assert!(transcript.contains(&"转人工"), "{transcript:?}");
    assert_eq!(bob.next_of("queue").await["status"], "queued");
    if winner == "lan" && !alice_requeued {
        assert_eq!(alice.next_of("queue").await["status"], "queued");
    }

    // Nothing acknowledged was lost: Alice's whole conversation is stored, in order.
    let stored = db
        .texts(&format!(
            "SELECT text FROM messages WHERE conversation = '{alice_conversation}'
               AND sender IN ('buyer', 'agent') ORDER BY seq"
        ))
        .await;
    assert_eq!(
        stored,
        [
            "质量太差了，我要投诉",
            "什么时候能处理好",
            "已经在加急处理了",
            "好的，谢谢"
        ]
    );

    // Every webhook event committed is delivered, by node B if node A could not.
    // (Outbox rows are `<event id>#<receiver>`; the event id is the idempotency key.)
    let expected: HashSet<String> = db
        .texts("SELECT split_part(id, '#', 1) FROM outbox")
        .await
        .into_iter()
        .collect();
    assert_eq!(
        expected.len(),
        4,
        "two cases created, two claims: {expected:?}"
    );
    let mut keys = HashSet::new();
    while !expected.iter().all(|id| keys.contains(id)) {
        let delivery = tokio::time::timeout(PATIENCE, received.recv())
            .await
            .expect("every event arrives")
            .unwrap();
        assert!(delivery.signature_ok);
        keys.insert(delivery.key);
    }
}
