//! Evaluation of a shop's rules on a labelled file: how often the bot understands buyers.
//!
//! A case is one line `label<TAB>message`; the label is an intent name, `none` where nothing
//! should match, or several names joined by commas for a message with several questions.
//! The same `decide` the service uses classifies each message, so the figures are the
//! service's own. FAQ cases are labelled `faq:<entry id>`; for them the report adds the
//! ranking's top-1 accuracy and MRR@5, and for `none` lines the share answered anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::faq::FaqRule;
use crate::responder::{Answerable, Decision, decide_with};
use crate::shop::Shop;

pub const NONE: &str = "none";
pub const FAQ_PREFIX: &str = "faq:";
/// How deep the FAQ ranking is searched for the mean reciprocal rank.
const MRR_DEPTH: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// 1-based line in the file, for pointing at misses.
    pub line: usize,
    pub expected: BTreeSet<String>,
    pub message: String,
}

/// Reads cases; blank lines and lines starting with `#` are skipped.
pub fn parse_cases(text: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((label, message)) = line.split_once('\t') else {
            return Err(format!("line {}: expected `label<TAB>message`", index + 1));
        };
        cases.push(Case {
            line: index + 1,
            expected: label.split(',').map(|l| l.trim().to_string()).collect(),
            message: message.to_string(),
        });
    }
    Ok(cases)
}

/// One case the shop got wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    pub case: Case,
    pub predicted: BTreeSet<String>,
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {:>4}: expected {:<28} got {:<28} {}",
            self.case.line,
            join(&self.case.expected),
            join(&self.predicted),
            self.case.message
        )
    }
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

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<18} {:>9} {:>7} {:>7} {:>5} {:>5} {:>5}",
            "label", "precision", "recall", "support", "tp", "fp", "fn"
        );
        for (label, c) in &self.per_label {
            let _ = writeln!(
                out,
                "{label:<18} {:>9.3} {:>7.3} {:>7} {:>5} {:>5} {:>5}",
                c.precision(),
                c.recall(),
                c.support(),
                c.true_positive,
                c.false_positive,
                c.false_negative
            );
        }
        if !self.misses.is_empty() {
            let _ = writeln!(out, "\nmisses:");
            for miss in &self.misses {
                let _ = writeln!(out, "  {miss}");
            }
            let _ = writeln!(out, "\nconfusions (expected → got, most frequent first):");
            for c in self.confusions() {
                let _ = writeln!(out, "  {} → {} ×{}", c.expected, c.got, c.count);
            }
        }
        if !self.unhanded.is_empty() {
            let _ = writeln!(
                out,
                "\nNOT HANDED OFF (a buyer who needed a human would not get one):"
            );
            for miss in &self.unhanded {
                let _ = writeln!(out, "  {miss}");
            }
        }
        let f = &self.faq;
        if f.cases > 0 {
            let _ = writeln!(
                out,
                "\nFAQ: top-1 accuracy {:.2}% ({} of {} answered with the right entry); \
                 ranked first {:.2}%; MRR@{MRR_DEPTH} {:.3}",
                f.served_accuracy() * 100.0,
                f.served,
                f.cases,
                f.ranking_accuracy() * 100.0,
                f.mrr()
            );
        }
        if f.out_of_scope > 0 {
            let _ = writeln!(
                out,
                "false-answer rate on `none` lines: {:.2}% ({} of {})",
                f.false_answer_rate() * 100.0,
                f.false_answers,
                f.out_of_scope
            );
        }
        let _ = writeln!(
            out,
            "\naccuracy: {:.2}% ({} of {}); not handed off: {}",
            self.accuracy() * 100.0,
            self.correct,
            self.total,
            self.unhanded.len()
        );
        out
    }

    /// The report as one JSON object, for scripts and dashboards: overall accuracy,
    /// per-label precision/recall/support, the FAQ figures (`null` when the file has no FAQ
    /// lines), the `none` lines answered anyway (`null` without `none` lines), the confusions
    /// most frequent first, every miss and every case that was not handed off.
    pub fn to_json(&self) -> Value {
        let per_intent: serde_json::Map<String, Value> = self
            .per_label
            .iter()
            .map(|(label, c)| {
                let figures = json!({
                    "precision": c.precision(),
                    "recall": c.recall(),
                    "support": c.support(),
                    "true_positive": c.true_positive,
                    "false_positive": c.false_positive,
                    "false_negative": c.false_negative,
                });
                (label.clone(), figures)
            })
            .collect();
        let f = &self.faq;
        let faq = (f.cases > 0).then(|| {
            json!({
                "cases": f.cases,
                "served": f.served,
                "top1_accuracy": f.served_accuracy(),
                "ranked_first": f.ranked_first,
                "ranked_first_rate": f.ranking_accuracy(),
                "mrr": f.mrr(),
                "mrr_depth": MRR_DEPTH,
            })
        });
        let none_lines = (f.out_of_scope > 0).then(|| {
            json!({
                "total": f.out_of_scope,
                "answered": f.false_answers,
                "false_answer_rate": f.false_answer_rate(),
            })
        });
        let confusions: Vec<Value> = self
            .confusions()
            .into_iter()
            .map(|c| json!({ "expected": c.expected, "got": c.got, "count": c.count }))
            .collect();
        let misses = |list: &[Miss]| -> Vec<Value> {
            list.iter()
                .map(|m| {
                    json!({
                        "line": m.case.line,
                        "expected": join(&m.case.expected),
                        "got": join(&m.predicted),
                        "message": m.case.message,
                    })
                })
                .collect()
        };
        json!({
            "total": self.total,
            "correct": self.correct,
            "accuracy": self.accuracy(),
            "per_intent": per_intent,
            "faq": faq,
            "none_lines": none_lines,
            "confusions": confusions,
            "misses": misses(&self.misses),
            "not_handed_off": misses(&self.unhanded),
        })
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

fn join(labels: &BTreeSet<String>) -> String {
    labels.iter().cloned().collect::<Vec<_>>().join(",")
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

/// One line per case: its label, then the FAQ's best entries with confidence and margin.
pub fn explain(shop: &Shop, cases: &[Case]) -> Vec<String> {
    let Some(faq) = &shop.faq else {
        return Vec::new();
    };
    cases
        .iter()
        .map(|case| {
            let ranking = faq.rank(&shop.canonical(&case.message), 3);
            let hits: Vec<String> = ranking
                .iter()
                .map(|h| {
                    format!(
                        "{} ({:.2}, {:.2}, {})",
                        faq.entries()[h.entry].id,
                        h.confidence,
                        h.margin,
                        h.shared_words
                    )
                })
                .collect();
            format!(
                "{:>4} {:<28} | {} | {}",
                case.line,
                join(&case.expected),
                hits.join(" | "),
                case.message
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::shop::Catalog;

    fn shipped_shop() -> std::sync::Arc<Shop> {
        let intents = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents");
        let catalog = Catalog::load(&intents).unwrap_or_else(|e| panic!("{e}"));
        catalog.get("default").expect("the shipped shop").clone()
    }

    fn confusion(pairs: &[(&str, &str, usize)]) -> BTreeMap<(String, String), usize> {
        pairs
            .iter()
            .map(|(expected, got, count)| ((expected.to_string(), got.to_string()), *count))
            .collect()
    }

    fn listed(report: &Report) -> Vec<(String, String, usize)> {
        report
            .confusions()
            .into_iter()
            .map(|c| (c.expected, c.got, c.count))
            .collect()
    }

    #[test]
    fn confusions_are_listed_most_frequent_first_then_by_label() {
        let report = Report {
            confusion: confusion(&[
                ("none", "faq:product_photos", 1),
                ("bargain", "none", 3),
                ("after_sale", "complaint", 3),
                ("after_sale", "none", 2),
            ]),
            ..Report::default()
        };
        let owned = |l: &[(&str, &str, usize)]| -> Vec<(String, String, usize)> {
            l.iter()
                .map(|(e, g, c)| (e.to_string(), g.to_string(), *c))
                .collect()
        };
        assert_eq!(
            listed(&report),
            owned(&[
                ("after_sale", "complaint", 3),
                ("bargain", "none", 3),
                ("after_sale", "none", 2),
                ("none", "faq:product_photos", 1),
            ])
        );
    }

    #[test]
    fn evaluation_counts_each_confusion_and_the_human_report_lists_them() {
        let shop = shipped_shop();
        let cases = parse_cases(
            "free_shipping\t包邮吗\n\
             stock\t包邮吗\n\
             # a comment line\n\
             stock\t包邮吗？\n\
             none\t质量太差了，我要投诉\n",
        )
        .unwrap();
        let report = evaluate(&shop, &cases);
        assert_eq!((report.total, report.correct), (4, 1));
        assert_eq!(
            listed(&report),
            vec![
                ("stock".to_string(), "free_shipping".to_string(), 2),
                ("none".to_string(), "complaint".to_string(), 1),
            ]
        );
        let text = report.render();
        let section = text
            .split("confusions (expected → got, most frequent first):\n")
            .nth(1)
            .unwrap_or_else(|| panic!("no confusion section in:\n{text}"));
        assert!(
            section.starts_with("  stock → free_shipping ×2\n  none → complaint ×1\n"),
            "{text}"
        );
        // The rest of the report is as it was.
        assert!(text.contains("\nmisses:\n"), "{text}");
        assert!(
            text.ends_with("\naccuracy: 25.00% (1 of 4); not handed off: 0\n"),
            "{text}"
        );
    }

    #[test]
    fn a_perfect_file_has_no_confusion_section() {
        let shop = shipped_shop();
        let cases = parse_cases("free_shipping\t包邮吗\n").unwrap();
        let report = evaluate(&shop, &cases);
        assert!(report.confusions().is_empty());
        assert!(
            !report.render().contains("confusions"),
            "{}",
            report.render()
        );
    }

    #[test]
    fn the_json_report_has_accuracy_labels_confusions_and_every_miss() {
        let shop = shipped_shop();
        let cases = parse_cases(
            "free_shipping\t包邮吗\n\
             stock\t包邮吗\n\
             none\t质量太差了，我要投诉\n",
        )
        .unwrap();
        let json = evaluate(&shop, &cases).to_json();
        assert_eq!(json["total"], 3);
        assert_eq!(json["correct"], 1);
        assert!((json["accuracy"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
        let free_shipping = &json["per_intent"]["free_shipping"];
        assert_eq!(free_shipping["support"], 1);
        assert_eq!(free_shipping["true_positive"], 1);
        assert_eq!(free_shipping["false_positive"], 1);
        assert_eq!(free_shipping["precision"], 0.5);
        assert_eq!(free_shipping["recall"], 1.0);
        assert_eq!(json["per_intent"]["stock"]["recall"], 0.0);
        // No `faq:` lines: no FAQ figures; one `none` line, answered (by a handoff).
        assert!(json["faq"].is_null(), "{json:#}");
        assert_eq!(
            json["none_lines"],
            json!({"total": 1, "answered": 1, "false_answer_rate": 1.0})
        );
        assert_eq!(
            json["confusions"],
            json!([
                {"expected": "none", "got": "complaint", "count": 1},
                {"expected": "stock", "got": "free_shipping", "count": 1},
            ])
        );
        assert_eq!(
            json["misses"],
            json!([
                {"line": 2, "expected": "stock", "got": "free_shipping", "message": "包邮吗"},
                {"line": 3, "expected": "none", "got": "complaint",
                 "message": "质量太差了，我要投诉"},
            ])
        );
        assert_eq!(json["not_handed_off"], json!([]));
    }

    #[test]
    fn the_json_report_has_the_faq_figures_when_the_file_has_faq_lines() {
        let report = Report {
            total: 4,
            correct: 3,
            faq: FaqFigures {
                cases: 4,
                ranked_first: 4,
                served: 3,
                reciprocal_rank_sum: 4.0,
                out_of_scope: 0,
                false_answers: 0,
            },
            ..Report::default()
        };
        let json = report.to_json();
        assert_eq!(
            json["faq"],
            json!({
                "cases": 4,
                "served": 3,
                "top1_accuracy": 0.75,
                "ranked_first": 4,
                "ranked_first_rate": 1.0,
                "mrr": 1.0,
                "mrr_depth": MRR_DEPTH,
            })
        );
        assert!(json["none_lines"].is_null());
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "accuracy",
            "confusions",
            "correct",
            "faq",
            "misses",
            "none_lines",
            "not_handed_off",
            "per_intent",
            "total",
        ];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
    }
}
