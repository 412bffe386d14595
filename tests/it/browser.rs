//! The pages in a real browser: headless Chromium (Debian's `chromium`) driven by
//! playwright-core runs `tests/browser/console.mjs` against this service. A buyer complains
//! in the widget on `/`, an agent claims the case in `/agent` and replies, the buyer sees the
//! reply, and HTML typed by the buyer stays text on both pages. Last, the agent's token is
//! revoked by a reload and the open console goes back to its login.
//!
//! It needs Chromium and playwright-core, so it is ignored by a plain `cargo test` (which
//! reports it so). `scripts/test` installs them and runs it (`--include-ignored`), unless
//! `AUTORESPONDER_SKIP_BROWSER` is set, on a machine without them: the run then reports it
//! ignored, not passed. CI never sets it.

use std::path::Path;

use crate::helpers::{TestApp, repo_path};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and playwright-core; scripts/test installs them and runs it"]
async fn a_complaint_typed_in_the_widget_is_answered_from_the_agent_console() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = [
        (Path::new(&chromium).is_file(), "Chromium"),
        (
            repo_path("tests/browser/node_modules/playwright-core").is_dir(),
            "playwright-core",
        ),
    ];
    for (present, what) in missing {
        assert!(
            present,
            "{what} is not installed: run scripts/test (or, to leave this test out, \
             AUTORESPONDER_SKIP_BROWSER=1 scripts/test)"
        );
    }
    let app = TestApp::staffed().await;
    // Screenshots go to the build folder, never into the repository.
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let output = tokio::process::Command::new("node")
        .arg(repo_path("tests/browser/console.mjs"))
        .args(["--base", &format!("http://{}", app.address)])
        .args(["--token", "token-mei"])
        // Last, the agent's token is revoked while the console is open.
        .arg("--agents-file")
        .arg(app.intents.join("default/agents.toml"))
        .args(["--admin-token", crate::helpers::ADMIN_TOKEN])
        .arg("--screenshots")
        .arg(&screenshots)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the browser test failed:\n{log}");
    assert!(screenshots.join("shop.png").is_file());
    assert!(screenshots.join("agent.png").is_file());
    // What the browser did is in the store: the agent's reply, sent through the console.
    let agent_lines: Vec<String> = app.query("SELECT text FROM messages WHERE sender = 'agent'");
    assert!(!agent_lines.is_empty(), "{log}");
    let resolved: Vec<String> = app.query("SELECT status FROM handoffs");
    assert_eq!(resolved, ["resolved"], "{log}");
    eprintln!("{log}");
    app.shutdown().await;
}
