//! `loadgen`: drives the service with concurrent buyers on loopback and reports what it
//! holds: replies per second, latency percentiles, errors, lost messages and memory.
//!
//! By default it starts the service itself (the `autoresponder` binary beside this one) on a
//! temporary database, pinned to core 0 while the load runs on core 1, and can run the same
//! load against a bare websocket echo server (this binary again, `--echo-server`) for a
//! baseline. `--target` drives servers that are already running. See `docs/benchmarks.md`
//! for the figures and the exact commands that produced them.

mod agent;
mod buyer;
mod echo;
mod idle;
mod load;
mod mix;
mod plan;
mod recorder;
mod report;
mod run_context;
mod server;
mod socket;
mod store_check;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::plan::LoadPlan;
use crate::report::Report;
use crate::server::{Pinning, Server, ServerKind};

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Load generator for the autoresponder: closed-loop buyers on loopback, an echo \
             baseline, idle-connection memory, soak and kill -9 checks"
)]
pub struct Args {
    /// Concurrent buyer connections, each its own buyer id, at most one message outstanding.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// How long the measured part of a run lasts, in seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring starts (connections open, caches warm).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Stop after this many messages in all (the duration still bounds the run).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Aggregate messages per second across all connections (still never more than one
    /// outstanding per connection). Without it each connection sends as fast as it is answered.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Also run the same load against a bare tokio-tungstenite echo server and print the
    /// ratio of the service's replies per second to the echo's.
    #[arg(long)]
    pub echo: bool,
    /// After the run at full speed, run again at half the measured replies per second and
    /// report its latencies.
    #[arg(long)]
    pub half: bool,
    /// Open this many idle buyer connections, hold them, and report the server's RSS before
    /// and after (RSS per idle connection) instead of running a load.
    #[arg(long)]
    pub idle: Option<usize>,
    /// How long to hold the idle connections before measuring, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub idle_settle: f64,
    /// Run at a fixed rate for this many minutes, printing RSS and latency percentiles every
    /// minute. The rate is `--rate`, or half the maximum measured in a first 10-second run.
    #[arg(long)]
    pub soak_minutes: Option<f64>,
    /// Seconds between the soak's progress lines.
    #[arg(long, default_value_t = 60.0)]
    pub soak_interval: f64,
    /// SIGKILL the spawned service this many seconds into the run, then check that every
    /// handoff a buyer was told of is in its SQLite database.
    #[arg(long)]
    pub kill_after: Option<f64>,
    /// Drive an already-running server at this URL (`ws://host:port`) instead of spawning
    /// one; repeat it to round-robin connections over several.
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// With `--target`: the process whose RSS is reported (repeatable; summed).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// An extra argument for the spawned `autoresponder serve` (repeatable), e.g.
    /// `--serve-arg=--database --serve-arg=postgres://…`.
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
    /// The service binary [default: `autoresponder` beside this executable].
    #[arg(long)]
    pub service: Option<PathBuf>,
    /// The shops' intent files for the spawned service.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/intents"))]
    pub intents: PathBuf,
    /// The FAQ knowledge base for the spawned service.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/index"))]
    pub index: PathBuf,
    /// The shop the buyers talk to.
    #[arg(long, default_value = "default")]
    pub shop: String,
    /// The agent console's token: the loadgen claims and resolves every handoff with it, so
    /// conversations return to the bot and the mix stays the mix. The default is a demo
    /// agent of the shipped `default` shop.
    #[arg(long, default_value = "demo-xiaoyue")]
    pub agent_token: String,
    /// Messages each buyer sends before it leaves; a new buyer (a new id, a new
    /// conversation) then connects in its place. 0: a buyer stays for the whole run.
    #[arg(long, default_value_t = 0)]
    pub conversation: u64,
    /// No agent: handed-off buyers go on writing and are answered by `queue` frames.
    #[arg(long)]
    pub no_agent: bool,
    /// Message weights, e.g. `greeting=15,shipping=20,bargain=8,faq=15,presale=20,
    /// after_sale=3,chit_chat=19` (categories left out keep their default weight).
    #[arg(long)]
    pub weights: Option<String>,
    /// Websocket read and write buffer of the echo server and of the loadgen's own
    /// connections; the service's is its `socket_buffer_bytes`.
    #[arg(long, default_value_t = 4096)]
    pub socket_buffer_bytes: usize,
    /// Largest websocket frame of the echo server; the service's is its `max_frame_bytes`.
    #[arg(long, default_value_t = 16384)]
    pub max_frame_bytes: usize,
    /// How long a buyer waits for the answer to one message before counting it unanswered.
    #[arg(long, default_value_t = 10.0)]
    pub answer_timeout: f64,
    /// Do not pin the server to core 0 and the loadgen to core 1.
    #[arg(long)]
    pub no_pin: bool,
    /// Print the final report as one JSON object on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Seed of the message mix.
    #[arg(long, default_value_t = 11_11)]
    pub seed: u64,
    /// Run as the echo server (used by the loadgen itself).
    #[arg(long, hide = true)]
    pub echo_server: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.echo_server {
        return match echo::serve(args.socket_buffer_bytes, args.max_frame_bytes) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("echo server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    server::raise_open_files();
    let pinning = if args.no_pin {
        Pinning::None
    } else {
        server::pin_self()
    };
    // One core for the load: a single-threaded runtime drives every connection.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(args, pinning)) {
        Ok(report) => {
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, pinning: Pinning) -> anyhow::Result<Report> {
    if args.kill_after.is_some() && !args.targets.is_empty() {
        anyhow::bail!(
            "--kill-after kills the service the loadgen spawned and reads its SQLite file; \
             it cannot be used with --target"
        );
    }
    let mut report = Report::new(&args, pinning);
    report.note(pinning.describe());
    if let Some(count) = args.idle {
        for kind in kinds(&args) {
            let mut server = start(&args, kind, pinning).await?;
            let idle = idle::hold(&args, &server, count).await?;
            server.stop().await;
            report.add_idle(idle);
        }
    } else if let Some(minutes) = args.soak_minutes {
        let mut server = start(&args, ServerKind::Service, pinning).await?;
        let rate = match args.rate {
            Some(rate) => rate,
            None => {
                let probe = LoadPlan::from_args(&args).with_duration(10.0);
                let max = load::run(&args, &server, &probe, "max (probe)").await?;
                report.progress(&max);
                let half = max.replies_per_second / 2.0;
                report.add_run(max);
                half
            }
        };
        let plan = LoadPlan::from_args(&args)
            .with_duration(minutes * 60.0)
            .with_rate(Some(rate))
            .with_ticks(Duration::from_secs_f64(args.soak_interval));
        let soak = load::run(&args, &server, &plan, "soak").await?;
        report.progress(&soak);
        report.add_run(soak);
        server.stop().await;
    } else {
        let kinds = kinds(&args);
        for kind in kinds {
            let mut server = start(&args, kind, pinning).await?;
            let plan = LoadPlan::from_args(&args)
                .with_kill(args.kill_after.filter(|_| kind == ServerKind::Service));
            let label = match (kind, plan.rate) {
                (ServerKind::Echo, _) => "echo".to_string(),
                (_, Some(rate)) => format!("service at {rate:.0}/s"),
                _ => "service".to_string(),
            };
            let mut run = load::run(&args, &server, &plan, &label).await?;
            if plan.kill_after.is_some() {
                let database = server
                    .database()
                    .context("--kill-after needs a spawned service with its SQLite database")?;
                run.store_check = Some(store_check::check(&database, &run.handoffs_told)?);
            }
            report.progress(&run);
            let max = run.replies_per_second;
            report.add_run(run);
            if args.half && kind == ServerKind::Service && plan.kill_after.is_none() {
                let half = LoadPlan::from_args(&args).with_rate(Some(max / 2.0));
                let run = load::run(
                    &args,
                    &server,
                    &half,
                    &format!("service at half ({:.0}/s)", max / 2.0),
                )
                .await?;
                report.progress(&run);
                report.add_run(run);
            }
            server.stop().await;
        }
    }
    report.finish();
    Ok(report)
}

/// The servers a run measures: the service (spawned or targeted), then the echo baseline.
fn kinds(args: &Args) -> Vec<ServerKind> {
    let mut kinds = vec![ServerKind::Service];
    if args.echo {
        kinds.push(ServerKind::Echo);
    }
    kinds
}

async fn start(args: &Args, kind: ServerKind, pinning: Pinning) -> anyhow::Result<Server> {
    match kind {
        ServerKind::Service if !args.targets.is_empty() => {
            Server::external(&args.targets, &args.server_pids, pinning)
        }
        ServerKind::Service => Server::spawn_service(args, pinning).await,
        ServerKind::Echo => Server::spawn_echo(args, pinning).await,
    }
}
