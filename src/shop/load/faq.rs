//! The shop's FAQ, `index/<shop>/`: its entries checked (ids, answer templates, validity,
//! question texts in canonical form) and built into a [`FaqIndex`] with the rule of `[faq]`
//! in `shop.toml`.

use std::sync::Arc;

use chrono::DateTime;

use super::FaqSource;
use super::context::Context;
use crate::faq::{FaqEntry, FaqIndex, FaqRule, load_entries};
use crate::shop::files::FaqRuleFile;
use crate::shop::folder::file_name;
use crate::source::LoadError;
use crate::template::{Template, Validity};

/// The answer-or-fall-back rule: the defaults, with what `[faq]` overrides.
pub(super) fn faq_rule(file: &FaqRuleFile) -> FaqRule {
    let default = FaqRule::default();
    FaqRule {
        min_confidence: file.min_confidence.unwrap_or(default.min_confidence),
        single_word_confidence: file
            .single_word_confidence
            .unwrap_or(default.single_word_confidence),
        min_margin: file.min_margin.unwrap_or(default.min_margin),
        min_chars: file.min_chars.unwrap_or(default.min_chars),
        statement_words: file.statement_words.unwrap_or(default.statement_words),
        question_words: file.question_words.unwrap_or(default.question_words),
    }
}

/// A shop's FAQ as loaded.
pub(super) struct LoadedFaq {
    pub index: FaqIndex,
    /// Each entry's questions in canonical form.
    pub questions: Vec<Vec<String>>,
    /// The name of the file each entry is written in.
    pub origins: Vec<Arc<str>>,
}

impl Context<'_> {
    /// The shop's FAQ; `None` when it has no FAQ or when a mistake was found.
    pub(super) fn faq(
        &mut self,
        shop: &str,
        source: FaqSource,
        rule: FaqRule,
    ) -> Option<LoadedFaq> {
        let folder = source.folder?;
        let specs = match load_entries(folder) {
            Ok(specs) => specs,
            Err(mut e) => {
                self.errors.append(&mut e);
                return None;
            }
        };
        if specs.is_empty() {
            return None;
        }
        let before = self.errors.len();
        let mut entries = Vec::with_capacity(specs.len());
        let mut phrasings = Vec::with_capacity(specs.len());
        let mut answers = Vec::with_capacity(specs.len());
        let mut ids = std::collections::HashSet::with_capacity(specs.len());
        let mut origins: Vec<Arc<str>> = Vec::with_capacity(specs.len());
        for spec in specs {
            let at = |message: String| LoadError {
                file: spec.file.clone(),
                line: spec.line,
                column: 0,
                message,
            };
            if spec.id.is_empty()
                || !spec
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                self.errors.push(at(format!(
                    "FAQ id \"{}\" must be ASCII letters, digits and _",
                    spec.id
                )));
            } else if !ids.insert(spec.id.clone()) {
                self.errors.push(at(format!(
                    "FAQ id \"{}\" is used twice in this shop",
                    spec.id
                )));
            }
            let mut validity = Validity::default();
            for (key, text, slot) in [
                ("valid_from", &spec.valid_from, &mut validity.from),
                ("valid_until", &spec.valid_until, &mut validity.until),
            ] {
                if let Some(text) = text {
                    match DateTime::parse_from_rfc3339(text) {
                        Ok(t) => *slot = Some(t.to_utc()),
                        Err(e) => self.errors.push(at(format!(
                            "entry \"{}\": {key}: expected a time like \"2026-11-11T00:00:00+08:00\": {e}",
                            spec.id
                        ))),
                    }
                }
            }
            if let (Some(from), Some(until)) = (validity.from, validity.until)
                && from >= until
            {
                self.errors.push(at(format!(
                    "entry \"{}\": `valid_from` must be before `valid_until`",
                    spec.id
                )));
            }
            let answer = match Template::parse(&spec.answer) {
                Ok(mut t) => {
                    t.validity = validity;
                    Some(t)
                }
                Err(e) => {
                    self.errors
                        .push(at(format!("entry \"{}\": answer: {}", spec.id, e.message)));
                    None
                }
            };
            let texts: Vec<String> = std::iter::once(&spec.question)
                .chain(&spec.alternatives)
                .map(|t| self.canonical(t))
                .filter(|t| !t.is_empty())
                .collect();
            if texts.is_empty() {
                self.errors
                    .push(at(format!("entry \"{}\" has no question text", spec.id)));
            }
            if let Some(answer) = answer {
                entries.push(FaqEntry {
                    id: Arc::from(spec.id.as_str()),
                    answer,
                    tags: spec.tags,
                });
                phrasings.push(texts);
                answers.push(self.canonical(&spec.answer));
                // One shared name per file, not one string per entry.
                let name = file_name(&spec.file);
                match origins.last() {
                    Some(last) if **last == *name => origins.push(last.clone()),
                    _ => origins.push(Arc::from(name)),
                }
            }
        }
        if self.errors.len() > before {
            return None;
        }
        let directory = source.on_disk.map(|dir| dir.join(shop));
        if let Some(dir) = &directory {
            // The on-disk index is rebuilt from the files at every load.
            let _ = std::fs::remove_dir_all(dir);
        }
        match FaqIndex::build(
            entries,
            phrasings.clone(),
            answers,
            rule,
            directory.as_deref(),
        ) {
            Ok(index) => Some(LoadedFaq {
                index,
                questions: phrasings,
                origins,
            }),
            Err(e) => {
                self.errors
                    .push(LoadError::whole_file(folder, e.to_string()));
                None
            }
        }
    }
}
