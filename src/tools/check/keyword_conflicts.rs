//! Keywords that fight each other: the same keyword in two intents, and keywords that can
//! never bring their own intent.
//!
//! What matters is what `IntentSet::detect` and `decide` really do. The automaton is
//! searched leftmost-longest, so a keyword that sits inside another intent's longer keyword
//! ("退货" in "七天无理由退货") is *not* shadowed: a message that says only "退货" still
//! matches it. A message made of nothing but the keyword is the best case a keyword ever
//! gets: no earlier or longer keyword can take its characters, and no other intent competes.
//! A keyword is therefore reported as shadowed only when even that message does not reach its
//! intent — because its own intent excludes a phrase inside it, because a handoff (by keyword
//! or by the complaint lexicon) takes the message, or because its intent yields to another one
//! that matches the same words. Any longer message adds only competitors.

use std::collections::HashMap;

use super::report::{Finding, Report, Rule};
use super::sources::{IntentRecord, Item, ShopSources};
use crate::responder::{Answerable, Decision, decide_with};
use crate::shop::Shop;

/// Put between the parts of a multi-part keyword so that they cannot join into a longer
/// keyword; a rare character that normalising keeps.
const PART_SEPARATOR: &str = "丶";
/// Makes a message a question.
const QUESTION_PARTICLE: &str = "吗";

/// One keyword as written, with its intent in the loaded shop and its canonical parts.
struct Keyword<'a> {
    intent: usize,
    record: &'a IntentRecord,
    item: &'a Item,
    parts: Vec<String>,
}

impl Keyword<'_> {
    /// The same keyword whatever the order of its parts.
    fn key(&self) -> String {
        let mut parts = self.parts.clone();
        parts.sort();
        parts.join("+")
    }
}

pub fn check(shop: &Shop, sources: &ShopSources, report: &mut Report) {
    let mut keywords = Vec::new();
    for record in &sources.intents {
        let Some(intent) = shop.intents.index_of(record.name.text.trim()) else {
            continue;
        };
        for item in &record.keywords {
            let parts: Vec<String> = item.text.split('+').map(|p| shop.canonical(p)).collect();
            if parts.iter().all(|p| !p.is_empty()) {
                keywords.push(Keyword {
                    intent,
                    record,
                    item,
                    parts,
                });
            }
        }
    }
    let duplicated = duplicates(shop, sources, &keywords, report);
    for (index, keyword) in keywords.iter().enumerate() {
        if !duplicated[index] {
            shadowed(shop, sources, keyword, report);
        }
    }
}

/// Reports every keyword that another intent already has; returns which keywords were part
/// of such a pair (their fate is explained there, not again as shadowed).
fn duplicates(
    shop: &Shop,
    sources: &ShopSources,
    keywords: &[Keyword],
    report: &mut Report,
) -> Vec<bool> {
    let mut first_of: HashMap<String, Vec<usize>> = HashMap::new();
    let mut duplicated = vec![false; keywords.len()];
    for (index, keyword) in keywords.iter().enumerate() {
        let earlier = first_of.entry(keyword.key()).or_default();
        // The first earlier occurrence in another intent; repeats inside one intent are
        // harmless (typos that synonyms already rewrite, for example).
        if let Some(&other) = earlier
            .iter()
            .find(|&&e| keywords[e].intent != keyword.intent)
        {
            duplicated[index] = true;
            duplicated[other] = true;
            let first = &keywords[other];
            let (this_name, other_name) = (
                &*shop.intents.intent(keyword.intent).name,
                &*shop.intents.intent(first.intent).name,
            );
            let at = sources.locate(first.item, None);
            let consequence = consequence(shop, keyword.intent, first.intent);
            report.push(Finding::new(
                Rule::DuplicateKeyword,
                sources.locate(keyword.item, None),
                format!(
                    "keyword “{}” of intent `{this_name}` is also a keyword of intent `{other_name}` ({}:{}); {consequence}",
                    keyword.item.text,
                    at.file.display(),
                    at.line
                ),
                "keep the keyword in one intent only",
            ));
        }
        earlier.push(index);
    }
    duplicated
}

/// What a message with a keyword of both intents `a` and `b` does.
fn consequence(shop: &Shop, a: usize, b: usize) -> String {
    let (spec_a, spec_b) = (shop.intents.intent(a), shop.intents.intent(b));
    let rank = |s: &crate::intents::IntentSpec| s.handoff.map(|h| (h, s.priority));
    let (winner, loser) = match (rank(spec_a), rank(spec_b)) {
        (Some(x), Some(y)) if x != y => {
            let (w, l) = if x > y {
                (spec_a, spec_b)
            } else {
                (spec_b, spec_a)
            };
            return format!(
                "a message with it is handed off to `{}` (the higher priority), never to `{}`",
                w.name, l.name
            );
        }
        (Some(_), None) => (spec_a, spec_b),
        (None, Some(_)) => (spec_b, spec_a),
        (None, None) if spec_a.yield_to_others != spec_b.yield_to_others => {
            let (y, w) = if spec_a.yield_to_others {
                (spec_a, spec_b)
            } else {
                (spec_b, spec_a)
            };
            return format!(
                "`{}` yields to `{}`, so only `{}` answers it",
                y.name, w.name, w.name
            );
        }
        _ => return "a message with it triggers both".to_string(),
    };
    format!(
        "a message with it is handed off to `{}`, so `{}` does not answer it",
        winner.name, loser.name
    )
}

/// Reports `keyword` when a message made of it alone does not reach its intent.
fn shadowed(shop: &Shop, sources: &ShopSources, keyword: &Keyword, report: &mut Report) {
    let messages = minimal_messages(&keyword.parts);
    if messages
        .iter()
        .any(|m| reaches(&decide_with(shop, m, None), keyword.intent))
    {
        return;
    }
    // Explained on the plainest message: the keyword alone.
    let message = &messages[0];
    let decision = decide_with(shop, message, None);
    let intent = shop.intents.intent(keyword.intent);
    let name = &*intent.name;
    let detected = shop
        .intents
        .detect(message)
        .iter()
        .any(|h| h.intent == keyword.intent);
    let (reason, hint) = if !detected {
        let exclusion = keyword
            .record
            .exclude
            .iter()
            .find(|e| message.contains(shop.canonical(&e.text).as_str()));
        match exclusion {
            Some(exclusion) => {
                let at = sources.locate(exclusion, None);
                (
                    format!(
                        "intent `{name}` excludes “{}” (line {}), which is part of this keyword, so it can never match",
                        exclusion.text, at.line
                    ),
                    "remove the keyword, or narrow the exclusion",
                )
            }
            None => (
                format!("a message saying only this does not trigger `{name}`"),
                "remove the keyword, or rewrite it the way buyers type it",
            ),
        }
    } else {
        match decision {
            Decision::Handoff(other) => {
                let by_keyword = shop
                    .intents
                    .detect(message)
                    .iter()
                    .any(|h| h.intent == other);
                let how = if by_keyword {
                    "by its keywords"
                } else {
                    "by the complaint lexicon"
                };
                (
                    format!(
                        "a message saying only this, or asking it, is handed off to `{}` {how}, never answered by `{name}`",
                        shop.intents.intent(other).name
                    ),
                    "remove the keyword, or make it a keyword of the handoff intent",
                )
            }
            Decision::Answer(answers) => {
                let others: Vec<String> = answers
                    .iter()
                    .filter_map(|a| match a {
                        Answerable::Intent(i) => {
                            Some(format!("`{}`", shop.intents.intent(*i).name))
                        }
                        Answerable::Faq(_) => None,
                    })
                    .collect();
                (
                    format!(
                        "`{name}` yields to {} on this keyword, so it never answers it",
                        others.join(", ")
                    ),
                    "remove the keyword from one of the intents",
                )
            }
            Decision::Nothing => (
                format!("a message saying only this does not reach `{name}`"),
                "remove the keyword, or rewrite it the way buyers type it",
            ),
        }
    };
    report.push(Finding::new(
        Rule::ShadowedKeyword,
        sources.locate(keyword.item, None),
        format!("keyword “{}”: {reason}", keyword.item.text),
        hint,
    ));
}

/// The messages that give a keyword its best chance: the keyword alone (for a multi-part
/// keyword its parts in both orders, kept apart and next to each other), and the same as a
/// question, which the complaint lexicon damps ("还没发货" is a complaint, "还没发货吗" may be
/// answered).
fn minimal_messages(parts: &[String]) -> Vec<String> {
    let statements = if let [single] = parts {
        vec![single.clone()]
    } else {
        let reversed: Vec<String> = parts.iter().rev().cloned().collect();
        vec![
            parts.join(PART_SEPARATOR),
            reversed.join(PART_SEPARATOR),
            parts.concat(),
            reversed.concat(),
        ]
    };
    let questions: Vec<String> = statements
        .iter()
        .map(|s| format!("{s}{QUESTION_PARTICLE}"))
        .collect();
    statements.into_iter().chain(questions).collect()
}

fn reaches(decision: &Decision, intent: usize) -> bool {
    match decision {
        Decision::Handoff(i) => *i == intent,
        Decision::Answer(answers) => answers.contains(&Answerable::Intent(intent)),
        Decision::Nothing => false,
    }
}
