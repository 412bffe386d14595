//! The intents' example phrasings (相似问法) in the decision: asked when no keyword fires (or
//! only social ones), they may name the intent the buyer means in words the keywords miss.
//! An example match and an FAQ match are on one scale (the examples are indexed like the
//! FAQ), so the better of the two answers.

use chrono::{DateTime, Utc};

use crate::shop::{Action, Shop};

/// What the examples decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExampleChoice {
    /// Hand off for this intent.
    Handoff(usize),
    /// Answer with this intent.
    Answer(usize),
}

/// The intent the examples name for `question` (the message, or what is left of it past
/// social words), unless the FAQ's accepted answer is at least as
/// confident (`faq_confidence`). `normalized` is the whole message, for the after-order cues:
/// a pre-sale intent never answers a message about an order already placed.
pub(super) fn ask(
    shop: &Shop,
    question: &str,
    normalized: &str,
    faq_confidence: Option<f32>,
    now: Option<DateTime<Utc>>,
) -> Option<ExampleChoice> {
    let examples = shop.examples.as_ref()?;
    if question.trim().is_empty() {
        return None;
    }
    let best = examples.best(question)?;
    // Two shared words are needed anyway, so a greeting's leftovers need nothing more.
    if !examples.accepts(&best.hit) {
        return None;
    }
    if faq_confidence.is_some_and(|faq| faq >= best.hit.confidence) {
        return None;
    }
    let spec = shop.intents.intent(best.intent);
    if spec.handoff.is_some() {
        return Some(ExampleChoice::Handoff(best.intent));
    }
    let intent = if spec.presale && shop.purchase.after_order(normalized) {
        shop.purchase.own_order?
    } else {
        best.intent
    };
    if let (Some(now), Action::Answer(variants)) = (now, &shop.actions[intent])
        && !variants.any_valid(now)
    {
        return None;
    }
    Some(ExampleChoice::Answer(intent))
}
