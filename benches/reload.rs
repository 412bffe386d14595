//! Reply latency while a 100,000-entry FAQ is rebuilt by a hot reload.
//!
//! `cargo bench --bench reload` starts the service in-process on the shipped shop with a
//! generated 100,000-entry FAQ, keeps 20 buyers in a closed loop (a message, wait for its
//! first reply, 20 ms pause, next message: about 800 messages per second in all), measures
//! reply latency for 5 s, then reloads the rules (rebuilding the whole index) and measures
//! until the reload is done. Target: p99 ≤ 10 ms during the reload.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use autoresponder::clock::SystemClock;
use autoresponder::config::{Limits, ServeConfig};

#[path = "support/words.rs"]
mod words;
use words::Words;

const ENTRIES: usize = 100_000;
const BUYERS: usize = 20;
const MESSAGES: &[&str] = &[
    "包邮吗",
    "什么时候发货",
    "能便宜点吗",
    "羊毛衫可以放洗衣机洗吗",
    "会员积分怎么用",
    "这款有S码吗",
    "明天会下雨吗",
];

/// Copies the shipped shop and writes a generated knowledge base next to its FAQ.
fn shop_with_large_faq(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let intents = dir.join("intents/default");
    let index = dir.join("index/default");
    std::fs::create_dir_all(&intents).unwrap();
    std::fs::create_dir_all(&index).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (from, to) in [("intents/default", &intents), ("index/default", &index)] {
        for file in std::fs::read_dir(repo.join(from)).unwrap() {
            let file = file.unwrap().path();
            if file.file_name().unwrap() != "agents.toml" {
                std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
            }
        }
    }
    let shop_texts: Vec<String> = std::fs::read_to_string(index.join("bulk.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut words = Words::new(&shop_texts);
    let mut jsonl = String::with_capacity(ENTRIES * 200);
    for i in 0..ENTRIES {
        let questions: Vec<String> = (0..3 + words.next(2))
            .map(|_| {
                let n = 3 + words.next(4);
                words.sentence(n)
            })
            .collect();
        let line = json!({
            "id": format!("generated_{i}"),
            "question": questions[0],
            "alternatives": &questions[1..],
            "answer": format!("感谢您的咨询，{}。", words.sentence(8)),
        });
        jsonl.push_str(&line.to_string());
        jsonl.push('\n');
    }
    std::fs::write(index.join("generated.jsonl"), jsonl).unwrap();
    (dir.join("intents"), dir.join("index"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label}: {} replies, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        percentile(&samples, 0.999).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );
}

/// One buyer in a closed loop; reports (phase, latency) per reply until told to stop.
async fn buyer(
    address: String,
    n: usize,
    phase: Arc<AtomicU8>,
    out: mpsc::UnboundedSender<(u8, Duration)>,
) {
    let url = format!("ws://{address}/ws/buyer?buyer=bench-{n}");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut sent = 0usize;
    loop {
        let current = phase.load(Ordering::Relaxed);
        if current == u8::MAX {
            return;
        }
        let id = format!("m{sent}");
        let text = MESSAGES[(n + sent) % MESSAGES.len()];
        let started = Instant::now();
        socket
            .send(Message::text(
                json!({"type": "message", "text": text, "id": id}).to_string(),
            ))
            .await
            .unwrap();
        loop {
            let Some(Ok(Message::Text(frame))) = socket.next().await else {
                return;
            };
            let frame: Value = serde_json::from_str(&frame).unwrap();
            if frame["in_reply_to"] == id.as_str() {
                break;
            }
        }
        let _ = out.send((current, started.elapsed()));
        sent += 1;
        // Drain the rest of this message's replies during the pause.
        let pause = tokio::time::sleep(Duration::from_millis(20));
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                frame = socket.next() => if frame.is_none() { return },
            }
        }
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    print!("generating {ENTRIES} FAQ entries… ");
    let (intents, index) = shop_with_large_faq(dir.path());
    println!("done");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            intents,
            index,
            database: autoresponder::config::Database::Sqlite(dir.path().join("bench.db")),
            limits: Limits {
                messages_per_second: 10_000.0,
                message_burst: 10_000,
                messages_per_address_per_second: 10_000.0,
                message_burst_per_address: 10_000,
                ..Limits::default()
            },
            watch_rules: false,
            ..ServeConfig::default()
        };
        let started = Instant::now();
        let service = autoresponder::start(&config, Arc::new(SystemClock))
            .await
            .unwrap();
        let rules = service.app.rules.clone();
        println!(
            "first load with {ENTRIES} FAQ entries: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(service.serve(listener, std::future::pending()));

        let phase = Arc::new(AtomicU8::new(0));
        let (samples, mut received) = mpsc::unbounded_channel();
        for n in 0..BUYERS {
            tokio::spawn(buyer(address.clone(), n, phase.clone(), samples.clone()));
        }
        drop(samples);
        tokio::time::sleep(Duration::from_secs(2)).await; // warm-up, discarded
        phase.store(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(5)).await;
        phase.store(2, Ordering::Relaxed);
        let reloading = Instant::now();
        let outcome = autoresponder::reload::reload(
            &rules,
            "benchmark",
            autoresponder::reload::Removals::Guarded,
        )
        .await;
        let took = reloading.elapsed();
        phase.store(u8::MAX, Ordering::Relaxed);
        assert!(outcome.ok, "{:?}", outcome.errors);
        let (mut steady, mut during) = (Vec::new(), Vec::new());
        while let Ok((phase, latency)) = received.try_recv() {
            match phase {
                1 => steady.push(latency),
                2 => during.push(latency),
                _ => {}
            }
        }
        println!(
            "reload of the rules with {ENTRIES} FAQ entries: {:.1} s",
            took.as_secs_f64()
        );
        report("reply latency, steady", steady);
        report("reply latency, during the reload", during);
        server.abort();
    });
}
