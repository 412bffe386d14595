//! A shop's files as text, with where every reply, keyword and FAQ question was written.
//!
//! The checker reads the files itself, leniently, instead of through the loader's strict
//! types: a shop with a typo in one key, or a syntax error halfway down a file, still has
//! reply texts worth checking, and every finding must name the line of the text it is about.
//! TOML is parsed with error recovery into spanned values; JSON Lines line by line.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::report::Location;
use crate::shop::folder::{SHOP_FILE, intent_files};
use crate::source::files_with_extensions;

/// One file as read from disk.
#[derive(Debug)]
pub struct SourceText {
    pub path: PathBuf,
    pub text: String,
    /// Byte offset where each line starts: a bulk file can have 100,000 lines and as many
    /// findings, so a line is a binary search, not a count from the top.
    line_starts: Vec<usize>,
}

impl SourceText {
    fn new(path: &Path, text: String) -> SourceText {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        SourceText {
            path: path.to_path_buf(),
            text,
            line_starts,
        }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_and_column(&self, offset: usize) -> (usize, usize) {
        let offset = self.text.floor_char_boundary(offset.min(self.text.len()));
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        (line, self.text[start..offset].chars().count() + 1)
    }
}

/// A string written in a file and the bytes of the file it was written in (with its quotes,
/// or the rest of the line for JSON Lines).
#[derive(Debug, Clone)]
pub struct Item {
    pub file: usize,
    pub span: Range<usize>,
    pub text: String,
}

/// What a reply text is used for; some style rules depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyUse {
    /// A reply of intent `intents[i]`.
    Intent(usize),
    /// A shop-wide template (`[templates].welcome` …).
    Template(String),
    /// A step of the bargaining ladder (`refuse`, `value`, `concession`, `member`).
    Ladder(String),
    /// A `dispatch_today` / `dispatch_next` sentence of `[shipping]`.
    Dispatch,
    /// The answer of FAQ entry `faq[i]`.
    FaqAnswer(usize),
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub item: Item,
    pub used_as: ReplyUse,
}

/// An `[[intent]]` as written.
#[derive(Debug, Clone)]
pub struct IntentRecord {
    pub name: Item,
    pub keywords: Vec<Item>,
    pub exclude: Vec<Item>,
    /// Example phrasings (相似问法).
    pub examples: Vec<Item>,
}

/// An FAQ entry as written.
#[derive(Debug, Clone)]
pub struct FaqRecord {
    pub id: String,
    pub question: Item,
    pub alternatives: Vec<Item>,
}

impl FaqRecord {
    /// The question, then the alternatives.
    pub fn phrasings(&self) -> impl Iterator<Item = &Item> {
        std::iter::once(&self.question).chain(&self.alternatives)
    }
}

/// Everything the checker reads from one shop's folders.
#[derive(Debug, Default)]
pub struct ShopSources {
    pub files: Vec<SourceText>,
    pub replies: Vec<Reply>,
    pub intents: Vec<IntentRecord>,
    /// In the order the loader indexes them, so `faq[i]` is the FAQ index's entry `i`.
    pub faq: Vec<FaqRecord>,
    /// `[matching].words` of `shop.toml`: the words that stand on their own.
    pub words: Vec<Item>,
}

impl ShopSources {
    /// Reads `intents_folder` (the shop's `intents/<shop>/`) and `faq_folder` (its
    /// `index/<shop>/`). Unreadable or broken files are skipped: the loader reports them.
    pub fn read(intents_folder: &Path, faq_folder: Option<&Path>) -> ShopSources {
        let mut sources = ShopSources::default();
        let shop_file = intents_folder.join(SHOP_FILE);
        if let Some(file) = sources.add_file(&shop_file) {
            sources.read_shop_file(file);
        }
        for path in intent_files(intents_folder).unwrap_or_default() {
            if let Some(file) = sources.add_file(&path) {
                sources.read_intent_file(file);
            }
        }
        if let Some(folder) = faq_folder.filter(|f| f.is_dir()) {
            for path in files_with_extensions(folder, &["toml", "jsonl"]).unwrap_or_default() {
                let Some(file) = sources.add_file(&path) else {
                    continue;
                };
                if path.extension().is_some_and(|x| x == "toml") {
                    sources.read_faq_toml(file);
                } else {
                    sources.read_faq_jsonl(file);
                }
            }
        }
        sources
    }

    fn add_file(&mut self, path: &Path) -> Option<usize> {
        let text = std::fs::read_to_string(path).ok()?;
        self.files.push(SourceText::new(path, text));
        Some(self.files.len() - 1)
    }

    /// Where a text starts, or where `needle` occurs inside it when it can be found there
    /// verbatim (escapes and traditional characters are not found; the text's start is then
    /// close enough).
    pub fn locate(&self, item: &Item, needle: Option<&str>) -> Location {
        let source = &self.files[item.file];
        let span = item.span.start.min(source.text.len())..item.span.end.min(source.text.len());
        // ASCII lower-casing keeps byte offsets, so "VX" is found for "vx".
        let offset = needle
            .filter(|n| !n.is_empty())
            .and_then(|n| {
                let written = source.text.get(span.clone())?;
                written
                    .find(n)
                    .or_else(|| written.to_ascii_lowercase().find(&n.to_ascii_lowercase()))
            })
            .map_or(span.start, |found| span.start + found);
        let (line, column) = source.line_and_column(offset);
        Location::new(&source.path, line, column)
    }

    fn read_shop_file(&mut self, file: usize) {
        let text = self.files[file].text.clone();
        let (root, _) = DeTable::parse_recoverable(&text);
        let root = root.get_ref();
        if let Some(templates) = table(root, "templates") {
            for (name, value) in templates.iter() {
                let used_as = ReplyUse::Template(name.get_ref().to_string());
                self.push_replies(file, value, &used_as);
            }
        }
        if let Some(bargain) = table(root, "bargain") {
            for (step, value) in bargain.iter() {
                let used_as = ReplyUse::Ladder(step.get_ref().to_string());
                self.push_replies(file, value, &used_as);
            }
        }
        if let Some(matching) = table(root, "matching") {
            self.words = strings(file, matching.get("words"));
        }
        if let Some(shipping) = table(root, "shipping") {
            for key in ["dispatch_today", "dispatch_next"] {
                if let Some(value) = shipping.get(key) {
                    self.push_replies(file, value, &ReplyUse::Dispatch);
                }
            }
        }
    }

    fn read_intent_file(&mut self, file: usize) {
        let text = self.files[file].text.clone();
        let (root, _) = DeTable::parse_recoverable(&text);
        for intent in tables(root.get_ref(), "intent") {
            let name = intent
                .get("name")
                .and_then(|v| string_item(file, v))
                .unwrap_or_else(|| Item {
                    file,
                    span: 0..0,
                    text: String::new(),
                });
            let record = IntentRecord {
                name,
                keywords: strings(file, intent.get("keywords")),
                exclude: strings(file, intent.get("exclude")),
                examples: strings(file, intent.get("examples")),
            };
            self.intents.push(record);
            let used_as = ReplyUse::Intent(self.intents.len() - 1);
            if let Some(replies) = intent.get("replies") {
                self.push_replies(file, replies, &used_as);
            }
        }
    }

    fn read_faq_toml(&mut self, file: usize) {
        let text = self.files[file].text.clone();
        let (root, _) = DeTable::parse_recoverable(&text);
        for entry in tables(root.get_ref(), "entry") {
            // Without a question the entry does not load; its answer is still checked.
            let question = entry
                .get("question")
                .and_then(|v| string_item(file, v))
                .unwrap_or_else(|| Item {
                    file,
                    span: 0..0,
                    text: String::new(),
                });
            let id = entry
                .get("id")
                .and_then(|v| string_item(file, v))
                .map(|i| i.text)
                .unwrap_or_default();
            self.faq.push(FaqRecord {
                id,
                question,
                alternatives: strings(file, entry.get("alternatives")),
            });
            let used_as = ReplyUse::FaqAnswer(self.faq.len() - 1);
            if let Some(answer) = entry.get("answer") {
                self.push_replies(file, answer, &used_as);
            }
        }
    }

    fn read_faq_jsonl(&mut self, file: usize) {
        let text = self.files[file].text.clone();
        let mut line_start = 0;
        for line in text.split_inclusive('\n') {
            let start = line_start;
            line_start += line.len();
            let Ok(serde_json::Value::Object(entry)) = serde_json::from_str(line.trim()) else {
                continue;
            };
            let whole_line = start..start + line.trim_end().len();
            // JSON has no spans; a text is looked for after its key on the line.
            let item = |key: &str, text: &str| {
                let from = line
                    .find(&format!("\"{key}\""))
                    .map_or(0, |at| at + key.len() + 2);
                Item {
                    file,
                    span: start + from..whole_line.end,
                    text: text.to_string(),
                }
            };
            let question = entry
                .get("question")
                .and_then(|q| q.as_str())
                .unwrap_or_default();
            let alternatives = entry
                .get("alternatives")
                .and_then(|a| a.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str())
                        .map(|t| item("alternatives", t))
                        .collect()
                })
                .unwrap_or_default();
            self.faq.push(FaqRecord {
                id: entry
                    .get("id")
                    .and_then(|i| i.as_str())
                    .unwrap_or_default()
                    .to_string(),
                question: item("question", question),
                alternatives,
            });
            if let Some(answer) = entry.get("answer").and_then(|a| a.as_str()) {
                self.replies.push(Reply {
                    item: item("answer", answer),
                    used_as: ReplyUse::FaqAnswer(self.faq.len() - 1),
                });
            }
        }
    }

    /// A string or an array of strings: each is one reply text.
    fn push_replies(&mut self, file: usize, value: &Spanned<DeValue>, used_as: &ReplyUse) {
        let items = match value.get_ref() {
            DeValue::String(_) => string_item(file, value).into_iter().collect(),
            _ => strings(file, Some(value)),
        };
        for item in items {
            self.replies.push(Reply {
                item,
                used_as: used_as.clone(),
            });
        }
    }
}

fn table<'a, 'i>(root: &'a DeTable<'i>, key: &str) -> Option<&'a DeTable<'i>> {
    match root.get(key)?.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => None,
    }
}

/// The tables of an array of tables (`[[intent]]`).
fn tables<'a, 'i>(root: &'a DeTable<'i>, key: &str) -> Vec<&'a DeTable<'i>> {
    match root.get(key).map(Spanned::get_ref) {
        Some(DeValue::Array(items)) => items
            .iter()
            .filter_map(|v| match v.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn string_item(file: usize, value: &Spanned<DeValue>) -> Option<Item> {
    match value.get_ref() {
        DeValue::String(s) => Some(Item {
            file,
            span: value.span(),
            text: s.to_string(),
        }),
        _ => None,
    }
}

/// The strings of an array value; anything else is the loader's to report.
fn strings(file: usize, value: Option<&Spanned<DeValue>>) -> Vec<Item> {
    match value.map(Spanned::get_ref) {
        // A reply may also be a table with its `text` and validity.
        Some(DeValue::Array(items)) => items
            .iter()
            .filter_map(|v| match v.get_ref() {
                DeValue::Table(t) => t.get("text").and_then(|text| string_item(file, text)),
                _ => string_item(file, v),
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_keywords_and_questions_keep_their_lines_even_in_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let intents = dir.path().join("intents");
        let faq = dir.path().join("index");
        std::fs::create_dir_all(&intents).unwrap();
        std::fs::create_dir_all(&faq).unwrap();
        std::fs::write(
            intents.join("shop.toml"),
            "name = \"x\"\n[templates]\nwelcome = [\n  \"您好\",\n  \"欢迎\",\n]\n[bargain]\nconcession = [\"送您小礼物\"]\n",
        )
        .unwrap();
        std::fs::write(
            intents.join("a.toml"),
            "[[intent]]\nname = \"gift\"\nkeywords = [\"赠品\",\n \"礼物\"]\nreplies = [\"有赠品哦\"]\n\n[[intent]]\nname = \"broken\"\nkeywords = [\"x\"\n",
        )
        .unwrap();
        std::fs::write(
            faq.join("b.jsonl"),
            "{\"id\": \"a\", \"question\": \"问题\", \"answer\": \"答案在这里\"}\n",
        )
        .unwrap();
        let sources = ShopSources::read(&intents, Some(&faq));
        let lines: Vec<(String, usize)> = sources
            .replies
            .iter()
            .map(|r| (r.item.text.clone(), sources.locate(&r.item, None).line))
            .collect();
        assert!(lines.contains(&("欢迎".to_string(), 5)), "{lines:?}");
        assert!(lines.contains(&("送您小礼物".to_string(), 8)), "{lines:?}");
        assert!(lines.contains(&("有赠品哦".to_string(), 5)), "{lines:?}");
        assert_eq!(sources.intents[0].keywords[1].text, "礼物");
        assert_eq!(
            sources.locate(&sources.intents[0].keywords[1], None).line,
            4
        );
        let answer = sources
            .replies
            .iter()
            .find(|r| r.used_as == ReplyUse::FaqAnswer(0))
            .unwrap();
        let at = sources.locate(&answer.item, Some("在这里"));
        let lines = SourceText::new(Path::new("x"), "a\nbé\n\nc".to_string());
        assert_eq!(lines.line_and_column(0), (1, 1));
        assert_eq!(lines.line_and_column(2), (2, 1));
        assert_eq!(lines.line_and_column(5), (2, 3));
        assert_eq!(lines.line_and_column(7), (4, 1));
        assert_eq!((at.line, at.column), (1, 44));
    }
}
