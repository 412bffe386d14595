//! Reading a shop's FAQ files: `index/<shop>/*.toml` (`[[entry]]` tables, for hand editing)
//! and `index/<shop>/*.jsonl` (one entry per line, for bulk import). Every mistake is reported
//! with file and line.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::source::{LoadError, SourceFile, files_with_extensions, read_source};

/// One entry as written, before its answer is parsed and its texts normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySpec {
    pub id: String,
    pub question: String,
    pub alternatives: Vec<String>,
    pub answer: String,
    pub tags: Vec<String>,
    /// The time the answer may be sent in (RFC 3339), e.g. until a promotion ends.
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    /// Where the entry was written, for errors found later (bad template, duplicate id).
    pub file: PathBuf,
    pub line: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    entry: Vec<Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    question: String,
    #[serde(default)]
    alternatives: Vec<String>,
    answer: String,
    #[serde(default)]
    tags: Vec<String>,
    valid_from: Option<String>,
    valid_until: Option<String>,
}

/// Reads every FAQ file in `folder`; a missing folder is an empty FAQ.
pub fn load_entries(folder: &Path) -> Result<Vec<EntrySpec>, Vec<LoadError>> {
    if !folder.is_dir() {
        return Ok(Vec::new());
    }
    let paths = files_with_extensions(folder, &["toml", "jsonl"]).map_err(|e| vec![e])?;
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match read_source(&path)
            .map_err(|e| vec![e])
            .and_then(|text| parse_entries(&path, &text))
        {
            // A file cut short reads as no entries: never take that as a wish to drop them.
            Ok(found) if found.is_empty() => errors.push(LoadError::whole_file(
                &path,
                "the file is empty (no FAQ entry, at most comments or blank lines); delete it \
                 to remove its entries",
            )),
            Ok(mut found) => entries.append(&mut found),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

/// Reads the entries of one FAQ file's text: `[[entry]]` tables when `path` ends in `.toml`,
/// JSON Lines otherwise. `path` only names the file in entries and errors.
pub fn parse_entries(path: &Path, text: &str) -> Result<Vec<EntrySpec>, Vec<LoadError>> {
    let src = SourceFile { path, text };
    if path.extension().is_some_and(|x| x == "toml") {
        let file = src.parse_toml::<TomlFile>().map_err(|e| vec![e])?;
        return Ok(file
            .entry
            .into_iter()
            .map(|raw| {
                let line = src.line_of(raw.span().start);
                spec(raw.into_inner(), path, line)
            })
            .collect());
    }
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RawEntry>(line) {
            Ok(raw) => entries.push(spec(raw, path, index + 1)),
            Err(e) => errors.push(LoadError {
                file: path.to_path_buf(),
                line: index + 1,
                column: e.column(),
                message: format!("not an FAQ entry: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

fn spec(raw: RawEntry, file: &Path, line: usize) -> EntrySpec {
    EntrySpec {
        id: raw.id,
        question: raw.question,
        alternatives: raw.alternatives,
        answer: raw.answer,
        tags: raw.tags,
        valid_from: raw.valid_from,
        valid_until: raw.valid_until,
        file: file.to_path_buf(),
        line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json_lines_load_and_mistakes_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.toml"),
            "[[entry]]\nid = \"a\"\nquestion = \"q\"\nanswer = \"x\"\n\n[[entry]]\nid = \"b\"\nquestion = \"q2\"\nalternatives = [\"q3\"]\nanswer = \"y\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.jsonl"),
            "{\"id\":\"c\",\"question\":\"q\",\"answer\":\"z\"}\n\n",
        )
        .unwrap();
        let entries = load_entries(dir.path()).unwrap();
        let ids: Vec<_> = entries.iter().map(|e| (e.id.as_str(), e.line)).collect();
        assert_eq!(ids, [("a", 1), ("b", 6), ("c", 1)]);

        std::fs::write(
            dir.path().join("b.jsonl"),
            "{\"id\":\"c\",\"question\":\"q\",\"answer\":\"z\"}\n{\"id\":\"d\",\"question\":\"q\"}\n",
        )
        .unwrap();
        let errors = load_entries(dir.path()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("b.jsonl:2"), "{}", errors[0]);
        assert!(errors[0].message.contains("answer"), "{}", errors[0]);

        std::fs::write(dir.path().join("b.jsonl"), "\n").unwrap();
        std::fs::write(dir.path().join("a.toml"), "# nothing yet\n").unwrap();
        let errors = load_entries(dir.path()).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors.iter().all(|e| e.message.contains("is empty")),
            "{errors:?}"
        );
    }
}
