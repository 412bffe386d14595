//! The operators' console (`autoresponder chat`): type as a buyer and see what the service
//! would answer, reply by reply, with each reply's kind and intent, how sure the FAQ was,
//! and the handoffs it would create.
//!
//! [`ChatSession`] is the whole console without a terminal: it takes one typed line and
//! returns the lines to print, so it is tested like the responder. [`run`] loads the shops
//! and wraps a session in a line editor (history, arrows, Ctrl-D).
//!
//! The answers are the service's own: the same `respond_staffed` with the same conversation
//! state between lines. Nothing is stored and nothing is queued; a handoff only marks the
//! conversation as being with the humans, so the bot stays silent until `/resolve`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::clock::{SharedClock, SystemClock};
use crate::conversation::ConversationState;
use crate::responder::{self, Reply, ReplyKind, Staffing};
use crate::shop::schedule::Duty;
use crate::shop::{Catalog, Shop};

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
    state: ConversationState,
    /// Where "now" comes from while no `/time` is set.
    system_clock: SharedClock,
    /// The instant set with `/time`: the clock stands still there until changed.
    fixed_time: Option<DateTime<Utc>>,
    /// Handoffs opened so far, to give each a dummy id as the service gives a real one.
    handoffs_opened: usize,
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
            state: ConversationState::default(),
            system_clock,
            fixed_time: None,
            handoffs_opened: 0,
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
        &self.state
    }

    fn buyer_message(&mut self, text: &str) -> Vec<String> {
        if self.state.open_handoff.is_some() {
            return vec![SILENT.to_string()];
        }
        let now = self.now();
        let shop = self.shop.clone();
        let response =
            responder::respond_staffed(&shop, &mut self.state, text, now, Staffing::default());
        let needs_faq = response
            .replies
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
        let mut out = Vec::with_capacity(response.replies.len() + 1);
        for reply in &response.replies {
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
        if let Some(handoff) = response.handoff {
            // The service stores the handoff and remembers its id; a dummy id is enough here
            // to keep the bot silent as the service does.
            self.handoffs_opened += 1;
            self.state.open_handoff = Some(format!("console-{}", self.handoffs_opened));
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
                self.state = ConversationState::default();
                let mut out = vec!["(a new conversation)".to_string()];
                self.welcome(&mut out);
                Ok(out)
            }
            "/shop" => {
                if argument.is_empty() {
                    return Err(format!("usage: /shop ID (shops: {})", known(&self.catalog)));
                }
                self.shop = find_shop(&self.catalog, argument).map_err(|e| e.to_string())?;
                self.state = ConversationState::default();
                let mut out = vec![format!(
                    "(shop {} ({}), a new conversation)",
                    self.shop.id, self.shop.name
                )];
                self.welcome(&mut out);
                Ok(out)
            }
            "/resolve" => {
                no_argument(Vec::new())?;
                Ok(vec![match self.state.open_handoff.take() {
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
        if let Some(reply) = responder::welcome(&self.shop, &mut self.state, now) {
            out.push(render_plain(&reply));
        }
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

/// Runs the console on the terminal until `/quit` or Ctrl-D: loads the shops like `eval`,
/// then reads lines with a line editor (plain lines when stdin is not a terminal).
pub fn run(shop: &str, intents: &Path, index: &Path) -> anyhow::Result<()> {
    let catalog = Catalog::load_with_faq(intents, Some(index), None)
        .map_err(|e| anyhow::anyhow!("the intent or FAQ files have errors:\n{e}"))?;
    let mut session = ChatSession::new(catalog, shop, Arc::new(SystemClock))?;
    print_lines(&session.start());
    let interactive = std::io::stdin().is_terminal();
    let mut input = Input::open(interactive);
    while !session.is_finished() {
        let prompt = format!("{}> ", session.shop_id());
        let Some(line) = input.read(&prompt) else {
            break;
        };
        if !interactive {
            // Piped input is not echoed by anyone: show it, so the output reads as a session.
            println!("{prompt}{line}");
        }
        print_lines(&session.handle_line(&line));
    }
    input.close();
    Ok(())
}

fn print_lines(lines: &[String]) {
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(stdout, "{line}");
    }
    let _ = stdout.flush();
}

/// Where typed lines come from: the line editor, or plain lines if it cannot start.
enum Input {
    Editor {
        editor: Box<DefaultEditor>,
        /// Where history is kept; `None` when input is piped, so scripts leave no history.
        history: Option<PathBuf>,
    },
    Plain {
        stdin: std::io::StdinLock<'static>,
        /// Whether to show a prompt: only a person at a terminal needs one.
        interactive: bool,
    },
}

impl Input {
    fn open(interactive: bool) -> Input {
        match DefaultEditor::new() {
            Ok(mut editor) => {
                let history = interactive.then(history_path);
                if let Some(path) = &history {
                    // No history yet is the usual first run.
                    let _ = editor.load_history(path);
                }
                Input::Editor {
                    editor: Box::new(editor),
                    history,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "no line editor; reading plain lines");
                Input::Plain {
                    stdin: std::io::stdin().lock(),
                    interactive,
                }
            }
        }
    }

    /// The next line, or `None` at the end of input.
    fn read(&mut self, prompt: &str) -> Option<String> {
        match self {
            Input::Editor { editor, history } => loop {
                match editor.readline(prompt) {
                    Ok(line) => {
                        if history.is_some() && !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line.as_str());
                        }
                        return Some(line);
                    }
                    Err(ReadlineError::Interrupted) => {
                        println!("(/quit or Ctrl-D to leave)");
                    }
                    Err(ReadlineError::Eof) => return None,
                    Err(e) => {
                        eprintln!("error: cannot read the line: {e}");
                        return None;
                    }
                }
            },
            Input::Plain { stdin, interactive } => {
                if *interactive {
                    print!("{prompt}");
                    let _ = std::io::stdout().flush();
                }
                let mut line = String::new();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
                }
            }
        }
    }

    fn close(self) {
        if let Input::Editor {
            mut editor,
            history: Some(path),
        } = self
        {
            // Losing the history is not worth an error at exit.
            let _ = editor.save_history(&path);
        }
    }
}

/// `$XDG_DATA_HOME/autoresponder/chat_history` (or the platform's data folder), or
/// `.autoresponder_history` here when there is none or it cannot be created.
fn history_path() -> PathBuf {
    let data_dir = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(platform_data_dir);
    if let Some(dir) = data_dir.map(|d| d.join("autoresponder"))
        && std::fs::create_dir_all(&dir).is_ok()
    {
        return dir.join("chat_history");
    }
    PathBuf::from(".autoresponder_history")
}

fn platform_data_dir() -> Option<PathBuf> {
    if cfg!(windows) {
        return std::env::var_os("APPDATA").map(PathBuf::from);
    }
    let home = PathBuf::from(std::env::var_os("HOME")?);
    if cfg!(target_os = "macos") {
        Some(home.join("Library/Application Support"))
    } else {
        Some(home.join(".local/share"))
    }
}

#[cfg(test)]
mod tests {
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
