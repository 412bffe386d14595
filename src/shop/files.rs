//! The intent files exactly as operators write them (serde mirrors of the TOML).
//!
//! Nothing here is validated beyond TOML syntax and types; [`super::load`] turns these into the
//! checked, compiled [`super::Shop`]. Strings that need checking later carry their position
//! (`Spanned`) so that an error can name the file and line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopFile {
    pub name: String,
    pub agent: String,
    pub timezone: Text,
    pub hours: HoursFile,
    #[serde(default)]
    pub peak: Vec<PeakFile>,
    #[serde(default)]
    pub calendar: CalendarFile,
    pub shipping: ShippingFile,
    pub free_shipping: Option<FreeShippingFile>,
    pub bargain: BargainFile,
    pub templates: TemplatesFile,
    #[serde(default)]
    pub matching: MatchingFile,
    #[serde(default)]
    pub faq: FaqRuleFile,
    #[serde(default)]
    pub widget: WidgetFile,
    #[serde(default)]
    pub purchase: PurchaseFile,
    #[serde(default)]
    pub questions: QuestionsFile,
    #[serde(default)]
    pub followup: FollowupFile,
    #[serde(default)]
    pub retention: RetentionFile,
}

/// How long the shop keeps what its buyers and agents wrote; see `crate::retention`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionFile {
    /// Days; absent: the default.
    pub days: Option<Spanned<u64>>,
}

/// What makes a message a question; see `intents::asking`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionsFile {
    /// Question and request words: a message holding one asks ("吗", "多少", "帮我").
    #[serde(default)]
    pub words: Vec<Text>,
    /// A message of at most this many characters asks by its shortness ("包邮").
    pub short: Option<Spanned<usize>>,
}

/// How long a short follow-up ("那新疆呢") is read in the topic of the answer before it; see
/// `responder::followup`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowupFile {
    /// Seconds after an answer; 0 turns follow-ups off; absent: the default.
    pub window_seconds: Option<Spanned<u64>>,
}

/// Where the buyer is in the purchase; see `intents::purchase`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseFile {
    /// Phrases that show the buyer writes about an order already placed ("我的快递", "签收").
    #[serde(default)]
    pub after_order: Vec<Text>,
    /// A run of at least this many digits is an order or tracking number; absent: none.
    pub order_number_digits: Option<Spanned<usize>>,
    /// The intent that answers about the buyer's own order, instead of a pre-sale answer.
    pub own_order: Option<Text>,
}

/// Who may open the shop's chat; see `shop::widget`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetFile {
    /// The buyer-token key inline (local tests), or…
    pub secret: Option<String>,
    /// …the environment variable holding it.
    pub secret_env: Option<Text>,
    #[serde(default)]
    pub origins: Vec<Text>,
}

/// Overrides of the FAQ's answer-or-fall-back rule; see `faq::FaqRule`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqRuleFile {
    pub min_confidence: Option<f32>,
    pub single_word_confidence: Option<f32>,
    pub min_margin: Option<f32>,
    pub min_chars: Option<usize>,
    pub statement_words: Option<usize>,
    pub question_words: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynonymsFile {
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursFile {
    #[serde(default)]
    pub mon: Vec<Text>,
    #[serde(default)]
    pub tue: Vec<Text>,
    #[serde(default)]
    pub wed: Vec<Text>,
    #[serde(default)]
    pub thu: Vec<Text>,
    #[serde(default)]
    pub fri: Vec<Text>,
    #[serde(default)]
    pub sat: Vec<Text>,
    #[serde(default)]
    pub sun: Vec<Text>,
    #[serde(default)]
    pub meal_breaks: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeakFile {
    pub name: String,
    pub start: Text,
    pub end: Text,
    /// Service hours on the dates the event touches; absent: the ordinary hours.
    pub hours: Option<Vec<Text>>,
    /// Whether the `busy` notice is sent during the event; absent: yes.
    pub busy: Option<bool>,
}

/// Public holidays and make-up working days: dates ("2026-10-01") or inclusive ranges
/// ("2026-10-01..2026-10-07"), shop-local.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarFile {
    #[serde(default)]
    pub holidays: Vec<Text>,
    #[serde(default)]
    pub workdays: Vec<Text>,
    /// Absent: closed all day on holidays.
    pub holiday_hours: Option<Vec<Text>>,
    /// Absent: Monday's hours.
    pub workday_hours: Option<Vec<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingFile {
    pub courier: String,
    pub cutoff_hour: Spanned<u32>,
    pub working_days: Vec<Text>,
    pub default_days: String,
    pub default_region: String,
    pub dispatch_today: Vec<Text>,
    pub dispatch_next: Vec<Text>,
    #[serde(default)]
    pub region: Vec<RegionFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionFile {
    pub name: String,
    pub days: String,
    pub places: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeShippingFile {
    pub threshold: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BargainFile {
    pub refuse: Vec<Text>,
    pub value: Vec<Text>,
    #[serde(default)]
    pub concession: Vec<Text>,
    pub member: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesFile {
    pub welcome: Vec<Text>,
    pub away: Vec<Text>,
    pub busy: Vec<Text>,
    pub fallback: Vec<Text>,
    pub handoff: Vec<Text>,
    pub handoff_away: Vec<Text>,
    pub goodbye: Vec<Text>,
    /// In service hours, but no agent is online. Optional: a built-in text is used.
    pub away_unstaffed: Option<Vec<Text>>,
    /// The agents' queue is over the shop's limit. Optional: a built-in text is used.
    pub busy_queue: Option<Vec<Text>>,
    /// A queued buyer with cases before theirs, while agents take cases. Optional.
    pub queued: Option<Vec<Text>>,
    /// A queued buyer who is next, while agents take cases. Optional.
    pub queued_first: Option<Vec<Text>>,
    /// A queued buyer while no agent takes cases. Optional.
    pub queued_unstaffed: Option<Vec<Text>>,
    /// An agent took the buyer's case; `{agent}` is that agent. Optional.
    pub claimed: Option<Vec<Text>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchingFile {
    #[serde(default)]
    pub negators: Vec<Text>,
    /// Words that stand on their own: a keyword inside one of them does not fire.
    #[serde(default)]
    pub words: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentsFile {
    #[serde(default)]
    pub intent: Vec<IntentFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentFile {
    pub name: Text,
    #[serde(default)]
    pub keywords: Vec<Text>,
    #[serde(default)]
    pub exclude: Vec<Text>,
    #[serde(default)]
    pub priority: i32,
    pub negatable: Option<bool>,
    #[serde(default)]
    pub yield_to_others: bool,
    #[serde(default)]
    pub replies: Vec<ReplyFile>,
    pub handoff: Option<Text>,
    #[serde(default)]
    pub ladder: bool,
    pub template: Option<Text>,
    /// Ask the FAQ first; its confident answer replaces this intent's generic one.
    #[serde(default)]
    pub defer_to_faq: bool,
    /// A pre-sale answer: never given to a message that speaks of an order already placed.
    #[serde(default)]
    pub presale: bool,
    /// Answers only messages that ask (`[questions]` in shop.toml).
    #[serde(default)]
    pub questions_only: bool,
    /// Example phrasings (相似问法), matched like FAQ questions when no keyword fires.
    #[serde(default)]
    pub examples: Vec<Text>,
}

/// One reply variant as written, with where it was written.
pub type ReplyFile = Spanned<RawReply>;

/// A reply text, or a text with the time it may be sent in.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a reply text, or a table { text = \"…\", valid_from = \"…\", valid_until = \"…\" }"
)]
pub enum RawReply {
    Plain(String),
    Dated(DatedReply),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatedReply {
    pub text: String,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
}

impl RawReply {
    pub fn text(&self) -> &str {
        match self {
            RawReply::Plain(text) => text,
            RawReply::Dated(dated) => &dated.text,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplaintsFile {
    pub threshold: Spanned<f32>,
    #[serde(default = "default_window")]
    pub window: usize,
    /// Default 0.5.
    pub question_damping: Option<Spanned<f32>>,
    #[serde(default)]
    pub target_bonus: f32,
    #[serde(default)]
    pub targets: Vec<Text>,
    #[serde(default)]
    pub negators: Vec<Text>,
    #[serde(default)]
    pub negators_after: Vec<Text>,
    #[serde(default)]
    pub hedges: Vec<Text>,
    #[serde(default)]
    pub neutral: Vec<Text>,
    #[serde(default)]
    pub praise: Vec<Text>,
    /// Default 1 (praise changes nothing).
    pub praise_damping: Option<Spanned<f32>>,
    #[serde(default)]
    pub intensifiers: BTreeMap<String, Spanned<f32>>,
    #[serde(default)]
    pub term: Vec<TermFile>,
}

fn default_window() -> usize {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermFile {
    pub words: Vec<Text>,
    pub weight: Spanned<f32>,
    pub handoff: Text,
}
