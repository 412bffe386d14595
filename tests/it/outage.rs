//! A store that cannot commit for a while: PostgreSQL restarted under load, a SQLite file
//! locked by someone else. Nothing a buyer sent may be lost or doubled: the service tries a
//! commit again for `store_retry`, an `unavailable` names the message it is about, and the
//! client's resend with the same id is stored and answered once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use autoresponder::config::{Database, Limits};
use serde_json::Value;

use crate::helpers::{Client, Setup, TestApp};

/// A PostgreSQL server of this test's own, on a temporary directory and a free port, so it
/// can be stopped and started without touching anyone else's.
struct PrivateServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

/// The binaries of the newest PostgreSQL installed the Debian way, if any.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

impl PrivateServer {
    /// Creates and starts the server; `None` when PostgreSQL is not installed here.
    fn start() -> Option<PrivateServer> {
        let bin = postgres_bin()?;
        let dir = tempfile::tempdir().unwrap();
        // PostgreSQL refuses to run as root; the data directory belongs to its own user then.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = PrivateServer { bin, dir, port };
        let data = server.data();
        let initdb = ["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"];
        server.run("initdb", &initdb).unwrap();
        server.pg_ctl_start();
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs one of the server's programs, as the `postgres` user when this is root (the
    /// server refuses to run as root); what it printed when it failed.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(program);
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let mut command = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command.args(args).output().map_err(|e| e.to_string())?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "{} {args:?}: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let data = self.data();
        let args = ["-D", &data, "-o", &options, "-l", &log, "-w", "start"];
        self.run("pg_ctl", &args).unwrap();
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), String> {
        self.run("pg_ctl", &["-D", &self.data(), "-m", mode, "-w", "stop"])
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.pg_ctl_stop("immediate");
    }
}

/// What one buyer sent and got while the store went away and came back.
#[derive(Default)]
struct Tally {
    sent: Vec<String>,
    /// Reply frames per message id.
    replies: HashMap<String, usize>,
    unavailable: usize,
}

/// Sends `id` and reads until it is answered, sending it again (same id, same text) after
/// each `unavailable` about it, as the widget does.
async fn ask_until_answered(buyer: &mut Client, text: &str, id: &str, tally: &mut Tally) {
    buyer.say(text, id).await;
    loop {
        let frame = buyer.frame().await;
        let about = frame["in_reply_to"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match frame["type"].as_str() {
            Some("reply") => {
                *tally.replies.entry(about.clone()).or_default() += 1;
                if about == id {
                    return;
                }
            }
            Some("error") => {
                assert_eq!(frame["code"], "unavailable", "{frame}");
                assert_eq!(about, id, "an error names its message: {frame}");
                tally.unavailable += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                buyer.say(text, id).await;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
}

/// Several buyers write without pause while the service's PostgreSQL server is stopped
/// (`-m fast`, every connection cut) and started again. Afterwards every message each sent
/// is stored once and was answered once: the service's own retries carried most of them
/// over the gap, and the client's resends the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_and_doubles_nothing() {
    let Some(server) = PrivateServer::start() else {
        eprintln!("skipped: no PostgreSQL binaries under /usr/lib/postgresql/*/bin");
        return;
    };
    let app = TestApp::launch(Setup {
        database: Some(Database::Postgres(server.url())),
        // The buyers write as fast as they are answered, far above a person's rate.
        limits: Limits {
            store_retry: Duration::from_secs(3),
            messages_per_second: 10_000.0,
            message_burst: 10_000,
            // Four buyers of one address write without pause: the address's limit is not
            // what this test is about.
            messages_per_address_per_second: 10_000.0,
            message_burst_per_address: 10_000,
            ..Limits::default()
        },
        ..Setup::default()
    })
    .await;
    const BUYERS: usize = 4;
    let mut buyers = Vec::new();
    for b in 0..BUYERS {
        let mut buyer = app.buyer(&format!("restart-{b}")).await.welcomed().await;
        // One question, one reply frame: what the tally below counts on.
        let replies = buyer.ask("包邮吗", &format!("warm-{b}"), "answer").await;
        assert_eq!(replies.len(), 1, "{replies:?}");
        buyers.push(buyer);
    }

    let stop = tokio_util::sync::CancellationToken::new();
    let mut writers = Vec::new();
    for (b, mut buyer) in buyers.into_iter().enumerate() {
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut n = 0;
            while !stop.is_cancelled() {
                let id = format!("b{b}-{n}");
                ask_until_answered(&mut buyer, "包邮吗", &id, &mut tally).await;
                tally.sent.push(id);
                n += 1;
            }
            // Frames keep their order: once this is answered, every earlier reply is in.
            let last = format!("b{b}-last");
            ask_until_answered(&mut buyer, "包邮吗", &last, &mut tally).await;
            tally.sent.push(last);
            tally
        }));
    }
    // Some traffic before, during and after the outage.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restart = tokio::task::spawn_blocking(move || {
        server.pg_ctl_stop("fast").unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        server.pg_ctl_start();
        server
    });
    let server = restart.await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.cancel();

    let mut sent = Vec::new();
    let mut unavailable = 0;
    for writer in writers {
        let tally = writer.await.unwrap();
        for id in &tally.sent {
            assert_eq!(tally.replies.get(id), Some(&1), "{id} answered once");
        }
        assert_eq!(
            tally.replies.len(),
            tally.sent.len(),
            "no reply to anything else"
        );
        unavailable += tally.unavailable;
        sent.extend(tally.sent);
    }
    eprintln!(
        "{} messages sent, {unavailable} answered `unavailable` and sent again",
        sent.len()
    );

    let (client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT client_id, count(*) FROM messages
             WHERE sender = 'buyer' AND client_id NOT LIKE 'warm-%' GROUP BY client_id",
            &[],
        )
        .await
        .unwrap();
    let stored: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for id in &sent {
        assert_eq!(stored.get(id), Some(&1), "{id} stored once");
    }
    assert_eq!(stored.len(), sent.len(), "nothing else stored");
    let bot: i64 = client
        .query_one(
            "SELECT count(*) FROM messages WHERE sender = 'bot' AND kind <> 'welcome'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        bot as usize,
        sent.len() + BUYERS,
        "one stored reply per message"
    );
    app.shutdown().await;
    drop(server);
}

/// The SQLite file locked by someone else for less than `store_retry`: the message waits and
/// is answered once the lock is gone. Locked for longer: `unavailable` naming the message,
/// and its resend with the same id later is stored and answered once.
#[tokio::test]
async fn a_locked_sqlite_file_delays_a_message_or_refuses_it_by_id() {
    let app = TestApp::start_with(Limits {
        store_retry: Duration::from_secs(2),
        ..Limits::default()
    })
    .await;
    let mut buyer = app.buyer("locked-out").await.welcomed().await;

    let blocker = rusqlite::Connection::open(&app.database).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    buyer.say("包邮吗", "short").await;
    // The outage itself: shorter than the retry bound.
    tokio::time::sleep(Duration::from_millis(600)).await;
    blocker.execute_batch("ROLLBACK").unwrap();
    let frame = buyer.frame().await;
    assert_eq!(frame["type"], "reply", "{frame}");
    assert_eq!(frame["in_reply_to"], "short", "{frame}");

    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    buyer.say("什么时候发货", "long").await;
    let frame = buyer.frame().await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["code"], "unavailable", "{frame}");
    assert_eq!(frame["in_reply_to"], "long", "{frame}");
    blocker.execute_batch("ROLLBACK").unwrap();
    let replies = buyer.ask("什么时候发货", "long", "answer").await;
    assert!(!replies.is_empty());
    // And once more, as a client that missed the answer would: the same answer, nothing new.
    let again = buyer.ask("什么时候发货", "long", "answer").await;
    let texts = |frames: &[Value]| -> Vec<String> {
        frames.iter().map(|f| f["text"].to_string()).collect()
    };
    assert_eq!(texts(&again), texts(&replies));

    let stored: Vec<String> =
        app.query("SELECT client_id FROM messages WHERE sender = 'buyer' ORDER BY seq");
    assert_eq!(stored, ["short", "long"]);
    let bot: Vec<i64> =
        app.query("SELECT COUNT(*) FROM messages WHERE sender = 'bot' AND kind <> 'welcome'");
    assert_eq!(bot, [1 + replies.len() as i64]);
    app.shutdown().await;
}
