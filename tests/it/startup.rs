//! What the real binary does at start-up before it serves anyone: the public demo agent
//! tokens are warned about, and refused on an address other machines can reach.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::crash::shipped_shop;
use crate::helpers::{Client, PATIENCE, repo_path};

/// The binary serving the shipped shop (demo agents included) on `listen`, logging warnings.
fn serve(dir: &std::path::Path, listen: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_autoresponder"))
        .args(["serve", "--listen", listen, "--database"])
        .arg(dir.join(format!("{}.db", listen.replace([':', '.'], "-"))))
        .arg("--intents")
        .arg(dir.join("intents"))
        .arg("--index")
        .arg(repo_path("index"))
        .args(extra)
        .env("RUST_LOG", "warn")
        .env_remove("AUTORESPONDER_ALLOW_DEMO_TOKENS")
        .env_remove("AUTORESPONDER_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts")
}

/// Reads the service's log until a line contains `wanted`; returns that line.
async fn log_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    wanted: &str,
) -> String {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("the log goes on");
            if line.contains(wanted) {
                return line;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no log line with {wanted:?}"))
}

/// The address the service reports on stdout once it listens.
async fn listening(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let line = tokio::time::timeout(PATIENCE, BufReader::new(stdout).lines().next_line())
        .await
        .expect("the service reports its address")
        .unwrap()
        .expect("a line on stdout");
    line.strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string()
}

#[tokio::test]
async fn demo_tokens_are_warned_about_and_refused_beyond_loopback_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    shipped_shop(dir.path());

    // On every address: refused, with the file, the agents and the way out named.
    let mut public = serve(dir.path(), "0.0.0.0:0", &[]);
    let status = tokio::time::timeout(PATIENCE, public.wait())
        .await
        .expect("the service stops by itself")
        .unwrap();
    assert!(!status.success(), "{status}");
    let log = rest_of_log(&mut public).await;
    assert!(
        log.contains("error: refusing to listen on 0.0.0.0:0"),
        "{log}"
    );
    assert!(
        log.contains("default/agents.toml (agents xiaoyue, xiaolin, ajie)"),
        "{log}"
    );
    assert!(log.contains("--allow-demo-tokens"), "{log}");

    // With the flag: served, and each demo token is warned about.
    let mut allowed = serve(dir.path(), "0.0.0.0:0", &["--allow-demo-tokens"]);
    let mut warnings = BufReader::new(allowed.stderr.take().unwrap()).lines();
    for token in ["demo-xiaoyue", "demo-xiaolin", "demo-ajie"] {
        let line = log_line(&mut warnings, token).await;
        assert!(line.contains("public demo token"), "{line}");
    }
    let address = listening(&mut allowed).await;
    let port = address.rsplit_once(':').unwrap().1;
    let mut console = Client::connect(&format!(
        "ws://127.0.0.1:{port}/ws/agent?token=demo-xiaoyue"
    ))
    .await;
    assert_eq!(console.frame().await["type"], "hello");
    allowed.kill().await.unwrap();

    // On loopback only this machine can log in: served without the flag, still warned.
    let mut local = serve(dir.path(), "127.0.0.1:0", &[]);
    let mut warnings = BufReader::new(local.stderr.take().unwrap()).lines();
    log_line(&mut warnings, "demo-ajie").await;
    listening(&mut local).await;
    local.kill().await.unwrap();
}

#[tokio::test]
async fn a_shop_without_demo_tokens_serves_beyond_loopback_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let shop = shipped_shop(dir.path());
    let hash = hex::encode(autoresponder::shop::staff::token_hash("a-real-secret"));
    std::fs::write(
        shop.join("agents.toml"),
        format!("[[agent]]\nid = \"mei\"\nname = \"小美\"\ntoken_sha256 = \"{hash}\"\n"),
    )
    .unwrap();
    let mut public = serve(dir.path(), "0.0.0.0:0", &[]);
    listening(&mut public).await;
    public.kill().await.unwrap();
    let log = rest_of_log(&mut public).await;
    assert!(!log.contains("demo token"), "{log}");
}

/// Everything the (stopped) service wrote to its log that was not read yet.
async fn rest_of_log(child: &mut Child) -> String {
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await
        .unwrap();
    log
}

/// The service's log without terminal colours.
fn plain(line: &str) -> String {
    let mut text = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // A colour sequence: ESC [ … m.
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            text.push(c);
        }
    }
    text
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_open_files_limit_is_raised_so_idle_connections_cannot_starve_buyers() {
    use tokio::io::AsyncWriteExt;

    let dir = tempfile::tempdir().unwrap();
    let shop = shipped_shop(dir.path());
    std::fs::remove_file(shop.join("agents.toml")).unwrap();
    // Idle connections are kept for a minute: longer than the test runs.
    std::fs::write(
        dir.path().join("config.toml"),
        "[limits]\nheader_read_timeout_ms = 60000\n",
    )
    .unwrap();
    const SOFT: u64 = 256;
    const HARD: u64 = 2048;
    let mut command = Command::new(env!("CARGO_BIN_EXE_autoresponder"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(dir.path().join("files.db"))
        .arg("--intents")
        .arg(dir.path().join("intents"))
        .arg("--index")
        .arg(repo_path("index"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: between fork and exec the closure only calls setrlimit, which is
    // async-signal-safe, on a struct of its own.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: SOFT,
                rlim_max: HARD,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut service = command.spawn().expect("the binary starts");
    let mut log = BufReader::new(service.stderr.take().unwrap()).lines();
    let line = plain(&log_line(&mut log, "open-files limit").await);
    assert!(line.contains("open_files=2048"), "{line}");
    assert!(line.contains("was=256"), "{line}");
    let address = listening(&mut service).await;
    // Keep the log flowing, so the service never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });

    // The kernel says the same.
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", service.id().unwrap())).unwrap();
    let files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["2048", "2048"], "{files}");

    // More idle connections than the soft limit the service was given: each holds a file
    // descriptor until its request head times out (a minute here).
    let mut idle = Vec::new();
    for _ in 0..SOFT + 100 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        idle.push(stream);
    }
    // A buyer is still served (with 256 files the service stopped accepting at about 240).
    let served = tokio::time::timeout(PATIENCE, async {
        let mut buyer = Client::connect(&format!(
            "ws://{address}/ws/buyer?shop=default&buyer=after-the-idle"
        ))
        .await;
        buyer.until(|f| f["kind"] == "welcome").await;
        buyer.ask("包邮吗", "1", "answer").await
    })
    .await
    .expect("a buyer is served while idle connections are held");
    assert_eq!(served.last().unwrap()["kind"], "answer");
    drop(idle);
    service.kill().await.unwrap();
}
