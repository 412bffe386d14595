//! The layout of a shop folder, `intents/<shop>/`: the names of its files, which of them are
//! intent files, and which folders of `intents/` are shops. The loader and `check` both find
//! a shop's files through here.

use std::path::{Path, PathBuf};

use crate::source::{LoadError, files_with_extensions};

/// The shop's settings, hours, shipping table and templates; a folder with one is a shop.
pub const SHOP_FILE: &str = "shop.toml";
/// The complaint lexicon, if the shop has one.
pub const COMPLAINTS_FILE: &str = "complaints.toml";
/// The synonym table, if the shop has one.
pub const SYNONYMS_FILE: &str = "synonyms.toml";
/// The agents and the rules of the human queue, if the shop has them.
pub const STAFF_FILE: &str = "agents.toml";

/// Every other `.toml` file of a shop folder is an intent file.
const NOT_INTENT_FILES: [&str; 4] = [SHOP_FILE, COMPLAINTS_FILE, SYNONYMS_FILE, STAFF_FILE];

/// The shops of `intents`, sorted: each folder that holds a `shop.toml`, with the shop's id
/// (the folder's name).
pub fn shop_folders(intents: &Path) -> Result<Vec<(String, PathBuf)>, LoadError> {
    let entries = std::fs::read_dir(intents).map_err(|e| {
        LoadError::whole_file(intents, format!("cannot read the intents folder: {e}"))
    })?;
    let mut folders: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join(SHOP_FILE).is_file())
        .collect();
    folders.sort();
    Ok(folders
        .into_iter()
        .map(|folder| (shop_id(&folder), folder))
        .collect())
}

fn shop_id(folder: &Path) -> String {
    folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The intent files of a shop folder (`presale.toml` …), sorted by name.
pub fn intent_files(folder: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let mut files = files_with_extensions(folder, &["toml"])?;
    files.retain(|path| !NOT_INTENT_FILES.contains(&file_name(path)));
    Ok(files)
}

/// A file's name, or "" when it is not UTF-8.
pub fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}
