//! What the operator reads: the text tables, the same figures as one JSON object, and the
//! FAQ's ranking per line (`--explain`).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::cases::{Case, join};
use super::scoring::{MRR_DEPTH, Miss, Report};
use crate::shop::Shop;

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

impl Report {
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
