//! A shop as the responder needs it: settings, calendar, schedule, shipping table, bargaining
//! ladder, reply templates and the compiled intents, loaded from `intents/<shop>/`.
//!
//! Loading validates everything an operator can get wrong (syntax, unknown keys, unknown
//! template variables, bad times, intents with nothing to match or say) and reports each
//! mistake with file and line. A loaded `Shop` is immutable and shared behind an `Arc`.

pub mod calendar;
mod files;
pub mod folder;
mod load;
pub mod schedule;
pub mod shipping;
pub mod staff;
pub mod widget;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use load::{FaqSource, ShopTexts, load_shop, load_shop_texts};

use crate::faq::{ExampleIndex, FaqIndex};
use crate::intents::IntentSet;
use crate::intents::complaints::ComplaintLexicon;
use crate::normalize::{Synonyms, canonical};
use crate::source::{LoadError, LoadErrors};
use crate::template::Variants;
use folder::shop_folders;
use schedule::Schedule;
use shipping::Shipping;

/// The shop-wide replies that are not tied to an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateName {
    Welcome,
    Away,
    Busy,
    Fallback,
    Handoff,
    HandoffAway,
    Goodbye,
    AwayUnstaffed,
    BusyQueue,
}

impl TemplateName {
    pub fn name(self) -> &'static str {
        match self {
            TemplateName::Welcome => "welcome",
            TemplateName::Away => "away",
            TemplateName::Busy => "busy",
            TemplateName::Fallback => "fallback",
            TemplateName::Handoff => "handoff",
            TemplateName::HandoffAway => "handoff_away",
            TemplateName::Goodbye => "goodbye",
            TemplateName::AwayUnstaffed => "away_unstaffed",
            TemplateName::BusyQueue => "busy_queue",
        }
    }

    fn parse(text: &str) -> Option<TemplateName> {
        [
            TemplateName::Welcome,
            TemplateName::Away,
            TemplateName::Busy,
            TemplateName::Fallback,
            TemplateName::Handoff,
            TemplateName::HandoffAway,
            TemplateName::Goodbye,
            TemplateName::AwayUnstaffed,
            TemplateName::BusyQueue,
        ]
        .into_iter()
        .find(|t| t.name() == text)
    }
}

#[derive(Debug, Clone)]
pub struct Templates {
    pub welcome: Variants,
    pub away: Variants,
    pub busy: Variants,
    pub fallback: Variants,
    pub handoff: Variants,
    pub handoff_away: Variants,
    pub goodbye: Variants,
    pub away_unstaffed: Variants,
    pub busy_queue: Variants,
    /// What a buyer reads about their case with the humans.
    pub case: CaseTemplates,
}

/// The texts about a buyer's case, sent with its queue updates (not stored as replies).
#[derive(Debug, Clone)]
pub struct CaseTemplates {
    pub queued: Variants,
    pub queued_first: Variants,
    pub queued_unstaffed: Variants,
    pub claimed: Variants,
}

impl Templates {
    pub fn get(&self, name: TemplateName) -> &Variants {
        match name {
            TemplateName::Welcome => &self.welcome,
            TemplateName::Away => &self.away,
            TemplateName::Busy => &self.busy,
            TemplateName::Fallback => &self.fallback,
            TemplateName::Handoff => &self.handoff,
            TemplateName::HandoffAway => &self.handoff_away,
            TemplateName::Goodbye => &self.goodbye,
            TemplateName::AwayUnstaffed => &self.away_unstaffed,
            TemplateName::BusyQueue => &self.busy_queue,
        }
    }
}

/// What the bot does when an intent matched.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer with one of these variants.
    Answer(Variants),
    /// Answer from the bargaining ladder, one step further each time.
    Ladder,
    /// Answer with a shop template (the `goodbye` intent uses this).
    Template(TemplateName),
    /// Queue for a human; the buyer is told with these variants, or the shop's handoff template.
    Handoff(Option<Variants>),
}

/// The bargaining ladder's steps in order; the last one repeats.
#[derive(Debug, Clone)]
pub struct Ladder {
    pub steps: Vec<Variants>,
}

#[derive(Debug, Clone)]
pub struct Shop {
    pub id: Arc<str>,
    pub name: String,
    pub agent: String,
    pub schedule: Schedule,
    pub shipping: Shipping,
    pub free_shipping_threshold: Option<u32>,
    pub ladder: Ladder,
    pub templates: Templates,
    pub intents: IntentSet,
    /// `actions[i]` is what intent `i` of `intents` does.
    pub actions: Vec<Action>,
    pub complaints: Option<ComplaintLexicon>,
    pub synonyms: Option<Synonyms>,
    pub faq: Option<FaqIndex>,
    /// Which FAQ entries the keyword intents take first (empty without an FAQ).
    pub faq_shadows: FaqShadows,
    /// The intents' example phrasings, asked when no keyword fires; `None` without any.
    pub examples: Option<ExampleIndex>,
    /// The shop's agents and the rules of its human queue.
    pub staff: staff::Staff,
    /// Who may open the shop's chat.
    pub widget: widget::WidgetRules,
    /// Cues that a message speaks of an order already placed.
    pub purchase: crate::intents::purchase::PurchaseCues,
    /// What makes a message a question, for the `questions_only` intents.
    pub questions: crate::intents::asking::QuestionCues,
    /// How long after an answer a short follow-up is read in its topic (zero: never).
    pub followup_window: chrono::TimeDelta,
    /// The file each intent and FAQ entry is written in, for operators' messages.
    pub origins: RuleOrigins,
    /// How long conversations, cases and unanswered questions are kept (`[retention]`).
    pub retention: chrono::TimeDelta,
}

/// The file (its name in the shop's folder) each rule of a shop is written in.
#[derive(Debug, Clone, Default)]
pub struct RuleOrigins {
    /// `intents[i]`: the intent file of intent `i`.
    pub intents: Vec<Arc<str>>,
    /// `faq[e]`: the FAQ file of entry `e`.
    pub faq: Vec<Arc<str>>,
}

impl Shop {
    /// A buyer's text in the form the rules match: normalised, then rewritten by the shop's
    /// synonyms.
    pub fn canonical(&self, text: &str) -> String {
        canonical(text, self.synonyms.as_ref())
    }
}

/// The FAQ entries a keyword intent takes first: an entry whose own question triggers an
/// answer intent is only reached when the message asks more than the intent's keyword (see
/// `responder::decide`). Known at load time, so a message that triggers none of these intents
/// never asks the FAQ.
#[derive(Debug, Clone, Default)]
pub struct FaqShadows {
    /// `by_entry[e]`: the answer intents (not handoffs, not social ones) that the questions of
    /// FAQ entry `e` trigger.
    pub by_entry: Vec<Vec<usize>>,
    /// `by_intent[i]`: whether intent `i` is among them for some entry.
    pub by_intent: Vec<bool>,
}

impl FaqShadows {
    /// Runs every canonical question of every entry through the keyword intents.
    pub fn find(intents: &IntentSet, questions: &[Vec<String>]) -> FaqShadows {
        let mut by_intent = vec![false; intents.intents().len()];
        let by_entry = questions
            .iter()
            .map(|texts| {
                let mut found: Vec<usize> = Vec::new();
                for text in texts {
                    for hit in intents.detect(text) {
                        let spec = intents.intent(hit.intent);
                        if spec.handoff.is_none()
                            && !spec.yield_to_others
                            && !found.contains(&hit.intent)
                        {
                            found.push(hit.intent);
                            by_intent[hit.intent] = true;
                        }
                    }
                }
                found
            })
            .collect();
        FaqShadows {
            by_entry,
            by_intent,
        }
    }

    /// Whether intent `intent` triggers on the questions of FAQ entry `entry`.
    pub fn shadows(&self, intent: usize, entry: usize) -> bool {
        self.by_entry
            .get(entry)
            .is_some_and(|intents| intents.contains(&intent))
    }

    /// Whether intent `intent` triggers on some entry's question.
    pub fn consults_faq(&self, intent: usize) -> bool {
        self.by_intent.get(intent).copied().unwrap_or(false)
    }
}

/// Every shop the service answers for, by id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    shops: BTreeMap<String, Arc<Shop>>,
}

impl Catalog {
    pub fn get(&self, id: &str) -> Option<&Arc<Shop>> {
        self.shops.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.shops.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.shops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shops.is_empty()
    }

    /// Loads every `<dir>/<shop>/` folder that has a `shop.toml`, without FAQs.
    pub fn load(dir: &Path) -> Result<Catalog, LoadErrors> {
        Catalog::load_with_faq(dir, None, None)
    }

    /// Loads every `<dir>/<shop>/` folder that has a `shop.toml`, each with its FAQ from
    /// `<index>/<shop>/` (built in RAM, or on disk under `faq_on_disk`). All mistakes of all
    /// shops are reported together. Blocking: call it off the async runtime.
    pub fn load_with_faq(
        dir: &Path,
        index: Option<&Path>,
        faq_on_disk: Option<&Path>,
    ) -> Result<Catalog, LoadErrors> {
        let folders = shop_folders(dir).map_err(|e| LoadErrors(vec![e]))?;
        let mut shops = BTreeMap::new();
        let mut errors = Vec::new();
        for (id, folder) in folders {
            let faq_folder = index.map(|i| i.join(&id));
            let source = FaqSource {
                folder: faq_folder.as_deref(),
                on_disk: faq_on_disk,
            };
            match load_shop(&id, &folder, source) {
                Ok(shop) => {
                    shops.insert(id, Arc::new(shop));
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        if shops.is_empty() {
            return Err(LoadErrors(vec![LoadError::whole_file(
                dir,
                "no shop found: expected folders like intents/default/shop.toml",
            )]));
        }
        Ok(Catalog { shops })
    }

    /// A catalogue of the given shops; for tests and benchmarks.
    pub fn from_shops(shops: impl IntoIterator<Item = Shop>) -> Catalog {
        Catalog {
            shops: shops
                .into_iter()
                .map(|s| (s.id.to_string(), Arc::new(s)))
                .collect(),
        }
    }
}
