//! The load generator works end to end: a short run against the real service (and the echo
//! baseline) loses nothing and prints a report that parses, and a kill -9 mid-run finds every
//! handoff a buyer was told of in the store. Figures are not asserted here: a benchmark is a
//! loadgen run on a quiet machine (`docs/benchmarks.md`), not a test.

use std::process::Command;

use serde_json::Value;

fn loadgen(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--service", env!("CARGO_BIN_EXE_autoresponder")])
        .args(["--no-pin", "--json", "--warmup", "0.2"])
        .args(args)
        .output()
        .expect("the loadgen runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the loadgen failed:\n{stderr}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

#[test]
fn a_short_run_answers_every_message_and_reports_the_echo_ratio() {
    let report = loadgen(&["--connections", "4", "--duration", "1", "--echo"]);
    assert_eq!(report["passed"], true);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "the service, then the echo baseline");
    for run in runs {
        assert!(run["answered"].as_u64().unwrap() > 0, "{run}");
        assert_eq!(run["unanswered"], 0, "{run}");
        assert!(run["latency"]["p99_ms"].as_f64().unwrap() > 0.0, "{run}");
        assert!(run["rss_after_kib"].as_u64().unwrap() > 0, "{run}");
    }
    assert_eq!(runs[0]["server"], "service");
    assert!(report["echo_ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn after_a_kill_every_acknowledged_handoff_is_in_the_store() {
    let report = loadgen(&[
        "--connections",
        "8",
        "--duration",
        "5",
        "--kill-after",
        "1.2",
        "--weights",
        "after_sale=40",
    ]);
    let run = &report["runs"][0];
    assert_eq!(run["killed"], true, "{run}");
    assert!(run["handoffs"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(run["store_check"]["missing"], 0, "{run}");
    assert_eq!(run["unanswered"], 0, "{run}");
}
