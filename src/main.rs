//! The `autoresponder` command: parses the command line and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use autoresponder::clock::SystemClock;
use autoresponder::config::{ConfigFile, ServeConfig};
use autoresponder::eval;
use autoresponder::shop::Catalog;

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
    /// SQLite database file [default: data/autoresponder.db].
    #[arg(long, env = "AUTORESPONDER_DATABASE")]
    database: Option<PathBuf>,
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
    /// Exit with an error when accuracy (0 to 1) is below this.
    #[arg(long, default_value_t = 0.0)]
    min_accuracy: f64,
}

fn main() -> ExitCode {
    autoresponder::telemetry::init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Eval(args) => run_eval(args),
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
    let catalog = Catalog::load(&args.intents)
        .map_err(|e| anyhow::anyhow!("the intent files have errors:\n{e}"))?;
    let shop = catalog
        .get(&args.shop)
        .with_context(|| format!("no shop `{}` in {}", args.shop, args.intents.display()))?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let cases =
        eval::parse_cases(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let report = eval::evaluate(shop, &cases);
    print!("{}", report.render());
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
