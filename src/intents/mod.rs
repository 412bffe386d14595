//! Keyword intents: which of a shop's intents a normalised message triggers.
//!
//! All keywords of a shop are compiled into one aho-corasick automaton searched
//! leftmost-longest, so a message costs one pass however many intents the shop has, and at any
//! position the longest keyword wins ("七天无理由退货" hides the "退货" inside it). Negators
//! live in the same automaton so that "不用转人工" sees the negator right before the keyword.
//! Exclusions are a second automaton searched with overlaps, because an exclusion must block
//! its intent wherever it occurs without hiding anybody else's keyword. The shop's stand-alone
//! words (`[matching].words`) are patterns of the same automaton with no intent: a word of
//! another sense that contains a keyword ("收到货" around "到货") takes its characters first,
//! so the keyword inside it does not fire, at no cost beyond one more pattern.
//!
//! This module does no I/O and knows nothing of replies; it only says what was asked.

pub mod asking;
pub mod complaints;
pub mod purchase;

use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::normalize::is_word_char;

/// At most this many characters may stand between a negator and the keyword it negates
/// ("不用再转人工" still negates).
const NEGATION_GAP: usize = 2;

/// How urgent a handoff is; high goes before normal in the agents' queue.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum HandoffPriority {
    Normal,
    High,
}

impl HandoffPriority {
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffPriority::Normal => "normal",
            HandoffPriority::High => "high",
        }
    }

    pub fn parse(text: &str) -> Option<HandoffPriority> {
        match text {
            "normal" => Some(HandoffPriority::Normal),
            "high" => Some(HandoffPriority::High),
            _ => None,
        }
    }
}

/// One intent as the matcher sees it.
#[derive(Debug, Clone)]
pub struct IntentSpec {
    pub name: Arc<str>,
    /// Normalised keywords; each is one or more parts that must all occur ("运费+多少").
    pub keywords: Vec<Vec<String>>,
    /// Normalised phrases that block this intent.
    pub exclude: Vec<String>,
    pub negatable: bool,
    pub handoff: Option<HandoffPriority>,
    /// Tie-break among handoffs, higher first.
    pub priority: i32,
    /// Answered only when no other intent matched and the FAQ has no answer (a greeting
    /// beside a question is noise).
    pub yield_to_others: bool,
    /// Ask the FAQ first: a confident FAQ answer replaces this intent's generic reply.
    pub defer_to_faq: bool,
    /// A pre-sale answer (the dispatch promise, stock, free shipping, bargaining): it never
    /// answers a message that speaks of an order already placed (see [`purchase`]).
    pub presale: bool,
    /// Answers only a message that asks something (see [`asking`]): a statement that merely
    /// names the keyword ("还送了赠品") is not a question about it.
    pub questions_only: bool,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Negator,
    /// A word that stands on its own: it only takes its characters from shorter keywords.
    Word,
    Keyword {
        intent: u32,
    },
    /// One part of a multi-part keyword; all `parts` bits must be seen.
    ComboPart {
        intent: u32,
        combo: u32,
        bit: u8,
        parts: u8,
    },
}

/// The compiled keyword matcher of one shop.
#[derive(Debug, Clone)]
pub struct IntentSet {
    intents: Vec<IntentSpec>,
    automaton: AhoCorasick,
    /// Roles of each pattern of `automaton`; one text can be several intents' keyword.
    roles: Vec<Vec<Role>>,
    /// Whether pattern `i` must stand as a whole ASCII word.
    whole_word: Vec<bool>,
    exclusions: Option<AhoCorasick>,
    /// Intent blocked by exclusion pattern `i`.
    exclusion_intent: Vec<u32>,
}

/// An intent the message triggered, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub intent: usize,
    /// Byte offset in the normalised text of the first keyword that triggered it.
    pub position: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot compile the keyword automaton: {0}")]
pub struct BuildError(#[from] aho_corasick::BuildError);

impl IntentSet {
    /// Compiles the intents' keywords with the shop's `negators` and its stand-alone `words`
    /// (all in canonical form).
    pub fn build(
        intents: Vec<IntentSpec>,
        negators: &[String],
        words: &[String],
    ) -> Result<IntentSet, BuildError> {
        let mut patterns: Vec<String> = Vec::new();
        let mut roles: Vec<Vec<Role>> = Vec::new();
        let mut index = std::collections::HashMap::<String, usize>::new();
        let mut add = |text: &str, role: Role| {
            let id = *index.entry(text.to_string()).or_insert_with(|| {
                patterns.push(text.to_string());
                roles.push(Vec::new());
                patterns.len() - 1
            });
            roles[id].push(role);
        };
        for negator in negators {
            add(negator, Role::Negator);
        }
        for word in words {
            add(word, Role::Word);
        }
        let mut combos = 0u32;
        let mut exclusion_patterns = Vec::new();
        let mut exclusion_intent = Vec::new();
        for (i, intent) in intents.iter().enumerate() {
            let i = i as u32;
            for keyword in &intent.keywords {
                if let [single] = keyword.as_slice() {
                    add(single, Role::Keyword { intent: i });
                } else {
                    let parts = keyword.len().min(8) as u8;
                    for (bit, part) in keyword.iter().take(8).enumerate() {
                        add(
                            part,
                            Role::ComboPart {
                                intent: i,
                                combo: combos,
                                bit: bit as u8,
                                parts,
                            },
                        );
                    }
                    combos += 1;
                }
            }
            for phrase in &intent.exclude {
                exclusion_patterns.push(phrase.clone());
                exclusion_intent.push(i);
            }
        }
        let whole_word = patterns
            .iter()
            .map(|p| p.starts_with(is_word_char) || p.ends_with(is_word_char))
            .collect();
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)?;
        let exclusions = if exclusion_patterns.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(&exclusion_patterns)?)
        };
        Ok(IntentSet {
            intents,
            automaton,
            roles,
            whole_word,
            exclusions,
            exclusion_intent,
        })
    }

    pub fn intents(&self) -> &[IntentSpec] {
        &self.intents
    }

    pub fn intent(&self, index: usize) -> &IntentSpec {
        &self.intents[index]
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.intents.iter().position(|i| &*i.name == name)
    }

    /// The intents a normalised message triggers, in order of first appearance.
    pub fn detect(&self, normalized: &str) -> Vec<Hit> {
        let mut hits: Vec<Hit> = Vec::new();
        // (combo id, bits seen); a message touches few combos, so a short list beats a map.
        let mut combos_seen: Vec<(u32, u8)> = Vec::new();
        let mut last_negator_end: Option<usize> = None;
        for m in self.automaton.find_iter(normalized) {
            let pattern = m.pattern().as_usize();
            if self.whole_word[pattern] && !stands_alone(normalized, m.start(), m.end()) {
                continue;
            }
            let negated = last_negator_end.is_some_and(|end| {
                end <= m.start() && normalized[end..m.start()].chars().count() <= NEGATION_GAP
            });
            // A negator reaches only the keyword right after it: "不用包邮，转人工" still hands off.
            if !self.roles[pattern]
                .iter()
                .any(|r| matches!(r, Role::Negator))
            {
                last_negator_end = None;
            }
            for role in &self.roles[pattern] {
                match *role {
                    Role::Negator => last_negator_end = Some(m.end()),
                    Role::Word => {}
                    Role::Keyword { intent } => {
                        if !(negated && self.intents[intent as usize].negatable) {
                            record(&mut hits, intent as usize, m.start());
                        }
                    }
                    Role::ComboPart {
                        intent,
                        combo,
                        bit,
                        parts,
                    } => {
                        if negated && self.intents[intent as usize].negatable {
                            continue;
                        }
                        let seen = match combos_seen.iter_mut().find(|(c, _)| *c == combo) {
                            Some((_, seen)) => seen,
                            None => {
                                combos_seen.push((combo, 0));
                                &mut combos_seen.last_mut().expect("just pushed").1
                            }
                        };
                        *seen |= 1 << bit;
                        if seen.count_ones() == u32::from(parts) {
                            record(&mut hits, intent as usize, m.start());
                        }
                    }
                }
            }
        }
        if let (Some(exclusions), false) = (&self.exclusions, hits.is_empty()) {
            for m in exclusions.find_overlapping_iter(normalized) {
                let blocked = self.exclusion_intent[m.pattern().as_usize()] as usize;
                hits.retain(|h| h.intent != blocked);
            }
        }
        hits.sort_by_key(|h| h.position);
        hits
    }
}

impl IntentSet {
    /// The message without any keyword of `intents` in it: what is left to ask about once
    /// the social words ("您好", "在吗") are set aside.
    pub fn without_keywords_of(&self, normalized: &str, intents: &[usize]) -> String {
        let mut rest = String::with_capacity(normalized.len());
        let mut from = 0;
        for m in self.automaton.find_iter(normalized) {
            let theirs = self.roles[m.pattern().as_usize()]
                .iter()
                .any(|role| match *role {
                    Role::Keyword { intent } | Role::ComboPart { intent, .. } => {
                        intents.contains(&(intent as usize))
                    }
                    Role::Negator | Role::Word => false,
                });
            if theirs {
                rest.push_str(&normalized[from..m.start()]);
                from = m.end();
            }
        }
        rest.push_str(&normalized[from..]);
        rest
    }
}

impl IntentSet {
    /// Where the keywords of `intents` stand in the message (byte ranges, in order): what the
    /// intents' generic replies answer, so that the rest is what the buyer asked beyond them.
    pub fn keyword_spans_of(&self, normalized: &str, intents: &[usize]) -> Vec<(usize, usize)> {
        self.automaton
            .find_iter(normalized)
            .filter(|m| {
                self.roles[m.pattern().as_usize()]
                    .iter()
                    .any(|role| match *role {
                        Role::Keyword { intent } | Role::ComboPart { intent, .. } => {
                            intents.contains(&(intent as usize))
                        }
                        Role::Negator | Role::Word => false,
                    })
            })
            .map(|m| (m.start(), m.end()))
            .collect()
    }
}

fn record(hits: &mut Vec<Hit>, intent: usize, position: usize) {
    if !hits.iter().any(|h| h.intent == intent) {
        hits.push(Hit { intent, position });
    }
}

/// True when the match at `start..end` is not glued to ASCII letters or digits on either side.
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;

    fn spec(name: &str, keywords: &[&str]) -> IntentSpec {
        IntentSpec {
            name: name.into(),
            keywords: keywords
                .iter()
                .map(|k| k.split('+').map(normalize).collect())
                .collect(),
            exclude: vec![],
            negatable: false,
            handoff: None,
            priority: 0,
            yield_to_others: false,
            defer_to_faq: false,
            presale: false,
            questions_only: false,
        }
    }

    fn set() -> IntentSet {
        let mut human = spec("human", &["转人工", "real person"]);
        human.negatable = true;
        human.handoff = Some(HandoffPriority::High);
        let mut after_sale = spec("after_sale", &["退货"]);
        after_sale.exclude = vec![normalize("支持")];
        IntentSet::build(
            vec![
                spec("free_shipping", &["包邮", "运费+多少"]),
                spec("shipping_time", &["什么时候发货", "发货"]),
                spec("return_policy", &["七天无理由退货", "七天无理由"]),
                human,
                after_sale,
                spec("greeting", &["hi", "在吗"]),
            ],
            &[normalize("不用"), normalize("不要")],
            &[normalize("收发货"), normalize("不用说")],
        )
        .unwrap()
    }

    fn check(message: &str, expected: &[&str]) {
        let set = set();
        let names: Vec<&str> = set
            .detect(&normalize(message))
            .iter()
            .map(|h| &*set.intent(h.intent).name)
            .collect();
        assert_eq!(names, expected, "detecting {message:?}");
    }

    #[test]
    fn every_intent_is_reported_in_order_of_appearance() {
        check("包邮吗？什么时候发货", &["free_shipping", "shipping_time"]);
        check("什么时候发货，包邮吗", &["shipping_time", "free_shipping"]);
        check("今天天气不错", &[]);
    }

    #[test]
    fn multi_part_keywords_need_all_parts() {
        check("运费多少", &["free_shipping"]);
        check("多少钱", &[]);
    }

    #[test]
    fn the_longest_keyword_hides_shorter_ones_inside_it() {
        check("七天无理由退货吗", &["return_policy"]);
        check("我要退货", &["after_sale"]);
    }

    #[test]
    fn exclusions_block_only_their_own_intent() {
        check("支持退货吗", &[]);
        check("支持包邮吗", &["free_shipping"]);
    }

    #[test]
    fn negators_cancel_negatable_keywords_only() {
        check("不用转人工了", &[]);
        check("不用再转人工", &[]);
        check("转人工", &["human"]);
        check("不要包邮", &["free_shipping"]);
        check("不用包邮，转人工", &["free_shipping", "human"]);
    }

    #[test]
    fn a_keyword_inside_a_word_of_its_own_does_not_fire() {
        // "收发货" takes its characters before "发货" inside it can match.
        check("仓库收发货很忙吧", &[]);
        check("什么时候发货", &["shipping_time"]);
        check("收发货，包邮吗", &["free_shipping"]);
        // A keyword that starts before the word still wins (leftmost first).
        check("什么时候发货", &["shipping_time"]);
        // A word is no negator: "不用说" does not cancel the keyword after it.
        check("不用说转人工", &["human"]);
        check("不用转人工", &[]);
    }

    #[test]
    fn english_keywords_match_whole_words_only() {
        check("hi there", &["greeting"]);
        check("this is nice", &[]);
        check("real person please", &["human"]);
    }
}
