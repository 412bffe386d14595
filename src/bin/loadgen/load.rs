//! One load run: N buyers against a server for a warm-up and a measured window, optionally
//! paced to an aggregate rate, with progress lines, an agent console, and a kill -9.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::{self, AgentStats};
use crate::args::Args;
use crate::buyer::{self, BuyerOutcome};
use crate::plan::LoadPlan;
use crate::report::{RunReport, Tick, cpu_seconds_of_self};
use crate::run_context::Ctx;
use crate::server::{Server, ServerKind};

pub async fn run(
    args: &Args,
    server: &Server,
    plan: &LoadPlan,
    label: &str,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let measure_from = started + Duration::from_secs_f64(plan.warmup);
    let deadline = measure_from + Duration::from_secs_f64(plan.duration);
    let use_agent = server.kind == ServerKind::Service && !args.no_agent;
    let ctx = Arc::new(Ctx::new(
        args,
        server.urls.clone(),
        plan,
        measure_from,
        deadline,
        use_agent,
    )?);

    let agent_stats = Arc::new(AgentStats::default());
    let stop_agent = CancellationToken::new();
    let agent_task = if use_agent {
        let (ready, greeted) = oneshot::channel();
        let task = tokio::spawn(agent::run(
            server.urls[0].clone(),
            args.agent_token.clone(),
            agent_stats.clone(),
            ready,
            stop_agent.clone(),
        ));
        match greeted.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => anyhow::bail!("{e} (use --no-agent, or --agent-token)"),
            Err(_) => anyhow::bail!("the agent console stopped before it was greeted"),
        }
        Some(task)
    } else {
        None
    };

    let rss_before = server.rss_kib();
    let cpu_before = server.cpu_seconds();
    let own_cpu_before = cpu_seconds_of_self();
    let buyers: Vec<_> = (0..plan.connections)
        .map(|i| tokio::spawn(buyer::run(ctx.clone(), i)))
        .collect();

    let mut ticks = Vec::new();
    let kill_at = plan
        .kill_after
        .map(|s| started + Duration::from_secs_f64(s));
    let mut killed = false;
    if let Some(every) = plan.ticks {
        let mut last = Instant::now();
        let mut next = measure_from + every;
        while next <= deadline + Duration::from_millis(1) {
            tokio::time::sleep_until(next).await;
            let now = Instant::now();
            let latencies = ctx.recorder.take_interval();
            let answered = latencies.count;
            let tick = Tick {
                at_seconds: (now - measure_from).as_secs_f64(),
                replies_per_second: answered as f64 / (now - last).as_secs_f64(),
                latency: latencies,
                rss_kib: server.rss_kib(),
            };
            eprintln!("  {}", tick.line());
            ticks.push(tick);
            last = now;
            next += every;
        }
    } else if let Some(kill_at) = kill_at {
        tokio::time::sleep_until(kill_at).await;
    } else {
        tokio::time::sleep_until(deadline).await;
    }
    if let Some(kill_at) = kill_at {
        tokio::time::sleep_until(kill_at).await;
        ctx.kill();
        // The server handle is shared; killing goes through its pid.
        server.kill9_now();
        killed = true;
    }
    let rss_after = server.rss_kib();
    let cpu_after = server.cpu_seconds();
    let own_cpu_after = cpu_seconds_of_self();
    let measured_at = Instant::now();

    let mut outcomes = Vec::with_capacity(buyers.len());
    for buyer in buyers {
        outcomes.push(buyer.await.unwrap_or_default());
    }
    stop_agent.cancel();
    if let Some(task) = agent_task {
        let _ = task.await;
    }

    let window = if killed {
        (measured_at - measure_from).as_secs_f64().max(0.001)
    } else {
        plan.duration
    };
    let window_wall = (measured_at - started).as_secs_f64();
    let (latency, measured_answers, errors) = ctx.recorder.finish();
    let mut run = RunReport::new(label, server.kind, plan);
    run.seconds = window;
    run.replies_per_second = measured_answers as f64 / window;
    run.latency = latency;
    run.errors = errors;
    run.agent = use_agent.then(|| agent_stats.summary());
    run.rss_before_kib = rss_before;
    run.rss_after_kib = rss_after;
    run.server_cpu_percent = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => Some(100.0 * (a - b) / window_wall),
        _ => None,
    };
    run.loadgen_cpu_percent = Some(100.0 * (own_cpu_after - own_cpu_before) / window_wall);
    run.ticks = ticks;
    run.killed = killed;
    for outcome in outcomes {
        add(&mut run, outcome);
    }
    run.handoffs = run.handoffs_told.len();
    Ok(run)
}

fn add(run: &mut RunReport, outcome: BuyerOutcome) {
    run.sent += outcome.sent;
    run.answered += outcome.answered;
    run.unanswered += outcome.unanswered;
    run.cut_by_kill += outcome.cut_by_kill;
    run.unresolved_handoffs += outcome.unresolved_handoffs;
    if let Some(e) = outcome.connect_error {
        run.connection_failures += 1;
        if run.first_connection_error.is_none() {
            run.first_connection_error = Some(e);
        }
    }
    run.handoffs_told.extend(outcome.handoffs_told);
    let room = 5usize.saturating_sub(run.lost.len());
    run.lost.extend(outcome.lost.into_iter().take(room));
}
