//! What each fuzz target checks, shared by the targets in `fuzz_targets/` and by the stable
//! regression test `tests/fuzz_regressions.rs`, which replays every crash input found.
//! Each function takes the fuzzer's raw bytes and panics on a bug.

// Each fuzz target uses one of these.
#![allow(dead_code)]

use std::path::Path;

use autoresponder::conversation::ConversationState;
use autoresponder::faq::parse_entries;
use autoresponder::normalize::normalize;
use autoresponder::responder;
use autoresponder::shop::{FaqSource, ShopTexts, load_shop_texts};
use autoresponder::template::Template;
use autoresponder::transport::wire::{
    AgentFrame, BuyerFrame, parse_agent_frame, parse_buyer_frame,
};

/// Client frames: any text a buyer's widget or an agent's console sends parses to a frame or
/// to an error, and no text past the limit gets through. The service's default limit, and a
/// small one so the check is crossed often.
pub fn frames(data: &[u8]) {
    // Websocket text frames are UTF-8 by the time they reach the parsers.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for limit in [2000, 8] {
        if let Ok(BuyerFrame::Message { text, .. }) = parse_buyer_frame(text, limit) {
            assert!(text.chars().count() <= limit);
        }
        if let Ok(AgentFrame::Reply { text, .. } | AgentFrame::Note { text, .. }) =
            parse_agent_frame(text, limit)
        {
            assert!(text.chars().count() <= limit);
            assert!(!text.trim().is_empty());
        }
    }
}

/// Normalisation: any text gets a canonical form, and the canonical form is a fixed point
/// (normalising it again changes nothing), with no space at either end.
pub fn normalization(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let once = normalize(text);
    let twice = normalize(&once);
    assert_eq!(once, twice, "normalising {text:?} twice");
    assert!(!once.starts_with(' ') && !once.ends_with(' '), "{once:?}");
}

/// FAQ files: any text of an `index/<shop>/*.toml` (first byte even) or `*.jsonl` file (odd)
/// loads, or is reported with file and line.
pub fn faq_files(data: &[u8]) {
    let Some((&format, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let path = if format % 2 == 0 {
        Path::new("index/fuzz/entries.toml")
    } else {
        Path::new("index/fuzz/entries.jsonl")
    };
    match parse_entries(path, text) {
        Ok(entries) => {
            for entry in entries {
                assert!(entry.line >= 1);
                // What the shop loader does next with each entry.
                let _ = Template::parse(&entry.answer);
                for question in std::iter::once(&entry.question).chain(&entry.alternatives) {
                    let _ = normalize(question);
                }
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for error in errors {
                let _ = error.to_string();
            }
        }
    }
}

/// A few buyer messages that reach the schedule, shipping, ladder, templates and lexicon.
const MESSAGES: [&str; 6] = [
    "在吗",
    "发到新疆要几天",
    "能便宜点吗",
    "质量太差了，我要投诉",
    "转人工",
    "今天天气真好",
];

/// A shop's files, one after another, each after a line `### <file name>` (`### shop.toml`,
/// `### presale.toml`, `### complaints.toml`, `### synonyms.toml`, `### agents.toml`).
fn shop_texts(input: &str) -> ShopTexts {
    let mut texts = ShopTexts::default();
    for part in input.split("### ").filter(|p| !p.is_empty()) {
        let (name, text) = part.split_once('\n').unwrap_or((part, ""));
        let (name, text) = (name.trim().to_string(), text.to_string());
        match name.as_str() {
            "shop.toml" => texts.shop = text,
            "complaints.toml" => texts.complaints = Some(text),
            "synonyms.toml" => texts.synonyms = Some(text),
            "agents.toml" => texts.agents = Some(text),
            _ => texts.intents.push((name, text)),
        }
    }
    texts
}

/// A shop's intent files: any set of texts loads into a shop that answers, or into a list of
/// mistakes; never a panic, never half a shop.
pub fn shop_files(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let texts = shop_texts(input);
    match load_shop_texts(
        "fuzz",
        Path::new("intents/fuzz"),
        &texts,
        FaqSource::default(),
    ) {
        Ok(shop) => {
            // A loaded shop answers, on a weekday and on a sale night, whatever its hours,
            // calendar, templates and keywords say.
            let mut state = ConversationState::default();
            for now in ["2026-11-26T02:00:00Z", "2026-11-10T16:05:00Z"] {
                let now = now.parse().unwrap();
                let _ = responder::welcome(&shop, &mut state, now);
                for message in MESSAGES {
                    let _ = responder::respond(&shop, &mut state, message, now);
                }
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a failed load names its mistakes");
            for error in errors {
                let _ = error.to_string();
            }
        }
    }
}
