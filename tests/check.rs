//! `autoresponder check` from the outside: one fixture shop per rule under
//! `tests/fixtures/check/<case>/`, each finding asserted with its file, line and rule id in
//! both output formats, the exit codes, and the shipped shop.

use std::collections::BTreeSet;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

const FIXTURES: &str = "tests/fixtures/check";

/// The command, run from the project folder so that printed paths are relative to it.
fn check_command() -> Command {
    let mut command = assert_cmd::cargo::cargo_bin_cmd!("autoresponder");
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG");
    command
}

/// One finding as asserted: (file under the case folder, line, severity, rule id).
type Expected<'a> = (&'a str, usize, &'a str, &'a str);

/// (file, line, severity, rule) of every line of human output, the summary line apart.
fn parse_human(stdout: &str) -> (BTreeSet<(String, usize, String, String)>, String) {
    let mut lines: Vec<&str> = stdout.lines().collect();
    let summary = lines.pop().expect("a summary line").to_string();
    let findings = lines
        .into_iter()
        .map(|line| {
            let (place, rest) = line.split_once(": ").expect("file:line: …");
            let (file, number) = place.rsplit_once(':').expect("file:line");
            let (severity, rest) = rest.split_once('[').expect("severity[rule]");
            let (rule, rest) = rest.split_once("]: ").expect("[rule]: message");
            assert!(rest.contains(" (hint: "), "no hint in {line:?}");
            (
                file.to_string(),
                number.parse().expect("a line number"),
                severity.to_string(),
                rule.to_string(),
            )
        })
        .collect();
    (findings, summary)
}

fn expected_set(case: &str, expected: &[Expected]) -> BTreeSet<(String, usize, String, String)> {
    expected
        .iter()
        .map(|(file, line, severity, rule)| {
            (
                format!("{FIXTURES}/{case}/{file}"),
                *line,
                severity.to_string(),
                rule.to_string(),
            )
        })
        .collect()
}

/// Runs `check` on a fixture in both formats and asserts exactly the expected findings and
/// the exit code.
fn check_case(case: &str, expected: &[Expected], exit_code: i32) {
    let dir = format!("{FIXTURES}/{case}");
    let output = check_command().args(["check", &dir]).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(exit_code), "{stdout}");
    let (found, summary) = parse_human(&stdout);
    assert_eq!(found, expected_set(case, expected), "{stdout}");
    let errors = expected.iter().filter(|e| e.2 == "error").count();
    let warnings = expected.len() - errors;
    assert!(
        summary.starts_with(&format!(
            "{errors} error{}, {warnings} warning{}",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        )),
        "{summary}"
    );

    let output = check_command()
        .args(["check", &dir, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(exit_code));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["errors"], errors);
    assert_eq!(json["warnings"], warnings);
    let findings = json["findings"].as_array().unwrap();
    let found: BTreeSet<_> = findings
        .iter()
        .map(|f| {
            for key in ["message", "hint"] {
                assert!(!f[key].as_str().unwrap().is_empty(), "{f}");
            }
            assert!(f["column"].as_u64().is_some(), "{f}");
            (
                f["file"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap() as usize,
                f["severity"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(found, expected_set(case, expected), "{json:#}");
}

#[test]
fn a_clean_shop_has_nothing_to_report_even_when_strict() {
    check_case("clean", &[], 0);
    check_command()
        .args(["check", "--strict", &format!("{FIXTURES}/clean")])
        .assert()
        .success()
        .stdout("0 errors, 0 warnings in 1 shop\n");
}

#[test]
fn loader_errors_fail_and_style_is_still_checked() {
    check_case(
        "load",
        &[
            ("intents/shop/presale.toml", 4, "error", "load"),
            ("intents/shop/presale.toml", 7, "error", "load"),
            (
                "intents/shop/presale.toml",
                8,
                "warning",
                "forbidden-phrase",
            ),
            ("intents/shop/stock.toml", 4, "error", "load"),
        ],
        1,
    );
    // The loader's column and message reach the JSON unchanged.
    let output = check_command()
        .args(["check", "--format", "json", &format!("{FIXTURES}/load")])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let typo = &json["findings"][0];
    assert_eq!(typo["line"], 4);
    assert_eq!(typo["column"], 29);
    assert!(
        typo["message"].as_str().unwrap().contains("`{dyas}`"),
        "{typo}"
    );
}

#[test]
fn the_same_keyword_in_two_intents() {
    check_case(
        "duplicate-keyword",
        &[(
            "intents/shop/presale.toml",
            8,
            "warning",
            "duplicate-keyword",
        )],
        0,
    );
}

#[test]
fn keywords_that_can_never_win() {
    // "还有吗" holds its own intent's exclusion "有吗"; "破洞" is handed off by the
    // complaint lexicon even as a question. "退货" inside "七天无理由退货" is fine.
    check_case(
        "shadowed-keyword",
        &[
            (
                "intents/shop/presale.toml",
                3,
                "warning",
                "shadowed-keyword",
            ),
            (
                "intents/shop/presale.toml",
                9,
                "warning",
                "shadowed-keyword",
            ),
        ],
        0,
    );
}

#[test]
fn faq_questions_an_intent_takes_first() {
    check_case(
        "faq-shadowed-by-intent",
        &[
            (
                "index/shop/invoices.toml",
                3,
                "warning",
                "faq-shadowed-by-intent",
            ),
            (
                "index/shop/bulk.jsonl",
                2,
                "warning",
                "faq-shadowed-by-intent",
            ),
        ],
        0,
    );
}

#[test]
fn standalone_words_that_hide_nothing() {
    check_case(
        "word-hides-nothing",
        &[
            (
                "intents/shop/shop.toml",
                40,
                "warning",
                "word-hides-nothing",
            ),
            (
                "intents/shop/shop.toml",
                41,
                "warning",
                "word-hides-nothing",
            ),
        ],
        0,
    );
}

#[test]
fn standalone_words_that_hide_their_own_intents_keyword() {
    check_case(
        "word-hides-own-keyword",
        &[(
            "intents/shop/shop.toml",
            38,
            "warning",
            "word-hides-own-keyword",
        )],
        0,
    );
}

#[test]
fn faq_entries_that_read_alike() {
    check_case(
        "faq-near-duplicate",
        &[
            ("index/shop/care.toml", 14, "warning", "faq-near-duplicate"),
            ("index/shop/care.toml", 20, "warning", "faq-near-duplicate"),
        ],
        0,
    );
}

#[test]
fn examples_taken_by_another_intent() {
    check_case(
        "example-taken",
        &[
            ("intents/shop/intents.toml", 9, "warning", "example-taken"),
            ("intents/shop/intents.toml", 11, "warning", "example-taken"),
        ],
        0,
    );
}

#[test]
fn examples_too_weak_to_answer() {
    check_case(
        "example-too-weak",
        &[(
            "intents/shop/intents.toml",
            8,
            "warning",
            "example-too-weak",
        )],
        0,
    );
}

#[test]
fn forbidden_phrases_in_replies_and_faq_answers() {
    check_case(
        "forbidden-phrase",
        &[
            (
                "intents/shop/presale.toml",
                12,
                "warning",
                "forbidden-phrase",
            ),
            ("index/shop/care.toml", 4, "warning", "forbidden-phrase"),
        ],
        0,
    );
}

#[test]
fn one_character_replies() {
    check_case(
        "one-character-reply",
        &[(
            "intents/shop/presale.toml",
            7,
            "warning",
            "one-character-reply",
        )],
        0,
    );
}

#[test]
fn too_many_qin() {
    check_case(
        "too-many-qin",
        &[("intents/shop/presale.toml", 11, "warning", "too-many-qin")],
        0,
    );
}

#[test]
fn exact_dates_in_replies_and_dispatch_sentences() {
    check_case(
        "date-promise",
        &[
            ("intents/shop/presale.toml", 12, "warning", "date-promise"),
            ("intents/shop/shop.toml", 17, "warning", "date-promise"),
        ],
        0,
    );
}

#[test]
fn gifts_outside_the_gift_intent_and_the_concession() {
    check_case(
        "gift-promise",
        &[
            ("intents/shop/presale.toml", 10, "warning", "gift-promise"),
            ("intents/shop/shop.toml", 29, "warning", "gift-promise"),
        ],
        0,
    );
}

#[test]
fn wechat_ids_and_phone_numbers() {
    check_case(
        "off-platform-contact",
        &[
            (
                "intents/shop/presale.toml",
                14,
                "warning",
                "off-platform-contact",
            ),
            (
                "intents/shop/presale.toml",
                20,
                "warning",
                "off-platform-contact",
            ),
        ],
        0,
    );
}

#[test]
fn long_replies_count_variables() {
    check_case(
        "long-reply",
        &[("intents/shop/presale.toml", 12, "warning", "long-reply")],
        0,
    );
}

#[test]
fn expired_answers_are_reported_where_their_end_is_written() {
    check_case(
        "expired-answer",
        &[
            (
                "index/shop/promotions.jsonl",
                1,
                "warning",
                "expired-answer",
            ),
            ("intents/shop/presale.toml", 11, "warning", "expired-answer"),
        ],
        0,
    );
}

#[test]
fn warnings_fail_only_when_strict() {
    let dir = format!("{FIXTURES}/one-character-reply");
    check_command().args(["check", &dir]).assert().code(0);
    check_command()
        .args(["check", "--strict", &dir])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("warning[one-character-reply]"));
    check_command()
        .args(["check", &format!("{FIXTURES}/load")])
        .assert()
        .code(1);
}

#[test]
fn intents_and_index_folders_can_be_named() {
    let case = format!("{FIXTURES}/faq-shadowed-by-intent");
    check_command()
        .args([
            "check",
            "--intents",
            &format!("{case}/intents"),
            "--index",
            &format!("{case}/index"),
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!(
            "{case}/index/shop/invoices.toml:3: warning[faq-shadowed-by-intent]"
        )));
    // Without the index, the FAQ is empty and nothing is shadowed.
    check_command()
        .args([
            "check",
            "--intents",
            &format!("{case}/intents"),
            "--index",
            "/nonexistent",
        ])
        .assert()
        .code(0)
        .stdout("0 errors, 0 warnings in 1 shop\n");
}

#[test]
fn a_folder_without_shops_is_an_error() {
    check_command()
        .args(["check", "/nonexistent"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "/nonexistent/intents:0: error[load]",
        ));
}

#[test]
fn every_rule_has_a_fixture() {
    for rule in autoresponder::tools::check::Rule::ALL {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(FIXTURES)
            .join(rule.id());
        assert!(
            dir.join("intents/shop/shop.toml").is_file(),
            "{}",
            rule.id()
        );
    }
}

#[test]
fn the_shipped_shop_has_no_errors() {
    let output = check_command()
        .args(["check", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["errors"], 0, "{json:#}");
    for finding in json["findings"].as_array().unwrap() {
        assert!(finding["line"].as_u64().unwrap() > 0, "{finding}");
        let file = finding["file"].as_str().unwrap();
        assert!(
            file.starts_with("intents/default/") || file.starts_with("index/default/"),
            "{finding}"
        );
    }
}
