//! What the operator reads: the text tables, the same figures as one JSON object, and the
//! FAQ's ranking per line (`--explain`).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::cases::{Case, Sentiment, join};
use super::scoring::{MRR_DEPTH, Miss, Report, Traffic};
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
        let _ = writeln!(out, "\nreal-traffic figures (target in brackets):");
        for (name, value, target) in self.traffic.figures() {
            let _ = writeln!(out, "  {name:<32} {value:<18} ({target})");
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
            "traffic": self.traffic.to_json(),
            "lines": self.lines.iter().map(|l| json!({
                "line": l.line,
                "expected": join(&l.expected),
                "got": join(&l.predicted),
                "handed_off": l.handed_off,
                "intent_answer": l.intent_answer,
                "faq_answer": l.faq_answer,
                "sentiment": l.sentiment.map(|s| match s {
                    Sentiment::Negative => "neg",
                    Sentiment::Positive => "pos",
                }),
            })).collect::<Vec<_>>(),
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

/// One figure's count, base, rate and target: `at_least` for figures that must reach the
/// target, otherwise they must stay at or below it.
struct Figure {
    name: &'static str,
    key: &'static str,
    count: usize,
    of: usize,
    target: f64,
    at_least: bool,
}

impl Figure {
    fn rate(&self) -> Option<f64> {
        (self.of > 0).then(|| self.count as f64 / self.of as f64)
    }

    fn met(&self) -> Option<bool> {
        self.rate().map(|r| {
            if self.at_least {
                r >= self.target
            } else {
                r <= self.target
            }
        })
    }

    fn cell(&self) -> String {
        match self.rate() {
            None => "-".to_string(),
            Some(r) => {
                let mark = if self.met() == Some(false) { " *" } else { "" };
                format!("{}/{} {:.1}%{mark}", self.count, self.of, r * 100.0)
            }
        }
    }

    fn target_text(&self) -> String {
        let sign = if self.at_least { "≥" } else { "≤" };
        format!("{sign} {:.0}%", self.target * 100.0)
    }
}

impl Traffic {
    /// The figures with the targets; the review figures only for a review corpus.
    fn list(&self) -> Vec<Figure> {
        let f = |name, key, count, of, target, at_least| Figure {
            name,
            key,
            count,
            of,
            target,
            at_least,
        };
        let mut list = vec![
            f(
                "handoff recall",
                "handoff_recall",
                self.handed_off,
                self.handoff_lines,
                0.95,
                true,
            ),
            f(
                "false handoffs (other lines)",
                "false_handoffs",
                self.false_handoffs,
                self.other_lines,
                0.05,
                false,
            ),
            f(
                "confident wrong answers",
                "confident_wrong",
                self.confident_wrong,
                self.lines,
                0.05,
                false,
            ),
            f(
                "`none` lines given an FAQ answer",
                "none_faq",
                self.none_faq,
                self.none_lines,
                0.02,
                false,
            ),
        ];
        if self.has_reviews() {
            list.push(f(
                "negative reviews handed off",
                "negative_handed_off",
                self.negative_handed_off,
                self.negative,
                0.70,
                true,
            ));
            list.push(f(
                "positive reviews handed off",
                "positive_handed_off",
                self.positive_handed_off,
                self.positive,
                0.03,
                false,
            ));
        }
        list
    }

    /// (name, value, target) rows for the text report; a `*` marks a missed target.
    pub fn figures(&self) -> Vec<(&'static str, String, String)> {
        self.list()
            .into_iter()
            .map(|f| (f.name, f.cell(), f.target_text()))
            .collect()
    }

    /// Every count, and each figure as `{count, of, rate, target, met}` (`rate` and `met`
    /// are `null` when no line counts towards it).
    pub fn to_json(&self) -> Value {
        let mut figures = serde_json::Map::new();
        for f in self.list() {
            let value = json!({
                "count": f.count,
                "of": f.of,
                "rate": f.rate(),
                "target": f.target,
                "at_least": f.at_least,
                "met": f.met(),
            });
            figures.insert(f.key.to_string(), value);
        }
        json!({
            "lines": self.lines,
            "correct": self.correct,
            "none_lines": self.none_lines,
            "none_answered": self.none_answered,
            "figures": figures,
        })
    }
}

/// The `--corpus` table: a row per corpus (and a total row when there are several), a column
/// per figure, then the targets; a `*` marks a figure that misses its target.
pub fn corpus_table(rows: &[(String, Traffic)]) -> String {
    let mut rows: Vec<(String, Traffic)> = rows.to_vec();
    if rows.len() > 1 {
        let mut all = Traffic::default();
        for (_, t) in &rows {
            all.add(t);
        }
        rows.push(("all".to_string(), all));
    }
    let headers = [
        "corpus",
        "lines",
        "exactly right",
        "handoff recall",
        "false handoffs",
        "confident wrong",
        "none→FAQ",
        "neg handed off",
        "pos handed off",
    ];
    let mut table: Vec<Vec<String>> = vec![headers.iter().map(|h| h.to_string()).collect()];
    let review_cells = |t: &Traffic| -> [String; 2] {
        let f = t.list();
        let cell = |key: &str| {
            f.iter()
                .find(|f| f.key == key)
                .map_or("-".to_string(), Figure::cell)
        };
        [cell("negative_handed_off"), cell("positive_handed_off")]
    };
    for (name, t) in &rows {
        let f = t.list();
        let exact = Figure {
            name: "",
            key: "",
            count: t.correct,
            of: t.lines,
            target: 0.0,
            at_least: true,
        };
        let mut row = vec![name.clone(), t.lines.to_string(), exact.cell()];
        row.extend(f.iter().take(4).map(Figure::cell));
        row.extend(review_cells(t));
        table.push(row);
    }
    let reference = Traffic {
        negative: 1,
        positive: 1,
        ..Traffic::default()
    };
    let mut targets = vec!["target".to_string(), String::new(), String::new()];
    targets.extend(reference.list().iter().map(Figure::target_text));
    table.push(targets);
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                let pad = w - cell.chars().count();
                if c == 0 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    let _ = writeln!(
        out,
        "(* misses its target; exactly right is eval's accuracy, no target)"
    );
    out
}
