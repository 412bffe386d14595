//! What buyers say, and how often: weighted categories of real-looking messages drawn from
//! the labelled test cases (compiled in, so the binary runs from anywhere).

use anyhow::{Context, bail};

const BUYER_MESSAGES: &str = include_str!("../../../tests/cases/buyer_messages.tsv");
const FAQ_QUESTIONS: &str = include_str!("../../../tests/cases/faq.tsv");

/// A category of buyer message, its default weight, and the labels of
/// `tests/cases/buyer_messages.tsv` it draws from (besides a few fixed messages).
const CATEGORIES: &[(&str, u32, &[&str], &[&str])] = &[
    ("greeting", 15, &["greeting"], &["在吗", "親，在嗎？"]),
    (
        "shipping",
        20,
        &["shipping_time", "free_shipping", "logistics"],
        &["包邮吗", "发到新疆要几天"],
    ),
    ("bargain", 8, &["bargain"], &["能便宜点吗"]),
    // Questions for the FAQ come from `tests/cases/faq.tsv` instead.
    ("faq", 15, &[], &["两件能一起发吗", "毛衣丢洗衣机会坏吗"]),
    (
        "presale",
        20,
        &[
            "size",
            "stock",
            "material",
            "promotion",
            "payment",
            "invoice",
            "gift",
            "authenticity",
            "address_change",
            "return_policy",
        ],
        &[],
    ),
    // Return requests and complaints: each is handed to a human.
    (
        "after_sale",
        3,
        &["after_sale", "complaint", "human"],
        &["我要退货", "质量太差了，我要投诉"],
    ),
    (
        "chit_chat",
        19,
        &["none", "thanks", "goodbye"],
        &["哈哈", "好的谢谢"],
    ),
];

pub struct Mix {
    /// Each category's messages and its cumulative weight, for one draw per message.
    categories: Vec<(&'static str, u64, Vec<String>)>,
    total: u64,
}

impl Mix {
    /// The default mix, with `overrides` (`name=weight,…`) applied.
    pub fn new(overrides: Option<&str>) -> anyhow::Result<Mix> {
        let mut weights: Vec<(&'static str, u32)> =
            CATEGORIES.iter().map(|(n, w, _, _)| (*n, *w)).collect();
        if let Some(overrides) = overrides {
            for pair in overrides.split(',').filter(|p| !p.trim().is_empty()) {
                let (name, weight) = pair
                    .split_once('=')
                    .with_context(|| format!("a weight is `name=number`, not `{pair}`"))?;
                let weight: u32 = weight
                    .trim()
                    .parse()
                    .with_context(|| format!("`{weight}` is not a whole number"))?;
                let Some(slot) = weights.iter_mut().find(|(n, _)| *n == name.trim()) else {
                    let names: Vec<_> = CATEGORIES.iter().map(|c| c.0).collect();
                    bail!("no category `{name}`; they are {}", names.join(", "));
                };
                slot.1 = weight;
            }
        }
        let mut categories = Vec::new();
        let mut total = 0u64;
        for ((name, _, labels, fixed), (_, weight)) in CATEGORIES.iter().zip(&weights) {
            if *weight == 0 {
                continue;
            }
            let mut messages: Vec<String> = fixed.iter().map(|m| m.to_string()).collect();
            if *name == "faq" {
                messages.extend(messages_of(FAQ_QUESTIONS, |label| {
                    label.starts_with("faq:")
                }));
            } else {
                messages.extend(messages_of(BUYER_MESSAGES, |label| {
                    label.split(',').any(|l| labels.contains(&l))
                }));
            }
            total += u64::from(*weight);
            categories.push((*name, total, messages));
        }
        if total == 0 {
            bail!("every weight is 0: buyers would have nothing to say");
        }
        Ok(Mix { categories, total })
    }

    /// One message: its category and text.
    pub fn draw(&self, rng: &mut Rng) -> (&'static str, &str) {
        let pick = rng.below(self.total);
        let (name, _, messages) = self
            .categories
            .iter()
            .find(|(_, cumulative, _)| pick < *cumulative)
            .expect("pick is below the total");
        let text = &messages[rng.below(messages.len() as u64) as usize];
        (name, text)
    }
}

fn messages_of(tsv: &'static str, keep: impl Fn(&str) -> bool) -> impl Iterator<Item = String> {
    tsv.lines().filter_map(move |line| {
        let (label, text) = line.split_once('\t')?;
        (keep(label.trim()) && !text.trim().is_empty()).then(|| text.trim().to_string())
    })
}

/// SplitMix64: small, fast, and reproducible from a seed; nothing here needs more.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
