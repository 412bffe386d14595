//! Running the cases through the responder and counting: precision and recall per label,
//! the confusions, the cases that needed a human and did not get one, the FAQ's figures
//! (top-1 accuracy, MRR, false answers), and the sweep of FAQ rules for calibration.

use std::collections::{BTreeMap, BTreeSet};

use super::cases::{Case, FAQ_PREFIX, NONE, join};
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
    match decide_with(shop, &shop.canonical(message), faq_rule) {
        Decision::Handoff(i) => (
            BTreeSet::from([shop.intents.intent(i).name.to_string()]),
            true,
        ),
        Decision::Answer(list) => (list.iter().map(|a| label(shop, *a)).collect(), false),
        Decision::Nothing => (BTreeSet::from([NONE.to_string()]), false),
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
        let (predicted, handed_off) = predict(shop, &case.message, faq_rule);
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
