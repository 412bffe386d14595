//! `complaints.toml`: the complaint lexicon's terms (each counting for a handoff intent of
//! the shop), modifiers and weights, validated into a [`ComplaintLexicon`].

use std::path::Path;

use super::context::Context;
use crate::intents::IntentSpec;
use crate::intents::complaints::{ComplaintLexicon, LexiconSpec, TermSpec};
use crate::shop::files::ComplaintsFile;
use crate::source::SourceFile;

impl Context<'_> {
    /// The lexicon of a `complaints.toml`; `intents` are the shop's, for the terms' handoffs.
    pub(super) fn complaints_file(
        &mut self,
        path: &Path,
        text: &str,
        intents: &[IntentSpec],
    ) -> Option<ComplaintLexicon> {
        let src = SourceFile { path, text };
        match src.parse_toml::<ComplaintsFile>() {
            Ok(file) => self.complaints(&src, file, intents),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn complaints(
        &mut self,
        src: &SourceFile,
        file: ComplaintsFile,
        intents: &[IntentSpec],
    ) -> Option<ComplaintLexicon> {
        let before = self.errors.len();
        let mut terms = Vec::new();
        for term in &file.term {
            let target = intents
                .iter()
                .position(|i| *i.name == **term.handoff.get_ref() && i.handoff.is_some());
            let Some(handoff_intent) = target else {
                self.errors.push(src.error_at(
                    term.handoff.span(),
                    format!(
                        "\"{}\" is not a handoff intent of this shop",
                        term.handoff.get_ref()
                    ),
                ));
                continue;
            };
            terms.push(TermSpec {
                words: self.normalized_all(src, &term.words),
                weight: term.weight,
                handoff_intent,
            });
        }
        let spec = LexiconSpec {
            threshold: file.threshold,
            window: file.window,
            question_damping: file.question_damping,
            target_bonus: file.target_bonus,
            targets: self.normalized_all(src, &file.targets),
            negators: self.normalized_all(src, &file.negators),
            hedges: self.normalized_all(src, &file.hedges),
            neutral: self.normalized_all(src, &file.neutral),
            intensifiers: file
                .intensifiers
                .iter()
                .map(|(w, f)| (self.canonical(w), *f))
                .filter(|(w, _)| !w.is_empty())
                .collect(),
            terms,
        };
        if self.errors.len() > before {
            return None;
        }
        match ComplaintLexicon::build(spec) {
            Ok(l) => Some(l),
            Err(e) => {
                self.errors.push(src.error(e.to_string()));
                None
            }
        }
    }
}
