//! Text normalisation shared by keyword matching, the complaint lexicon and (later) the FAQ.
//!
//! Buyers write the same question many ways: "親，在嗎？", "亲,在吗", "ＨＥＬＬＯ!!". Matching
//! works on one canonical form so that none of that matters:
//! - full-width forms become half-width (`Ａ１！` → `a1!`), the ideographic space a space;
//! - traditional characters become simplified;
//! - letters are lower-cased;
//! - punctuation, spaces, emoji and other symbols are dropped, except that a single space is
//!   kept between two ASCII words so that "free shipping" does not read as "freeshipping" and
//!   English keywords can be matched as whole words.
//!
//! Keywords go through the same function when the intent files are loaded, so operators can
//! write them however they like.

/// Returns the canonical form of `text`.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Whether a separator (dropped character) was seen since the last kept character.
    let mut pending_gap = false;
    for raw in text.chars() {
        let folded = fold_width(raw);
        if folded.is_alphanumeric() {
            if pending_gap && folded.is_ascii_alphanumeric() && ends_with_ascii_word(&out) {
                out.push(' ');
            }
            pending_gap = false;
            // Lower-casing may add a combining mark ('İ' becomes 'i' and U+0307), which is no
            // letter: it is dropped like every other mark, so that the canonical form stays a
            // fixed point (normalising it again changes nothing).
            for lower in folded.to_lowercase().filter(|c| c.is_alphanumeric()) {
                out.push(lower);
            }
        } else {
            pending_gap = true;
        }
    }
    if out.is_ascii() {
        out
    } else {
        fast2s::convert(&out)
    }
}

/// Maps full-width ASCII variants (U+FF01..U+FF5E) and the ideographic space to their
/// half-width forms; everything else is returned unchanged.
fn fold_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

fn ends_with_ascii_word(s: &str) -> bool {
    s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// The runs of digits in `text` (full-width ones too), each with where it stands (bytes) and
/// its digits in ASCII: order and tracking numbers are long runs.
pub fn digit_runs(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut runs = Vec::new();
    let mut run = String::new();
    let mut start = 0;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        let digit = match c {
            '0'..='9' => Some(c),
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
            _ => None,
        };
        match digit {
            Some(d) => {
                if run.is_empty() {
                    start = i;
                }
                run.push(d);
            }
            None if !run.is_empty() => runs.push((start..i, std::mem::take(&mut run))),
            None => {}
        }
    }
    runs
}

/// True when `c` can be part of an ASCII word; used to match English keywords as whole words.
pub fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// Question particles that end a buyer's question in the normalised text.
pub fn ends_in_question_particle(normalized: &str) -> bool {
    matches!(
        normalized.chars().last(),
        Some('吗' | '么' | '嘛' | '呢' | '不')
    )
}

#[cfg(test)]
mod tests {
    use super::{looks_like_question, normalize};

    #[test]
    fn a_bare_negation_is_no_question_but_a_not_a_is() {
        for statement in ["这款外套不好看", "希望这次不要失望", "我已经下单了"]
        {
            assert!(!looks_like_question(&normalize(statement)), "{statement}");
        }
        for question in ["包不包邮", "有货不", "是不是正品", "能机洗吗", "真皮还是pu"]
        {
            assert!(looks_like_question(&normalize(question)), "{question}");
        }
    }

    fn check(input: &str, expected: &str) {
        assert_eq!(normalize(input), expected, "normalising {input:?}");
    }

    #[test]
    fn traditional_full_width_and_punctuation_do_not_matter() {
        check("親，在嗎？", "亲在吗");
        check("亲,在吗", "亲在吗");
        check("包郵嗎", "包邮吗");
        check("ＨＥＬＬＯ！！", "hello");
        check("什么时候發貨😊😊", "什么时候发货");
        check("  在　吗 ", "在吗");
    }

    #[test]
    fn a_space_survives_only_between_ascii_words() {
        check("Free   Shipping?", "free shipping");
        check("can you ship to 上海", "can you ship to上海");
        check("iPhone 15 可以吗", "iphone 15可以吗");
        check("size M 有货吗", "size m有货吗");
    }

    #[test]
    fn lower_casing_adds_no_marks_so_normalising_twice_changes_nothing() {
        check("İstanbul", "istanbul");
        for text in ["İ", "ẞ straße", "ΣΑΣ", "親，在嗎？ＨＥＬＬＯ"] {
            assert_eq!(normalize(&normalize(text)), normalize(text), "{text:?}");
        }
    }

    #[test]
    fn empty_and_symbol_only_inputs_become_empty() {
        check("", "");
        check("？？！！😊", "");
    }
}

/// Words that make a normalised message read as a question rather than a statement
/// ("好的", "差点忘了" are not questions; "能机洗吗", "怎么用积分" are).
const QUESTION_MARKERS: &[&str] = &[
    "吗",
    "么",
    "呢",
    "嘛",
    "吧",
    "怎",
    "如何",
    "什么",
    "啥",
    "咋",
    "哪",
    "几",
    "多少",
    "多久",
    "多长",
    "多大",
    "谁",
    "是否",
    "可以",
    "能",
    "会",
    "要不要",
    "有没有",
    "是不是",
    "还是",
    // requests ask as much as questions do: "我想申请价格保护"
    "想",
    "帮我",
    "请问",
    "how",
    "what",
    "can",
    "which",
    "where",
    "when",
    "why",
];

/// Whether a normalised message is shaped like a question.
pub fn looks_like_question(normalized: &str) -> bool {
    // 不 alone is no question ("这款外套不好看"); 包不包邮, 是不是 and a closing 不 are.
    QUESTION_MARKERS.iter().any(|m| normalized.contains(m))
        || ends_in_question_particle(normalized)
        || has_a_not_a(normalized)
}

/// "包不包", "是不是", "有没有": a character, 不 or 没, the same character again.
pub fn has_a_not_a(normalized: &str) -> bool {
    let mut last = ['\0'; 2];
    for c in normalized.chars() {
        if c == last[0] && matches!(last[1], '不' | '没') && c != last[1] {
            return true;
        }
        last = [last[1], c];
    }
    false
}

/// The form every text takes for matching: normalised, then rewritten by the shop's synonyms.
/// Buyer messages and, at load time, keywords and FAQ texts all go through it.
pub fn canonical(text: &str, synonyms: Option<&Synonyms>) -> String {
    let normalized = normalize(text);
    match synonyms {
        Some(s) => s.rewrite(normalized),
        None => normalized,
    }
}

/// A shop's synonym and typo table: normalised phrases rewritten to the word its rules use
/// ("包油" → "包邮", "寄出" → "发货"). Applied after [`normalize`] to buyer messages and, when
/// the shop is loaded, to every keyword and FAQ text, so both sides always meet.
#[derive(Debug, Clone)]
pub struct Synonyms {
    automaton: aho_corasick::AhoCorasick,
    replacements: Vec<String>,
}

impl Synonyms {
    /// Builds the table from normalised `(from, to)` pairs; at each position the longest
    /// `from` wins.
    pub fn new(pairs: Vec<(String, String)>) -> Result<Synonyms, aho_corasick::BuildError> {
        let (from, replacements): (Vec<String>, Vec<String>) = pairs.into_iter().unzip();
        let automaton = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&from)?;
        Ok(Synonyms {
            automaton,
            replacements,
        })
    }

    /// Rewrites a normalised text; returns it untouched (no allocation) when nothing matches.
    pub fn rewrite(&self, normalized: String) -> String {
        if self.automaton.is_match(&normalized) {
            self.automaton.replace_all(&normalized, &self.replacements)
        } else {
            normalized
        }
    }
}

#[cfg(test)]
mod synonym_tests {
    use super::*;

    #[test]
    fn typos_and_synonyms_become_the_rules_words_longest_first() {
        let synonyms = Synonyms::new(vec![
            ("包油".into(), "包邮".into()),
            ("寄出".into(), "发货".into()),
            ("寄出去".into(), "发货".into()),
        ])
        .unwrap();
        assert_eq!(synonyms.rewrite(normalize("包油嗎？")), "包邮吗");
        assert_eq!(
            synonyms.rewrite(normalize("什么时候寄出去")),
            "什么时候发货"
        );
        assert_eq!(synonyms.rewrite(normalize("今天天气好")), "今天天气好");
    }
}
