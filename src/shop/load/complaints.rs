//! `complaints.toml`: the complaint lexicon's terms (each counting for a handoff intent of
//! the shop), modifiers and weights, validated into a [`ComplaintLexicon`].

use std::path::Path;

use super::context::Context;
use crate::intents::IntentSpec;
use crate::intents::complaints::{ComplaintLexicon, LexiconSpec, TermSpec};
use crate::shop::files::ComplaintsFile;
use crate::source::SourceFile;
use toml::Spanned;

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
        let threshold = self.number(src, &file.threshold, "`threshold`", Range::Positive);
        let question_damping = file.question_damping.as_ref().map_or(0.5, |v| {
            self.number(src, v, "`question_damping`", Range::Fraction)
        });
        let praise_damping = file.praise_damping.as_ref().map_or(1.0, |v| {
            self.number(src, v, "`praise_damping`", Range::Fraction)
        });
        let weights: Vec<f32> = file
            .term
            .iter()
            .map(|t| self.number(src, &t.weight, "a term's `weight`", Range::Positive))
            .collect();
        let intensifiers: Vec<(String, f32)> = file
            .intensifiers
            .iter()
            .map(|(w, f)| {
                let what = format!("the intensifier \"{w}\"");
                (w.clone(), self.number(src, f, &what, Range::Positive))
            })
            .collect();
        let mut terms = Vec::new();
        for (term, weight) in file.term.iter().zip(weights) {
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
                weight,
                handoff_intent,
            });
        }
        let spec = LexiconSpec {
            threshold,
            window: file.window,
            question_damping,
            praise_damping,
            target_bonus: file.target_bonus,
            targets: self.normalized_all(src, &file.targets),
            negators: self.normalized_all(src, &file.negators),
            hedges: self.normalized_all(src, &file.hedges),
            neutral: self.normalized_all(src, &file.neutral),
            negators_after: self.normalized_all(src, &file.negators_after),
            praise: self.normalized_all(src, &file.praise),
            intensifiers: intensifiers
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

    /// A number of the lexicon, or an error naming its line when it is out of `range`.
    fn number(&mut self, src: &SourceFile, value: &Spanned<f32>, what: &str, range: Range) -> f32 {
        let v = *value.get_ref();
        let (ok, rule) = match range {
            Range::Positive => (v.is_finite() && v > 0.0, "above 0"),
            Range::Fraction => (v > 0.0 && v <= 1.0, "above 0 and at most 1"),
        };
        if !ok {
            self.errors
                .push(src.error_at(value.span(), format!("{what} is {v}: it must be {rule}")));
        }
        v
    }
}

/// What a number of the lexicon may be.
#[derive(Clone, Copy)]
enum Range {
    /// A weight, a factor or the threshold.
    Positive,
    /// A damping factor.
    Fraction,
}
