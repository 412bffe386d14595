//! Chinese tokenisation for the FAQ index: jieba words and character bigrams.
//!
//! Text reaching here is already normalised (and rewritten by the shop's synonyms). Words from
//! jieba's search mode carry meaning; bigrams catch what jieba's dictionary does not know
//! ("莫代尔", shop-specific names) and survive segmentation differences between a question and
//! its paraphrase. The same functions tokenise documents (through tantivy's `Tokenizer`) and
//! queries (directly), so both sides always agree.

use std::sync::LazyLock;

use jieba_rs::Jieba;
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Loading jieba's dictionary takes a moment; it is done once per process.
static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Words that carry no meaning in a buyer's question; dropped from both sides so that "请问"
/// or "亲" neither match anything nor count against a question's confidence.
const STOP_WORDS: &[&str] = &[
    "的",
    "了",
    "吗",
    "呢",
    "啊",
    "呀",
    "吧",
    "嘛",
    "么",
    "哦",
    "哈",
    "亲",
    "请问",
    "问下",
    "问一下",
    "一下",
    "我",
    "你",
    "您",
    "你们",
    "我们",
    "这个",
    "那个",
    "这款",
    "那款",
    "是",
    "有",
    "在",
    "就",
    "都",
    "也",
    "还",
    "和",
    "跟",
    "与",
    "要",
    "想",
    "请",
    "下",
    "个",
    "些",
    "怎么",
    "怎样",
    "如何",
    "什么",
    "多少",
    "可以",
    "能",
    "会",
    "不会",
    "是不是",
    "有没有",
    // Question forms: they say that something is asked, not what it is about.
    "怎么样",
    "咋样",
    "怎么办",
    "咋办",
    "为什么",
    "为啥",
    "啥",
    "咋",
    "行不行",
    "好不好",
    "能不能",
    "可不可以",
];

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(&word)
}

/// Makes sure jieba's dictionary is loaded; call before timing-sensitive work.
pub fn warm_up() {
    LazyLock::force(&JIEBA);
}

/// The jieba search-mode words of `text` with their byte offsets, stop words removed.
pub fn words(text: &str) -> Vec<(usize, usize, &str)> {
    JIEBA
        .cut_for_search(text, true)
        .into_iter()
        .filter(|t| !t.word.trim().is_empty() && !is_stop_word(t.word))
        .map(|t| (t.byte_start, t.byte_end, t.word))
        .collect()
}

/// Overlapping character bigrams of each run of non-space characters; a run of one character
/// is kept whole.
pub fn bigrams(text: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    for (run_start, run) in runs(text) {
        let bounds: Vec<usize> = run
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(run.len()))
            .collect();
        if bounds.len() == 2 {
            out.push((run_start, run_start + run.len(), run));
            continue;
        }
        for pair in bounds.windows(3) {
            out.push((
                run_start + pair[0],
                run_start + pair[2],
                &run[pair[0]..pair[2]],
            ));
        }
    }
    out
}

fn runs(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(' ')
        .scan(0usize, |offset, part| {
            let start = *offset;
            *offset += part.len() + 1;
            Some((start, part))
        })
        .filter(|(_, part)| !part.is_empty())
}

/// Which segmentation a tantivy field uses.
#[derive(Debug, Clone, Copy)]
pub enum Segmentation {
    Words,
    Bigrams,
}

/// tantivy's view of [`words`] and [`bigrams`].
#[derive(Debug, Clone)]
pub struct ChineseTokenizer(pub Segmentation);

pub struct PreparedTokens {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for ChineseTokenizer {
    type TokenStream<'a> = PreparedTokens;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> PreparedTokens {
        let pieces: Vec<(usize, usize, String)> = match self.0 {
            Segmentation::Words => words(text)
                .into_iter()
                .map(|(from, to, word)| (from, to, word.to_string()))
                .collect(),
            Segmentation::Bigrams => bigrams(text)
                .into_iter()
                .map(|(from, to, pair)| (from, to, pair.to_string()))
                .collect(),
        };
        let tokens = pieces
            .into_iter()
            .enumerate()
            .map(|(position, (from, to, piece))| Token {
                offset_from: from,
                offset_to: to,
                position,
                text: piece,
                position_length: 1,
            })
            .collect();
        PreparedTokens { tokens, next: 0 }
    }
}

impl TokenStream for PreparedTokens {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(pieces: Vec<(usize, usize, &str)>) -> Vec<&str> {
        pieces.into_iter().map(|(_, _, t)| t).collect()
    }

    #[test]
    fn bigrams_overlap_within_runs_and_keep_single_characters() {
        assert_eq!(texts(bigrams("羊毛衫")), ["羊毛", "毛衫"]);
        assert_eq!(texts(bigrams("洗 a")), ["洗", "a"]);
        assert_eq!(
            texts(bigrams("down jacket")),
            ["do", "ow", "wn", "ja", "ac", "ck", "ke", "et"]
        );
        assert!(bigrams("").is_empty());
    }

    #[test]
    fn words_drop_fillers_and_offsets_point_into_the_text() {
        let text = "请问羊毛衫可以机洗吗";
        let pieces = words(text);
        for &(from, to, piece) in &pieces {
            assert_eq!(&text[from..to], piece);
        }
        let found = texts(pieces);
        assert!(found.contains(&"羊毛衫"), "{found:?}");
        assert!(
            !found.contains(&"请问") && !found.contains(&"吗"),
            "{found:?}"
        );
    }
}
