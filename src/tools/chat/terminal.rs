//! The console on a terminal: loads the shops, then feeds a [`ChatSession`] the lines typed
//! in a line editor (history, arrows, Ctrl-D), or piped in, and prints what it answers.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use super::session::ChatSession;
use crate::clock::SystemClock;
use crate::shop::Catalog;
use crate::tools::RuleFolders;

/// The flags of `autoresponder chat`.
#[derive(clap::Args)]
pub struct ChatArgs {
    /// The shop to talk to (`/shop ID` switches inside).
    #[arg(long, default_value = "default")]
    shop: String,
    #[command(flatten)]
    rules: RuleFolders,
}

/// Runs the console on the terminal until `/quit` or Ctrl-D: loads the shops like `eval`,
/// then reads lines with a line editor (plain lines when stdin is not a terminal).
pub fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    let (intents, index) = args.rules.folders();
    let catalog = Catalog::load_with_faq(&intents, Some(&index), None)
        .map_err(|e| anyhow::anyhow!("the intent or FAQ files have errors:\n{e}"))?;
    let mut session = ChatSession::new(catalog, &args.shop, Arc::new(SystemClock))?;
    print_lines(&session.start());
    let interactive = std::io::stdin().is_terminal();
    let mut input = Input::open(interactive);
    while !session.is_finished() {
        let prompt = format!("{}> ", session.shop_id());
        let Some(line) = input.read(&prompt) else {
            break;
        };
        if !interactive {
            // Piped input is not echoed by anyone: show it, so the output reads as a session.
            println!("{prompt}{line}");
        }
        print_lines(&session.handle_line(&line));
    }
    input.close();
    Ok(ExitCode::SUCCESS)
}

fn print_lines(lines: &[String]) {
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(stdout, "{line}");
    }
    let _ = stdout.flush();
}

/// Where typed lines come from: the line editor, or plain lines if it cannot start.
enum Input {
    Editor {
        editor: Box<DefaultEditor>,
        /// Where history is kept; `None` when input is piped, so scripts leave no history.
        history: Option<PathBuf>,
    },
    Plain {
        stdin: std::io::StdinLock<'static>,
        /// Whether to show a prompt: only a person at a terminal needs one.
        interactive: bool,
    },
}

impl Input {
    fn open(interactive: bool) -> Input {
        match DefaultEditor::new() {
            Ok(mut editor) => {
                let history = interactive.then(history_path);
                if let Some(path) = &history {
                    // No history yet is the usual first run.
                    let _ = editor.load_history(path);
                }
                Input::Editor {
                    editor: Box::new(editor),
                    history,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "no line editor; reading plain lines");
                Input::Plain {
                    stdin: std::io::stdin().lock(),
                    interactive,
                }
            }
        }
    }

    /// The next line, or `None` at the end of input.
    fn read(&mut self, prompt: &str) -> Option<String> {
        match self {
            Input::Editor { editor, history } => loop {
                match editor.readline(prompt) {
                    Ok(line) => {
                        if history.is_some() && !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line.as_str());
                        }
                        return Some(line);
                    }
                    Err(ReadlineError::Interrupted) => {
                        println!("(/quit or Ctrl-D to leave)");
                    }
                    Err(ReadlineError::Eof) => return None,
                    Err(e) => {
                        eprintln!("error: cannot read the line: {e}");
                        return None;
                    }
                }
            },
            Input::Plain { stdin, interactive } => {
                if *interactive {
                    print!("{prompt}");
                    let _ = std::io::stdout().flush();
                }
                let mut line = String::new();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
                }
            }
        }
    }

    fn close(self) {
        if let Input::Editor {
            mut editor,
            history: Some(path),
        } = self
        {
            // Losing the history is not worth an error at exit.
            let _ = editor.save_history(&path);
        }
    }
}

/// `$XDG_DATA_HOME/autoresponder/chat_history` (or the platform's data folder), or
/// `.autoresponder_history` here when there is none or it cannot be created.
fn history_path() -> PathBuf {
    let data_dir = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(platform_data_dir);
    if let Some(dir) = data_dir.map(|d| d.join("autoresponder"))
        && std::fs::create_dir_all(&dir).is_ok()
    {
        return dir.join("chat_history");
    }
    PathBuf::from(".autoresponder_history")
}

fn platform_data_dir() -> Option<PathBuf> {
    if cfg!(windows) {
        return std::env::var_os("APPDATA").map(PathBuf::from);
    }
    let home = PathBuf::from(std::env::var_os("HOME")?);
    if cfg!(target_os = "macos") {
        Some(home.join("Library/Application Support"))
    } else {
        Some(home.join(".local/share"))
    }
}
