//! Whether a message asks something: a question word ("吗", "多少"), an A不A question
//! ("包不包邮", "有没有"), a request ("帮我", "尽快"), or so few characters that it can only be
//! a question ("包邮", "正品"). A message written mostly in Latin letters is taken to ask: the shop's
//! words cannot tell ("free shipping?" lost its question mark to normalisation).
//!
//! Intents marked `questions_only` answer only messages that ask: "用了几天不错，还送了赠品"
//! mentions a gift but asks nothing about it, and the gift answer would be a non sequitur.
//! The words are the shop's (`[questions]` in `shop.toml`), canonicalised like keywords.

use aho_corasick::AhoCorasick;

use super::BuildError;
use crate::normalize::{ends_in_question_particle, has_a_not_a};

/// The question cues of one shop. Without any, every message asks.
#[derive(Debug, Clone, Default)]
pub struct QuestionCues {
    words: Option<AhoCorasick>,
    /// A message of at most this many characters asks by its shortness.
    short_chars: usize,
}

impl QuestionCues {
    /// `words` must be canonical text, none empty.
    pub fn build(words: &[String], short_chars: usize) -> Result<QuestionCues, BuildError> {
        let words = if words.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(words)?)
        };
        Ok(QuestionCues { words, short_chars })
    }

    /// True when the canonical message asks something (always, for a shop without cues).
    pub fn asks(&self, normalized: &str) -> bool {
        let Some(words) = &self.words else {
            return true;
        };
        ends_in_question_particle(normalized)
            || normalized.chars().nth(self.short_chars).is_none()
            || words.is_match(normalized)
            || has_a_not_a(normalized)
            || mostly_latin(normalized)
    }

    /// True when the canonical message has a question or request word, a question particle
    /// at its end or an A不A question: asking in so many words, not by shortness.
    pub fn asks_in_words(&self, normalized: &str) -> bool {
        self.words.as_ref().is_some_and(|words| {
            ends_in_question_particle(normalized)
                || words.is_match(normalized)
                || has_a_not_a(normalized)
        })
    }

    /// Whether the shop listed any question words.
    pub fn is_empty(&self) -> bool {
        self.words.is_none()
    }
}

/// More Latin letters than Chinese characters: a message the shop's words cannot read.
fn mostly_latin(normalized: &str) -> bool {
    let (mut latin, mut cjk) = (0usize, 0usize);
    for c in normalized.chars() {
        if c.is_ascii_alphabetic() {
            latin += 1;
        } else if matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}') {
            cjk += 1;
        }
    }
    latin > cjk
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;

    fn cues() -> QuestionCues {
        let words: Vec<String> = ["吗", "多少", "能不能", "帮我"]
            .iter()
            .map(|w| normalize(w))
            .collect();
        QuestionCues::build(&words, 5).unwrap()
    }

    #[test]
    fn questions_requests_and_short_messages_ask() {
        let cues = cues();
        for message in [
            "有赠品吗",
            "运费多少钱",
            "帮我发顺丰快递好吗谢谢",
            "包邮",
            "正品",
            "送赠品不",
            "偏远地区包不包邮",
            "这款鞋有没有现货的",
            "free shipping?",
            "can you ship to 上海",
        ] {
            assert!(cues.asks(&normalize(message)), "{message:?} should ask");
        }
    }

    #[test]
    fn statements_do_not() {
        let cues = cues();
        for message in [
            "用了几天不错，还送了赠品",
            "裤子收到了，穿着很合身",
            "这回的运费已经给我免掉了",
        ] {
            assert!(!cues.asks(&normalize(message)), "{message:?} asks nothing");
        }
    }

    #[test]
    fn without_cues_everything_asks() {
        let none = QuestionCues::default();
        assert!(none.asks(&normalize("用了几天不错，还送了赠品")));
    }
}
