//! `autoresponder check` on the command line: which folders, which format, when to fail.

use std::path::PathBuf;
use std::process::ExitCode;

use super::check;

/// The flags of `autoresponder check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The folder holding `intents/` and `index/` [default: the current folder].
    dir: Option<PathBuf>,
    /// Folder of shop intent files [default: DIR/intents].
    #[arg(long)]
    intents: Option<PathBuf>,
    /// Folder of the FAQ knowledge base [default: DIR/index].
    #[arg(long)]
    index: Option<PathBuf>,
    /// `human` (one `file:line: severity[rule]: message` line per finding) or `json`.
    #[arg(long, default_value = "human", value_parser = ["human", "json"])]
    format: String,
    /// Fail on warnings too, not only on errors.
    #[arg(long)]
    strict: bool,
}

/// Checks the folders and prints the findings; fails on errors (and on warnings with
/// `--strict`).
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    // Paths are printed as given, so the default stays relative: `intents/default/…`.
    let dir = args.dir.unwrap_or_default();
    let intents = args.intents.unwrap_or_else(|| dir.join("intents"));
    let index = args.index.unwrap_or_else(|| dir.join("index"));
    let report = check(&intents, &index);
    if args.format == "json" {
        println!("{}", report.render_json());
    } else {
        print!("{}", report.render_human());
    }
    Ok(if report.fails(args.strict) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
