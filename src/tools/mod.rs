//! The operators' commands: what the people who write a shop's rules run beside the
//! service. `chat` answers typed buyer messages as the service would, `eval` measures the
//! rules on a labelled file, `check` finds mistakes in the files before buyers see them, and
//! `unmatched` lists what buyers asked that nothing could answer.

pub mod chat;
pub mod check;
pub mod eval;
pub mod unmatched;

use std::path::{Path, PathBuf};

/// Where a shop's rules are read from: the `--intents` and `--index` flags that `chat`,
/// `eval` and `check` flatten into their own.
///
/// `chat` and `eval` take them as declared here: flag, then environment, then default.
/// `check` finds the folders in its DIR argument instead, so it takes the flags without the
/// environment variables and defaults (see [`check::command::CheckArgs`]) and names the
/// folders with [`RuleFolders::under`].
#[derive(clap::Args)]
pub struct RuleFolders {
    /// Folder of shop intent files.
    #[arg(long, env = "AUTORESPONDER_INTENTS", default_value = "intents")]
    intents: Option<PathBuf>,
    /// Folder of the FAQ knowledge base.
    #[arg(long, env = "AUTORESPONDER_INDEX", default_value = "index")]
    index: Option<PathBuf>,
}

impl RuleFolders {
    /// The intents and the index folder, each as given, else `intents` and `index` in the
    /// current folder.
    pub fn folders(self) -> (PathBuf, PathBuf) {
        self.under(Path::new(""))
    }

    /// The intents and the index folder, each as given, else `intents` and `index` in `dir`.
    /// Paths are kept as given, so the defaults stay relative: `intents/default/…`.
    pub fn under(self, dir: &Path) -> (PathBuf, PathBuf) {
        let intents = self.intents.unwrap_or_else(|| dir.join("intents"));
        let index = self.index.unwrap_or_else(|| dir.join("index"));
        (intents, index)
    }
}
