//! The labelled file: one case per line, `label<TAB>message`. A label is an intent name,
//! `none` where nothing should match, `faq:<entry id>` for an FAQ entry, or several of these
//! joined by commas for a message with several questions.

use std::collections::BTreeSet;

pub const NONE: &str = "none";
pub const FAQ_PREFIX: &str = "faq:";

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

/// Labels as the file writes them: comma-joined.
pub(super) fn join(labels: &BTreeSet<String>) -> String {
    labels.iter().cloned().collect::<Vec<_>>().join(",")
}
