//! `synonyms.toml`: the shop's rewrite table, applied to buyer messages and to every text the
//! rules match, checked so that one pass of rewriting reads the same in any order.

use std::path::Path;

use crate::normalize::{Synonyms, normalize};
use crate::shop::files::SynonymsFile;
use crate::source::{LoadError, SourceFile};

/// The table of a `synonyms.toml`; `path` only names the file in errors.
pub(super) fn synonyms_from_text(path: &Path, text: &str) -> Result<Synonyms, LoadError> {
    let src = SourceFile { path, text };
    let file: SynonymsFile = src.parse_toml()?;
    synonym_table(&src, file)
}

fn synonym_table(src: &SourceFile, file: SynonymsFile) -> Result<Synonyms, LoadError> {
    let mut pairs = Vec::with_capacity(file.rewrite.len());
    for (from, to) in file.rewrite {
        let (from_n, to_n) = (normalize(&from), normalize(&to));
        if from_n.is_empty() || to_n.is_empty() {
            return Err(src.error(format!(
                "rewrite \"{from}\" = \"{to}\": both sides need letters or characters"
            )));
        }
        // A single character occurs in far too many words to be rewritten everywhere.
        if from_n.chars().count() < 2 {
            return Err(src.error(format!(
                "rewrite \"{from}\": a key needs at least 2 characters"
            )));
        }
        pairs.push((from_n, to_n));
    }
    // The rewrite runs once; a result that contains another key would read differently
    // depending on the order of the table.
    for (from, to) in &pairs {
        if let Some((other, _)) = pairs.iter().find(|(key, _)| to.contains(key.as_str())) {
            return Err(src.error(format!(
                "rewrite \"{from}\" = \"{to}\": the result contains the key \"{other}\""
            )));
        }
    }
    Synonyms::new(pairs).map_err(|e| src.error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<Synonyms, LoadError> {
        let path = Path::new("intents/x/synonyms.toml");
        let src = SourceFile { path, text };
        synonym_table(&src, toml::from_str(text).unwrap())
    }

    #[test]
    fn synonym_tables_reject_short_keys_and_chained_rewrites() {
        assert!(table("[rewrite]\n\"包油\" = \"包邮\"\n").is_ok());
        let short = table("[rewrite]\n\"油\" = \"邮\"\n").unwrap_err();
        assert!(short.message.contains("2 characters"), "{short}");
        let chained = table("[rewrite]\n\"包油\" = \"包邮\"\n\"包邮\" = \"免运费\"\n").unwrap_err();
        assert!(chained.message.contains("contains the key"), "{chained}");
        assert!(
            chained.to_string().starts_with("intents/x/synonyms.toml"),
            "{chained}"
        );
    }
}
