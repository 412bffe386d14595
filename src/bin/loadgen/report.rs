//! What a loadgen invocation found, as text for people and, with `--json`, one JSON object.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::agent::AgentSummary;
use crate::args::Args;
use crate::plan::LoadPlan;
use crate::recorder::Latencies;
use crate::server::{Pinning, ServerKind};
use crate::store_check::StoreCheck;

/// One progress line of a long run.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub at_seconds: f64,
    pub replies_per_second: f64,
    pub latency: Latencies,
    pub rss_kib: Option<u64>,
}

impl Tick {
    pub fn line(&self) -> String {
        format!(
            "t={:>6.0}s  {:>8.0} replies/s  RSS {}  {}",
            self.at_seconds,
            self.replies_per_second,
            mib(self.rss_kib),
            self.latency.line()
        )
    }
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub label: String,
    pub server: &'static str,
    pub connections: usize,
    /// The aggregate rate asked for, if any.
    pub target_rate: Option<f64>,
    /// The measured window.
    pub seconds: f64,
    pub sent: u64,
    pub answered: u64,
    /// Answers inside the measured window per second.
    pub replies_per_second: f64,
    pub latency: Latencies,
    /// Error frames by `code`.
    pub errors: BTreeMap<String, u64>,
    /// Sent but never answered by the end: must be 0.
    pub unanswered: u64,
    /// The first few unanswered messages and what the buyer saw meanwhile.
    pub lost: Vec<String>,
    /// Outstanding when the service was killed on purpose.
    pub cut_by_kill: u64,
    pub connection_failures: u64,
    pub first_connection_error: Option<String>,
    pub handoffs: usize,
    pub unresolved_handoffs: u64,
    pub agent: Option<AgentSummary>,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// The server's CPU use over the run, in percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// The loadgen's own CPU use, in percent of one core: near 100 means it was the limit.
    pub loadgen_cpu_percent: Option<f64>,
    pub ticks: Vec<Tick>,
    pub killed: bool,
    pub store_check: Option<StoreCheck>,
    /// The conversation of every handoff a buyer was told of, for the store check.
    #[serde(skip)]
    pub handoffs_told: Vec<String>,
}

impl RunReport {
    pub fn new(label: &str, kind: ServerKind, plan: &LoadPlan) -> RunReport {
        RunReport {
            label: label.to_string(),
            server: match kind {
                ServerKind::Service => "service",
                ServerKind::Echo => "echo",
            },
            connections: plan.connections,
            target_rate: plan.rate,
            seconds: 0.0,
            sent: 0,
            answered: 0,
            replies_per_second: 0.0,
            latency: Latencies::default(),
            errors: BTreeMap::new(),
            unanswered: 0,
            lost: Vec::new(),
            cut_by_kill: 0,
            connection_failures: 0,
            first_connection_error: None,
            handoffs: 0,
            unresolved_handoffs: 0,
            agent: None,
            rss_before_kib: None,
            rss_after_kib: None,
            server_cpu_percent: None,
            loadgen_cpu_percent: None,
            ticks: Vec::new(),
            killed: false,
            store_check: None,
            handoffs_told: Vec::new(),
        }
    }

    fn passed(&self) -> bool {
        let connections_ok = self.killed || self.connection_failures == 0;
        let store_ok = self.store_check.as_ref().is_none_or(|c| c.missing == 0);
        self.unanswered == 0 && connections_ok && store_ok
    }

    fn render(&self) -> String {
        let mut out = format!(
            "== {} ({} connections{}) ==\n",
            self.label,
            self.connections,
            self.target_rate
                .map_or(String::new(), |r| format!(", paced at {r:.0} messages/s"))
        );
        out += &format!(
            "  replies/s   {:.0} over {:.1} s ({} sent, {} answered)\n",
            self.replies_per_second, self.seconds, self.sent, self.answered
        );
        out += &format!("  latency     {}\n", self.latency.line());
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        out += &format!(
            "  errors      {}\n",
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join(", ")
            }
        );
        out += &format!("  unanswered  {} (must be 0)\n", self.unanswered);
        for lost in &self.lost {
            out += &format!("    {lost}\n");
        }
        if self.connection_failures > 0 {
            out += &format!(
                "  connection failures {} (first: {})\n",
                self.connection_failures,
                self.first_connection_error.as_deref().unwrap_or("")
            );
        }
        if self.handoffs > 0 || self.agent.is_some() {
            out += &format!("  handoffs    {} told to buyers", self.handoffs);
            if let Some(agent) = &self.agent {
                out += &format!(
                    "; agent claimed {}, resolved {}",
                    agent.claimed, agent.resolved
                );
                if !agent.errors.is_empty() {
                    out += &format!(", errors {:?}", agent.errors);
                }
            }
            if self.unresolved_handoffs > 0 {
                out += &format!("; {} not resolved in time", self.unresolved_handoffs);
            }
            out += "\n";
        }
        if let (Some(before), Some(after)) = (self.rss_before_kib, self.rss_after_kib) {
            out += &format!(
                "  server RSS  {} before, {} at the end: {:.1} KiB per connection\n",
                mib(Some(before)),
                mib(Some(after)),
                after.saturating_sub(before) as f64 / self.connections.max(1) as f64
            );
        }
        if let Some(cpu) = self.server_cpu_percent {
            out += &format!("  server CPU  {cpu:.0} % of a core\n");
        }
        if let Some(cpu) = self.loadgen_cpu_percent {
            out += &format!("  loadgen CPU {cpu:.0} % of a core\n");
        }
        if self.killed {
            out += &format!(
                "  killed      SIGKILL mid-run; {} messages were outstanding then\n",
                self.cut_by_kill
            );
        }
        if let Some(check) = &self.store_check {
            out += &format!("  store check {}\n", check.line());
        }
        if self.ticks.len() > 1 {
            let first = &self.ticks[0];
            let last = &self.ticks[self.ticks.len() - 1];
            out += &format!(
                "  drift       RSS {} -> {}, p99 {:.3} -> {:.3} ms (first -> last interval)\n",
                mib(first.rss_kib),
                mib(last.rss_kib),
                first.latency.p99_ms,
                last.latency.p99_ms
            );
        }
        out
    }
}

/// What holding idle connections cost a server (`idle.rs`).
#[derive(Debug, Serialize)]
pub struct IdleReport {
    pub server: &'static str,
    pub connections: usize,
    pub opened: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    pub rss_per_connection_kib: Option<f64>,
    pub seconds_to_open: f64,
}

impl IdleReport {
    pub fn line(&self) -> String {
        let mut line = format!(
            "== idle connections: {} ==\n  opened      {} of {} in {:.1} s ({} failed{})\n  server RSS  {} before, {} with them held: {} per idle connection",
            self.server,
            self.opened,
            self.connections,
            self.seconds_to_open,
            self.failed,
            self.first_error
                .as_ref()
                .map_or(String::new(), |e| format!("; first: {e}")),
            mib(self.rss_before_kib),
            mib(self.rss_after_kib),
            self.rss_per_connection_kib
                .map_or("?".to_string(), |k| format!("{k:.1} KiB")),
        );
        if self.server == "service" {
            line += " (target: 16 KiB or less)";
        }
        line
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub machine: String,
    pub pinning: String,
    pub command: String,
    pub notes: Vec<String>,
    pub runs: Vec<RunReport>,
    pub idle: Vec<IdleReport>,
    /// The service's replies per second over the echo's, in the same invocation.
    pub echo_ratio: Option<f64>,
    pub passed: bool,
    #[serde(skip)]
    json: bool,
}

impl Report {
    pub fn new(args: &Args, pinning: Pinning) -> Report {
        let report = Report {
            date: date_now(),
            machine: machine(),
            pinning: pinning.describe(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            notes: Vec::new(),
            runs: Vec::new(),
            idle: Vec::new(),
            echo_ratio: None,
            passed: false,
            json: args.json,
        };
        report.say(&format!("loadgen {} on {}", report.date, report.machine));
        report
    }

    /// Prints a line for people: to stdout, or to stderr when stdout carries the JSON.
    fn say(&self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    pub fn note(&mut self, note: String) {
        self.say(&note);
        self.notes.push(note);
    }

    pub fn progress(&self, run: &RunReport) {
        self.say(run.render().trim_end());
    }

    pub fn add_run(&mut self, run: RunReport) {
        self.runs.push(run);
    }

    pub fn add_idle(&mut self, idle: IdleReport) {
        self.say(&idle.line());
        self.idle.push(idle);
    }

    pub fn finish(&mut self) {
        let service = self
            .runs
            .iter()
            .find(|r| r.server == "service" && r.target_rate.is_none() && !r.killed);
        let echo = self.runs.iter().find(|r| r.server == "echo");
        if let (Some(service), Some(echo)) = (service, echo)
            && echo.replies_per_second > 0.0
        {
            let ratio = service.replies_per_second / echo.replies_per_second;
            self.say(&format!(
                "service / echo: {:.0} / {:.0} replies/s = {:.1} %",
                service.replies_per_second,
                echo.replies_per_second,
                ratio * 100.0
            ));
            self.echo_ratio = Some(ratio);
        }
        self.passed =
            self.runs.iter().all(RunReport::passed) && self.idle.iter().all(|i| i.failed == 0);
        self.say(if self.passed {
            "result: no message lost"
        } else {
            "result: FAILED (lost messages, failed connections or missing handoffs above)"
        });
        if self.json {
            println!(
                "{}",
                serde_json::to_string(self).expect("the report serialises")
            );
        }
    }

    pub fn passed(&self) -> bool {
        self.passed
    }
}

pub fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// This process's CPU time so far (user and system), in seconds.
pub fn cpu_seconds_of_self() -> f64 {
    // SAFETY: getrusage fills the struct passed.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}

fn date_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn machine() -> String {
    // Online cores, not this process's: the loadgen pins itself to one.
    // SAFETY: sysconf only reads a constant.
    let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(String::new(), |k| {
            format!(", {:.0} GiB", k as f64 / 1024.0 / 1024.0)
        });
    format!("{cores} cores ({model}){memory}")
}
