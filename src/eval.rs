//! Evaluation of a shop's rules on a labelled file: how often the bot understands buyers.
//!
//! A case is one line `label<TAB>message`; the label is an intent name, `none` where nothing
//! should match, or several names joined by commas for a message with several questions.
//! The same `decide` the service uses classifies each message, so the figures are the
//! service's own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::normalize::normalize;
use crate::responder::{Decision, decide};
use crate::shop::Shop;

pub const NONE: &str = "none";

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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub true_positive: usize,
    pub false_positive: usize,
    pub false_negative: usize,
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
}

impl Report {
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.correct as f64 / self.total as f64
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<18} {:>9} {:>7} {:>7} {:>5} {:>5} {:>5}",
            "label", "precision", "recall", "support", "tp", "fp", "fn"
        );
        for (label, c) in &self.per_label {
            let precision = ratio(c.true_positive, c.true_positive + c.false_positive);
            let recall = ratio(c.true_positive, c.true_positive + c.false_negative);
            let _ = writeln!(
                out,
                "{label:<18} {precision:>9.3} {recall:>7.3} {:>7} {:>5} {:>5} {:>5}",
                c.true_positive + c.false_negative,
                c.true_positive,
                c.false_positive,
                c.false_negative
            );
        }
        if !self.misses.is_empty() {
            let _ = writeln!(out, "\nmisses:");
            for miss in &self.misses {
                let _ = writeln!(
                    out,
                    "  line {:>4}: expected {:<28} got {:<28} {}",
                    miss.case.line,
                    join(&miss.case.expected),
                    join(&miss.predicted),
                    miss.case.message
                );
            }
        }
        if !self.unhanded.is_empty() {
            let _ = writeln!(
                out,
                "\nNOT HANDED OFF (a buyer who needed a human would not get one):"
            );
            for miss in &self.unhanded {
                let _ = writeln!(
                    out,
                    "  line {:>4}: expected {} got {}  {}",
                    miss.case.line,
                    join(&miss.case.expected),
                    join(&miss.predicted),
                    miss.case.message
                );
            }
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
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

fn join(labels: &BTreeSet<String>) -> String {
    labels.iter().cloned().collect::<Vec<_>>().join(",")
}

/// The labels the shop gives a message, and whether it was handed off.
pub fn predict(shop: &Shop, message: &str) -> (BTreeSet<String>, bool) {
    match decide(shop, &normalize(message)) {
        Decision::Handoff(i) => (
            BTreeSet::from([shop.intents.intent(i).name.to_string()]),
            true,
        ),
        Decision::Answer(list) => (
            list.iter()
                .map(|&i| shop.intents.intent(i).name.to_string())
                .collect(),
            false,
        ),
        Decision::Nothing => (BTreeSet::from([NONE.to_string()]), false),
    }
}

pub fn evaluate(shop: &Shop, cases: &[Case]) -> Report {
    let mut report = Report::default();
    let handoff_intents: BTreeSet<&str> = shop
        .intents
        .intents()
        .iter()
        .filter(|i| i.handoff.is_some())
        .map(|i| &*i.name)
        .collect();
    for case in cases {
        let (predicted, handed_off) = predict(shop, &case.message);
        report.total += 1;
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
