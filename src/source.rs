//! Reading a shop's source files (intents and FAQ), and the errors found in them, each naming
//! the file and line an operator must fix.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One mistake in one intent file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based line; 0 when the mistake is about the file as a whole.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    pub message: String,
}

impl LoadError {
    /// A mistake about a file or folder as a whole (it cannot be read, it is missing).
    pub fn whole_file(path: &Path, message: impl Into<String>) -> LoadError {
        LoadError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

/// Reads a source file, or says which one could not be read.
pub fn read_source(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path)
        .map_err(|e| LoadError::whole_file(path, format!("cannot read: {e}")))
}

/// The files directly in `folder` whose extension is one of `extensions`, sorted by name so
/// that loading (and the order of errors) does not depend on the file system.
pub fn files_with_extensions(
    folder: &Path,
    extensions: &[&str],
) -> Result<Vec<PathBuf>, LoadError> {
    let entries = std::fs::read_dir(folder)
        .map_err(|e| LoadError::whole_file(folder, format!("cannot list: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| extensions.contains(&x))
        })
        .collect();
    files.sort();
    Ok(files)
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}", self.file.display(), self.message),
            (line, 0) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            (line, column) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.file.display(),
                self.message
            ),
        }
    }
}

/// Every mistake found in a catalogue of shops; loading reports them all at once so an
/// operator fixes a whole batch per round.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// The source of one file, for turning byte offsets into line and column.
pub struct SourceFile<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl SourceFile<'_> {
    pub fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> LoadError {
        let (line, column) = line_and_column(self.text, span.start);
        LoadError {
            file: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    pub fn error(&self, message: impl Into<String>) -> LoadError {
        LoadError::whole_file(self.path, message)
    }

    /// The 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        line_and_column(self.text, offset).0
    }

    /// Parses the file as TOML; a mistake of syntax or type names its line and column.
    pub fn parse_toml<T: serde::de::DeserializeOwned>(&self) -> Result<T, LoadError> {
        toml::from_str(self.text).map_err(|e| self.toml_error(&e))
    }

    pub fn toml_error(&self, error: &toml::de::Error) -> LoadError {
        let message = error.message().trim().to_string();
        match error.span() {
            Some(span) => self.error_at(span, message),
            None => self.error(message),
        }
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(super::line_and_column(text, 0), (1, 1));
        assert_eq!(super::line_and_column(text, 6), (2, 1));
        assert_eq!(super::line_and_column(text, 11), (2, 5));
    }
}
