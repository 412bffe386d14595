//! The intent files (`presale.toml`, `aftersale.toml` …): each `[[intent]]` checked (name,
//! keywords, exclusions, handoff, what it answers with) into an [`IntentSpec`] for the
//! keyword automaton and the [`Action`] the responder takes when it matches.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::context::Context;
use crate::faq::{MAX_EXAMPLE_CHARS, MAX_EXAMPLES_PER_INTENT};
use crate::intents::asking::QuestionCues;
use crate::intents::purchase::PurchaseCues;
use crate::intents::{HandoffPriority, IntentSpec};
use crate::shop::files::{IntentFile, IntentsFile, PurchaseFile, QuestionsFile, Text};
use crate::shop::folder::file_name;
use crate::shop::{Action, TemplateName};
use crate::source::SourceFile;

/// What the intent files of a shop hold, intent by intent.
pub(super) struct LoadedIntents {
    pub specs: Vec<IntentSpec>,
    pub actions: Vec<Action>,
    /// Each intent's examples in canonical form.
    pub examples: Vec<Vec<String>>,
    /// The name of the file each intent is written in.
    pub origins: Vec<Arc<str>>,
}

impl Context<'_> {
    /// The intents of every intent file, in order, what each does, its examples in
    /// canonical form and the name of the file it came from; an intent with a mistake is left
    /// out (the mistake is recorded).
    pub(super) fn intent_files(&mut self, files: &[(PathBuf, &String)]) -> LoadedIntents {
        let mut specs = Vec::new();
        let mut actions = Vec::new();
        let mut examples = Vec::new();
        let mut origins = Vec::new();
        // Each example's canonical text, with the intent and the line that gave it first.
        let mut example_owners: HashMap<String, (Arc<str>, usize)> = HashMap::new();
        for (path, text) in files {
            let src = SourceFile { path, text };
            let file: IntentsFile = match src.parse_toml() {
                Ok(f) => f,
                Err(e) => {
                    self.errors.push(e);
                    continue;
                }
            };
            let origin: Arc<str> = Arc::from(file_name(path));
            if file.intent.is_empty() {
                // A file cut short by a failed copy or a half-saved edit reads as no intents:
                // never take that as the operator's wish to drop them all.
                self.errors.push(src.error(
                    "the file is empty (no [[intent]], at most comments); delete it to remove \
                     its intents",
                ));
                continue;
            }
            for mut intent in file.intent {
                let written = std::mem::take(&mut intent.examples);
                let before = self.errors.len();
                let name = intent.name.get_ref().trim().to_string();
                let canonical = self.examples(&src, &name, &written, &mut example_owners);
                let failed = self.errors.len() > before;
                if let Some((spec, action)) = self.intent(&src, intent, &specs)
                    && !failed
                {
                    specs.push(spec);
                    actions.push(action);
                    examples.push(canonical);
                    origins.push(origin.clone());
                }
            }
        }
        LoadedIntents {
            specs,
            actions,
            examples,
            origins,
        }
    }

    /// An intent's examples in canonical form; empty, duplicate (in this shop), too long or
    /// too many are mistakes, reported at the example.
    fn examples(
        &mut self,
        src: &SourceFile,
        intent: &str,
        written: &[Text],
        owners: &mut HashMap<String, (Arc<str>, usize)>,
    ) -> Vec<String> {
        if let Some(extra) = written.get(MAX_EXAMPLES_PER_INTENT) {
            self.errors.push(src.error_at(
                extra.span(),
                format!(
                    "intent \"{intent}\" has {} examples; at most {MAX_EXAMPLES_PER_INTENT} are \
                     read, move the rest to an FAQ entry or split the intent",
                    written.len()
                ),
            ));
            return Vec::new();
        }
        let mut canonical = Vec::with_capacity(written.len());
        for example in written {
            let Some(text) = self.normalized(src, example) else {
                continue;
            };
            let chars = text.chars().count();
            if chars > MAX_EXAMPLE_CHARS {
                self.errors.push(src.error_at(
                    example.span(),
                    format!(
                        "example of intent \"{intent}\" has {chars} characters; write a buyer's \
                         question of at most {MAX_EXAMPLE_CHARS}"
                    ),
                ));
                continue;
            }
            let line = src.line_of(example.span().start);
            match owners.get(&text) {
                Some((owner, first)) => {
                    let whose = if **owner == *intent {
                        "this intent".to_string()
                    } else {
                        format!("intent \"{owner}\"")
                    };
                    self.errors.push(src.error_at(
                        example.span(),
                        format!(
                            "example \"{}\" is already given for {whose} (line {first}); an \
                             example may teach only one intent",
                            example.get_ref()
                        ),
                    ));
                }
                None => {
                    owners.insert(text.clone(), (Arc::from(intent), line));
                    canonical.push(text);
                }
            }
        }
        canonical
    }

    fn intent(
        &mut self,
        src: &SourceFile,
        intent: IntentFile,
        earlier: &[IntentSpec],
    ) -> Option<(IntentSpec, Action)> {
        let name = intent.name.get_ref().trim().to_string();
        let at = intent.name.span();
        let before = self.errors.len();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.errors.push(src.error_at(
                at.clone(),
                format!("intent name \"{name}\" must be ASCII letters, digits and _"),
            ));
        }
        if earlier.iter().any(|i| *i.name == *name) {
            self.errors.push(src.error_at(
                at.clone(),
                format!("intent \"{name}\" is defined twice in this shop"),
            ));
        }
        if intent.keywords.is_empty() {
            self.errors.push(src.error_at(
                at.clone(),
                format!("intent \"{name}\" has no keywords, so it can never match"),
            ));
        }
        let keywords: Vec<Vec<String>> = intent
            .keywords
            .iter()
            .filter_map(|k| {
                let parts: Vec<String> =
                    k.get_ref().split('+').map(|p| self.canonical(p)).collect();
                if parts.iter().any(String::is_empty) {
                    self.errors.push(src.error_at(
                        k.span(),
                        format!(
                            "keyword \"{}\" has an empty part once punctuation is removed",
                            k.get_ref()
                        ),
                    ));
                    None
                } else {
                    Some(parts)
                }
            })
            .collect();
        let exclude = self.normalized_all(src, &intent.exclude);
        let handoff = intent.handoff.as_ref().and_then(|h| {
            let priority = HandoffPriority::parse(h.get_ref());
            if priority.is_none() {
                self.errors.push(src.error_at(
                    h.span(),
                    format!(
                        "handoff must be \"normal\" or \"high\", found \"{}\"",
                        h.get_ref()
                    ),
                ));
            }
            priority
        });
        if intent.presale && handoff.is_some() {
            self.errors.push(src.error_at(
                at.clone(),
                format!("intent \"{name}\": a handoff cannot be `presale`"),
            ));
        }
        let ways = usize::from(!intent.replies.is_empty())
            + usize::from(intent.ladder)
            + usize::from(intent.template.is_some());
        if ways > 1 {
            self.errors.push(src.error_at(
                at.clone(),
                format!("intent \"{name}\": use only one of replies, ladder and template"),
            ));
        }
        let action = if let Some(template) = &intent.template {
            match TemplateName::parse(template.get_ref()) {
                Some(t) => Some(Action::Template(t)),
                None => {
                    self.errors.push(src.error_at(
                        template.span(),
                        format!("unknown template \"{}\"", template.get_ref()),
                    ));
                    None
                }
            }
        } else if intent.ladder {
            Some(Action::Ladder)
        } else if intent.handoff.is_some() {
            if intent.replies.is_empty() {
                Some(Action::Handoff(None))
            } else {
                self.replies(src, &intent.replies)
                    .map(|v| Action::Handoff(Some(v)))
            }
        } else if intent.replies.is_empty() {
            self.errors.push(src.error_at(
                at.clone(),
                format!(
                    "intent \"{name}\" has no replies; add `replies`, `ladder = true`, `template` or `handoff`"
                ),
            ));
            None
        } else {
            self.replies(src, &intent.replies).map(Action::Answer)
        };
        if self.errors.len() > before {
            return None;
        }
        Some((
            IntentSpec {
                name: Arc::from(name.as_str()),
                keywords,
                exclude,
                negatable: intent.negatable.unwrap_or(handoff.is_some()),
                handoff,
                priority: intent.priority,
                yield_to_others: intent.yield_to_others,
                defer_to_faq: intent.defer_to_faq,
                presale: intent.presale,
                questions_only: intent.questions_only,
            },
            action?,
        ))
    }
}

impl Context<'_> {
    /// The `[purchase]` table of `shop.toml`: the after-order cues, canonicalised like
    /// keywords, and the intent that answers about the buyer's own order.
    pub(super) fn purchase(
        &mut self,
        src: &SourceFile,
        file: &PurchaseFile,
        specs: &[IntentSpec],
    ) -> Option<PurchaseCues> {
        let before = self.errors.len();
        let cues = self.normalized_all(src, &file.after_order);
        let digits = file.order_number_digits.as_ref().map(|d| {
            if *d.get_ref() < MIN_ORDER_NUMBER_DIGITS {
                self.errors.push(src.error_at(
                    d.span(),
                    format!(
                        "order_number_digits must be at least {MIN_ORDER_NUMBER_DIGITS}, or phone \
                         numbers and prices would count as orders"
                    ),
                ));
            }
            *d.get_ref()
        });
        let own_order = file.own_order.as_ref().and_then(|name| {
            let found = specs.iter().position(|s| *s.name == *name.get_ref().trim());
            let problem = match found.map(|i| &specs[i]) {
                None => Some("is not an intent of this shop"),
                Some(spec) if spec.presale => Some("is marked `presale`"),
                Some(spec) if spec.handoff.is_some() => Some("is a handoff"),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                self.errors.push(src.error_at(
                    name.span(),
                    format!("own_order \"{}\" {problem}", name.get_ref()),
                ));
            }
            found
        });
        if self.errors.len() > before {
            return None;
        }
        match PurchaseCues::build(&cues, digits, own_order) {
            Ok(cues) => Some(cues),
            Err(e) => {
                self.errors.push(src.error(e.to_string()));
                None
            }
        }
    }
}

impl Context<'_> {
    /// The `[questions]` table of `shop.toml`. An intent marked `questions_only` needs it: a
    /// shop without question words would let such an intent answer everything.
    pub(super) fn questions(
        &mut self,
        src: &SourceFile,
        file: &QuestionsFile,
        specs: &[IntentSpec],
    ) -> Option<QuestionCues> {
        let before = self.errors.len();
        let words = self.normalized_all(src, &file.words);
        let short = file.short.as_ref().map_or(DEFAULT_SHORT_QUESTION, |s| {
            if *s.get_ref() > MAX_SHORT_QUESTION {
                self.errors.push(src.error_at(
                    s.span(),
                    format!(
                        "short must be at most {MAX_SHORT_QUESTION}: longer messages are \
                         statements as often as questions"
                    ),
                ));
            }
            *s.get_ref()
        });
        if words.is_empty()
            && let Some(spec) = specs.iter().find(|s| s.questions_only)
        {
            self.errors.push(src.error(format!(
                "intent \"{}\" is `questions_only`, but shop.toml has no `[questions]` words \
                 to tell a question by",
                spec.name
            )));
        }
        if self.errors.len() > before {
            return None;
        }
        match QuestionCues::build(&words, short) {
            Ok(cues) => Some(cues),
            Err(e) => {
                self.errors.push(src.error(e.to_string()));
                None
            }
        }
    }
}

/// `[questions].short` when not given, and its largest sensible value.
const DEFAULT_SHORT_QUESTION: usize = 5;
const MAX_SHORT_QUESTION: usize = 12;

/// Fewer digits than this are prices, quantities or phone numbers, not order numbers.
const MIN_ORDER_NUMBER_DIGITS: usize = 10;

impl Context<'_> {
    /// `[matching].words` of `shop.toml`: words that stand on their own, canonicalised like
    /// keywords. A word must say more than one character (a single one can hide no keyword),
    /// and each is written once.
    pub(super) fn standalone_words(
        &mut self,
        src: &SourceFile,
        texts: &[crate::shop::files::Text],
    ) -> Vec<String> {
        let mut words: Vec<String> = Vec::with_capacity(texts.len());
        for text in texts {
            let before = self.errors.len();
            let Some(word) = self.normalized_all(src, std::slice::from_ref(text)).pop() else {
                continue;
            };
            if self.errors.len() > before {
                continue;
            }
            if word.chars().nth(1).is_none() {
                self.errors.push(src.error_at(
                    text.span(),
                    format!(
                        "word \"{}\" is one character: a word of its own must be longer than the keyword it hides",
                        text.get_ref()
                    ),
                ));
            } else if words.contains(&word) {
                self.errors.push(src.error_at(
                    text.span(),
                    format!("word \"{}\" is listed twice", text.get_ref()),
                ));
            } else {
                words.push(word);
            }
        }
        words
    }
}
