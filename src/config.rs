//! The service's configuration: typed, validated once at start-up, passed down explicitly.
//!
//! Values come from built-in defaults, then an optional TOML file, then environment variables
//! and command-line flags (clap handles those two; see `main.rs`). A bad file fails start-up
//! with the file and line.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::reload::ReloadGuard;
use crate::webhook::WebhookSettings;

/// Limits that protect the service from one client.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Longest buyer text accepted, in characters; longer gets `too_large`.
    pub max_text_chars: usize,
    /// Largest websocket frame or message, in bytes; larger closes the connection with 1009.
    pub max_frame_bytes: usize,
    /// Sustained messages per second from one buyer, over all their connections (the bucket
    /// outlives a connection, so reconnecting does not refill it).
    pub messages_per_second: f64,
    /// Messages a buyer may send in a burst above the sustained rate.
    pub message_burst: u32,
    /// Sustained messages per second from all buyers behind one client address (IPv6
    /// grouped by /64); generous, since a carrier NAT puts many buyers behind one address.
    pub messages_per_address_per_second: f64,
    /// Messages all buyers behind one address may send in a burst above that rate.
    pub message_burst_per_address: u32,
    /// New conversations (buyer ids never seen in the shop) opened from one client address
    /// per minute, IPv6 grouped by /64; also the burst. A connection over it is refused
    /// before anything is stored.
    pub conversations_per_address_per_minute: f64,
    /// How often an idle connection is pinged.
    pub ping_interval: Duration,
    /// A connection that sent nothing (not even a pong) for this long is closed as dead.
    pub idle_timeout: Duration,
    /// Frames waiting to be written to one client; a client that does not read is dropped.
    pub outbound_queue: usize,
    /// How long a frame may wait for room in a full outbound queue before the client counts
    /// as not reading and is dropped.
    pub outbound_wait: Duration,
    /// tokio-tungstenite read and write buffer size per connection, in bytes. Its default of
    /// 128 KiB each costs far more memory per idle connection than chat frames need.
    pub socket_buffer_bytes: usize,
    /// Sustained frames per second per agent console (claims, replies, notes…).
    pub agent_frames_per_second: f64,
    /// Frames an agent console may send in a burst above that rate.
    pub agent_frame_burst: u32,
    /// How long a client may take to send its whole HTTP request head (a websocket upgrade
    /// included) after connecting, or between two requests on a keep-alive connection,
    /// before the connection is closed; bounds half-open (slowloris) connections.
    pub header_read_timeout: Duration,
    /// Open buyer websockets in all; past it new ones get HTTP 503.
    pub max_connections: usize,
    /// Open buyer websockets from one remote address, IPv6 grouped by /64 (buyers behind one
    /// carrier NAT share an address, so this is generous).
    pub max_connections_per_address: usize,
    /// Open agent console websockets in all, counted apart from buyers so that buyers cannot
    /// push agents out; past it new ones get HTTP 503.
    pub max_agent_connections: usize,
    /// Open agent console websockets from one remote address (IPv6 by /64).
    pub max_agent_connections_per_address: usize,
    /// Open TCP connections in all, whatever they carry (page loads, half-sent requests,
    /// idle keep-alives, websockets, which keep their place once upgraded). Past it a new
    /// connection gets a bare HTTP 503 and is closed before anything is read. Above
    /// `max_connections + max_agent_connections`, or those cannot be reached.
    pub max_http_connections: usize,
    /// Open TCP connections from one socket address (IPv6 by /64), above
    /// `max_connections_per_address + max_agent_connections_per_address`. Not applied with
    /// `trust_forwarded_for`: every connection then comes from the balancer.
    pub max_http_connections_per_address: usize,
    /// Count connections by the last address of `X-Forwarded-For` rather than the socket's:
    /// right when every client comes through a load balancer that appends it (nginx's
    /// `$proxy_add_x_forwarded_for`), wrong otherwise (clients could pick their address).
    pub trust_forwarded_for: bool,
    /// New cases (handoffs) per minute from one client address, IPv6 grouped by /64; also
    /// the burst. A request over it is refused with `rate_limited` and counted.
    pub handoffs_per_address_per_minute: f64,
    /// New cases per minute in one shop from everyone; also the burst.
    pub handoffs_per_shop_per_minute: f64,
    /// How long a buyer's message keeps being tried against a store that cannot commit (a
    /// database restarting, a file locked by someone else) before the buyer is told
    /// `unavailable`; it bounds how long such a message holds its connection.
    pub store_retry: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_chars: 2000,
            max_frame_bytes: 16 * 1024,
            messages_per_second: 5.0,
            message_burst: 10,
            messages_per_address_per_second: 50.0,
            message_burst_per_address: 100,
            conversations_per_address_per_minute: 120.0,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            outbound_queue: 64,
            outbound_wait: Duration::from_secs(5),
            socket_buffer_bytes: 4 * 1024,
            agent_frames_per_second: 20.0,
            agent_frame_burst: 40,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 20_000,
            max_connections_per_address: 500,
            max_agent_connections: 1_000,
            max_agent_connections_per_address: 100,
            max_http_connections: 25_000,
            max_http_connections_per_address: 1_000,
            trust_forwarded_for: false,
            handoffs_per_address_per_minute: 10.0,
            handoffs_per_shop_per_minute: 600.0,
            store_retry: Duration::from_secs(5),
        }
    }
}

/// Where the store lives, chosen by how it is written: a `postgres://` (or `postgresql://`)
/// URL is a PostgreSQL database that several nodes may share; anything else is the path of a
/// SQLite file, for one node.
#[derive(Clone, PartialEq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Database {
    pub fn is_shared(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }
}

impl FromStr for Database {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Database, Self::Err> {
        let text = text.trim();
        Ok(
            if text.starts_with("postgres://") || text.starts_with("postgresql://") {
                Database::Postgres(text.to_string())
            } else {
                Database::Sqlite(PathBuf::from(text))
            },
        )
    }
}

/// Shown in logs and errors: the path, or the URL without its password.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if url[scheme + 3..at].contains(':') => {
                    let user_end = scheme + 3 + url[scheme + 3..at].find(':').unwrap_or(0);
                    write!(f, "{}:***{}", &url[..user_end], &url[at..])
                }
                _ => f.write_str(url),
            },
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Database({self})")
    }
}

/// How the nodes sharing a PostgreSQL database keep track of each other.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// How often a node tells the others it is alive, with the agents connected to it.
    pub heartbeat: Duration,
    /// A node not heard from for this long is gone: its agents are offline, and the cases
    /// they hold return to the queue after the shop's grace period.
    pub node_timeout: Duration,
    /// PostgreSQL connections per node.
    pub pool_size: u32,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            heartbeat: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
            pool_size: 16,
        }
    }
}

/// Everything `serve` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub intents: PathBuf,
    pub index: PathBuf,
    /// Build FAQ indexes in files under this folder instead of in RAM (large knowledge bases).
    pub faq_on_disk: Option<PathBuf>,
    pub database: Database,
    /// How long a write waits for a database locked by someone else (SQLite) or for a free
    /// connection (PostgreSQL) before the buyer is told `unavailable`.
    pub database_busy_timeout: Duration,
    pub cluster: ClusterSettings,
    pub limits: Limits,
    /// How long shutdown waits for connections to close before giving up on them.
    pub shutdown_grace: Duration,
    /// How webhook deliveries are timed out and retried.
    pub webhooks: WebhookSettings,
    /// How often waiting high-priority cases are checked for escalation.
    pub escalation_check: Duration,
    /// The SHA-256 of the admin token for `/api/admin/*`; none disables those.
    pub admin_token_sha256: Option<TokenHash>,
    /// The SHA-256 of the token a scraper sends (`Authorization: Bearer …`) to get the
    /// shops' service figures in `/metrics`; without it they are never shown there.
    pub metrics_token_sha256: Option<TokenHash>,
    /// How often the service figures of `/metrics` are recomputed from the store.
    pub kpi_refresh: Duration,
    /// How often what the shops no longer keep is deleted (`crate::retention`).
    pub retention_sweep: Duration,
    /// Watch `intents/` and `index/` and reload on changes.
    pub watch_rules: bool,
    /// How long the folders must be quiet after a change before reloading.
    pub reload_debounce: Duration,
    /// How much of a shop's rules one reload may remove unless forced.
    pub reload_guard: ReloadGuard,
    /// Serve the public demo agent tokens on an address other machines can reach.
    pub allow_demo_tokens: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            intents: PathBuf::from("intents"),
            index: PathBuf::from("index"),
            faq_on_disk: None,
            database: Database::Sqlite(PathBuf::from("data/autoresponder.db")),
            database_busy_timeout: Duration::from_secs(5),
            cluster: ClusterSettings::default(),
            limits: Limits::default(),
            shutdown_grace: Duration::from_secs(5),
            webhooks: WebhookSettings::default(),
            escalation_check: Duration::from_secs(1),
            admin_token_sha256: None,
            metrics_token_sha256: None,
            kpi_refresh: Duration::from_secs(60),
            retention_sweep: Duration::from_secs(600),
            watch_rules: true,
            reload_debounce: Duration::from_millis(300),
            reload_guard: ReloadGuard::default(),
            allow_demo_tokens: false,
        }
    }
}

/// The SHA-256 of a secret token, written as 64 hex digits; checked when the configuration
/// is read, so a mistyped hash fails start-up rather than every request.
#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TokenHash(pub [u8; 32]);

impl FromStr for TokenHash {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut hash)
            .map_err(|_| "a token hash must be 64 hex digits (the token's SHA-256)".to_string())?;
        Ok(TokenHash(hash))
    }
}

impl TryFrom<String> for TokenHash {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", hex::encode(self.0))
    }
}

/// The optional config file; every key may be left out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<SocketAddr>,
    pub intents: Option<PathBuf>,
    pub index: Option<PathBuf>,
    pub faq_on_disk: Option<PathBuf>,
    pub database: Option<String>,
    pub database_busy_timeout_ms: Option<u64>,
    pub shutdown_grace_ms: Option<u64>,
    pub admin_token_sha256: Option<TokenHash>,
    pub metrics_token_sha256: Option<TokenHash>,
    pub kpi_refresh_ms: Option<u64>,
    pub retention_sweep_ms: Option<u64>,
    pub watch_rules: Option<bool>,
    pub reload_debounce_ms: Option<u64>,
    pub allow_demo_tokens: Option<bool>,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub webhooks: WebhooksFile,
    #[serde(default)]
    pub cluster: ClusterFile,
    #[serde(default)]
    pub reload: ReloadFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadFile {
    pub max_removed_share: Option<Share>,
}

/// A share from 0 to 1, checked when the file is read.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "f64")]
pub struct Share(pub f64);

impl TryFrom<f64> for Share {
    type Error = String;

    fn try_from(share: f64) -> Result<Self, Self::Error> {
        if (0.0..=1.0).contains(&share) {
            Ok(Share(share))
        } else {
            Err(format!("a share is from 0.0 to 1.0, not {share}"))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub heartbeat_ms: Option<u64>,
    pub node_timeout_ms: Option<u64>,
    pub pool_size: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksFile {
    pub timeout_ms: Option<u64>,
    pub first_retry_ms: Option<u64>,
    pub max_retry_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_text_chars: Option<usize>,
    pub max_frame_bytes: Option<usize>,
    pub messages_per_second: Option<f64>,
    pub message_burst: Option<u32>,
    pub messages_per_address_per_second: Option<f64>,
    pub message_burst_per_address: Option<u32>,
    pub conversations_per_address_per_minute: Option<f64>,
    pub ping_interval_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub outbound_queue: Option<usize>,
    pub outbound_wait_ms: Option<u64>,
    pub socket_buffer_bytes: Option<usize>,
    pub agent_frames_per_second: Option<f64>,
    pub agent_frame_burst: Option<u32>,
    pub header_read_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_connections_per_address: Option<usize>,
    pub max_agent_connections: Option<usize>,
    pub max_agent_connections_per_address: Option<usize>,
    pub max_http_connections: Option<usize>,
    pub max_http_connections_per_address: Option<usize>,
    pub trust_forwarded_for: Option<bool>,
    pub handoffs_per_address_per_minute: Option<f64>,
    pub handoffs_per_shop_per_minute: Option<f64>,
    pub store_retry_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: e
                .span()
                .map_or(0, |s| text[..s.start].matches('\n').count() + 1),
            message: e.message().trim().to_string(),
        })
    }

    /// Applies the file's values over `config`.
    pub fn apply(self, config: &mut ServeConfig) {
        let ms = Duration::from_millis;
        config.listen = self.listen.unwrap_or(config.listen);
        config.intents = self.intents.unwrap_or(config.intents.clone());
        config.index = self.index.unwrap_or(config.index.clone());
        config.faq_on_disk = self.faq_on_disk.or(config.faq_on_disk.clone());
        if let Some(database) = self.database {
            config.database = database.parse().unwrap_or_else(|never| match never {});
        }
        config.database_busy_timeout = self
            .database_busy_timeout_ms
            .map_or(config.database_busy_timeout, ms);
        config.shutdown_grace = self.shutdown_grace_ms.map_or(config.shutdown_grace, ms);
        config.admin_token_sha256 = self.admin_token_sha256.or(config.admin_token_sha256);
        config.metrics_token_sha256 = self.metrics_token_sha256.or(config.metrics_token_sha256);
        config.kpi_refresh = self.kpi_refresh_ms.map_or(config.kpi_refresh, ms);
        config.retention_sweep = self.retention_sweep_ms.map_or(config.retention_sweep, ms);
        config.watch_rules = self.watch_rules.unwrap_or(config.watch_rules);
        config.reload_debounce = self.reload_debounce_ms.map_or(config.reload_debounce, ms);
        config.allow_demo_tokens = self.allow_demo_tokens.unwrap_or(config.allow_demo_tokens);
        let l = self.limits;
        let limits = &mut config.limits;
        limits.max_text_chars = l.max_text_chars.unwrap_or(limits.max_text_chars);
        limits.max_frame_bytes = l.max_frame_bytes.unwrap_or(limits.max_frame_bytes);
        limits.messages_per_second = l.messages_per_second.unwrap_or(limits.messages_per_second);
        limits.message_burst = l.message_burst.unwrap_or(limits.message_burst);
        limits.messages_per_address_per_second = l
            .messages_per_address_per_second
            .unwrap_or(limits.messages_per_address_per_second);
        limits.message_burst_per_address = l
            .message_burst_per_address
            .unwrap_or(limits.message_burst_per_address);
        limits.conversations_per_address_per_minute = l
            .conversations_per_address_per_minute
            .unwrap_or(limits.conversations_per_address_per_minute);
        limits.ping_interval = l.ping_interval_ms.map_or(limits.ping_interval, ms);
        limits.idle_timeout = l.idle_timeout_ms.map_or(limits.idle_timeout, ms);
        limits.outbound_queue = l.outbound_queue.unwrap_or(limits.outbound_queue);
        limits.outbound_wait = l.outbound_wait_ms.map_or(limits.outbound_wait, ms);
        limits.socket_buffer_bytes = l.socket_buffer_bytes.unwrap_or(limits.socket_buffer_bytes);
        limits.agent_frames_per_second = l
            .agent_frames_per_second
            .unwrap_or(limits.agent_frames_per_second);
        limits.agent_frame_burst = l.agent_frame_burst.unwrap_or(limits.agent_frame_burst);
        limits.header_read_timeout = l
            .header_read_timeout_ms
            .map_or(limits.header_read_timeout, ms);
        limits.max_connections = l.max_connections.unwrap_or(limits.max_connections);
        limits.max_connections_per_address = l
            .max_connections_per_address
            .unwrap_or(limits.max_connections_per_address);
        limits.max_agent_connections = l
            .max_agent_connections
            .unwrap_or(limits.max_agent_connections);
        limits.max_agent_connections_per_address = l
            .max_agent_connections_per_address
            .unwrap_or(limits.max_agent_connections_per_address);
        limits.max_http_connections = l
            .max_http_connections
            .unwrap_or(limits.max_http_connections);
        limits.max_http_connections_per_address = l
            .max_http_connections_per_address
            .unwrap_or(limits.max_http_connections_per_address);
        limits.trust_forwarded_for = l.trust_forwarded_for.unwrap_or(limits.trust_forwarded_for);
        limits.handoffs_per_address_per_minute = l
            .handoffs_per_address_per_minute
            .unwrap_or(limits.handoffs_per_address_per_minute);
        limits.handoffs_per_shop_per_minute = l
            .handoffs_per_shop_per_minute
            .unwrap_or(limits.handoffs_per_shop_per_minute);
        limits.store_retry = l.store_retry_ms.map_or(limits.store_retry, ms);
        let w = self.webhooks;
        let hooks = &mut config.webhooks;
        hooks.timeout = w.timeout_ms.map_or(hooks.timeout, ms);
        hooks.first_retry = w.first_retry_ms.map_or(hooks.first_retry, ms);
        hooks.max_retry = w.max_retry_ms.map_or(hooks.max_retry, ms);
        if let Some(Share(share)) = self.reload.max_removed_share {
            config.reload_guard.max_removed_share = share;
        }
        let c = self.cluster;
        let cluster = &mut config.cluster;
        cluster.heartbeat = c.heartbeat_ms.map_or(cluster.heartbeat, ms);
        cluster.node_timeout = c.node_timeout_ms.map_or(cluster.node_timeout, ms);
        cluster.pool_size = c.pool_size.unwrap_or(cluster.pool_size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nkpi_refresh_ms = 5000\n[limits]\nmax_text_chars = 500\n\
             handoffs_per_address_per_minute = 4.0\nmax_http_connections_per_address = 7\n",
        )
        .unwrap();
        let mut config = ServeConfig::default();
        ConfigFile::read(&path).unwrap().apply(&mut config);
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.limits.max_text_chars, 500);
        assert_eq!(config.limits.handoffs_per_address_per_minute, 4.0);
        assert_eq!(config.limits.max_http_connections_per_address, 7);
        assert_eq!(config.kpi_refresh, Duration::from_secs(5));
        assert_eq!(config.metrics_token_sha256, None);
        assert_eq!(config.database, ServeConfig::default().database);

        assert_eq!(config.reload_guard, ReloadGuard::default());

        std::fs::write(&path, "[reload]\nmax_removed_share = 0.2\n").unwrap();
        ConfigFile::read(&path).unwrap().apply(&mut config);
        assert_eq!(config.reload_guard.max_removed_share, 0.2);
        std::fs::write(&path, "[reload]\nmax_removed_share = 1.5\n").unwrap();
        let error = ConfigFile::read(&path).unwrap_err().to_string();
        assert!(
            error.contains("c.toml:2") && error.contains("0.0 to 1.0"),
            "{error}"
        );

        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\nlisen = 1\n").unwrap();
        let error = ConfigFile::read(&path).unwrap_err().to_string();
        assert!(error.contains("c.toml:2"), "{error}");
    }

    #[test]
    fn the_database_is_chosen_by_its_url_and_shown_without_its_password() {
        let check = |text: &str, shared: bool, shown: &str| {
            let database: Database = text.parse().unwrap();
            assert_eq!(database.is_shared(), shared, "{text}");
            assert_eq!(database.to_string(), shown, "{text}");
        };
        check("data/a.db", false, "data/a.db");
        check(
            "postgres://u:secret@db:5432/ar",
            true,
            "postgres://u:***@db:5432/ar",
        );
        check("postgresql://u@db/ar", true, "postgresql://u@db/ar");
        check("postgres://db/ar", true, "postgres://db/ar");
    }

    #[test]
    fn a_mistyped_admin_token_hash_fails_when_the_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let hash = "ab".repeat(32);
        std::fs::write(&path, format!("admin_token_sha256 = \"{hash}\"\n")).unwrap();
        let mut config = ServeConfig::default();
        ConfigFile::read(&path).unwrap().apply(&mut config);
        assert_eq!(config.admin_token_sha256, Some(TokenHash([0xab; 32])));

        std::fs::write(&path, "watch_rules = true\nadmin_token_sha256 = \"abc\"\n").unwrap();
        let error = ConfigFile::read(&path).unwrap_err().to_string();
        assert!(
            error.contains("c.toml:2") && error.contains("64 hex digits"),
            "{error}"
        );
        assert!("not hex".parse::<TokenHash>().is_err());
    }
}
