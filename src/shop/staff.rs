//! Who answers a shop's handoffs, and the rules of its human queue: `intents/<shop>/agents.toml`.
//!
//! Agent tokens are never written in the file, only their SHA-256 (`autoresponder agent-token`
//! prints a fresh token and the line to paste). Webhook secrets come from an environment
//! variable named in the file, or inline for local tests.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::folder::STAFF_FILE;
use crate::source::{LoadError, SourceFile, read_source};

/// The events a webhook can receive.
pub const WEBHOOK_EVENTS: [&str; 4] = [
    "handoff.created",
    "handoff.claimed",
    "handoff.resolved",
    "handoff.escalated",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAccount {
    pub id: String,
    pub name: String,
    token_sha256: [u8; 32],
}

impl AgentAccount {
    pub fn token_matches(&self, token_hash: &[u8; 32]) -> bool {
        // Both sides are hashes: comparing them leaks nothing about the token itself.
        &self.token_sha256 == token_hash
    }

    /// Whether `other` logs in with the same token as this account: a console opened with
    /// this account's token stays open across a reload only while it does.
    pub fn same_token(&self, other: &AgentAccount) -> bool {
        self.token_sha256 == other.token_sha256
    }
}

/// The body shape a receiver expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The full event as JSON: for the shop's own systems.
    Json,
    /// DingTalk and WeCom group robots: `{"msgtype": "text", "text": {"content": …}}`.
    Robot,
    /// Slack incoming webhooks: `{"text": …}`.
    Slack,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub format: WebhookFormat,
    /// The HMAC-SHA256 key of the signature header; `None` sends unsigned events.
    pub secret: Option<String>,
    pub events: Vec<String>,
}

impl Webhook {
    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == event)
    }
}

/// A shop's human side. A shop without `agents.toml` has no agents: its away and busy
/// notices follow the service hours and peaks alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    pub agents: Vec<AgentAccount>,
    /// Busy when the queued cases per available agent exceed this.
    pub queue_per_agent: usize,
    /// A claimed case returns to the queue when its agent has been gone this long.
    pub grace: Duration,
    /// A high-priority case still queued after this long is announced again.
    pub escalate_after: Duration,
    /// A first guess of how long one case takes, for the buyer's wait estimate.
    pub handle_time: Duration,
    pub webhooks: Vec<Webhook>,
}

impl Default for Staff {
    fn default() -> Self {
        Staff {
            agents: Vec::new(),
            queue_per_agent: 5,
            grace: Duration::from_secs(60),
            escalate_after: Duration::from_secs(180),
            handle_time: Duration::from_secs(240),
            webhooks: Vec::new(),
        }
    }
}

impl Staff {
    /// True when the shop has agents, so presence decides away and busy.
    pub fn is_staffed(&self) -> bool {
        !self.agents.is_empty()
    }

    pub fn agent(&self, id: &str) -> Option<&AgentAccount> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// The agents who log in with one of the public [`DEMO_TOKENS`], and that token.
    pub fn demo_agents(&self) -> impl Iterator<Item = (&AgentAccount, &'static str)> {
        DEMO_TOKENS.iter().filter_map(|&token| {
            let hash = token_hash(token);
            self.agents
                .iter()
                .find(|a| a.token_matches(&hash))
                .map(|a| (a, token))
        })
    }

    pub fn agent_with_token(&self, token: &str) -> Option<&AgentAccount> {
        let hash = token_hash(token);
        self.agents.iter().find(|a| a.token_matches(&hash))
    }
}

/// The tokens of the demo shop's agents: printed in README.md, so anyone may log in with
/// them. The service warns about each one a shop lists and serves them only on a loopback
/// address unless told otherwise.
pub const DEMO_TOKENS: &[&str] = &["demo-xiaoyue", "demo-xiaolin", "demo-ajie"];

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StaffFile {
    queue_per_agent: Option<usize>,
    grace_seconds: Option<f64>,
    escalate_after_seconds: Option<f64>,
    handle_minutes: Option<f64>,
    #[serde(default)]
    agent: Vec<AgentFile>,
    #[serde(default)]
    webhook: Vec<WebhookFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    id: toml::Spanned<String>,
    name: String,
    token_sha256: toml::Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFile {
    url: toml::Spanned<String>,
    secret: Option<String>,
    secret_env: Option<toml::Spanned<String>>,
    events: Option<Vec<toml::Spanned<String>>>,
    format: Option<toml::Spanned<String>>,
}

/// Loads `folder/agents.toml` if there is one.
pub fn load_staff(folder: &Path) -> Result<Staff, Vec<LoadError>> {
    let path = folder.join(STAFF_FILE);
    if !path.is_file() {
        return Ok(Staff::default());
    }
    let text = read_source(&path).map_err(|e| vec![e])?;
    staff_from_text(&path, &text)
}

/// Reads the text of an `agents.toml`; `path` only names the file in errors.
pub fn staff_from_text(path: &Path, text: &str) -> Result<Staff, Vec<LoadError>> {
    let src = SourceFile { path, text };
    let file: StaffFile = src.parse_toml().map_err(|e| vec![e])?;
    parse(&src, file)
}

fn parse(src: &SourceFile, file: StaffFile) -> Result<Staff, Vec<LoadError>> {
    let mut errors = Vec::new();
    let defaults = Staff::default();
    let seconds =
        |value: Option<f64>, default: Duration, key: &str, errors: &mut Vec<_>| match value {
            None => default,
            Some(v) if v.is_finite() && v > 0.0 && v < 1e7 => Duration::from_secs_f64(v),
            Some(v) => {
                errors.push(src.error(format!("`{key}` must be a positive number, not {v}")));
                default
            }
        };
    let grace = seconds(
        file.grace_seconds,
        defaults.grace,
        "grace_seconds",
        &mut errors,
    );
    let escalate_after = seconds(
        file.escalate_after_seconds,
        defaults.escalate_after,
        "escalate_after_seconds",
        &mut errors,
    );
    let handle_time = seconds(
        file.handle_minutes.map(|m| m * 60.0),
        defaults.handle_time,
        "handle_minutes",
        &mut errors,
    );
    let queue_per_agent = match file.queue_per_agent {
        Some(0) => {
            errors.push(src.error("`queue_per_agent` must be at least 1"));
            defaults.queue_per_agent
        }
        Some(n) => n,
        None => defaults.queue_per_agent,
    };

    let mut agents: Vec<AgentAccount> = Vec::new();
    for agent in file.agent {
        let id = agent.id.get_ref();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            errors.push(src.error_at(
                agent.id.span(),
                format!("agent id \"{id}\" must be letters, digits, `-`, `_` or `.`"),
            ));
            continue;
        }
        if agents.iter().any(|a| a.id == *id) {
            errors.push(src.error_at(agent.id.span(), format!("agent id \"{id}\" is used twice")));
            continue;
        }
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(agent.token_sha256.get_ref().trim(), &mut hash).is_err() {
            errors.push(src.error_at(
                agent.token_sha256.span(),
                "`token_sha256` must be 64 hex digits: the SHA-256 of the token, which \
                 `autoresponder agent-token` prints",
            ));
            continue;
        }
        if agents.iter().any(|a| a.token_sha256 == hash) {
            errors.push(src.error_at(
                agent.token_sha256.span(),
                "two agents share one token; give each agent its own",
            ));
            continue;
        }
        agents.push(AgentAccount {
            id: id.clone(),
            name: agent.name,
            token_sha256: hash,
        });
    }

    let mut webhooks = Vec::new();
    for hook in file.webhook {
        let url = hook.url.get_ref();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            errors.push(src.error_at(hook.url.span(), "a webhook `url` starts with https://"));
            continue;
        }
        let secret = match (hook.secret, hook.secret_env) {
            (Some(_), Some(env)) => {
                errors.push(src.error_at(env.span(), "give `secret` or `secret_env`, not both"));
                continue;
            }
            (Some(secret), None) => Some(secret),
            (None, Some(env)) => match std::env::var(env.get_ref()) {
                Ok(secret) if !secret.is_empty() => Some(secret),
                _ => {
                    errors.push(src.error_at(
                        env.span(),
                        format!(
                            "the environment variable {} holding this webhook's secret is not set",
                            env.get_ref()
                        ),
                    ));
                    continue;
                }
            },
            (None, None) => None,
        };
        let events = match hook.events {
            None => WEBHOOK_EVENTS.iter().map(|e| e.to_string()).collect(),
            Some(events) => {
                let mut names = Vec::new();
                for event in events {
                    if WEBHOOK_EVENTS.contains(&event.get_ref().as_str()) {
                        names.push(event.into_inner());
                    } else {
                        errors.push(src.error_at(
                            event.span(),
                            format!(
                                "unknown event \"{}\"; events are {}",
                                event.get_ref(),
                                WEBHOOK_EVENTS.join(", ")
                            ),
                        ));
                    }
                }
                names
            }
        };
        let format = match hook.format.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("json") => WebhookFormat::Json,
            Some("dingtalk" | "wecom") => WebhookFormat::Robot,
            Some("slack") => WebhookFormat::Slack,
            Some(other) => {
                let span = hook.format.as_ref().map(|f| f.span()).unwrap_or(0..0);
                errors.push(src.error_at(
                    span,
                    format!("unknown format \"{other}\"; use json, dingtalk, wecom or slack"),
                ));
                continue;
            }
        };
        webhooks.push(Webhook {
            url: url.clone(),
            format,
            secret,
            events,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Staff {
        agents,
        queue_per_agent,
        grace,
        escalate_after,
        handle_time,
        webhooks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(text: &str) -> Result<Staff, Vec<LoadError>> {
        let path = Path::new("intents/x/agents.toml");
        let src = SourceFile { path, text };
        let file: StaffFile = toml::from_str(text).map_err(|e| vec![src.toml_error(&e)])?;
        parse(&src, file)
    }

    #[test]
    fn agents_log_in_by_the_hash_of_their_token() {
        let hash = hex::encode(token_hash("s3cret"));
        let staff = staff(&format!(
            "grace_seconds = 0.5\n[[agent]]\nid = \"mei\"\nname = \"小美\"\ntoken_sha256 = \"{hash}\"\n"
        ))
        .unwrap();
        assert_eq!(staff.grace, Duration::from_millis(500));
        assert_eq!(staff.agent_with_token("s3cret").unwrap().name, "小美");
        assert!(staff.agent_with_token("s3cret ").is_none());
        assert!(staff.is_staffed());
    }

    #[test]
    fn mistakes_name_the_line() {
        let errors = staff("[[agent]]\nid = \"mei\"\nname = \"小美\"\ntoken_sha256 = \"abc\"\n")
            .unwrap_err();
        assert_eq!(errors[0].line, 4, "{errors:?}");
        let errors = staff("[[webhook]]\nurl = \"x\"\n").unwrap_err();
        assert_eq!(errors[0].line, 2);
        let errors =
            staff("[[webhook]]\nurl = \"http://h\"\nevents = [\"handoff.made\"]\n").unwrap_err();
        assert!(errors[0].message.contains("unknown event"), "{errors:?}");
    }
}
