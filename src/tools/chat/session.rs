//! [`ChatSession`]: one console conversation without a terminal. A typed line goes in (a
//! buyer's message or a `/command`), the lines to print come out.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

use crate::clock::SharedClock;
use crate::conversation::ConversationState;
use crate::dialogue::step::{self, AfterCommit, Humans};
use crate::reply::{Reply, ReplyKind};
use crate::shop::schedule::Duty;
use crate::shop::{Catalog, Shop};
use crate::staffing::Staffing;
use crate::store::{BuyerMessage, Conversation};

/// Printed for every buyer line while a handoff is open.
pub const SILENT: &str =
    "(with the humans: the bot stays silent; /resolve gives the conversation back)";

const HELP: &[&str] = &[
    "Type a buyer's message to see the replies. Commands:",
    "  /time 2026-11-11T00:05+08:00  set the clock (RFC 3339, seconds optional; without an",
    "                                offset the time is the shop's own); it stays there",
    "  /time now                     back to the system clock",
    "  /time                         show the clock and whether the shop is on duty",
    "  /reset                        start a new conversation (welcome again)",
    "  /shop ID                      switch to another shop (a new conversation)",
    "  /resolve                      end the open handoff: the bot answers again",
    "  /help                         this list",
    "  /quit                         leave (Ctrl-D too)",
];

/// Why a console cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("no shop `{shop}` (shops: {known})")]
    UnknownShop { shop: String, known: String },
}

/// One console conversation: the shops, the one being talked to, what the bot remembers and
/// the clock.
pub struct ChatSession {
    catalog: Catalog,
    shop: Arc<Shop>,
    /// What the bot remembers between lines, exactly as the service stores it.
    /// The conversation as the service keeps it (its state is what the bot remembers
    /// between lines); it is never stored.
    conversation: Conversation,
    /// Where "now" comes from while no `/time` is set.
    system_clock: SharedClock,
    /// The instant set with `/time`: the clock stands still there until changed.
    fixed_time: Option<DateTime<Utc>>,
    /// Set by `/quit`.
    finished: bool,
}

impl ChatSession {
    /// A console on `shop_id`; `system_clock` is "now" until a `/time` (tests pass a
    /// `ManualClock`).
    pub fn new(
        catalog: Catalog,
        shop_id: &str,
        system_clock: SharedClock,
    ) -> Result<ChatSession, ChatError> {
        let shop = find_shop(&catalog, shop_id)?;
        Ok(ChatSession {
            catalog,
            shop,
            conversation: console_conversation(shop_id),
            system_clock,
            fixed_time: None,
            finished: false,
        })
    }

    /// What is printed when the console opens: which shop, the clock, and the welcome.
    pub fn start(&mut self) -> Vec<String> {
        let mut out = vec![
            format!(
                "shop {} ({}); {}",
                self.shop.id,
                self.shop.name,
                self.describe_clock()
            ),
            "type as a buyer; /help lists the commands".to_string(),
        ];
        self.welcome(&mut out);
        out
    }

    /// Handles one typed line and returns what to print.
    pub fn handle_line(&mut self, line: &str) -> Vec<String> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        if line.starts_with('/') {
            return match self.command(line) {
                Ok(out) => out,
                Err(message) => vec![format!("error: {message}")],
            };
        }
        self.buyer_message(line)
    }

    /// Whether `/quit` was typed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The shop being talked to.
    pub fn shop_id(&self) -> &str {
        &self.shop.id
    }

    /// The instant the shop's rules are asked about.
    pub fn now(&self) -> DateTime<Utc> {
        self.fixed_time.unwrap_or_else(|| self.system_clock.now())
    }

    /// What the bot remembers of this conversation.
    pub fn state(&self) -> &ConversationState {
        &self.conversation.state
    }

    fn buyer_message(&mut self, text: &str) -> Vec<String> {
        let humans = match self.conversation.state.open_handoff {
            Some(_) => Humans::Case,
            None => Humans::Bot(Staffing::default()),
        };
        let message = BuyerMessage {
            text: text.to_string(),
            client_id: None,
        };
        let shop = self.shop.clone();
        // The service's own step; what it would commit is taken as committed.
        let step = step::buyer_wrote(&shop, &self.conversation, message, humans, self.now());
        let AfterCommit {
            state,
            replies,
            handoff,
            ..
        } = step.after;
        self.conversation.state = state;
        if humans == Humans::Case {
            return vec![SILENT.to_string()];
        }
        let needs_faq = replies
            .iter()
            .any(|r| matches!(r.kind, ReplyKind::Faq | ReplyKind::Fallback));
        let best_faq_hit = match (&shop.faq, needs_faq) {
            (Some(faq), true) => faq
                .rank(&shop.canonical(text), 2)
                .into_iter()
                .next()
                .map(|hit| (faq.entries()[hit.entry].id.clone(), hit)),
            _ => None,
        };
        let mut out = Vec::with_capacity(replies.len() + 1);
        for reply in &replies {
            let mut label = format!("[{}", reply.kind.as_str());
            if let Some(intent) = &reply.intent {
                label.push(' ');
                label.push_str(intent);
            }
            if reply.kind == ReplyKind::Faq
                && let Some((id, hit)) = &best_faq_hit
                && Some(id) == reply.intent.as_ref()
            {
                label.push_str(&format!(
                    ", confidence {:.2}, margin {:.2}, score {:.2}",
                    hit.confidence, hit.margin, hit.score
                ));
            }
            out.push(format!("{label}] {}", reply.text));
            if reply.kind == ReplyKind::Fallback
                && let Some((id, hit)) = &best_faq_hit
            {
                out.push(format!(
                    "  (FAQ best guess {id}: confidence {:.2}, margin {:.2}, score {:.2}, \
                     not sure enough to answer)",
                    hit.confidence, hit.margin, hit.score
                ));
            }
        }
        if let Some(handoff) = handoff {
            out.push(format!(
                "→ handoff: {} ({})",
                handoff.intent,
                handoff.priority.as_str()
            ));
        }
        out
    }

    fn command(&mut self, line: &str) -> Result<Vec<String>, String> {
        let (name, argument) = match line.split_once(char::is_whitespace) {
            Some((name, rest)) => (name, rest.trim()),
            None => (line, ""),
        };
        let no_argument = |out: Vec<String>| {
            if argument.is_empty() {
                Ok(out)
            } else {
                Err(format!("{name} takes no argument"))
            }
        };
        match name {
            "/time" => self.set_time(argument),
            "/reset" => {
                no_argument(Vec::new())?;
                self.conversation = console_conversation(&self.shop.id);
                let mut out = vec!["(a new conversation)".to_string()];
                self.welcome(&mut out);
                Ok(out)
            }
            "/shop" => {
                if argument.is_empty() {
                    return Err(format!("usage: /shop ID (shops: {})", known(&self.catalog)));
                }
                self.shop = find_shop(&self.catalog, argument).map_err(|e| e.to_string())?;
                self.conversation = console_conversation(&self.shop.id);
                let mut out = vec![format!(
                    "(shop {} ({}), a new conversation)",
                    self.shop.id, self.shop.name
                )];
                self.welcome(&mut out);
                Ok(out)
            }
            "/resolve" => {
                no_argument(Vec::new())?;
                Ok(vec![match self.conversation.state.open_handoff.take() {
                    Some(_) => "(resolved: the bot answers again)".to_string(),
                    None => "(no handoff is open: the bot is answering)".to_string(),
                }])
            }
            "/help" => no_argument(HELP.iter().map(|l| l.to_string()).collect()),
            "/quit" | "/exit" => {
                no_argument(Vec::new())?;
                self.finished = true;
                Ok(Vec::new())
            }
            _ => Err(format!("unknown command {name}; /help lists the commands")),
        }
    }

    fn set_time(&mut self, argument: &str) -> Result<Vec<String>, String> {
        match argument {
            "" => {}
            "now" => self.fixed_time = None,
            text => {
                let instant = parse_time(text, &self.shop).ok_or_else(|| {
                    format!(
                        "cannot read the time `{text}`: expected RFC 3339 like \
                         2026-11-11T00:05+08:00, or `now`"
                    )
                })?;
                self.fixed_time = Some(instant);
            }
        }
        Ok(vec![format!("({})", self.describe_clock())])
    }

    /// "clock: 2026-11-27 03:00 +08:00 Asia/Shanghai (fixed): away until …".
    fn describe_clock(&self) -> String {
        let now = self.now();
        let schedule = &self.shop.schedule;
        let local = schedule.local(now);
        let source = if self.fixed_time.is_some() {
            "fixed"
        } else {
            "system time"
        };
        let duty = match schedule.duty_at(now) {
            Duty::OnDuty => "on duty".to_string(),
            Duty::Away { back: Some(back) } => {
                format!("away until {}", back.format("%Y-%m-%d %H:%M"))
            }
            Duty::Away { back: None } => "away (no opening in the coming week)".to_string(),
        };
        let peak = schedule
            .peak_at(now)
            .map(|p| format!(", peak {}", p.name))
            .unwrap_or_default();
        format!(
            "clock: {} {} ({source}): {duty}{peak}",
            local.format("%Y-%m-%d %H:%M:%S %:z"),
            schedule.timezone.name()
        )
    }

    fn welcome(&mut self, out: &mut Vec<String>) {
        let now = self.now();
        if let Some(welcome) = step::welcome(&self.shop, &self.conversation, now) {
            self.conversation.state = welcome.after.state;
            out.extend(welcome.after.replies.iter().map(render_plain));
        }
    }
}

/// A conversation of the console with `shop`.
fn console_conversation(shop: &str) -> Conversation {
    Conversation {
        id: "console".to_string(),
        shop: shop.to_string(),
        buyer: "console".to_string(),
        state: ConversationState::default(),
    }
}

fn render_plain(reply: &Reply) -> String {
    match &reply.intent {
        Some(intent) => format!("[{} {intent}] {}", reply.kind.as_str(), reply.text),
        None => format!("[{}] {}", reply.kind.as_str(), reply.text),
    }
}

fn find_shop(catalog: &Catalog, id: &str) -> Result<Arc<Shop>, ChatError> {
    catalog
        .get(id)
        .cloned()
        .ok_or_else(|| ChatError::UnknownShop {
            shop: id.to_string(),
            known: known(catalog),
        })
}

fn known(catalog: &Catalog) -> String {
    catalog.ids().collect::<Vec<_>>().join(", ")
}

/// Reads RFC 3339 (`2026-11-11T00:05:00+08:00`, `Z` for UTC), also without seconds, with a
/// space for the `T`, or without an offset, in which case the time is the shop's own.
fn parse_time(text: &str, shop: &Shop) -> Option<DateTime<Utc>> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Some(instant.with_timezone(&Utc));
    }
    let text = text.replacen(' ', "T", 1);
    let with_offset = match text.strip_suffix(['Z', 'z']) {
        Some(rest) => format!("{rest}+00:00"),
        None => text.clone(),
    };
    for format in [
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%dT%H:%M:%S%:z",
        "%Y-%m-%dT%H:%M%z",
    ] {
        if let Ok(instant) = DateTime::<FixedOffset>::parse_from_str(&with_offset, format) {
            return Some(instant.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(local) = NaiveDateTime::parse_from_str(&text, format) {
            return shop
                .schedule
                .timezone
                .from_local_datetime(&local)
                .earliest()
                .map(|t| t.with_timezone(&Utc));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::OnceLock;

    use super::*;
    use crate::clock::ManualClock;

    /// The shipped shop with its FAQ, loaded once for all tests.
    fn catalog() -> Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG
            .get_or_init(|| {
                let root = Path::new(env!("CARGO_MANIFEST_DIR"));
                Catalog::load_with_faq(&root.join("intents"), Some(&root.join("index")), None)
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .clone()
    }

    /// A console whose "system" clock is a Wednesday at 10:00 in Shanghai: on duty, no peak.
    fn session() -> ChatSession {
        let clock = ManualClock::new("2026-11-25T02:00:00Z".parse().unwrap());
        ChatSession::new(catalog(), "default", Arc::new(clock)).unwrap()
    }

    fn check(session: &mut ChatSession, line: &str, expected_starts: &[&str]) -> Vec<String> {
        let out = session.handle_line(line);
        assert_eq!(
            out.len(),
            expected_starts.len(),
            "`{line}` printed {out:#?}"
        );
        for (printed, start) in out.iter().zip(expected_starts) {
            assert!(
                printed.starts_with(start),
                "`{line}`: expected a line starting `{start}`, got {out:#?}"
            );
        }
        out
    }

    #[test]
    fn the_console_opens_with_the_shop_the_clock_and_the_welcome() {
        let out = session().start();
        assert!(
            out[0].starts_with("shop default (悦步衣橱官方旗舰店); clock: 2026-11-25 10:00:00 +08:00 Asia/Shanghai (system time): on duty"),
            "{out:#?}"
        );
        assert!(out.last().unwrap().starts_with("[welcome] "), "{out:#?}");
    }

    #[test]
    fn a_question_gets_the_services_answer_with_kind_and_intent() {
        let mut chat = session();
        chat.start();
        check(&mut chat, "包邮吗", &["[answer free_shipping] "]);
        check(&mut chat, "  ", &[]);
        assert!(!chat.is_finished());
    }

    #[test]
    fn a_short_follow_up_is_read_in_the_last_answers_topic_as_in_the_service() {
        let mut chat = session();
        chat.start();
        check(&mut chat, "发江苏几天到", &["[answer shipping_time] "]);
        let out = check(&mut chat, "那新疆呢", &["[answer shipping_time] "]);
        assert!(out[0].contains("5-7"), "{out:#?}");
    }

    #[test]
    fn an_faq_answer_shows_how_sure_the_index_was() {
        let mut chat = session();
        chat.start();
        let out = check(
            &mut chat,
            "毛衣丢洗衣机会坏吗",
            &["[faq wool_sweater_wash, confidence "],
        );
        assert!(out[0].contains(", score "), "{out:#?}");
    }

    #[test]
    fn time_switches_to_away_outside_hours_once_per_period_and_back() {
        let mut chat = session();
        chat.start();
        let out = check(&mut chat, "/time 2026-11-27T03:00+08:00", &["(clock: "]);
        assert!(
            out[0].contains(
                "2026-11-27 03:00:00 +08:00 Asia/Shanghai (fixed): away until 2026-11-27 09:00"
            ),
            "{out:#?}"
        );
        check(&mut chat, "在吗", &["[away] ", "[answer greeting] "]);
        // The buyer is told once per away period; the clock stays where it was set.
        check(&mut chat, "包邮吗", &["[answer free_shipping] "]);
        assert_eq!(
            chat.now(),
            "2026-11-26T19:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let out = check(&mut chat, "/time now", &["(clock: "]);
        assert!(out[0].contains("(system time): on duty"), "{out:#?}");
        check(&mut chat, "包邮吗", &["[answer free_shipping] "]);
    }

    #[test]
    fn times_are_read_with_or_without_seconds_offset_or_t() {
        let shop = catalog().get("default").unwrap().clone();
        let expected: DateTime<Utc> = "2026-11-10T16:05:00Z".parse().unwrap();
        for text in [
            "2026-11-11T00:05+08:00",
            "2026-11-11T00:05:00+08:00",
            "2026-11-11 00:05+08:00",
            "2026-11-10T16:05Z",
            "2026-11-10T16:05:00Z",
            "2026-11-11T00:05",
            "2026-11-11T00:05+0800",
        ] {
            assert_eq!(parse_time(text, &shop), Some(expected), "{text}");
        }
        for text in ["tomorrow", "2026-11-11", "2026-13-11T00:05+08:00", "00:05"] {
            assert_eq!(parse_time(text, &shop), None, "{text}");
        }
    }

    #[test]
    fn reset_starts_a_new_conversation_with_a_new_welcome() {
        let mut chat = session();
        chat.start();
        chat.handle_line("能便宜点吗");
        assert_ne!(chat.state().bargain_step, 0);
        check(&mut chat, "/reset", &["(a new conversation)", "[welcome] "]);
        assert_eq!(chat.state().bargain_step, 0);
    }

    #[test]
    fn after_a_handoff_the_bot_is_silent_until_resolve() {
        let mut chat = session();
        chat.start();
        check(
            &mut chat,
            "质量太差了，我要投诉",
            &["[handoff complaint] ", "→ handoff: complaint (high)"],
        );
        assert!(chat.state().open_handoff.is_some());
        check(&mut chat, "包邮吗", &[SILENT]);
        check(
            &mut chat,
            "/resolve",
            &["(resolved: the bot answers again)"],
        );
        assert_eq!(chat.state().open_handoff, None);
        check(&mut chat, "包邮吗", &["[answer free_shipping] "]);
        check(&mut chat, "/resolve", &["(no handoff is open"]);
    }

    #[test]
    fn bad_commands_print_one_error_line_and_the_session_goes_on() {
        let mut chat = session();
        chat.start();
        for (line, error) in [
            ("/frobnicate", "error: unknown command /frobnicate; /help"),
            ("/time tomorrow", "error: cannot read the time `tomorrow`"),
            ("/shop nowhere", "error: no shop `nowhere` (shops: default"),
            ("/shop", "error: usage: /shop ID"),
            ("/reset now", "error: /reset takes no argument"),
        ] {
            check(&mut chat, line, &[error]);
        }
        // The clock was not moved by the bad time, and the shop is the same.
        assert_eq!(chat.shop_id(), "default");
        assert_eq!(
            chat.now(),
            "2026-11-25T02:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        check(&mut chat, "包邮吗", &["[answer free_shipping] "]);
        assert!(chat.handle_line("/help").len() > 5);
        check(&mut chat, "/quit", &[]);
        assert!(chat.is_finished());
    }

    #[test]
    fn switching_shop_starts_a_new_conversation() {
        let mut chat = session();
        chat.start();
        check(
            &mut chat,
            "/shop default",
            &[
                "(shop default (悦步衣橱官方旗舰店), a new conversation)",
                "[welcome] ",
            ],
        );
    }
}
