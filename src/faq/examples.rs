//! Intents' example phrasings (相似问法): "收到的杯子裂开了" teaches `after_sale` what its
//! keywords do not say. Each example is one document of a small index built exactly like the
//! FAQ's ([`FaqIndex`]: jieba words and bigrams, BM25, the confidence over the query's
//! self-score, the margin and the floors of [`FaqRule`]), so an example match and an FAQ
//! match are on one scale and the responder can weigh one against the other. The closest
//! example names the intent.
//!
//! One document per example, not per intent: a buyer's message is one sentence, and it is
//! the closest sentence that tells its meaning; an intent with many examples would otherwise
//! match anything that shares a word with any of them. For the same reason an example match
//! needs two shared words and a higher confidence than the FAQ rule may ask: one or two
//! shared words are how an unrelated message most often comes close to a short sentence.
//!
//! The index knows intents only by their number in the shop; it never changes once built.

use std::sync::Arc;

use super::{FaqEntry, FaqError, FaqHit, FaqIndex, FaqRule, RESPONDER_HITS};
use crate::template::Template;

/// The most characters an example may have: a buyer's question, not a paragraph.
pub const MAX_EXAMPLE_CHARS: usize = 100;
/// The most examples one intent may have: enough to teach, few enough to read.
pub const MAX_EXAMPLES_PER_INTENT: usize = 200;

/// How many words of a message the closest example must share for its intent to answer.
const MIN_SHARED_WORDS: usize = 2;
/// The confidence the closest example needs, above the shop's FAQ rule if that asks less.
/// A short sentence shares two words with many unrelated messages ("好几天没上线" with
/// "物流好几天都没有更新了" scores 0.2); paraphrases of an example score 0.3 and more
/// (measured with the project's own sets and the real-traffic development set).
const MIN_CONFIDENCE: f32 = 0.3;

/// An intent the examples found for a message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExampleHit {
    /// The intent's number in the shop.
    pub intent: usize,
    /// How well its examples match, on the FAQ's scale.
    pub hit: FaqHit,
}

/// A shop's intents' examples, searchable.
#[derive(Clone, Debug)]
pub struct ExampleIndex {
    index: FaqIndex,
    /// `intents[entry]` is the intent whose example is the index's entry `entry`.
    intents: Vec<usize>,
}

impl ExampleIndex {
    /// Indexes `examples` (each intent's number and its examples in canonical form; intents
    /// without examples are left out), in RAM. `None` when no intent has an example.
    /// Blocking: call it off the async runtime.
    pub fn build(
        examples: Vec<(usize, Vec<String>)>,
        rule: FaqRule,
    ) -> Result<Option<ExampleIndex>, FaqError> {
        let examples: Vec<(usize, Vec<String>)> = examples
            .into_iter()
            .filter(|(_, texts)| !texts.is_empty())
            .collect();
        if examples.is_empty() {
            return Ok(None);
        }
        // `intents[entry]`: one entry per example.
        let intents: Vec<usize> = examples
            .iter()
            .flat_map(|(intent, texts)| std::iter::repeat_n(*intent, texts.len()))
            .collect();
        let entries = intents
            .iter()
            .map(|intent| FaqEntry {
                id: Arc::from(intent.to_string()),
                answer: Template::parse("").expect("an empty template parses"),
                tags: Vec::new(),
            })
            .collect();
        let phrasings = examples
            .into_iter()
            .flat_map(|(_, texts)| texts.into_iter().map(|text| vec![text]))
            .collect();
        // Examples have no answer text: only the buyer-side phrasings are searched.
        let answers = vec![String::new(); intents.len()];
        let index = FaqIndex::build(entries, phrasings, answers, rule, None)?;
        Ok(Some(ExampleIndex { index, intents }))
    }

    /// The intents whose examples match a canonical message best, best first, at most
    /// `limit`.
    pub fn rank(&self, canonical: &str, limit: usize) -> Vec<ExampleHit> {
        self.index
            .rank(canonical, limit)
            .into_iter()
            .map(|hit| ExampleHit {
                intent: self.intents[hit.entry],
                hit,
            })
            .collect()
    }

    /// The best intent for a canonical message as the responder asks, whether or not the
    /// rule accepts it.
    pub fn best(&self, canonical: &str) -> Option<ExampleHit> {
        self.rank(canonical, RESPONDER_HITS).into_iter().next()
    }

    /// Whether a match is good enough to answer with: the shop's rule, two shared words and
    /// a confidence of at least [`MIN_CONFIDENCE`].
    pub fn accepts(&self, hit: &FaqHit) -> bool {
        hit.shared_words >= MIN_SHARED_WORDS
            && hit.confidence >= MIN_CONFIDENCE
            && self.index.rule().accepts(hit)
    }

    /// The intent to answer with, if the best one passes the rule.
    pub fn answer(&self, canonical: &str) -> Option<ExampleHit> {
        self.best(canonical).filter(|best| self.accepts(&best.hit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;

    fn index() -> ExampleIndex {
        let examples = [
            (3, vec!["收到的杯子裂开了", "东西坏了能不能处理一下"]),
            (7, vec!["我的包裹好几天没动静了", "快递一直不更新"]),
            (9, Vec::new()),
        ];
        let examples = examples
            .into_iter()
            .map(|(intent, texts)| (intent, texts.into_iter().map(normalize).collect()))
            .collect();
        ExampleIndex::build(examples, FaqRule::default())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_paraphrase_finds_the_intent_of_its_examples() {
        let index = index();
        let check = |message: &str, expected: Option<usize>| {
            let got = index.answer(&normalize(message)).map(|hit| hit.intent);
            assert_eq!(
                got,
                expected,
                "{message}: {:?}",
                index.best(&normalize(message))
            );
        };
        check("收到的杯子裂开了", Some(3));
        check("我收到的盘子裂开了怎么办", Some(3));
        check("快递怎么一直不更新", Some(7));
        // Two shared words, but too little of the message: "好几天" and "更新" alone.
        check("好几天没更新软件了吗", None);
        check("明天会下雨吗", None);
        check("好的", None);
    }

    #[test]
    fn no_examples_no_index() {
        let empty = ExampleIndex::build(vec![(0, Vec::new())], FaqRule::default()).unwrap();
        assert!(empty.is_none());
    }
}
