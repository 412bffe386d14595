//! The `autoresponder` command: parses the command line and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use autoresponder::clock::SystemClock;
use autoresponder::config::{ConfigFile, Database, ServeConfig, TokenHash};
use autoresponder::tools::check::command as check;
use autoresponder::tools::{chat, eval, unmatched};

#[derive(Parser)]
#[command(version, about = "A chat auto-responder for online shops")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve buyers over websocket (and /healthz, /readyz, /metrics).
    Serve(ServeArgs),
    /// Run a labelled file (`label<TAB>message` per line) through a shop's rules and print
    /// precision and recall per intent and every miss.
    Eval(eval::EvalArgs),
    /// List the questions buyers asked that nothing could answer, most frequent first, so
    /// operators know which FAQ entries or keywords to add next.
    Unmatched(unmatched::UnmatchedArgs),
    /// Print a new random agent token and the `token_sha256` line for `agents.toml`. Give the
    /// token to the agent; only its hash goes in the file.
    AgentToken,
    /// Check the shops' intent and FAQ files before buyers see them: load errors, keywords
    /// that conflict or never win, FAQ entries an intent or another entry takes first, and
    /// replies that break the house rules. Exits 1 on errors (and on warnings with --strict).
    Check(check::CheckArgs),
    /// A console that answers typed buyer messages exactly as the service would, to try a
    /// shop's rules: replies with their kind and intent, handoffs, and `/time` to see away
    /// and busy notices. `/help` inside lists the commands.
    Chat(chat::ChatArgs),
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
    admin_token_sha256: Option<TokenHash>,
    /// The SHA-256 (64 hex digits) of the token a scraper sends to see the KPIs in /metrics.
    #[arg(long, env = "AUTORESPONDER_METRICS_TOKEN_SHA256")]
    metrics_token_sha256: Option<TokenHash>,
    /// Serve even though a shop still lists the demo agents, whose tokens are public, on an
    /// address other machines can reach (a demo behind a proxy, the compose file).
    #[arg(long, env = "AUTORESPONDER_ALLOW_DEMO_TOKENS")]
    allow_demo_tokens: bool,
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
        Command::Eval(args) => eval::run(args),
        Command::Unmatched(args) => unmatched::run(args),
        Command::Check(args) => check::run(args),
        Command::Chat(args) => chat::run(args),
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
    config.metrics_token_sha256 = args.metrics_token_sha256.or(config.metrics_token_sha256);
    config.allow_demo_tokens |= args.allow_demo_tokens;

    // Before any thread or socket exists, so all of them share the raised limit.
    let open_files = autoresponder::open_files::raise_to_hard_limit();
    autoresponder::transport::log_connection_caps(&config.limits, open_files.map(|f| f.soft));
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        let service = autoresponder::start(&config, Arc::new(SystemClock)).await?;
        // Tests and scripts read this line to find a port chosen by the system.
        println!("listening on {address}");
        tracing::info!(%address, "serving");
        service.serve(listener, shutdown_signal()).await
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
