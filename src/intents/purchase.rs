//! Where the buyer is in the purchase: cues that show a message speaks of an order already
//! placed ("我的快递", "签收", an order number), so that a pre-sale answer (the dispatch
//! promise, stock, free shipping) is not given to it.
//!
//! The cues are the shop's (`[purchase]` in `shop.toml`), canonicalised like keywords.

use std::ops::Range;

use aho_corasick::AhoCorasick;

use super::{BuildError, stands_alone};

/// The after-order cues of one shop, and the intent that answers about the buyer's own order.
#[derive(Debug, Clone, Default)]
pub struct PurchaseCues {
    cues: Option<AhoCorasick>,
    /// Whether cue `i` must stand as a whole ASCII word.
    whole_word: Vec<bool>,
    /// A run of at least this many ASCII digits is an order or tracking number.
    order_number_digits: Option<usize>,
    /// Index of the intent that takes the place of a pre-sale one after an order.
    pub own_order: Option<usize>,
}

impl PurchaseCues {
    /// `cues` must be canonical text, none empty.
    pub fn build(
        cues: &[String],
        order_number_digits: Option<usize>,
        own_order: Option<usize>,
    ) -> Result<PurchaseCues, BuildError> {
        let automaton = if cues.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(cues)?)
        };
        Ok(PurchaseCues {
            cues: automaton,
            whole_word: cues
                .iter()
                .map(|c| {
                    c.starts_with(crate::normalize::is_word_char)
                        || c.ends_with(crate::normalize::is_word_char)
                })
                .collect(),
            order_number_digits,
            own_order,
        })
    }

    /// True when the canonical message speaks of an order already placed.
    pub fn after_order(&self, normalized: &str) -> bool {
        !self.cues_in(normalized).is_empty()
    }

    /// Where the after-order cues (and order numbers) stand in the canonical message, as
    /// byte ranges; empty when the message does not speak of an order already placed.
    pub fn cues_in(&self, normalized: &str) -> Vec<Range<usize>> {
        let mut found: Vec<Range<usize>> = match &self.cues {
            Some(cues) => cues
                .find_overlapping_iter(normalized)
                .filter(|m| {
                    !self.whole_word[m.pattern().as_usize()]
                        || stands_alone(normalized, m.start(), m.end())
                })
                .map(|m| m.range())
                .collect(),
            None => Vec::new(),
        };
        if let Some(min) = self.order_number_digits {
            let numbers = crate::normalize::digit_runs(normalized)
                .into_iter()
                .filter(|(_, digits)| digits.len() >= min);
            found.extend(numbers.map(|(range, _)| range));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;

    #[test]
    fn cues_and_long_digit_runs_mean_after_the_order() {
        let cues = PurchaseCues::build(
            &[
                normalize("我的快递"),
                normalize("收到货"),
                normalize("order"),
            ],
            Some(12),
            None,
        )
        .unwrap();
        assert!(cues.after_order(&normalize("我的快递什么时候到？")));
        assert!(cues.after_order(&normalize("收到货了，镜子是碎的")));
        assert!(cues.after_order(&normalize("单号 ７７３２０１４５６７８９０")));
        assert!(cues.after_order(&normalize("my order please")));
        assert!(!cues.after_order(&normalize("什么时候发货")));
        assert!(!cues.after_order(&normalize("电话 13800000")));
        assert!(!cues.after_order(&normalize("border")));
        assert!(!PurchaseCues::default().after_order("我的快递"));
        assert_eq!(cues.cues_in("收到货了"), vec![0..9]);
    }
}
