//! Evaluation of a shop's rules on a labelled file: how often the bot understands buyers.
//!
//! A case is one line `label<TAB>message`; the label is an intent name, `none` where nothing
//! should match, or several names joined by commas for a message with several questions.
//! The same `decide` the service uses classifies each message, so the figures are the
//! service's own. Each line is a message of its own, with no answer before it, so short
//! follow-ups (`responder::followup`) play no part: "那新疆呢" alone is `none`. FAQ cases are labelled `faq:<entry id>`; for them the report adds the
//! ranking's top-1 accuracy and MRR@5, and for `none` lines the share answered anyway.
//!
//! Every report also has what the bot did on each line and the real-traffic figures
//! (handoff recall, false handoffs, confident wrong answers, FAQ answers to `none` lines and,
//! for a review corpus, reviews handed off by sentiment) with the targets of
//! `docs/quality.md`. `--corpus DIR` runs every `DIR/labelled-*.tsv` and prints those
//! figures as one table, a row per corpus.
//!
//! `cases` reads the file, `scoring` runs it through the responder and counts, and `report`
//! renders the figures as text tables or JSON.

mod cases;
mod report;
mod scoring;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::shop::{Catalog, Shop};
use crate::tools::RuleFolders;

pub use cases::{Case, FAQ_PREFIX, NONE, Sentiment, parse_cases};
pub use report::{corpus_table, explain};
pub use scoring::{
    Confusion, Counts, EXTRA_HANDOFF_LABELS, FaqFigures, LineResult, Miss, Report, SweepRow,
    Traffic, check_labels, evaluate, evaluate_with, handoff_labels, predict, sweep,
};

/// The flags of `autoresponder eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The labelled file (`label<TAB>message`, with `<TAB>neg` or `<TAB>pos` for a review).
    #[arg(required_unless_present = "corpus")]
    file: Option<PathBuf>,
    /// Instead of one file, run every `DIR/labelled-*.tsv` (from `scripts/corpus labelled`)
    /// and print the real-traffic figures as one table, a row per corpus.
    #[arg(
        long,
        value_name = "DIR",
        num_args = 0..=1,
        default_missing_value = "corpus",
        conflicts_with_all = ["file", "explain", "sweep"]
    )]
    corpus: Option<PathBuf>,
    /// The shop whose rules are evaluated.
    #[arg(long, default_value = "default")]
    shop: String,
    #[command(flatten)]
    rules: RuleFolders,
    /// Exit with an error when accuracy (0 to 1) is below this.
    #[arg(long, default_value_t = 0.0)]
    min_accuracy: f64,
    /// Also try a grid of FAQ confidence rules and print the best, for calibration.
    #[arg(long)]
    sweep: bool,
    /// Print the FAQ's best three entries, with confidence and margin, for every line.
    #[arg(long)]
    explain: bool,
    /// Print one JSON object instead of the tables: accuracy, precision/recall/support per
    /// label, the FAQ figures, the confusions and every miss.
    #[arg(long, conflicts_with_all = ["explain", "sweep"])]
    json: bool,
}

/// `autoresponder eval`: loads the shop, evaluates the file and prints the report (and the
/// rankings or the sweep when asked); fails when accuracy is below `--min-accuracy`.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let (intents, index) = args.rules.folders();
    let catalog = Catalog::load_with_faq(&intents, Some(&index), None)
        .map_err(|e| anyhow::anyhow!("the intent or FAQ files have errors:\n{e}"))?;
    let shop = catalog
        .get(&args.shop)
        .with_context(|| format!("no shop `{}` in {}", args.shop, intents.display()))?;
    if let Some(dir) = &args.corpus {
        return run_corpus(shop, dir, args.json);
    }
    let file = args
        .file
        .as_deref()
        .expect("clap requires a file without --corpus");
    let cases = read_cases(shop, file)?;
    let report = evaluate(shop, &cases);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.render());
    }
    if args.explain {
        println!("\nFAQ ranking per line: label | best (confidence, margin) | 2nd | 3rd");
        for line in explain(shop, &cases) {
            println!("{line}");
        }
    }
    if args.sweep {
        println!(
            "\nFAQ rule sweep (best first): min_confidence single_word_confidence min_margin -> top-1 false-answers"
        );
        for row in sweep(shop, &cases).iter().take(20) {
            println!(
                "  {:.2} {:.2} {:.2} -> {:.2}% {:.2}%",
                row.rule.min_confidence,
                row.rule.single_word_confidence,
                row.rule.min_margin,
                row.served_accuracy * 100.0,
                row.false_answer_rate * 100.0
            );
        }
    }
    if report.accuracy() < args.min_accuracy {
        eprintln!(
            "accuracy {:.2}% is below the required {:.2}%",
            report.accuracy() * 100.0,
            args.min_accuracy * 100.0
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a labelled file and checks its labels against the shop.
fn read_cases(shop: &Shop, file: &Path) -> anyhow::Result<Vec<Case>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let cases = parse_cases(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    check_labels(shop, &cases).map_err(|e| anyhow::anyhow!("{}:\n{e}", file.display()))?;
    Ok(cases)
}

/// `eval --corpus DIR`: every `DIR/labelled-<name>.tsv`, one row each.
fn run_corpus(shop: &Shop, dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let corpus = name.strip_prefix("labelled-")?.strip_suffix(".tsv")?;
            Some((corpus.to_string(), path.clone()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!(
            "no labelled-*.tsv in {}: run `scripts/corpus build` and `scripts/corpus labelled`",
            dir.display()
        );
    }
    let mut rows = Vec::new();
    for (name, path) in files {
        let cases = read_cases(shop, &path)?;
        rows.push((name, evaluate(shop, &cases).traffic));
    }
    if json {
        let object: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(name, t)| (name.clone(), t.to_json()))
            .collect();
        println!("{}", serde_json::to_string_pretty(&object)?);
    } else {
        print!("{}", corpus_table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use serde_json::json;

    use super::scoring::MRR_DEPTH;
    use super::*;
    use crate::shop::{Catalog, Shop};

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
            "traffic",
            "lines",
        ];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
    }

    fn line(expected: &str, got: &str, kind: &str, sentiment: Option<Sentiment>) -> LineResult {
        let set = |s: &str| s.split(',').map(str::to_string).collect();
        LineResult {
            line: 1,
            expected: set(expected),
            predicted: set(got),
            handed_off: kind == "handoff",
            intent_answer: kind == "intent",
            faq_answer: kind == "faq",
            sentiment,
        }
    }

    #[test]
    fn the_traffic_figures_count_handoffs_wrong_answers_and_reviews() {
        let handoffs: BTreeSet<String> = ["after_sale", "complaint", "human", "order_check"]
            .map(String::from)
            .into();
        let neg = Some(Sentiment::Negative);
        let pos = Some(Sentiment::Positive);
        let lines = [
            // Handoff labels: two handed off (one under another handoff intent), two not.
            line("after_sale", "complaint", "handoff", neg),
            line("complaint", "complaint", "handoff", None),
            line("order_check", "bargain", "intent", None),
            line("after_sale", "none", "nothing", neg),
            // The rest: one false handoff, one wrong FAQ answer to `none`, one partial answer
            // (not wrong), one right answer, one wrong intent answer to a positive review.
            line("logistics", "after_sale", "handoff", None),
            line("none", "faq:down_content", "faq", None),
            line("size,stock", "size", "intent", None),
            line("free_shipping", "free_shipping", "intent", None),
            line("none", "gift", "intent", pos),
            line("none", "none", "nothing", pos),
        ];
        let t = Traffic::of(&lines, &handoffs);
        assert_eq!((t.lines, t.correct), (10, 3));
        assert_eq!((t.handed_off, t.handoff_lines), (2, 4));
        assert_eq!((t.false_handoffs, t.other_lines), (1, 6));
        // bargain for order_check, the FAQ entry and gift for `none`.
        assert_eq!(t.confident_wrong, 3);
        assert_eq!((t.none_faq, t.none_answered, t.none_lines), (1, 2, 3));
        assert_eq!((t.negative_handed_off, t.negative), (1, 2));
        assert_eq!((t.positive_handed_off, t.positive), (0, 2));
        let json = t.to_json();
        assert_eq!(
            json["figures"]["handoff_recall"],
            json!({"count": 2, "of": 4, "rate": 0.5, "target": 0.95, "at_least": true,
                   "met": false})
        );
        assert_eq!(json["figures"]["positive_handed_off"]["met"], true);
        let table = corpus_table(&[("a".to_string(), t.clone()), ("b".to_string(), t)]);
        let all = table.lines().find(|l| l.starts_with("all")).unwrap();
        assert!(
            all.contains("4/8 50.0% *") && all.contains("0/4 0.0%"),
            "{table}"
        );
    }

    #[test]
    fn each_line_says_what_the_bot_did_and_reviews_carry_their_sentiment() {
        let shop = shipped_shop();
        let cases = parse_cases(
            "free_shipping\t包邮吗\n\
             complaint\t质量太差了，我要投诉\tneg\n\
             order_check\t包邮吗\n",
        )
        .unwrap();
        check_labels(&shop, &cases).unwrap();
        let report = evaluate(&shop, &cases);
        let flags: Vec<(bool, bool, bool)> = report
            .lines
            .iter()
            .map(|l| (l.handed_off, l.intent_answer, l.faq_answer))
            .collect();
        assert_eq!(
            flags,
            [
                (false, true, false),
                (true, false, false),
                (false, true, false)
            ]
        );
        assert_eq!(report.lines[1].sentiment, Some(Sentiment::Negative));
        let t = &report.traffic;
        assert_eq!((t.handed_off, t.handoff_lines), (1, 2));
        assert_eq!((t.confident_wrong, t.negative_handed_off), (1, 1));
        let json = report.to_json();
        assert_eq!(
            json["lines"][1],
            json!({"line": 2, "expected": "complaint", "got": "complaint", "handed_off": true,
                   "intent_answer": false, "faq_answer": false, "sentiment": "neg"})
        );
        assert!(report.render().contains("negative reviews handed off"));
    }

    #[test]
    fn unknown_labels_and_sentiments_are_errors() {
        let shop = shipped_shop();
        let cases = parse_cases("shiping_time\t几天到\nfaq:nothing_like_it\t几天到\n").unwrap();
        let error = check_labels(&shop, &cases).unwrap_err();
        assert!(
            error.contains("line 1: unknown label `shiping_time`")
                && error.contains("line 2: unknown label `faq:nothing_like_it`"),
            "{error}"
        );
        assert!(parse_cases("none\t好的\tmaybe\n").is_err());
    }
}
