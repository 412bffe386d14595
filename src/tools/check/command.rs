//! `autoresponder check` on the command line: which folders, which format, when to fail.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Arg;

use super::check;
use crate::tools::RuleFolders;

/// The flags of `autoresponder check`. The rule folders are found in DIR: `--intents` and
/// `--index` are those of `chat` and `eval` without their environment variables and defaults.
#[derive(clap::Args)]
#[command(
    mut_arg("intents", |flag| in_dir(flag, "Folder of shop intent files [default: DIR/intents]")),
    mut_arg("index", |flag| in_dir(flag, "Folder of the FAQ knowledge base [default: DIR/index]"))
)]
pub struct CheckArgs {
    /// The folder holding `intents/` and `index/` [default: the current folder].
    dir: Option<PathBuf>,
    #[command(flatten)]
    rules: RuleFolders,
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
    let (intents, index) = args.rules.under(&args.dir.unwrap_or_default());
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

/// A rule folder flag whose folder is DIR's when not given: no environment variable, no
/// default, and `help` saying so.
fn in_dir(flag: Arg, help: &'static str) -> Arg {
    flag.env(None::<&str>)
        .default_value(None::<&str>)
        .help(help)
}
