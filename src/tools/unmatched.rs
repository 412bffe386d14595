//! `autoresponder unmatched`: the questions buyers asked that nothing could answer, most
//! frequent first, read from the service's store, so operators know which FAQ entries or
//! keywords to add next.

use std::process::ExitCode;

use crate::config::{Database, ServeConfig};

/// The flags of `autoresponder unmatched`.
#[derive(clap::Args)]
pub struct UnmatchedArgs {
    /// The shop whose unanswered questions are listed.
    #[arg(long, default_value = "default")]
    shop: String,
    /// The store: a SQLite file or a `postgres://` URL.
    #[arg(
        long,
        env = "AUTORESPONDER_DATABASE",
        default_value = "data/autoresponder.db"
    )]
    database: Database,
    /// How many questions to list, most frequent first.
    #[arg(long, default_value_t = 30)]
    limit: usize,
}

/// Opens the store, lists the shop's unanswered questions as a table and closes it.
pub fn run(args: UnmatchedArgs) -> anyhow::Result<ExitCode> {
    if let Database::Sqlite(path) = &args.database
        && !path.is_file()
    {
        anyhow::bail!("no database at {}", path.display());
    }
    let config = ServeConfig {
        database: args.database,
        ..ServeConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let questions = runtime.block_on(async {
        let store = crate::open_store(&config).await?;
        let questions = store.unmatched(&args.shop, args.limit).await;
        store.close().await;
        anyhow::Ok(questions?)
    })?;
    if questions.is_empty() {
        println!("no unanswered questions recorded for shop `{}`", args.shop);
    } else {
        println!("{:>6}  {:<20}  question", "count", "last asked");
        for q in questions {
            println!(
                "{:>6}  {:<20}  {}",
                q.count,
                q.last_seen.format("%Y-%m-%d %H:%M UTC"),
                q.text
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
