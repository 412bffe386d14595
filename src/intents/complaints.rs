//! The complaint lexicon: recognising an unhappy buyer by what they say, not by the word 投诉.
//!
//! "质量太差了", "贴上第二天就破了", "客服态度很差" never name a complaint, yet each must reach a
//! human. A shop lists negative judgements (terms) with weights, and the words around them
//! that change their force:
//! - intensifiers multiply a term's weight ("太差" weighs more than "差");
//! - negators and hedges right before a term cancel it ("不差", "会不会掉色");
//! - neutral phrases are longer matches that swallow a term inside them ("不错", "差不多");
//! - a target word ("质量", "客服") adds a bonus once some judgement was found;
//! - negators right after a term cancel it too ("一点破损都没有", "色差也没有");
//! - a message ending in a question particle is damped: it is more often a worry than a report;
//! - praise in the same message ("好吃", "满意") damps the whole: "不错，就是稍慢" is feedback,
//!   while damage told beside praise ("不错，可惜洒了") still weighs enough.
//!
//! The score is the sum; at or above the threshold the message is handed off to the intent of
//! the strongest term. Everything is one leftmost-longest aho-corasick pass, no I/O.

use aho_corasick::{AhoCorasick, MatchKind};

use crate::normalize::ends_in_question_particle;

/// A judgement term as the scorer sees it.
#[derive(Debug, Clone)]
pub struct TermSpec {
    pub words: Vec<String>,
    pub weight: f32,
    /// Index of the handoff intent this term counts for.
    pub handoff_intent: usize,
}

/// The lexicon as loaded from `complaints.toml`, already normalised.
#[derive(Debug, Clone, Default)]
pub struct LexiconSpec {
    pub threshold: f32,
    pub window: usize,
    pub question_damping: f32,
    pub target_bonus: f32,
    pub targets: Vec<String>,
    pub negators: Vec<String>,
    pub hedges: Vec<String>,
    pub neutral: Vec<String>,
    /// Cancel the term right before them ("破损都没有").
    pub negators_after: Vec<String>,
    pub praise: Vec<String>,
    /// The total is multiplied by this when the message praises something (1.0: no effect).
    pub praise_damping: f32,
    pub intensifiers: Vec<(String, f32)>,
    pub terms: Vec<TermSpec>,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Term { weight: f32, handoff_intent: usize },
    Cancel,
    CancelBefore,
    Neutral,
    Praise,
    Intensifier(f32),
}

/// A term found in a message, with its weight after the modifiers before it.
#[derive(Debug, Clone, Copy)]
struct Found {
    end: usize,
    scored: f32,
    handoff_intent: usize,
}

/// A worry is asked in a few words ("会掉色吗"); a long message that ends in 吗 is a
/// complaint with a rhetorical question at its end ("…送到哪里去了，你们还会送吗"), and is
/// scored as it stands.
const QUESTION_MAX_CHARS: usize = 24;

/// A compiled lexicon.
#[derive(Debug, Clone)]
pub struct ComplaintLexicon {
    automaton: AhoCorasick,
    roles: Vec<Vec<Role>>,
    /// Target words are searched on their own, with overlaps, so that a target inside a
    /// longer term ("客服" in "客服态度差") still counts.
    targets: Option<AhoCorasick>,
    threshold: f32,
    window: usize,
    question_damping: f32,
    praise_damping: f32,
    target_bonus: f32,
}

/// What the lexicon made of a message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComplaintScore {
    pub score: f32,
    /// The handoff intent, when the score reached the threshold.
    pub handoff_intent: Option<usize>,
}

impl ComplaintLexicon {
    pub fn build(spec: LexiconSpec) -> Result<ComplaintLexicon, aho_corasick::BuildError> {
        let mut patterns: Vec<String> = Vec::new();
        let mut roles: Vec<Vec<Role>> = Vec::new();
        let mut add = |text: &str, role: Role| {
            let id = match patterns.iter().position(|p| p == text) {
                Some(id) => id,
                None => {
                    patterns.push(text.to_string());
                    roles.push(Vec::new());
                    patterns.len() - 1
                }
            };
            roles[id].push(role);
        };
        for term in &spec.terms {
            for word in &term.words {
                add(
                    word,
                    Role::Term {
                        weight: term.weight,
                        handoff_intent: term.handoff_intent,
                    },
                );
            }
        }
        for word in spec.negators.iter().chain(&spec.hedges) {
            add(word, Role::Cancel);
        }
        for word in &spec.neutral {
            add(word, Role::Neutral);
        }
        for word in &spec.negators_after {
            add(word, Role::CancelBefore);
        }
        for word in &spec.praise {
            add(word, Role::Praise);
        }
        for (word, factor) in &spec.intensifiers {
            add(word, Role::Intensifier(*factor));
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)?;
        let targets = if spec.targets.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(&spec.targets)?)
        };
        Ok(ComplaintLexicon {
            automaton,
            roles,
            targets,
            threshold: spec.threshold,
            window: spec.window,
            question_damping: spec.question_damping,
            praise_damping: spec.praise_damping,
            target_bonus: spec.target_bonus,
        })
    }

    pub fn score(&self, normalized: &str) -> ComplaintScore {
        // Modifiers seen so far: (end offset, role). Only those within `window` chars of a
        // term's start apply to it.
        let mut modifiers: Vec<(usize, Role)> = Vec::new();
        let mut found: Vec<Found> = Vec::new();
        let mut praised = false;
        for m in self.automaton.find_iter(normalized) {
            for role in &self.roles[m.pattern().as_usize()] {
                match *role {
                    Role::Term {
                        weight,
                        handoff_intent,
                    } => {
                        let factor = self.factor_before(normalized, &modifiers, m.start());
                        found.push(Found {
                            end: m.end(),
                            scored: weight * factor,
                            handoff_intent,
                        });
                    }
                    Role::CancelBefore => {
                        if let Some(last) = found.last_mut()
                            && last.end == m.start()
                        {
                            last.scored = 0.0;
                        }
                    }
                    Role::Praise => {
                        // "不满意" is a term; a praise word with a negator before it is none.
                        praised |= self.factor_before(normalized, &modifiers, m.start()) > 0.0;
                    }
                    Role::Cancel | Role::Intensifier(_) => modifiers.push((m.end(), *role)),
                    Role::Neutral => {}
                }
            }
        }
        let mut total = 0.0f32;
        let mut strongest: Option<(f32, usize)> = None;
        for f in &found {
            total += f.scored;
            if f.scored > 0.0 && strongest.is_none_or(|(s, _)| f.scored > s) {
                strongest = Some((f.scored, f.handoff_intent));
            }
        }
        if total > 0.0
            && self
                .targets
                .as_ref()
                .is_some_and(|t| t.is_match(normalized))
        {
            total += self.target_bonus;
        }
        if ends_in_question_particle(normalized)
            && normalized.chars().nth(QUESTION_MAX_CHARS).is_none()
        {
            total *= self.question_damping;
        }
        if praised {
            total *= self.praise_damping;
        }
        let handoff_intent = strongest
            .filter(|_| total >= self.threshold)
            .map(|(_, intent)| intent);
        ComplaintScore {
            score: total,
            handoff_intent,
        }
    }

    /// What the modifiers standing within `window` chars before `start` make of a word there:
    /// 0 when negated, the product of the intensifiers otherwise.
    fn factor_before(&self, normalized: &str, modifiers: &[(usize, Role)], start: usize) -> f32 {
        let mut factor = 1.0f32;
        for &(end, modifier) in modifiers {
            if end > start || normalized[end..start].chars().count() > self.window {
                continue;
            }
            match modifier {
                Role::Cancel => factor = 0.0,
                Role::Intensifier(f) => factor *= f,
                _ => {}
            }
        }
        factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;

    const COMPLAINT: usize = 7;
    const AFTER_SALE: usize = 8;

    fn lexicon() -> ComplaintLexicon {
        let words = |list: &[&str]| list.iter().map(|w| normalize(w)).collect::<Vec<_>>();
        ComplaintLexicon::build(LexiconSpec {
            threshold: 2.0,
            window: 3,
            question_damping: 0.5,
            target_bonus: 1.0,
            targets: words(&["质量", "客服", "态度", "图片"]),
            negators: words(&["不", "没"]),
            hedges: words(&["会不会", "会", "担心"]),
            neutral: words(&["差不多", "差价"]),
            negators_after: words(&["都没有", "也没有"]),
            praise: words(&["不错", "好吃"]),
            praise_damping: 0.6,
            intensifiers: vec![("太".into(), 1.5), ("很".into(), 1.2), ("完全".into(), 1.5)],
            terms: vec![
                TermSpec {
                    words: words(&["差", "垃圾"]),
                    weight: 2.0,
                    handoff_intent: COMPLAINT,
                },
                TermSpec {
                    words: words(&["破了", "掉色", "还没发货"]),
                    weight: 2.0,
                    handoff_intent: AFTER_SALE,
                },
                TermSpec {
                    words: words(&["客服慢"]),
                    weight: 1.0,
                    handoff_intent: COMPLAINT,
                },
                TermSpec {
                    words: words(&["不一样", "等了"]),
                    weight: 1.0,
                    handoff_intent: AFTER_SALE,
                },
            ],
        })
        .unwrap()
    }

    fn check(message: &str, expected: Option<usize>) {
        let score = lexicon().score(&normalize(message));
        assert_eq!(
            score.handoff_intent, expected,
            "{message:?} scored {score:?}"
        );
    }

    #[test]
    fn judgements_hand_off_to_their_intent() {
        check("质量太差了", Some(COMPLAINT));
        check("客服态度很差", Some(COMPLAINT));
        check("贴上第二天就破了", Some(AFTER_SALE));
        check("和图片完全不一样", Some(AFTER_SALE));
        // "客服" inside the longer term still earns the target bonus: 1 + 1 reaches 2.
        check("客服慢", Some(COMPLAINT));
        check("等了一个星期还没发货", Some(AFTER_SALE));
    }

    #[test]
    fn praise_negation_and_worries_do_not() {
        check("质量不错", None);
        check("不差", None);
        check("物流很快", None);
        check("差不多吧", None);
        check("能补差价吗", None);
        check("会不会掉色啊", None);
        check("担心掉色", None);
        check("和上次不一样", None);
    }

    #[test]
    fn only_a_short_question_is_a_worry() {
        check("掉色吗", None);
        // A long report that ends in a rhetorical question is scored as it stands.
        check(
            "上周在你们店买的这件衣服才洗了一次就开始掉色了，你们说这正常吗",
            Some(AFTER_SALE),
        );
    }

    #[test]
    fn a_negator_after_the_term_cancels_it() {
        check("一点色差都没有", None);
        check("垃圾也没有", None);
        // Only right after it: the damage stands when the negation is about something else.
        check("破了，客服也没有回", Some(AFTER_SALE));
    }

    #[test]
    fn praise_damps_mild_judgements_but_not_damage() {
        // 差 with 太 is 3.0 alone, 1.8 beside praise.
        check("太差了", Some(COMPLAINT));
        check("味道不错，就是包装太差", None);
        // Damage with a target: (2 + 2 x 1.5 + 1) x 0.6 still reaches the threshold.
        check("好吃，可惜质量太差还破了", Some(COMPLAINT));
        // Praise that is negated is no praise.
        check("太差了，真的不好吃", Some(COMPLAINT));
    }
}
