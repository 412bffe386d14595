//! Stand-alone words (`[matching].words` in `shop.toml`) that do not do what they are for.
//!
//! A word takes its characters before any shorter keyword inside it can match, so that a
//! keyword in a word of another sense ("到货" in "收到货") does not fire. A word is reported
//! when it contains no keyword (it hides nothing, or it is itself a keyword, which still
//! fires), and when it hides a keyword of an intent that also uses the word in a keyword of
//! its own: then the word is that intent's sense, not another one.

use super::report::{Finding, Report, Rule};
use super::sources::ShopSources;
use crate::shop::Shop;

/// A keyword part as written and in canonical form, with its intent's name.
struct Part<'a> {
    intent: &'a str,
    written: &'a str,
    canonical: String,
}

pub fn check(shop: &Shop, sources: &ShopSources, report: &mut Report) {
    if sources.words.is_empty() {
        return;
    }
    let mut parts: Vec<Part> = Vec::new();
    for record in &sources.intents {
        for keyword in &record.keywords {
            for written in keyword.text.split('+') {
                let canonical = shop.canonical(written);
                if !canonical.is_empty() {
                    parts.push(Part {
                        intent: record.name.text.trim(),
                        written,
                        canonical,
                    });
                }
            }
        }
    }
    for item in &sources.words {
        let word = shop.canonical(&item.text);
        if word.is_empty() {
            continue;
        }
        let at = sources.locate(item, None);
        if let Some(same) = parts.iter().find(|p| p.canonical == word) {
            report.push(Finding::new(
                Rule::WordHidesNothing,
                at,
                format!(
                    "word “{}” is itself a keyword of intent `{}` (“{}”), which still fires on it",
                    item.text, same.intent, same.written
                ),
                "remove the word, or the keyword if the word has another sense",
            ));
            continue;
        }
        let hidden: Vec<&Part> = parts
            .iter()
            .filter(|p| word.contains(p.canonical.as_str()))
            .collect();
        if hidden.is_empty() {
            report.push(Finding::new(
                Rule::WordHidesNothing,
                at,
                format!("word “{}” contains no keyword: it hides nothing", item.text),
                "remove the word, or check its spelling against the keyword it should hide",
            ));
            continue;
        }
        for part in hidden {
            if let Some(own) = parts
                .iter()
                .find(|p| p.intent == part.intent && p.canonical.contains(word.as_str()))
            {
                report.push(Finding::new(
                    Rule::WordHidesOwnKeyword,
                    at.clone(),
                    format!(
                        "word “{}” hides the keyword “{}” of intent `{}`, whose own keyword “{}” contains the word: it is that intent's sense, not another",
                        item.text, part.written, part.intent, own.written
                    ),
                    "remove the word, or the longer keyword if the word really has another sense",
                ));
                break;
            }
        }
    }
}
