//! Intents' examples (相似问法) that do not teach their intent: an example that another
//! intent takes (its keywords, the complaint lexicon, or its own examples ranking first) or
//! that the FAQ answers, and an example whose own intent ranks first but too weakly for the
//! shop's rule to answer (a fragment, a statement sharing few words).
//!
//! Each example is run through `decide`, exactly as a buyer's message would be.

use super::report::{Finding, Report, Rule};
use super::sources::{Item, ShopSources};
use crate::responder::{Answerable, Decision, decide};
use crate::shop::Shop;

pub fn check(shop: &Shop, sources: &ShopSources, report: &mut Report) {
    let Some(examples) = &shop.examples else {
        return;
    };
    for record in &sources.intents {
        let Some(own) = shop.intents.index_of(record.name.text.trim()) else {
            continue;
        };
        for item in &record.examples {
            let canonical = shop.canonical(&item.text);
            if canonical.is_empty() {
                continue;
            }
            let best = examples.best(&canonical);
            let what = match decide(shop, &canonical) {
                Decision::Handoff(intent) if intent == own => continue,
                Decision::Answer(answers) if answers.contains(&Answerable::Intent(own)) => {
                    continue;
                }
                Decision::Handoff(intent) => {
                    format!("is handed off to {}", intent_by(shop, intent, &canonical))
                }
                Decision::Answer(answers) => {
                    let takers: Vec<String> = answers
                        .iter()
                        .map(|answer| match answer {
                            Answerable::Intent(intent) => intent_by(shop, *intent, &canonical),
                            Answerable::Faq(entry) => {
                                let faq = shop.faq.as_ref().expect("FAQ answers need an FAQ");
                                format!("FAQ entry `{}`", faq.entries()[*entry].id)
                            }
                        })
                        .collect();
                    format!("is answered by {}", takers.join(" and "))
                }
                Decision::Nothing => match best {
                    Some(best) if best.intent != own => format!(
                        "finds the examples of intent `{}` first",
                        shop.intents.intent(best.intent).name
                    ),
                    _ => {
                        report.push(too_weak(shop, sources, own, item, best.map(|b| b.hit)));
                        continue;
                    }
                },
            };
            report.push(taken(shop, sources, own, item, &what));
        }
    }
}

/// How `intent` took the example: by a keyword, the complaint lexicon or its examples.
fn intent_by(shop: &Shop, intent: usize, canonical: &str) -> String {
    let name = &shop.intents.intent(intent).name;
    let by_keyword = shop
        .intents
        .detect(canonical)
        .iter()
        .any(|h| h.intent == intent);
    let by_lexicon = shop
        .complaints
        .as_ref()
        .and_then(|lexicon| lexicon.score(canonical).handoff_intent)
        == Some(intent);
    let how = if by_keyword {
        "its keywords"
    } else if by_lexicon {
        "the complaint lexicon"
    } else {
        "its examples"
    };
    format!("intent `{name}` ({how})")
}

fn taken(shop: &Shop, sources: &ShopSources, own: usize, item: &Item, what: &str) -> Finding {
    Finding::new(
        Rule::ExampleTaken,
        sources.locate(item, None),
        format!(
            "example “{}” of intent `{}` {what}, so its own intent does not answer it",
            item.text,
            shop.intents.intent(own).name,
        ),
        "reword the example in words only this intent means, move it to the intent that takes it, or delete it",
    )
}

fn too_weak(
    shop: &Shop,
    sources: &ShopSources,
    own: usize,
    item: &Item,
    best: Option<crate::faq::FaqHit>,
) -> Finding {
    let why = match best {
        None => "it has no word the index can search".to_string(),
        Some(hit) => format!(
            "its own examples rank first with confidence {:.2}, sharing {} word(s), which is too weak to answer (two shared words and the shop's `[faq]` rule are needed)",
            hit.confidence, hit.shared_words
        ),
    };
    Finding::new(
        Rule::ExampleTooWeak,
        sources.locate(item, None),
        format!(
            "example “{}” of intent `{}` never answers: {why}",
            item.text,
            shop.intents.intent(own).name
        ),
        "write the example as a buyer's whole question (a fragment or a bare statement is never answered), or delete it",
    )
}
