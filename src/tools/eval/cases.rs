//! The labelled file: one case per line, `label<TAB>message`. A label is an intent name,
//! `none` where nothing should match, `faq:<entry id>` for an FAQ entry, or several of these
//! joined by commas for a message with several questions. A review corpus adds a third
//! column, the review's sentiment: `label<TAB>message<TAB>neg` or `…<TAB>pos`.

use std::collections::BTreeSet;

pub const NONE: &str = "none";
pub const FAQ_PREFIX: &str = "faq:";

/// The sentiment a review corpus gave a line (its third column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sentiment {
    Negative,
    Positive,
}

impl Sentiment {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "neg" => Some(Self::Negative),
            "pos" => Some(Self::Positive),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// 1-based line in the file, for pointing at misses.
    pub line: usize,
    pub expected: BTreeSet<String>,
    pub message: String,
    /// Set for the lines of a review corpus.
    pub sentiment: Option<Sentiment>,
}

/// Reads cases; blank lines and lines starting with `#` are skipped.
pub fn parse_cases(text: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((label, rest)) = line.split_once('\t') else {
            return Err(format!("line {}: expected `label<TAB>message`", index + 1));
        };
        let (message, sentiment) = match rest.split_once('\t') {
            None => (rest, None),
            Some((message, column)) => match Sentiment::parse(column.trim()) {
                Some(s) => (message, Some(s)),
                None => {
                    return Err(format!(
                        "line {}: the third column is the sentiment, `neg` or `pos`, not `{column}`",
                        index + 1
                    ));
                }
            },
        };
        cases.push(Case {
            line: index + 1,
            expected: label.split(',').map(|l| l.trim().to_string()).collect(),
            message: message.to_string(),
            sentiment,
        });
    }
    Ok(cases)
}

/// Labels as the file writes them: comma-joined.
pub(super) fn join(labels: &BTreeSet<String>) -> String {
    labels.iter().cloned().collect::<Vec<_>>().join(",")
}
