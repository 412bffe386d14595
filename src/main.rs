//! The `autoresponder` command: parses the command line and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use autoresponder::clock::SystemClock;
use autoresponder::config::{ConfigFile, Database, ServeConfig};
use autoresponder::shop::Catalog;
use autoresponder::tools::eval;

#[derive(Parser)]
#[command(version, about = "A chat auto-responder for online shops")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve buyers over websocket (and /healthz, /metrics).
    Serve(ServeArgs),
    /// Run a labelled file (`label<TAB>message` per line) through a shop's rules and print
    /// precision and recall per intent and every miss.
    Eval(EvalArgs),
    /// List the questions buyers asked that nothing could answer, most frequent first, so
    /// operators know which FAQ entries or keywords to add next.
    Unmatched(UnmatchedArgs),
    /// Print a new random agent token and the `token_sha256` line for `agents.toml`. Give the
    /// token to the agent; only its hash goes in the file.
    AgentToken,
    /// Check the shops' intent and FAQ files before buyers see them: load errors, keywords
    /// that conflict or never win, FAQ entries an intent or another entry takes first, and
    /// replies that break the house rules. Exits 1 on errors (and on warnings with --strict).
    Check(CheckArgs),
    /// A console that answers typed buyer messages exactly as the service would, to try a
    /// shop's rules: replies with their kind and intent, handoffs, and `/time` to see away
    /// and busy notices. `/help` inside lists the commands.
    Chat(ChatArgs),
}

#[derive(clap::Args)]
struct ChatArgs {
    /// The shop to talk to (`/shop ID` switches inside).
    #[arg(long, default_value = "default")]
    shop: String,
    /// Folder of shop intent files.
    #[arg(long, env = "AUTORESPONDER_INTENTS", default_value = "intents")]
    intents: PathBuf,
    /// Folder of the FAQ knowledge base.
    #[arg(long, env = "AUTORESPONDER_INDEX", default_value = "index")]
    index: PathBuf,
}

#[derive(clap::Args)]
struct CheckArgs {
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

#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML config file; flags and environment variables override what it says.
    #[arg(long, env = "AUTORESPONDER_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "AUTORESPONDER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Folder of shop intent files, one sub-folder per shop [default: intents].
    #[arg(long, env = "AUTORESPONDER_INTENTS")]
    intents: Option<PathBuf>,
    /// Folder of the FAQ knowledge base [default: index].
    #[arg(long, env = "AUTORESPONDER_INDEX")]
    index: Option<PathBuf>,
    /// The store: a SQLite file, or a `postgres://user:password@host/database` URL that
    /// several nodes share [default: data/autoresponder.db].
    #[arg(long, env = "AUTORESPONDER_DATABASE")]
    database: Option<Database>,
    /// Build FAQ indexes in files under this folder instead of in RAM.
    #[arg(long, env = "AUTORESPONDER_FAQ_ON_DISK")]
    faq_on_disk: Option<PathBuf>,
    /// The SHA-256 (64 hex digits) of the admin token for /api/admin/*.
    #[arg(long, env = "AUTORESPONDER_ADMIN_TOKEN_SHA256")]
    admin_token_sha256: Option<String>,
}

#[derive(clap::Args)]
struct UnmatchedArgs {
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

#[derive(clap::Args)]
struct EvalArgs {
    /// The labelled file.
    file: PathBuf,
    /// The shop whose rules are evaluated.
    #[arg(long, default_value = "default")]
    shop: String,
    /// Folder of shop intent files.
    #[arg(long, env = "AUTORESPONDER_INTENTS", default_value = "intents")]
    intents: PathBuf,
    /// Folder of the FAQ knowledge base.
    #[arg(long, env = "AUTORESPONDER_INDEX", default_value = "index")]
    index: PathBuf,
    /// Exit with an error when accuracy (0 to 1) is below this.
    #[arg(long, default_value_t = 0.0)]
    min_accuracy: f64,
    /// Also try a grid of FAQ confidence rules and print the best, for calibration.
    #[arg(long)]
    sweep: bool,
    /// Print the FAQ's best three entries, with confidence and margin, for every line.
    #[arg(long)]
    explain: bool,
    /// Print one JSON object instead of the tables: accuracy, precision/recall/support per
    /// label, the FAQ figures, the confusions and every miss.
    #[arg(long, conflicts_with_all = ["explain", "sweep"])]
    json: bool,
}

/// The service allocates and frees many small buffers per message (frames, JSON, rows);
/// mimalloc does that with less work than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    autoresponder::telemetry::init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Eval(args) => run_eval(args),
        Command::Unmatched(args) => list_unmatched(args),
        Command::Check(args) => run_check(args),
        Command::Chat(args) => {
            autoresponder::tools::chat::run(&args.shop, &args.intents, &args.index)
                .map(|()| ExitCode::SUCCESS)
        }
        Command::AgentToken => {
            let token = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            let hash = hex::encode(autoresponder::shop::staff::token_hash(&token));
            println!("token (give it to the agent, keep it out of files): {token}");
            println!("line for agents.toml:  token_sha256 = \"{hash}\"");
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = ServeConfig::default();
    if let Some(path) = &args.config {
        ConfigFile::read(path)?.apply(&mut config);
    }
    config.listen = args.listen.unwrap_or(config.listen);
    config.intents = args.intents.unwrap_or(config.intents);
    config.index = args.index.unwrap_or(config.index);
    config.database = args.database.unwrap_or(config.database);
    config.faq_on_disk = args.faq_on_disk.or(config.faq_on_disk);
    config.admin_token_sha256 = args.admin_token_sha256.or(config.admin_token_sha256);

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        let app = autoresponder::build(&config, Arc::new(SystemClock)).await?;
        // Tests and scripts read this line to find a port chosen by the system.
        println!("listening on {address}");
        tracing::info!(%address, "serving");
        autoresponder::transport::serve(app, listener, &config, shutdown_signal())
            .await
            .context("serving failed")
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("cannot listen for SIGTERM");
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

fn run_eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::load_with_faq(&args.intents, Some(&args.index), None)
        .map_err(|e| anyhow::anyhow!("the intent or FAQ files have errors:\n{e}"))?;
    let shop = catalog
        .get(&args.shop)
        .with_context(|| format!("no shop `{}` in {}", args.shop, args.intents.display()))?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let cases =
        eval::parse_cases(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let report = eval::evaluate(shop, &cases);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.render());
    }
    if args.explain {
        println!("\nFAQ ranking per line: label | best (confidence, margin) | 2nd | 3rd");
        for line in eval::explain(shop, &cases) {
            println!("{line}");
        }
    }
    if args.sweep {
        println!(
            "\nFAQ rule sweep (best first): min_confidence single_word_confidence min_margin -> top-1 false-answers"
        );
        for row in eval::sweep(shop, &cases).iter().take(20) {
            println!(
                "  {:.2} {:.2} {:.2} -> {:.2}% {:.2}%",
                row.rule.min_confidence,
                row.rule.single_word_confidence,
                row.rule.min_margin,
                row.served_accuracy * 100.0,
                row.false_answer_rate * 100.0
            );
        }
    }
    if report.accuracy() < args.min_accuracy {
        eprintln!(
            "accuracy {:.2}% is below the required {:.2}%",
            report.accuracy() * 100.0,
            args.min_accuracy * 100.0
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    // Paths are printed as given, so the default stays relative: `intents/default/…`.
    let dir = args.dir.unwrap_or_default();
    let intents = args.intents.unwrap_or_else(|| dir.join("intents"));
    let index = args.index.unwrap_or_else(|| dir.join("index"));
    let report = autoresponder::tools::check::check(&intents, &index);
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

fn list_unmatched(args: UnmatchedArgs) -> anyhow::Result<ExitCode> {
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
        let store = autoresponder::open_store(&config).await?;
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
