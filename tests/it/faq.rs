//! The FAQ over the wire: answers with `kind: faq`, honest fallbacks, and the operators'
//! report of unanswered questions.

use autoresponder::config::Limits;
use autoresponder::faq::load_entries;
use autoresponder::shop::Catalog;
use autoresponder::tools::eval::{FAQ_PREFIX, evaluate, parse_cases};

use crate::helpers::{TestApp, repo_path};

fn catalog() -> Catalog {
    Catalog::load_with_faq(&repo_path("intents"), Some(&repo_path("index")), None)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn an_faq_question_gets_its_entry_and_an_unknown_one_a_fallback_that_is_reported() {
    // This buyer asks a dozen questions in a row; the flood limit is not what is tested here.
    let app = TestApp::start_with(Limits {
        message_burst: 1000,
        ..Limits::default()
    })
    .await;
    // Every shipped entry's own question, asked over the wire, gets that entry.
    let entries = load_entries(&repo_path("index/default")).unwrap();
    assert!(entries.len() >= 80, "only {} FAQ entries", entries.len());
    let catalog = catalog();
    let shop = catalog.get("default").unwrap();
    let mut buyer = app.buyer("faq-buyer").await.welcomed().await;
    let mut checked = 0;
    for entry in entries.iter().step_by(9) {
        // Skip questions a keyword intent answers first; those are the intents' job.
        let decided = autoresponder::tools::eval::predict(
            shop,
            &entry.question,
            shop.faq.as_ref().map(|f| f.rule()),
        )
        .0;
        if decided != std::collections::BTreeSet::from([format!("{FAQ_PREFIX}{}", entry.id)]) {
            continue;
        }
        let replies = buyer.ask(&entry.question, &entry.id, "faq").await;
        let reply = replies.last().unwrap();
        assert_eq!(reply["intent"], entry.id.as_str(), "{}", entry.question);
        assert!(
            !reply["text"].as_str().unwrap().contains('{'),
            "rendered: {reply}"
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} entries checked");

    // Under two ids: the same id and text again would be a resend, counted once.
    for id in ["unknown-1", "unknown-2"] {
        let replies = buyer.ask("我想开网店应该怎么做", id, "fallback").await;
        assert_eq!(replies.last().unwrap()["kind"], "fallback");
    }
    let counted: Vec<i64> = app.query(
        "SELECT count FROM unmatched WHERE shop = 'default' AND text = '我想开网店应该怎么做'",
    );
    assert_eq!(counted, [2]);
    let database = app.database.clone();
    let _dir = app.shutdown().await;

    // The operators' command lists it.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_autoresponder"))
        .args(["unmatched", "--shop", "default", "--database"])
        .arg(&database)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let listing = String::from_utf8(output.stdout).unwrap();
    let line = listing
        .lines()
        .find(|l| l.contains("我想开网店应该怎么做"))
        .unwrap_or_else(|| panic!("not listed:\n{listing}"));
    assert!(line.trim_start().starts_with('2'), "{line}");
}

#[test]
fn the_default_faq_answers_paraphrases_and_declines_what_it_does_not_know() {
    let catalog = catalog();
    let shop = catalog.get("default").unwrap();
    let text = std::fs::read_to_string(repo_path("tests/cases/faq.tsv")).unwrap();
    let cases = parse_cases(&text).unwrap();
    let faq_cases = cases
        .iter()
        .filter(|c| c.expected.iter().any(|l| l.starts_with(FAQ_PREFIX)))
        .count();
    let none_cases = cases.iter().filter(|c| c.expected.contains("none")).count();
    assert!(faq_cases >= 150, "only {faq_cases} paraphrased questions");
    assert!(none_cases >= 50, "only {none_cases} out-of-scope lines");

    // Paraphrases, not copies: no case is word for word an entry's question or alternative.
    let entries = load_entries(&repo_path("index/default")).unwrap();
    let phrasings: std::collections::HashSet<String> = entries
        .iter()
        .flat_map(|e| std::iter::once(&e.question).chain(&e.alternatives))
        .map(|q| shop.canonical(q))
        .collect();
    for case in &cases {
        assert!(
            !phrasings.contains(&shop.canonical(&case.message)),
            "line {} is copied from the FAQ: {}",
            case.line,
            case.message
        );
    }

    let report = evaluate(shop, &cases);
    let faq = &report.faq;
    assert!(faq.served_accuracy() >= 0.90, "{}", report.render());
    assert!(faq.false_answer_rate() <= 0.05, "{}", report.render());
}

/// Copies the shipped shop into a temporary folder, letting the test edit one file.
fn shop_copy(edit: impl FnOnce(&std::path::Path)) -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("intents/default", "intents/default"),
        ("index/default", "index/default"),
    ] {
        let target = dir.path().join(to);
        std::fs::create_dir_all(&target).unwrap();
        for file in std::fs::read_dir(repo_path(from)).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, target.join(file.file_name().unwrap())).unwrap();
        }
    }
    edit(dir.path());
    let catalog = Catalog::load_with_faq(
        &dir.path().join("intents"),
        Some(&dir.path().join("index")),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (dir, catalog)
}

#[test]
fn an_intent_that_defers_to_the_faq_gives_way_to_a_confident_specific_answer() {
    let shipped = catalog();
    let shop = shipped.get("default").unwrap();
    let rule = shop.faq.as_ref().map(|f| f.rule());
    // FAQ entries whose own question the generic `invoice` intent takes when the FAQ is not
    // asked.
    let entries = load_entries(&repo_path("index/default")).unwrap();
    let shadowed: Vec<_> = entries
        .iter()
        .filter(|e| {
            autoresponder::tools::eval::predict(shop, &e.question, None)
                .0
                .contains("invoice")
        })
        .collect();
    assert!(
        !shadowed.is_empty(),
        "no FAQ question is answered by the invoice intent"
    );

    let (_dir, deferring) = shop_copy(|root| {
        let path = root.join("intents/default/presale.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replacen(
            "name = \"invoice\"",
            "name = \"invoice\"\ndefer_to_faq = true",
            1,
        );
        assert_ne!(text, edited);
        std::fs::write(path, edited).unwrap();
    });
    let shop = deferring.get("default").unwrap();
    for entry in shadowed {
        let (labels, _) = autoresponder::tools::eval::predict(shop, &entry.question, rule);
        assert!(
            labels.contains(&format!("{FAQ_PREFIX}{}", entry.id)) && !labels.contains("invoice"),
            "{} → {labels:?}",
            entry.question
        );
    }
    // A question the FAQ has no confident answer for still gets the intent's reply.
    let (labels, _) = autoresponder::tools::eval::predict(shop, "发票", rule);
    assert!(labels.contains("invoice"), "{labels:?}");
}

#[test]
fn synonyms_apply_to_messages_keywords_and_faq_alike() {
    let shipped = catalog();
    let shop = shipped.get("default").unwrap();
    let rule = shop.faq.as_ref().map(|f| f.rule());
    let (labels, _) = autoresponder::tools::eval::predict(shop, "能开发漂吗", rule);
    assert!(labels.contains("invoice"), "{labels:?}");
    // Without the table the typo is not understood: the rewrite is what makes it work.
    let (_dir, plain) = shop_copy(|root| {
        std::fs::remove_file(root.join("intents/default/synonyms.toml")).unwrap();
    });
    let shop = plain.get("default").unwrap();
    let (labels, _) = autoresponder::tools::eval::predict(shop, "能开发漂吗", rule);
    assert!(!labels.contains("invoice"), "{labels:?}");
}

#[test]
fn an_faq_built_on_disk_answers_like_one_in_ram() {
    let dir = tempfile::tempdir().unwrap();
    let on_disk = Catalog::load_with_faq(
        &repo_path("intents"),
        Some(&repo_path("index")),
        Some(dir.path()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        dir.path().join("default/meta.json").is_file(),
        "the index is in files"
    );
    let in_ram = catalog();
    let text = std::fs::read_to_string(repo_path("tests/cases/faq.tsv")).unwrap();
    let cases = parse_cases(&text).unwrap();
    let disk_report = evaluate(on_disk.get("default").unwrap(), &cases);
    let ram_report = evaluate(in_ram.get("default").unwrap(), &cases);
    assert_eq!(disk_report.faq, ram_report.faq);
}
