//! A small deterministic generator of shop-like text for benchmarks that need a large
//! knowledge base.

/// A small deterministic generator of shop-like questions, so every run builds the same
/// knowledge base: real domain words (jieba's words of the shipped FAQ, drawn with a Zipf-like
/// skew, as in real text) mixed with rarer synthetic product words.
pub struct Words {
    seed: u64,
    common: Vec<String>,
    rare: Vec<String>,
}

impl Words {
    pub fn new(shop_texts: &[String]) -> Words {
        let jieba = jieba_rs::Jieba::new();
        let mut common: Vec<String> = shop_texts
            .iter()
            .flat_map(|t| jieba.cut(t, false).into_iter().map(|w| w.word.to_string()))
            .filter(|w| w.chars().count() >= 2)
            .collect();
        common.sort();
        common.dedup();
        let mut words = Words {
            seed: 0x0fa9,
            common,
            rare: Vec::new(),
        };
        for _ in 0..20_000 {
            let word: String = (0..2)
                .map(|_| char::from_u32(0x4E00 + words.next(3500) as u32).unwrap())
                .collect();
            words.rare.push(word);
        }
        words
    }

    pub fn next(&mut self, n: usize) -> usize {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.seed >> 33) as usize) % n
    }

    pub fn word(&mut self) -> String {
        if self.next(10) < 6 {
            // Squaring a uniform draw favours the first words: a few are very common.
            let u = self.next(1 << 16) as f64 / f64::from(1 << 16);
            let pick = ((u * u) * self.common.len() as f64) as usize;
            self.common[pick].clone()
        } else {
            let pick = self.next(self.rare.len());
            self.rare[pick].clone()
        }
    }

    pub fn sentence(&mut self, words: usize) -> String {
        (0..words).map(|_| self.word()).collect()
    }
}
