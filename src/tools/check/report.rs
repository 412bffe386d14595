//! What `autoresponder check` found, and the two ways it is printed: one line per finding for
//! people (`file:line: severity[rule]: message (hint: …)`) and one JSON object for tools.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::source::LoadError;

/// How bad a finding is: errors keep the shop from loading, warnings are what buyers would
/// notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// Every rule the checker applies; the id is what operators see and what tools filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// Whatever the shop loader rejects (syntax, unknown keys, unknown variables …).
    Load,
    DuplicateKeyword,
    ShadowedKeyword,
    FaqShadowedByIntent,
    FaqNearDuplicate,
    WordHidesNothing,
    WordHidesOwnKeyword,
    ExampleTaken,
    ExampleTooWeak,
    ForbiddenPhrase,
    OneCharacterReply,
    TooManyQin,
    DatePromise,
    GiftPromise,
    OffPlatformContact,
    LongReply,
    ExpiredAnswer,
}

impl Rule {
    pub const ALL: [Rule; 17] = [
        Rule::Load,
        Rule::DuplicateKeyword,
        Rule::ShadowedKeyword,
        Rule::FaqShadowedByIntent,
        Rule::FaqNearDuplicate,
        Rule::WordHidesNothing,
        Rule::WordHidesOwnKeyword,
        Rule::ExampleTaken,
        Rule::ExampleTooWeak,
        Rule::ForbiddenPhrase,
        Rule::OneCharacterReply,
        Rule::TooManyQin,
        Rule::DatePromise,
        Rule::GiftPromise,
        Rule::OffPlatformContact,
        Rule::LongReply,
        Rule::ExpiredAnswer,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Rule::Load => "load",
            Rule::DuplicateKeyword => "duplicate-keyword",
            Rule::ShadowedKeyword => "shadowed-keyword",
            Rule::FaqShadowedByIntent => "faq-shadowed-by-intent",
            Rule::FaqNearDuplicate => "faq-near-duplicate",
            Rule::WordHidesNothing => "word-hides-nothing",
            Rule::WordHidesOwnKeyword => "word-hides-own-keyword",
            Rule::ExampleTaken => "example-taken",
            Rule::ExampleTooWeak => "example-too-weak",
            Rule::ForbiddenPhrase => "forbidden-phrase",
            Rule::OneCharacterReply => "one-character-reply",
            Rule::TooManyQin => "too-many-qin",
            Rule::DatePromise => "date-promise",
            Rule::GiftPromise => "gift-promise",
            Rule::OffPlatformContact => "off-platform-contact",
            Rule::LongReply => "long-reply",
            Rule::ExpiredAnswer => "expired-answer",
        }
    }

    /// Only what the loader rejects is an error: everything else still loads and answers.
    pub fn severity(self) -> Severity {
        match self {
            Rule::Load => Severity::Error,
            _ => Severity::Warning,
        }
    }
}

/// Where a finding points: a file and, when known, a 1-based line and column (0 = unknown).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: &Path, line: usize, column: usize) -> Location {
        Location {
            file: file.to_path_buf(),
            line,
            column,
        }
    }
}

/// One thing an operator should fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub at: Location,
    pub rule: Rule,
    pub message: String,
    /// One line saying how to fix it.
    pub hint: String,
}

impl Finding {
    pub fn new(
        rule: Rule,
        at: Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Finding {
        Finding {
            severity: rule.severity(),
            at,
            rule,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A mistake the shop loader reported, kept with its file, line and column.
    pub fn from_load_error(error: &LoadError) -> Finding {
        Finding::new(
            Rule::Load,
            Location::new(&error.file, error.line, error.column),
            error.message.clone(),
            load_hint(&error.message),
        )
    }
}

/// A fix hint for a loader message; the loader's messages already say what is wrong, the
/// hint says what to do.
fn load_hint(message: &str) -> &'static str {
    let has = |needle: &str| message.contains(needle);
    if has("unknown template variable") || has("is not closed") || has("without `{`") {
        "use one of the listed variables; write {{ and }} for literal braces"
    } else if has("unknown field") {
        "check the key's spelling: every table rejects unknown keys (intents/README.md)"
    } else if has("missing field") {
        "add the missing key (intents/README.md lists every key)"
    } else if has("twice") {
        "give each intent or entry its own name"
    } else if has("no keywords") {
        "add at least one keyword, or delete the intent"
    } else if has("no replies") || has("needs at least one reply") {
        "add `replies`, or use `ladder = true`, `template` or `handoff`"
    } else if has("invalid type") {
        "give the key the kind of value it needs: a list in [ ], a text in quotes, a number"
    } else if has("expected") || has("invalid") || has("unclosed") || has("missing comma") {
        "check the quotes, commas and brackets around this position (TOML syntax)"
    } else if has("cannot read") || has("cannot list") || has("no shop found") {
        "check the folder: each shop is intents/<shop>/ with a shop.toml"
    } else {
        "fix this line; the shop does not load until it is fixed"
    }
}

/// Everything one run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// How many shops were looked at.
    pub shops: usize,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    severity: Severity,
    file: String,
    line: usize,
    column: usize,
    rule: &'static str,
    message: &'a str,
    hint: &'a str,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    findings: Vec<JsonFinding<'a>>,
    errors: usize,
    warnings: usize,
}

impl Report {
    pub fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// Orders findings by file, line and column, so that output reads like the files do and
    /// does not depend on the order the checks ran in; exact repeats are dropped.
    pub fn sort(&mut self) {
        self.findings
            .sort_by(|a, b| (&a.at, a.rule, &a.message).cmp(&(&b.at, b.rule, &b.message)));
        self.findings.dedup();
    }

    /// Whether the run should fail: on errors, and with `strict` on warnings too.
    pub fn fails(&self, strict: bool) -> bool {
        self.errors() > 0 || (strict && self.warnings() > 0)
    }

    /// `file:line: severity[rule]: message (hint: …)` per finding, then a summary line.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let _ = writeln!(
                out,
                "{}:{}: {}[{}]: {} (hint: {})",
                f.at.file.display(),
                f.at.line,
                f.severity.as_str(),
                f.rule.id(),
                f.message,
                f.hint
            );
        }
        let _ = writeln!(
            out,
            "{} error{}, {} warning{} in {} shop{}",
            self.errors(),
            plural(self.errors()),
            self.warnings(),
            plural(self.warnings()),
            self.shops,
            plural(self.shops)
        );
        out
    }

    /// One JSON object: `{"findings": [...], "errors": n, "warnings": n}`.
    pub fn render_json(&self) -> String {
        let report = JsonReport {
            findings: self
                .findings
                .iter()
                .map(|f| JsonFinding {
                    severity: f.severity,
                    file: f.at.file.display().to_string(),
                    line: f.at.line,
                    column: f.at.column,
                    rule: f.rule.id(),
                    message: &f.message,
                    hint: &f.hint,
                })
                .collect(),
            errors: self.errors(),
            warnings: self.warnings(),
        };
        serde_json::to_string_pretty(&report).expect("a report always serialises")
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut report = Report {
            findings: Vec::new(),
            shops: 1,
        };
        report.push(Finding::new(
            Rule::LongReply,
            Location::new(Path::new("intents/a/b.toml"), 9, 5),
            "too long",
            "shorten it",
        ));
        report.push(Finding::from_load_error(&LoadError {
            file: PathBuf::from("intents/a/b.toml"),
            line: 3,
            column: 7,
            message: "unknown field `keyword`".into(),
        }));
        report.sort();
        report
    }

    #[test]
    fn human_output_is_sorted_by_line_and_ends_with_a_summary() {
        let text = report().render_human();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "intents/a/b.toml:3: error[load]: unknown field `keyword` (hint: check the key's spelling: every table rejects unknown keys (intents/README.md))"
        );
        assert_eq!(
            lines[1],
            "intents/a/b.toml:9: warning[long-reply]: too long (hint: shorten it)"
        );
        assert_eq!(lines[2], "1 error, 1 warning in 1 shop");
    }

    #[test]
    fn json_output_counts_and_keeps_columns() {
        let report = report();
        let value: serde_json::Value = serde_json::from_str(&report.render_json()).unwrap();
        assert_eq!(value["errors"], 1);
        assert_eq!(value["warnings"], 1);
        assert_eq!(value["findings"][0]["column"], 7);
        assert_eq!(value["findings"][1]["rule"], "long-reply");
        assert_eq!(value["findings"][1]["severity"], "warning");
        assert!(report.fails(false));
    }

    #[test]
    fn warnings_fail_only_when_strict() {
        let mut report = report();
        report.findings.retain(|f| f.severity == Severity::Warning);
        assert!(!report.fails(false));
        assert!(report.fails(true));
    }
}
