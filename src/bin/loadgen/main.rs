//! `loadgen`: drives the service with concurrent buyers on loopback and reports what it
//! holds: replies per second, latency percentiles, errors, lost messages and memory.
//!
//! By default it starts the service itself (the `autoresponder` binary beside this one) on a
//! temporary database, pinned to core 0 while the load runs on core 1, and can run the same
//! load against a bare websocket echo server (this binary again, `--echo-server`) for a
//! baseline. `--target` drives servers that are already running. See `docs/benchmarks.md`
//! for the figures and the exact commands that produced them.

mod agent;
mod args;
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

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::args::Args;
use crate::plan::LoadPlan;
use crate::report::Report;
use crate::server::{Pinning, Server, ServerKind};

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
