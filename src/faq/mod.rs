//! The FAQ knowledge base: a tantivy index of a shop's questions that answers what the
//! keyword intents do not ("羊毛衫能机洗吗", "会员积分怎么用").
//!
//! Each entry's question and alternative phrasings are indexed as separate documents in two
//! fields, jieba words and character bigrams. A buyer message is tokenised the same way and
//! ranked with BM25; an entry scores the best of its phrasings.
//!
//! Whether to answer is not a raw BM25 cut-off (scores are not comparable between queries).
//! The top score is divided by the query's *self-score*, the score a document identical to
//! the query would get: for one occurrence of each term in a document of average length,
//! BM25 gives exactly the term's idf, so the self-score is the idf-weighted sum of the query's
//! terms. That ratio says how much of what the buyer wrote the best entry covers, weighted by
//! how telling each word is; words the index has never seen weigh the most and pull it down.
//! The margin to the second-best entry says whether the choice is clear. See [`FaqRule`].

mod examples;
mod files;
mod tokenize;

use std::path::Path;
use std::sync::Arc;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

pub use examples::{ExampleHit, ExampleIndex, MAX_EXAMPLE_CHARS, MAX_EXAMPLES_PER_INTENT};
pub use files::{EntrySpec, load_entries, parse_entries};
pub use tokenize::warm_up;
use tokenize::{ChineseTokenizer, Segmentation, bigrams, words};

use crate::normalize::looks_like_question;
use crate::template::Template;

const WORDS_TOKENIZER: &str = "zh_words";
const BIGRAMS_TOKENIZER: &str = "zh_bigrams";
/// Bigrams back words up; they count for less so that a shared word outweighs shared
/// character pairs.
const BIGRAM_BOOST: f32 = 0.8;
/// The answer's own words help a question find it ("球球" is in the answer about pilling,
/// not in its question), but much less than the questions do.
const ANSWER_BOOST: f32 = 0.4;
/// A term found in more than this share of the documents tells almost nothing about which
/// entry is meant, and its long posting list is what makes a query slow; it is left out of
/// the query and of the self-score.
const MAX_DOC_SHARE: f64 = 0.05;
/// Answers are longer and their common words are many; only their rare words ("球球" in the
/// answer about pilling) help a question find them, and only those are searched.
const MAX_ANSWER_DOC_SHARE: f64 = 0.002;

/// Words that ask rather than say what about: they do not make a question more specific than
/// the keyword it contains ("发货要多久" asks no more than "发货").
const ASKING_WORDS: &[&str] = &[
    "多久",
    "多长",
    "几天",
    "哪里",
    "哪儿",
    "哪个",
    "哪些",
    "什么时候",
    "时候",
    "为何",
    "是否",
    "一下",
    "多少",
    "多少钱",
    "怎么",
    "怎么办",
    "怎么样",
    "什么",
    "为什么",
    "可以",
    "能",
    "能不能",
    "有没有",
    "是不是",
    // "A还是B" and "能用" ask which or whether; "还是塑料的" says nothing about an invoice
    "还是",
    "能用",
];

/// When a ranking is confident enough to answer. Calibrated on `tests/cases/faq.tsv` with
/// `autoresponder eval tests/cases/faq.tsv --sweep` (see `index/README.md`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaqRule {
    /// The confidence needed when the best entry's questions share two or more words with
    /// the buyer's.
    pub min_confidence: f32,
    /// The confidence needed when they share one word or none: that is how an unrelated
    /// question ("生日蛋糕怎么做" against "会员生日有什么福利") scores well, so it must score
    /// much better, and the message must read as a question at all ("好的", "差点忘了" are
    /// chat, not questions, whatever word they share).
    pub single_word_confidence: f32,
    /// How far the best entry must lead the second, as a share of its score.
    pub min_margin: f32,
    /// Messages shorter than this (characters of the canonical text) get no FAQ answer:
    /// "好吧", "哪个", "已经付了" are fragments of a conversation, not questions.
    pub min_chars: usize,
    /// How many words a message that does not read as a question must share with the best
    /// entry's questions: a statement ("我已经下单了") matches an entry by accident far more
    /// often than a question does.
    pub statement_words: usize,
    /// How many words a question must share with the best entry's questions at the least;
    /// words that ask ("还是", "多少钱") do not count. A fragment such as "还是塑料的" can
    /// score well against the entry on paper or electronic invoices with nothing in common
    /// but its 还是.
    pub question_words: usize,
}

impl Default for FaqRule {
    fn default() -> Self {
        FaqRule {
            min_confidence: 0.2,
            single_word_confidence: 0.35,
            min_margin: 0.0,
            min_chars: 5,
            statement_words: 3,
            question_words: 1,
        }
    }
}

impl FaqRule {
    pub fn accepts(&self, best: &FaqHit) -> bool {
        if best.chars < self.min_chars {
            return false;
        }
        let needed = if !best.question {
            // A statement one word short of the floor is still about the entry when it
            // scores as well as a question that shares one word must ("…绒都挤成团了").
            let short_by_one = best.shared_words + 1 >= self.statement_words.max(2)
                && best.shared_words >= 3
                && best.confidence >= self.single_word_confidence;
            if best.shared_words < self.statement_words.max(2) && !short_by_one {
                return false;
            }
            self.min_confidence
        } else if best.shared_words < self.question_words {
            return false;
        } else if best.shared_words >= 2 {
            self.min_confidence
        } else {
            self.single_word_confidence
        };
        best.confidence >= needed && best.margin >= self.min_margin
    }
}

/// An FAQ entry as answered.
#[derive(Debug, Clone)]
pub struct FaqEntry {
    pub id: Arc<str>,
    pub answer: Template,
    pub tags: Vec<String>,
}

/// An entry a query found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaqHit {
    /// Index into [`FaqIndex::entries`].
    pub entry: usize,
    pub score: f32,
    /// `score` divided by the query's self-score.
    pub confidence: f32,
    /// How far this entry leads the next one, as a share of its score (0 for the others).
    pub margin: f32,
    /// For the best entry: how many distinct words of the question its phrasings contain
    /// (0 for the others). One shared rare word ("生日" in "生日蛋糕怎么做") is how an
    /// unrelated question most often scores well.
    pub shared_words: usize,
    /// Whether the buyer's message reads as a question.
    pub question: bool,
    /// How long the buyer's message is, in characters of its canonical form.
    pub chars: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("the FAQ index cannot be built: {0}")]
pub struct FaqError(#[from] tantivy::TantivyError);

#[derive(Clone, Copy)]
struct Fields {
    entry: Field,
    words: Field,
    bigrams: Field,
    answer_words: Field,
}

/// Questions whose ranking is remembered.
const RANKED_QUESTIONS: usize = 4096;
/// Only short questions are remembered: long messages rarely come twice.
const RANKED_MAX_BYTES: usize = 256;
/// How many hits the responder weighs; rankings of this length are remembered, other
/// callers (the checker, the evaluation) search each time.
pub const RESPONDER_HITS: usize = 3;

/// A shop's searchable FAQ. It never changes once built (a reload builds a new one), so one
/// searcher and its columns serve every query.
#[derive(Clone)]
pub struct FaqIndex {
    entries: Vec<FaqEntry>,
    searcher: tantivy::Searcher,
    /// The `entry` column of each segment, by segment ordinal, opened once.
    entry_columns: Vec<tantivy::columnar::Column<u64>>,
    fields: Fields,
    /// The document of each entry, by entry ordinal.
    addresses: Vec<tantivy::DocAddress>,
    rule: FaqRule,
    /// Recent rankings by question: on a sale night most buyers ask the same few things, in
    /// the same words. It belongs to this index (a clone shares it), so a reload starts it
    /// afresh.
    ranked: Arc<quick_cache::sync::Cache<String, Vec<FaqHit>>>,
}

impl std::fmt::Debug for FaqIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaqIndex")
            .field("entries", &self.entries.len())
            .field("rule", &self.rule)
            .finish()
    }
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = |tokenizer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    let fields = Fields {
        entry: builder.add_u64_field("entry", FAST | INDEXED),
        words: builder.add_text_field("words", text(WORDS_TOKENIZER)),
        bigrams: builder.add_text_field("bigrams", text(BIGRAMS_TOKENIZER)),
        answer_words: builder.add_text_field("answer_words", text(WORDS_TOKENIZER)),
    };
    (builder.build(), fields)
}

fn register_tokenizers(index: &Index) {
    index.tokenizers().register(
        WORDS_TOKENIZER,
        TextAnalyzer::from(ChineseTokenizer(Segmentation::Words)),
    );
    index.tokenizers().register(
        BIGRAMS_TOKENIZER,
        TextAnalyzer::from(ChineseTokenizer(Segmentation::Bigrams)),
    );
}

impl FaqIndex {
    /// Indexes `entries`, in RAM or, with `directory`, in files there (for knowledge bases
    /// too large to rebuild in memory at every start). `phrasings[i]` are entry `i`'s
    /// questions and `answers[i]` its answer text, already in canonical form. Blocking: call
    /// it off the async runtime.
    pub fn build(
        entries: Vec<FaqEntry>,
        phrasings: Vec<Vec<String>>,
        answers: Vec<String>,
        rule: FaqRule,
        directory: Option<&Path>,
    ) -> Result<FaqIndex, FaqError> {
        let (schema, fields) = schema();
        let index = match directory {
            None => Index::create_in_ram(schema),
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    tantivy::TantivyError::SystemError(format!("{}: {e}", dir.display()))
                })?;
                Index::create_in_dir(dir, schema)?
            }
        };
        register_tokenizers(&index);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let mut writer = index.writer_with_num_threads(threads, 64 * 1024 * 1024 * threads)?;
        // One document per entry: a buyer's words may be spread over several phrasings.
        for (ordinal, (texts, answer)) in phrasings.iter().zip(&answers).enumerate() {
            let questions = texts.join(" ");
            let mut document = TantivyDocument::default();
            document.add_u64(fields.entry, ordinal as u64);
            document.add_text(fields.words, &questions);
            document.add_text(fields.bigrams, &questions);
            document.add_text(fields.answer_words, answer);
            writer.add_document(document)?;
        }
        writer.commit()?;
        // The index never changes after this, so it is merged into one segment: every extra
        // segment repeats the work of each query.
        let segments = index.searchable_segment_ids()?;
        if segments.len() > 1 {
            writer.merge(&segments).wait()?;
        }
        writer.wait_merging_threads()?;
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let searcher = reader.searcher();
        let entry_columns = searcher
            .segment_readers()
            .iter()
            .map(|segment| segment.fast_fields().u64("entry"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut addresses = vec![tantivy::DocAddress::new(0, 0); entries.len()];
        for (segment_ord, segment) in searcher.segment_readers().iter().enumerate() {
            for doc_id in segment.doc_ids_alive() {
                if let Some(entry) = entry_columns[segment_ord].first(doc_id)
                    && let Some(slot) = addresses.get_mut(entry as usize)
                {
                    *slot = tantivy::DocAddress::new(segment_ord as u32, doc_id);
                }
            }
        }
        Ok(FaqIndex {
            entries,
            searcher,
            entry_columns,
            fields,
            addresses,
            rule,
            ranked: Arc::new(quick_cache::sync::Cache::new(RANKED_QUESTIONS)),
        })
    }

    pub fn entries(&self) -> &[FaqEntry] {
        &self.entries
    }

    pub fn rule(&self) -> FaqRule {
        self.rule
    }

    /// The best entries for a normalised question, best first, at most `limit`.
    pub fn rank(&self, normalized: &str, limit: usize) -> Vec<FaqHit> {
        if limit != RESPONDER_HITS || normalized.len() > RANKED_MAX_BYTES {
            return self.search(normalized, limit);
        }
        if let Some(hits) = self.ranked.get(normalized) {
            return hits;
        }
        let hits = self.search(normalized, limit);
        self.ranked.insert(normalized.to_string(), hits.clone());
        hits
    }

    fn search(&self, normalized: &str, limit: usize) -> Vec<FaqHit> {
        let searcher = &self.searcher;
        let total = searcher.num_docs();
        if total == 0 || normalized.is_empty() {
            return Vec::new();
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut self_score = 0.0f32;
        // `scored` terms count towards the self-score; answer terms only help ranking.
        let common = ((total as f64 * MAX_DOC_SHARE) as u64).max(20);
        let common_in_answers = ((total as f64 * MAX_ANSWER_DOC_SHARE) as u64).max(20);
        let mut add = |field: Field, piece: &str, boost: f32, scored: bool| {
            let term = Term::from_field_text(field, piece);
            let doc_freq = searcher.doc_freq(&term).unwrap_or(0).min(total);
            let limit = if scored { common } else { common_in_answers };
            if doc_freq > limit {
                return;
            }
            if scored {
                self_score += boost * idf(doc_freq, total);
            }
            let query: Box<dyn Query> =
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
            let query: Box<dyn Query> = if boost == 1.0 {
                query
            } else {
                Box::new(BoostQuery::new(query, boost))
            };
            clauses.push((Occur::Should, query));
        };
        let content_words = words(normalized);
        if content_words.is_empty() {
            // Only fillers ("可以", "好的呀"): there is no question to look up.
            return Vec::new();
        }
        let mut seen_words: Vec<&str> = Vec::new();
        for (_, _, word) in content_words {
            if !seen_words.contains(&word) {
                seen_words.push(word);
                add(self.fields.words, word, 1.0, true);
                add(self.fields.answer_words, word, ANSWER_BOOST, false);
            }
        }
        // A bigram that is also a word adds nothing the word clause does not.
        let mut seen_bigrams: Vec<&str> = Vec::new();
        for (_, _, bigram) in bigrams(normalized) {
            if !seen_bigrams.contains(&bigram) && !seen_words.contains(&bigram) {
                seen_bigrams.push(bigram);
                add(self.fields.bigrams, bigram, BIGRAM_BOOST, true);
            }
        }
        if clauses.is_empty() || self_score <= 0.0 {
            return Vec::new();
        }
        let query = BooleanQuery::new(clauses);
        // One document per entry, so the top documents are the top entries; the second one is
        // always fetched for the margin.
        let wanted = limit.max(2);
        let Ok(top) = searcher.search(&query, &TopDocs::with_limit(wanted).order_by_score()) else {
            return Vec::new();
        };
        // Only words that say what about count as shared: "那什么时候可以用上" shares "什么时候"
        // with half the entries and tells none of them apart.
        let content_words: Vec<&str> = seen_words
            .iter()
            .copied()
            .filter(|word| !ASKING_WORDS.contains(word))
            .collect();
        let shared_words = top.first().map_or(0, |&(_, address)| {
            self.shared_words(address, &content_words)
        });
        let best: Vec<(usize, f32)> = top
            .into_iter()
            .filter_map(|(score, address)| {
                let column = &self.entry_columns[address.segment_ord as usize];
                column
                    .first(address.doc_id)
                    .map(|entry| (entry as usize, score))
            })
            .collect();
        let runner_up = best.get(1).map_or(0.0, |&(_, s)| s);
        let question = looks_like_question(normalized);
        let chars = normalized.chars().count();
        best.iter()
            .enumerate()
            .take(limit)
            .map(|(rank, &(entry, score))| FaqHit {
                entry,
                score,
                confidence: score / self_score,
                margin: if rank == 0 && score > 0.0 {
                    (score - runner_up) / score
                } else {
                    0.0
                },
                shared_words: if rank == 0 { shared_words } else { 0 },
                question,
                chars,
            })
            .collect()
    }

    /// How many of `words` occur in the questions of the document at `address`: one postings
    /// seek per word, done only for the best hit.
    fn shared_words(&self, address: tantivy::DocAddress, words: &[&str]) -> usize {
        use tantivy::DocSet;
        let segment = self.searcher.segment_reader(address.segment_ord);
        let Ok(inverted) = segment.inverted_index(self.fields.words) else {
            return 0;
        };
        words
            .iter()
            .filter(|word| {
                let term = Term::from_field_text(self.fields.words, word);
                let target = address.doc_id;
                match inverted.read_postings(&term, IndexRecordOption::Basic) {
                    // `seek` may only move forward from the list's first document.
                    Ok(Some(mut postings)) => {
                        postings.doc() == target
                            || (postings.doc() < target && postings.seek(target) == target)
                    }
                    _ => false,
                }
            })
            .count()
    }

    /// How many distinct words of the question outside `spans` (byte ranges, such as an
    /// intent's keywords) the questions of `entry` contain: whether the entry matches more of
    /// what the buyer asked than those spans say. One postings seek per word.
    pub fn shared_words_outside(
        &self,
        entry: usize,
        normalized: &str,
        spans: &[(usize, usize)],
    ) -> usize {
        let Some(&address) = self.addresses.get(entry) else {
            return 0;
        };
        let mut outside: Vec<&str> = Vec::new();
        for (start, end, word) in words(normalized) {
            let overlaps = spans.iter().any(|&(from, to)| start < to && from < end);
            // One character ("开", "到", "拍") says little about what is asked, and a word that
            // asks ("多久", "哪里") says that something is asked, not what.
            if !overlaps
                && word.chars().nth(1).is_some()
                && !ASKING_WORDS.contains(&word)
                && !outside.contains(&word)
            {
                outside.push(word);
            }
        }
        if outside.is_empty() {
            return 0;
        }
        self.shared_words(address, &outside)
    }

    /// The entry to answer with, if the best one passes the shop's rule.
    pub fn answer(&self, normalized: &str) -> Option<FaqHit> {
        self.rank(normalized, 2)
            .into_iter()
            .next()
            .filter(|best| self.rule.accepts(best))
    }
}

/// tantivy's BM25 idf, so the self-score is on the same scale as the scores.
fn idf(doc_freq: u64, doc_count: u64) -> f32 {
    let x = ((doc_count - doc_freq) as f32 + 0.5) / (doc_freq as f32 + 0.5);
    (1.0 + x).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_and_loose_statements_get_no_answer() {
        let rule = FaqRule::default();
        let hit = |chars, question, shared_words| FaqHit {
            entry: 0,
            score: 10.0,
            confidence: 0.9,
            margin: 0.5,
            shared_words,
            question,
            chars,
        };
        assert!(rule.accepts(&hit(8, true, 2)));
        assert!(
            rule.accepts(&hit(8, true, 1)),
            "a question may share one telling word"
        );
        assert!(
            !rule.accepts(&hit(8, true, 0)),
            "a question sharing only words that ask (还是, 多少钱) with the entry"
        );
        assert!(!rule.accepts(&hit(4, true, 2)), "a fragment");
        assert!(
            !rule.accepts(&hit(8, false, 2)),
            "a statement sharing two words"
        );
        assert!(rule.accepts(&hit(8, false, 3)));
        // Four words for a statement, or three that score as a one-word question must.
        let strict = FaqRule {
            statement_words: 4,
            ..rule
        };
        assert!(strict.accepts(&hit(8, false, 4)));
        assert!(strict.accepts(&hit(8, false, 3)));
        assert!(!strict.accepts(&FaqHit {
            confidence: 0.3,
            ..hit(8, false, 3)
        }));
        assert!(!strict.accepts(&hit(8, false, 2)));
    }
    use crate::normalize::normalize;

    fn index() -> FaqIndex {
        let entries = [
            (
                "wool_wash",
                vec!["羊毛衫可以机洗吗", "毛衣能放洗衣机洗吗"],
                "建议手洗",
            ),
            (
                "points_use",
                vec!["会员积分怎么用", "积分可以抵扣现金吗"],
                "积分可抵现",
            ),
            (
                "merge_orders",
                vec!["两个订单能一起发吗", "分开拍的能合并发货吗"],
                "可以合并",
            ),
        ];
        let faq = entries
            .iter()
            .map(|(id, _, answer)| FaqEntry {
                id: Arc::from(*id),
                answer: Template::parse(answer).unwrap(),
                tags: Vec::new(),
            })
            .collect();
        let phrasings = entries
            .iter()
            .map(|(_, questions, _)| questions.iter().map(|q| normalize(q)).collect())
            .collect();
        let answers = entries.iter().map(|(_, _, a)| normalize(a)).collect();
        FaqIndex::build(faq, phrasings, answers, FaqRule::default(), None).unwrap()
    }

    fn best(index: &FaqIndex, question: &str) -> Option<(String, FaqHit)> {
        index
            .rank(&normalize(question), 3)
            .first()
            .map(|hit| (index.entries()[hit.entry].id.to_string(), *hit))
    }

    #[test]
    fn a_remembered_ranking_is_the_ranking_of_that_question() {
        let index = index();
        let questions = [
            "羊毛衫可以机洗吗",
            "请问积分能怎么用呀",
            "能合并成一个包裹发吗",
        ];
        let searched: Vec<_> = questions
            .iter()
            .map(|q| index.search(&normalize(q), RESPONDER_HITS))
            .collect();
        for _ in 0..2 {
            for (question, searched) in questions.iter().zip(&searched) {
                assert!(!searched.is_empty(), "{question}");
                assert_eq!(&index.rank(&normalize(question), RESPONDER_HITS), searched);
            }
        }
        assert_eq!(index.ranked.len(), questions.len());
    }

    #[test]
    fn a_paraphrase_finds_its_entry_and_an_exact_question_is_sure() {
        let index = index();
        let (id, exact) = best(&index, "羊毛衫可以机洗吗").unwrap();
        assert_eq!(id, "wool_wash");
        assert!(exact.confidence >= 0.75, "{exact:?}");
        assert!(index.rule().accepts(&exact));
        let (id, paraphrase) = best(&index, "请问积分能怎么用呀").unwrap();
        assert_eq!(id, "points_use");
        assert!(paraphrase.margin > 0.0, "{paraphrase:?}");
        let (id, _) = best(&index, "能合并成一个包裹发吗").unwrap();
        assert_eq!(id, "merge_orders");
    }

    #[test]
    fn unrelated_or_empty_questions_are_not_answered() {
        let index = index();
        assert!(index.answer(&normalize("明天会下雨吗")).is_none());
        assert!(index.answer(&normalize("你们公司在哪个城市招聘")).is_none());
        assert!(
            index.rank(&normalize("可以吗？"), 3).is_empty(),
            "fillers only"
        );
        assert!(index.rank("", 3).is_empty());
    }
}
