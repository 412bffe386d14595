//! Running the cases through the responder and counting: precision and recall per label,
//! the confusions, the cases that needed a human and did not get one, the FAQ's figures
//! (top-1 accuracy, MRR, false answers), what the bot did on every line and the real-traffic
//! figures built from that (handoff recall, false handoffs, confident wrong answers, FAQ
//! answers to `none` lines, reviews handed off by sentiment), and the sweep of FAQ rules for
//! calibration.

use std::collections::{BTreeMap, BTreeSet};

use super::cases::{Case, FAQ_PREFIX, NONE, Sentiment, join};
use crate::faq::FaqRule;
use crate::responder::{Answerable, Decision, decide_with};
use crate::shop::Shop;

/// How deep the FAQ ranking is searched for the mean reciprocal rank.
pub(super) const MRR_DEPTH: usize = 5;

/// One case the shop got wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    pub case: Case,
    pub predicted: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub true_positive: usize,
    pub false_positive: usize,
    pub false_negative: usize,
}

impl Counts {
    pub fn precision(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_positive)
    }

    pub fn recall(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_negative)
    }

    /// How many cases carried the label.
    pub fn support(&self) -> usize {
        self.true_positive + self.false_negative
    }
}

/// One way the shop misunderstood buyers: what the file expected, what the shop said, and
/// how many lines went that way. Labels are comma-joined sets, as in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    pub expected: String,
    pub got: String,
    pub count: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub total: usize,
    pub correct: usize,
    pub per_label: BTreeMap<String, Counts>,
    pub misses: Vec<Miss>,
    /// Cases labelled with a handoff intent that the bot did not hand off: these are the
    /// ones that lose a complaint, so they are reported apart.
    pub unhanded: Vec<Miss>,
    /// (expected, predicted) label pairs of the misses, with how often each occurred.
    pub confusion: BTreeMap<(String, String), usize>,
    pub faq: FaqFigures,
    /// What the bot did on each line, in file order.
    pub lines: Vec<LineResult>,
    /// The real-traffic figures computed from `lines`.
    pub traffic: Traffic,
}

/// Labels a labelled file may use for behaviour the shop has no intent for yet, all of which
/// mean "a human takes over" (see `tests/corpus/README.md`). With the shop's intents that
/// have `handoff` set, these are the handoff labels. Any other label that is not an intent,
/// an FAQ entry or `none` of the shop is an error (see [`check_labels`]).
pub const EXTRA_HANDOFF_LABELS: &[&str] = &["order_check"];

/// What the bot did with one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineResult {
    pub line: usize,
    pub expected: BTreeSet<String>,
    /// The labels of the decision: the handoff intent, the answers, or `none`.
    pub predicted: BTreeSet<String>,
    /// The decision was a handoff intent.
    pub handed_off: bool,
    /// The bot answered with an intent's reply.
    pub intent_answer: bool,
    /// The bot answered with an FAQ entry.
    pub faq_answer: bool,
    pub sentiment: Option<Sentiment>,
}

impl LineResult {
    /// The bot answered (an intent's reply or an FAQ entry): not a handoff, not the fallback.
    pub fn answered(&self) -> bool {
        self.intent_answer || self.faq_answer
    }
}

/// The figures that say how the bot does on real traffic. Counts only; the rates are
/// methods, so that totals over several files can be added up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    pub lines: usize,
    /// Lines that got exactly their labels.
    pub correct: usize,
    /// Lines with a handoff label, and how many of them the bot handed off.
    pub handoff_lines: usize,
    pub handed_off: usize,
    /// Lines with no handoff label, and how many of them the bot handed off anyway.
    pub other_lines: usize,
    pub false_handoffs: usize,
    /// Lines the bot answered (intent or FAQ) with something the label does not say.
    pub confident_wrong: usize,
    /// Lines labelled exactly `none`, how many got an FAQ answer, and how many any answer.
    pub none_lines: usize,
    pub none_faq: usize,
    pub none_answered: usize,
    /// Review lines by sentiment, and how many of each the bot handed off.
    pub negative: usize,
    pub negative_handed_off: usize,
    pub positive: usize,
    pub positive_handed_off: usize,
}

impl Traffic {
    /// The figures of `lines`, where a label is a handoff when `handoffs` holds it.
    pub fn of(lines: &[LineResult], handoffs: &BTreeSet<String>) -> Self {
        let mut t = Traffic::default();
        for l in lines {
            t.lines += 1;
            t.correct += usize::from(l.predicted == l.expected);
            if l.expected.iter().any(|label| handoffs.contains(label)) {
                t.handoff_lines += 1;
                t.handed_off += usize::from(l.handed_off);
            } else {
                t.other_lines += 1;
                t.false_handoffs += usize::from(l.handed_off);
            }
            if l.answered() && !l.predicted.is_subset(&l.expected) {
                t.confident_wrong += 1;
            }
            if l.expected.len() == 1 && l.expected.contains(NONE) {
                t.none_lines += 1;
                t.none_faq += usize::from(l.faq_answer);
                t.none_answered += usize::from(l.answered());
            }
            match l.sentiment {
                Some(Sentiment::Negative) => {
                    t.negative += 1;
                    t.negative_handed_off += usize::from(l.handed_off);
                }
                Some(Sentiment::Positive) => {
                    t.positive += 1;
                    t.positive_handed_off += usize::from(l.handed_off);
                }
                None => {}
            }
        }
        t
    }

    /// The sum of two files' figures.
    pub fn add(&mut self, o: &Traffic) {
        self.lines += o.lines;
        self.correct += o.correct;
        self.handoff_lines += o.handoff_lines;
        self.handed_off += o.handed_off;
        self.other_lines += o.other_lines;
        self.false_handoffs += o.false_handoffs;
        self.confident_wrong += o.confident_wrong;
        self.none_lines += o.none_lines;
        self.none_faq += o.none_faq;
        self.none_answered += o.none_answered;
        self.negative += o.negative;
        self.negative_handed_off += o.negative_handed_off;
        self.positive += o.positive;
        self.positive_handed_off += o.positive_handed_off;
    }

    /// Whether the file is a review corpus (its lines carry a sentiment).
    pub fn has_reviews(&self) -> bool {
        self.negative + self.positive > 0
    }
}

/// The labels that mean "a human takes over" in `shop`: its intents with `handoff` set and
/// [`EXTRA_HANDOFF_LABELS`].
pub fn handoff_labels(shop: &Shop) -> BTreeSet<String> {
    shop.intents
        .intents()
        .iter()
        .filter(|i| i.handoff.is_some())
        .map(|i| i.name.to_string())
        .chain(EXTRA_HANDOFF_LABELS.iter().map(|l| l.to_string()))
        .collect()
}

/// Every label must be `none`, an intent of the shop, `faq:<id>` of one of its FAQ entries,
/// or one of [`EXTRA_HANDOFF_LABELS`]; otherwise the figures would silently count a typo
/// as a label the bot can never give. The error lists every unknown label with its line.
pub fn check_labels(shop: &Shop, cases: &[Case]) -> Result<(), String> {
    let faq_ids: BTreeSet<&str> = shop
        .faq
        .as_ref()
        .map(|f| f.entries().iter().map(|e| &*e.id).collect())
        .unwrap_or_default();
    let known = |label: &str| {
        label == NONE
            || shop.intents.index_of(label).is_some()
            || EXTRA_HANDOFF_LABELS.contains(&label)
            || label
                .strip_prefix(FAQ_PREFIX)
                .is_some_and(|id| faq_ids.contains(id))
    };
    let unknown: Vec<String> = cases
        .iter()
        .flat_map(|c| {
            c.expected
                .iter()
                .filter(|l| !known(l))
                .map(move |l| format!("line {}: unknown label `{l}`", c.line))
        })
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}
(a label is `none`, an intent or `faq:<id>` of the shop, or one of {})",
            unknown.join("\n"),
            EXTRA_HANDOFF_LABELS.join(", ")
        ))
    }
}

/// The FAQ's own figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaqFigures {
    /// Cases labelled with one FAQ entry.
    pub cases: usize,
    /// Cases whose entry ranked first, whether or not the bot dared to answer.
    pub ranked_first: usize,
    /// Cases the bot actually answered with the right entry (and nothing else).
    pub served: usize,
    pub reciprocal_rank_sum: f64,
    /// Cases labelled `none`.
    pub out_of_scope: usize,
    /// `none` cases the bot answered anyway.
    pub false_answers: usize,
}

impl FaqFigures {
    pub fn served_accuracy(&self) -> f64 {
        ratio(self.served, self.cases)
    }

    pub fn ranking_accuracy(&self) -> f64 {
        ratio(self.ranked_first, self.cases)
    }

    pub fn mrr(&self) -> f64 {
        if self.cases == 0 {
            0.0
        } else {
            self.reciprocal_rank_sum / self.cases as f64
        }
    }

    pub fn false_answer_rate(&self) -> f64 {
        if self.out_of_scope == 0 {
            0.0
        } else {
            self.false_answers as f64 / self.out_of_scope as f64
        }
    }
}

impl Report {
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.correct as f64 / self.total as f64
    }

    /// The confusions, most frequent first (then by expected and predicted label), so the
    /// rule that costs most is at the top.
    pub fn confusions(&self) -> Vec<Confusion> {
        let mut list: Vec<Confusion> = self
            .confusion
            .iter()
            .map(|((expected, got), &count)| Confusion {
                expected: expected.clone(),
                got: got.clone(),
                count,
            })
            .collect();
        // The map is ordered by (expected, got) already and the sort is stable.
        list.sort_by_key(|c| std::cmp::Reverse(c.count));
        list
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// The labels the shop gives a message under `faq_rule`, and whether it was handed off.
pub fn predict(shop: &Shop, message: &str, faq_rule: Option<FaqRule>) -> (BTreeSet<String>, bool) {
    let p = predict_kinds(shop, message, faq_rule);
    (p.labels, p.handed_off)
}

struct Prediction {
    labels: BTreeSet<String>,
    handed_off: bool,
    intent_answer: bool,
    faq_answer: bool,
}

fn predict_kinds(shop: &Shop, message: &str, faq_rule: Option<FaqRule>) -> Prediction {
    match decide_with(shop, &shop.canonical(message), faq_rule) {
        Decision::Handoff(i) => Prediction {
            labels: BTreeSet::from([shop.intents.intent(i).name.to_string()]),
            handed_off: true,
            intent_answer: false,
            faq_answer: false,
        },
        Decision::Answer(list) => Prediction {
            labels: list.iter().map(|a| label(shop, *a)).collect(),
            handed_off: false,
            intent_answer: list.iter().any(|a| matches!(a, Answerable::Intent(_))),
            faq_answer: list.iter().any(|a| matches!(a, Answerable::Faq(_))),
        },
        Decision::Nothing => Prediction {
            labels: BTreeSet::from([NONE.to_string()]),
            handed_off: false,
            intent_answer: false,
            faq_answer: false,
        },
    }
}

fn label(shop: &Shop, answer: Answerable) -> String {
    match answer {
        Answerable::Intent(i) => shop.intents.intent(i).name.to_string(),
        Answerable::Faq(e) => {
            let entries = shop.faq.as_ref().map_or(&[][..], |f| f.entries());
            format!("{FAQ_PREFIX}{}", entries[e].id)
        }
    }
}

/// Evaluates with the shop's own FAQ rule.
pub fn evaluate(shop: &Shop, cases: &[Case]) -> Report {
    evaluate_with(shop, cases, shop.faq.as_ref().map(|f| f.rule()))
}

pub fn evaluate_with(shop: &Shop, cases: &[Case], faq_rule: Option<FaqRule>) -> Report {
    let mut report = Report::default();
    let handoff_intents: BTreeSet<&str> = shop
        .intents
        .intents()
        .iter()
        .filter(|i| i.handoff.is_some())
        .map(|i| &*i.name)
        .collect();
    for case in cases {
        let p = predict_kinds(shop, &case.message, faq_rule);
        let (predicted, handed_off) = (p.labels, p.handed_off);
        report.lines.push(LineResult {
            line: case.line,
            expected: case.expected.clone(),
            predicted: predicted.clone(),
            handed_off,
            intent_answer: p.intent_answer,
            faq_answer: p.faq_answer,
            sentiment: case.sentiment,
        });
        report.total += 1;
        score_faq(shop, case, &predicted, &mut report.faq);
        for label in case.expected.union(&predicted) {
            let counts = report.per_label.entry(label.clone()).or_default();
            match (case.expected.contains(label), predicted.contains(label)) {
                (true, true) => counts.true_positive += 1,
                (false, true) => counts.false_positive += 1,
                (true, false) => counts.false_negative += 1,
                (false, false) => {}
            }
        }
        let miss = Miss {
            case: case.clone(),
            predicted: predicted.clone(),
        };
        let wants_human = case
            .expected
            .iter()
            .any(|l| handoff_intents.contains(l.as_str()));
        if wants_human && !handed_off {
            report.unhanded.push(miss.clone());
        }
        if predicted == case.expected {
            report.correct += 1;
        } else {
            *report
                .confusion
                .entry((join(&case.expected), join(&predicted)))
                .or_default() += 1;
            report.misses.push(miss);
        }
    }
    report.traffic = Traffic::of(&report.lines, &handoff_labels(shop));
    report
}

fn score_faq(shop: &Shop, case: &Case, predicted: &BTreeSet<String>, figures: &mut FaqFigures) {
    if case.expected.len() != 1 {
        return;
    }
    let expected = case.expected.first().expect("one label");
    if expected == NONE {
        figures.out_of_scope += 1;
        if !predicted.contains(NONE) {
            figures.false_answers += 1;
        }
        return;
    }
    let Some(id) = expected.strip_prefix(FAQ_PREFIX) else {
        return;
    };
    figures.cases += 1;
    if predicted == &case.expected {
        figures.served += 1;
    }
    let Some(faq) = &shop.faq else {
        return;
    };
    let ranking = faq.rank(&shop.canonical(&case.message), MRR_DEPTH);
    if let Some(rank) = ranking
        .iter()
        .position(|hit| &*faq.entries()[hit.entry].id == id)
    {
        if rank == 0 {
            figures.ranked_first += 1;
        }
        figures.reciprocal_rank_sum += 1.0 / (rank + 1) as f64;
    }
}

/// One FAQ rule tried by [`sweep`] and how it did.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRow {
    pub rule: FaqRule,
    pub served_accuracy: f64,
    pub false_answer_rate: f64,
}

/// Tries a grid of FAQ rules on the cases, to calibrate the shop's rule: the rows are sorted
/// best first (highest accuracy among those with the fewest false answers).
pub fn sweep(shop: &Shop, cases: &[Case]) -> Vec<SweepRow> {
    let mut rows = Vec::new();
    for min_confidence in (5..=20).map(|i| i as f32 * 0.02) {
        for single_word_confidence in (5..=12).map(|i| i as f32 * 0.05) {
            for min_margin in [0.0, 0.05, 0.1, 0.2] {
                if single_word_confidence < min_confidence {
                    continue;
                }
                let rule = FaqRule {
                    min_confidence,
                    single_word_confidence,
                    min_margin,
                    ..FaqRule::default()
                };
                let report = evaluate_with(shop, cases, Some(rule));
                rows.push(SweepRow {
                    rule,
                    served_accuracy: report.faq.served_accuracy(),
                    false_answer_rate: report.faq.false_answer_rate(),
                });
            }
        }
    }
    rows.sort_by(|a, b| {
        let score = |r: &SweepRow| r.served_accuracy - 2.0 * r.false_answer_rate;
        score(b).total_cmp(&score(a))
    });
    rows
}
