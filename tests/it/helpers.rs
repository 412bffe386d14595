//! Starting a service for a test and talking to it like a widget would.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autoresponder::clock::ManualClock;
use autoresponder::config::{ClusterSettings, Database, Limits, ServeConfig};
use autoresponder::webhook::WebhookSettings;
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// A guard against a hung test, not a wait: every expected frame arrives in milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Thursday 26 November 2026, 10:00 in Shanghai: on duty, no peak.
pub const ON_DUTY: &str = "2026-11-26T10:00:00+08:00";

/// Each reply's kind and intent ("" when it has none), for comparing reply sequences.
pub fn kinds(replies: &[Value]) -> Vec<(&str, &str)> {
    replies
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["intent"].as_str().unwrap_or(""),
            )
        })
        .collect()
}

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The admin token of every test service.
pub const ADMIN_TOKEN: &str = "admin-token";

/// The token a scraper of every test service sends to see the KPIs in `/metrics`.
pub const METRICS_TOKEN: &str = "metrics-token";

/// How often a test service recomputes its KPIs: a test moves tokio's clock by this much
/// ([`TestApp::fresh_kpis`]) rather than waiting.
pub const KPI_REFRESH: Duration = Duration::from_secs(10);

/// How often a test service runs its retention sweep ([`TestApp::fresh_sweep`]).
pub const RETENTION_SWEEP: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub address: std::net::SocketAddr,
    pub clock: ManualClock,
    /// The SQLite file, when the service runs on one (see `Setup::database`).
    pub database: PathBuf,
    /// The test's own copy of the shops, which a test may edit.
    pub intents: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dir: Option<tempfile::TempDir>,
}

/// The test shop's agents: each one's token is `token-<id>`. Their grace period is
/// [`GRACE`].
pub const TEST_AGENTS: &str = r#"
queue_per_agent = 2
grace_seconds = 20
escalate_after_seconds = 60
handle_minutes = 3

[[agent]]
id = "mei"
name = "小美"
token_sha256 = "HASH-mei"

[[agent]]
id = "lan"
name = "小兰"
token_sha256 = "HASH-lan"
"#;

/// The test shop's grace period (`grace_seconds` of [`TEST_AGENTS`]) and the node timeout of
/// [`Setup`]: far longer than any test step takes, so they never run out by themselves; a
/// test that needs one to run out moves tokio's clock past it with [`advance_timers`].
pub const GRACE: Duration = Duration::from_secs(20);
pub const NODE_TIMEOUT: Duration = Duration::from_secs(20);

/// Moves tokio's clock forward by `by` at once: every timer of the test's services (grace
/// periods, heartbeats, node timeouts, pings…) is `by` closer to its deadline, and the ones
/// due fire. The clock is paused only for the jump: paused for longer (`start_paused`), tokio
/// would jump to the next timer whenever every task waits, and here tasks wait on real
/// sockets, the SQLite writer's thread and PostgreSQL.
///
/// Only for `current_thread` tests (the default of `#[tokio::test]`), whose services run on
/// the test's runtime. Connections count jumps as silence: keep a test's jumps in all under
/// `Limits::idle_timeout` (75 s by default).
pub async fn advance_timers(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// How a test service is set up.
pub struct Setup {
    pub limits: Limits,
    /// The `agents.toml` of the test shop; `None` for a shop without agents, whose away and
    /// busy notices follow its hours alone (as before agents existed).
    pub agents: Option<String>,
    pub webhooks: WebhookSettings,
    pub escalation_check: Duration,
    /// A shared database (PostgreSQL) instead of the test's own SQLite file.
    pub database: Option<Database>,
    pub cluster: ClusterSettings,
    /// The FAQ knowledge base, when a test changes it: a copy of its own, not the project's.
    pub index: Option<PathBuf>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            database: None,
            // Nodes of a test never give each other up by themselves, however slow the
            // machine: a node signals every change of its agents at once (the heartbeat only
            // mends), and a test that wants a node given up moves the clock past the timeout.
            cluster: ClusterSettings {
                heartbeat: Duration::from_secs(1),
                node_timeout: NODE_TIMEOUT,
                pool_size: 8,
            },
            limits: Limits::default(),
            index: None,
            agents: None,
            webhooks: WebhookSettings {
                timeout: Duration::from_secs(2),
                first_retry: Duration::from_millis(50),
                max_retry: Duration::from_millis(400),
            },
            escalation_check: Duration::from_millis(20),
        }
    }
}

impl Setup {
    /// The test shop with the agents of [`TEST_AGENTS`] (plus `extra` lines, e.g. webhooks).
    pub fn staffed(extra: &str) -> Setup {
        let mut agents = TEST_AGENTS.to_string();
        for id in ["mei", "lan"] {
            let hash = hex::encode(autoresponder::shop::staff::token_hash(&format!(
                "token-{id}"
            )));
            agents = agents.replace(&format!("HASH-{id}"), &hash);
        }
        agents.push_str(extra);
        Setup {
            agents: Some(agents),
            ..Setup::default()
        }
    }
}

/// Copies the shipped shops into `dir`, with `agents` as each shop's `agents.toml` (or none).
fn shops_in(dir: &Path, agents: Option<&str>) -> PathBuf {
    let intents = dir.join("intents");
    for shop in std::fs::read_dir(repo_path("intents")).unwrap() {
        let shop = shop.unwrap().path();
        if !shop.is_dir() {
            continue;
        }
        let target = intents.join(shop.file_name().unwrap());
        std::fs::create_dir_all(&target).unwrap();
        for file in std::fs::read_dir(&shop).unwrap() {
            let file = file.unwrap().path();
            if file.file_name().unwrap() != "agents.toml" {
                std::fs::copy(&file, target.join(file.file_name().unwrap())).unwrap();
            }
        }
        if let Some(agents) = agents {
            std::fs::write(target.join("agents.toml"), agents).unwrap();
        }
    }
    intents
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::launch(Setup::default()).await
    }

    pub async fn start_with(limits: Limits) -> TestApp {
        TestApp::launch(Setup {
            limits,
            ..Setup::default()
        })
        .await
    }

    /// The test shop with agents `mei` and `lan`.
    pub async fn staffed() -> TestApp {
        TestApp::launch(Setup::staffed("")).await
    }

    pub async fn launch(setup: Setup) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("test.db");
        let intents = shops_in(dir.path(), setup.agents.as_deref());
        let db = setup
            .database
            .unwrap_or_else(|| Database::Sqlite(database.clone()));
        // SQLite: how long a write waits for a lock held by someone else (a test holds one on
        // purpose). PostgreSQL: how long a node waits to open a connection, which on a loaded
        // machine can take far longer than 200 ms.
        let database_busy_timeout = match db {
            Database::Sqlite(_) => Duration::from_millis(200),
            Database::Postgres(_) => PATIENCE / 2,
        };
        let config = ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            intents: intents.clone(),
            index: setup.index.unwrap_or_else(|| repo_path("index")),
            faq_on_disk: None,
            database: db,
            database_busy_timeout,
            cluster: setup.cluster,
            limits: setup.limits,
            shutdown_grace: Duration::from_secs(5),
            webhooks: setup.webhooks,
            escalation_check: setup.escalation_check,
            admin_token_sha256: Some(autoresponder::config::TokenHash(
                autoresponder::shop::staff::token_hash(ADMIN_TOKEN),
            )),
            metrics_token_sha256: Some(autoresponder::config::TokenHash(
                autoresponder::shop::staff::token_hash(METRICS_TOKEN),
            )),
            kpi_refresh: KPI_REFRESH,
            retention_sweep: RETENTION_SWEEP,
            watch_rules: true,
            reload_debounce: Duration::from_millis(50),
            reload_guard: Default::default(),
            allow_demo_tokens: false,
        };
        let clock = ManualClock::new(at(ON_DUTY));
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(autoresponder::run(
            config,
            listener,
            Arc::new(clock.clone()),
            async move {
                let _ = stopped.await;
            },
        ));
        TestApp {
            address,
            clock,
            database,
            intents,
            stop: Some(stop),
            server: Some(server),
            dir: Some(dir),
        }
    }

    /// The service's (manual) clock now.
    pub fn clock_now(&self) -> DateTime<Utc> {
        use autoresponder::clock::Clock;
        self.clock.now()
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.address)
    }

    pub async fn buyer(&self, buyer: &str) -> Client {
        Client::connect(&self.url(&format!("/ws/buyer?shop=default&buyer={buyer}"))).await
    }

    /// An agent console of the test shop, past its `hello`.
    pub async fn agent(&self, id: &str) -> Client {
        let mut agent = Client::connect(&self.url(&format!("/ws/agent?token=token-{id}"))).await;
        let hello = agent.frame().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        assert_eq!(hello["agent"]["id"], id);
        agent
    }

    /// The HTTP status of a websocket upgrade the server refused.
    pub async fn refused_upgrade(&self, path: &str) -> u16 {
        match connect_async(self.url(path)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                response.status().as_u16()
            }
            Err(other) => panic!("expected an HTTP refusal, got {other}"),
            Ok(_) => panic!("the upgrade to {path} was accepted"),
        }
    }

    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.address, path).await
    }

    /// A request with any method, headers given as full lines ("Authorization: Bearer x").
    pub async fn http(&self, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
        http_request(self.address, method, path, headers).await
    }

    /// Waits until the service serves: its rules are loaded, its store is open and, with
    /// PostgreSQL, it follows the other nodes. Panics with the reason if it stopped instead.
    pub async fn ready(&mut self) {
        let server = self.server.as_mut().expect("running");
        let health = tokio::spawn(http_get(self.address, "/healthz"));
        tokio::select! {
            answered = health => match answered {
                Ok((status, body)) => assert_eq!(status, 200, "{body}"),
                Err(_) => {
                    let ended = tokio::time::timeout(PATIENCE, &mut *server).await;
                    panic!("the service did not start: {ended:?}");
                }
            },
            ended = &mut *server => panic!("the service stopped while starting: {ended:?}"),
        }
    }

    /// Stops the service the way SIGTERM does and waits until it has finished. Returns the
    /// temporary folder so a test can still read the database afterwards.
    pub async fn shutdown(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        let server = self.server.take().unwrap();
        tokio::time::timeout(PATIENCE, server)
            .await
            .expect("shutdown finishes")
            .unwrap()
            .unwrap();
        self.dir.take().unwrap()
    }

    /// `/metrics` as the scraper with the metrics token sees it, KPIs included.
    pub async fn scrape(&self) -> String {
        let authorization = format!("Authorization: Bearer {METRICS_TOKEN}");
        let (status, body) = self.http("GET", "/metrics", &[&authorization]).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// How many times the service has computed its KPIs.
    pub async fn kpi_refreshes(&self) -> u64 {
        let body = self.scrape().await;
        body.lines()
            .find_map(|l| l.strip_prefix("autoresponder_kpi_refreshes_total "))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// Moves tokio's clock to the next KPI refresh, waits until it is done (a guarded poll
    /// of its counter: the refresh runs in the service's own task), and scrapes.
    pub async fn fresh_kpis(&self) -> String {
        let before = self.kpi_refreshes().await;
        advance_timers(KPI_REFRESH).await;
        tokio::time::timeout(PATIENCE, async {
            while self.kpi_refreshes().await <= before {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the KPIs are recomputed");
        self.scrape().await
    }

    /// Retention sweeps finished so far.
    pub async fn retention_sweeps(&self) -> u64 {
        let (_, body) = self.http_get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix("autoresponder_retention_sweeps_total "))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// Runs one more retention sweep by moving tokio's clock to it, and waits until it is
    /// done (a guarded poll of its counter: the sweep runs in the service's own task).
    pub async fn fresh_sweep(&self) {
        let wait_for = |more_than: u64| async move {
            tokio::time::timeout(PATIENCE, async {
                while self.retention_sweeps().await <= more_than {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .expect("the retention sweep runs");
        };
        // The sweep made at start-up first, so that the one awaited is the next.
        wait_for(0).await;
        let before = self.retention_sweeps().await;
        advance_timers(RETENTION_SWEEP).await;
        wait_for(before).await;
    }

    /// Reads the store directly, as an operator would.
    pub fn query<T: rusqlite::types::FromSql>(&self, sql: &str) -> Vec<T> {
        let connection = rusqlite::Connection::open(&self.database).unwrap();
        let mut statement = connection.prepare(sql).unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

/// A minimal HTTP/1.1 GET, enough for health, metrics and refused upgrades.
pub async fn http_get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    http_request(address, "GET", path, &[]).await
}

/// A minimal HTTP/1.1 request without a body.
pub async fn http_request(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
) -> (u16, String) {
    let (status, _head, body) = http_exchange(address, method, path, headers).await;
    (status, body)
}

/// A minimal HTTP/1.1 request without a body: the status, the response head (status line and
/// headers) and the body.
pub async fn http_exchange(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(address).await.unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or((response.clone(), String::new()));
    (status, head, body)
}

pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What the server sent next.
#[derive(Debug)]
pub enum Incoming {
    Frame(Value),
    Closed(Option<CloseFrame>),
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (socket, _) = connect_async(url).await.expect("the upgrade succeeds");
        Client { socket }
    }

    pub fn from_socket(socket: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client { socket }
    }

    /// The websocket itself, e.g. to split it into a sender and a receiver.
    pub fn into_socket(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.socket
    }

    /// Like `say`, but tolerates a server that has gone away.
    pub async fn try_say(&mut self, text: &str, id: &str) -> Result<(), ()> {
        let frame = json!({"type": "message", "text": text, "id": id});
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|_| ())
    }

    /// The next JSON frame, or `None` once the connection is gone.
    pub async fn try_frame(&mut self) -> Option<Value> {
        match self.next().await {
            Incoming::Frame(frame) => Some(frame),
            Incoming::Closed(_) => None,
        }
    }

    /// Like `send_json`, but tolerates a server that has gone away.
    pub async fn try_send_json(&mut self, value: Value) -> Result<(), ()> {
        self.socket
            .send(Message::text(value.to_string()))
            .await
            .map_err(|_| ())
    }

    pub async fn send_json(&mut self, value: Value) {
        self.socket
            .send(Message::text(value.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.unwrap();
    }

    pub async fn say(&mut self, text: &str, id: &str) {
        self.send_json(json!({"type": "message", "text": text, "id": id}))
            .await;
    }

    pub async fn next(&mut self) -> Incoming {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("the server answers in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Incoming::Frame(serde_json::from_str(&text).unwrap());
                }
                Some(Ok(Message::Close(frame))) => return Incoming::Closed(frame),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Incoming::Closed(None),
            }
        }
    }

    pub async fn frame(&mut self) -> Value {
        match self.next().await {
            Incoming::Frame(frame) => frame,
            Incoming::Closed(close) => panic!("expected a frame, the connection closed: {close:?}"),
        }
    }

    /// Reads frames until one satisfies `wanted`, skipping the rest (presence changes, other
    /// cases…); the skipped frames are returned too, for tests that assert on them.
    pub async fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
        let mut skipped = Vec::new();
        loop {
            let frame = self.frame().await;
            if wanted(&frame) {
                return (frame, skipped);
            }
            skipped.push(frame);
        }
    }

    /// The next frame of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        self.until(|f| f["type"] == kind).await.0
    }

    /// Reads the welcome every new conversation starts with.
    pub async fn welcomed(mut self) -> Client {
        let welcome = self.frame().await;
        assert_eq!(welcome["kind"], "welcome", "{welcome}");
        self
    }

    /// Sends a message and collects its replies: every frame answering `id`, up to and
    /// including the one of `last_kind`.
    pub async fn ask(&mut self, text: &str, id: &str, last_kind: &str) -> Vec<Value> {
        self.say(text, id).await;
        let mut replies = Vec::new();
        loop {
            let frame = self.frame().await;
            assert_eq!(frame["in_reply_to"], id, "{frame}");
            let done = frame["kind"] == last_kind;
            replies.push(frame);
            if done {
                return replies;
            }
        }
    }
}
