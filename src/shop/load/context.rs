//! What validating every file kind of a shop shares: the mistakes found so far, the
//! canonical form every text the rules match takes, and the values many files write (words
//! to match, instants).

use chrono::DateTime;

use crate::normalize::{Synonyms, canonical};
use crate::shop::files::Text;
use crate::source::{LoadError, SourceFile};

/// Collects errors while the pieces of a shop are validated one by one.
pub(super) struct Context<'e> {
    pub(super) errors: &'e mut Vec<LoadError>,
    /// Applied to every text the rules match against, as to buyer messages.
    pub(super) synonyms: Option<Synonyms>,
}

impl Context<'_> {
    /// The form a text takes for matching: normalised, then rewritten by the synonyms.
    pub(super) fn canonical(&self, text: &str) -> String {
        canonical(text, self.synonyms.as_ref())
    }

    pub(super) fn normalized_all(&mut self, src: &SourceFile, texts: &[Text]) -> Vec<String> {
        texts
            .iter()
            .filter_map(|t| self.normalized(src, t))
            .collect()
    }

    pub(super) fn normalized(&mut self, src: &SourceFile, text: &Text) -> Option<String> {
        let n = self.canonical(text.get_ref());
        if n.is_empty() {
            self.errors.push(src.error_at(
                text.span(),
                format!(
                    "\"{}\" is empty once punctuation and emoji are removed",
                    text.get_ref()
                ),
            ));
            return None;
        }
        Some(n)
    }

    pub(super) fn instant(
        &mut self,
        src: &SourceFile,
        text: &Text,
    ) -> Option<DateTime<chrono::Utc>> {
        match DateTime::parse_from_rfc3339(text.get_ref()) {
            Ok(t) => Some(t.to_utc()),
            Err(e) => {
                self.errors.push(src.error_at(
                    text.span(),
                    format!("expected a time like \"2026-11-11T00:00:00+08:00\": {e}"),
                ));
                None
            }
        }
    }
}
