//! Hot reload: an operator's edit serves on the next message, a broken edit never does.

use serde_json::Value;

use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::helpers::{ADMIN_TOKEN, Incoming, PATIENCE, TestApp};

const BEARER: &str = "Authorization: Bearer admin-token";

async fn status(app: &TestApp) -> Value {
    let (code, body) = app.http("GET", "/api/admin/status", &[BEARER]).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits (bounded) until the watcher has finished its reload number `attempts`. Nothing else
/// signals a reload to the test, so it asks the status page.
async fn reloaded(app: &TestApp, attempts: u64) -> Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let status = status(app).await;
            let done = status["last_reload"]["trigger"] == "files changed"
                && status["reloads"].as_u64().unwrap() >= attempts;
            if done {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the edit is picked up")
}

#[tokio::test]
async fn an_edit_serves_on_the_next_message_and_a_broken_edit_never_does() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("operator-test").await.welcomed().await;
    let first = buyer.ask("能便宜点吗", "1", "answer").await;
    let before = buyer.ask("测试口令", "2", "fallback").await;
    assert_eq!(before[0]["kind"], "fallback");

    // The operator adds an intent; the watcher reloads; the same connection gets it.
    let file = app.intents.join("default/zz_operator.toml");
    std::fs::write(
        &file,
        "[[intent]]\nname = \"password\"\nkeywords = [\"测试口令\"]\nreplies = [\"口令正确，欢迎参加活动～\"]\n",
    )
    .unwrap();
    let status = reloaded(&app, 1).await;
    assert_eq!(status["last_reload"]["ok"], true, "{status}");
    let after = buyer.ask("测试口令", "3", "answer").await;
    assert_eq!(after[0]["intent"], "password");
    assert_eq!(after[0]["text"], "口令正确，欢迎参加活动～");
    // The operator rewords an existing reply: the next message gets the new wording.
    let presale = app.intents.join("default/presale.toml");
    let text = std::fs::read_to_string(&presale).unwrap();
    let old_reply = "全店满{threshold}元就包邮哦，不满的话运费在下单页会自动显示。偏远地区可能需要补一点运费，请您理解～";
    assert!(
        text.contains(old_reply),
        "the shipped reply changed; update this test"
    );
    std::fs::write(
        &presale,
        text.replace(old_reply, "新版回复：满{threshold}元包邮～"),
    )
    .unwrap();
    reloaded(&app, 2).await;
    // First time this buyer asks, so the first variant (the reworded one) is sent.
    let reworded = buyer.ask("包邮吗", "3b", "answer").await;
    assert_eq!(reworded[0]["text"], "新版回复：满99元包邮～");

    // The conversation kept its state: the bargaining ladder goes on climbing.
    let second = buyer.ask("能便宜点吗", "4", "answer").await;
    assert_ne!(first[0]["text"], second[0]["text"]);

    // A broken edit: the error names file and line, and the old rules keep serving.
    std::fs::write(
        &file,
        "[[intent]]\nname = \"password\"\nkeywords = [\"测试口令\"\nreplies = [\"x\"]\n",
    )
    .unwrap();
    let status = reloaded(&app, 3).await;
    assert_eq!(status["last_reload"]["ok"], false, "{status}");
    let errors = status["last_reload"]["errors"].to_string();
    assert!(errors.contains("zz_operator.toml:4"), "{errors}");
    assert_eq!(
        status["generation"], 3,
        "the serving rules are still the third load"
    );
    let still = buyer.ask("测试口令", "5", "answer").await;
    assert_eq!(still[0]["text"], "口令正确，欢迎参加活动～");
    let (_, metrics) = app.http_get("/metrics").await;
    assert!(metrics.contains("autoresponder_rule_reloads_total{result=\"error\"} 1"));
    assert!(
        !metrics.contains("autoresponder_rule_errors 0"),
        "{metrics}"
    );

    // Fixed, and reloaded on request rather than by the watcher.
    std::fs::remove_file(&file).unwrap();
    let (code, body) = app.http("POST", "/api/admin/reload", &[BEARER]).await;
    assert_eq!(code, 200, "{body}");
    let gone = buyer.ask("测试口令", "6", "fallback").await;
    assert_eq!(gone[0]["kind"], "fallback");
    let (_, metrics) = app.http_get("/metrics").await;
    assert!(metrics.contains("autoresponder_rule_errors 0"), "{metrics}");
    app.shutdown().await;
}

#[tokio::test]
async fn examples_added_by_an_operator_hand_off_after_a_reload_and_a_broken_one_never_serves() {
    let app = TestApp::start().await;
    let mut first = app.buyer("examples-1").await.welcomed().await;
    let message = "我的望远镜镜片起了一层雾";
    first.ask(message, "1", "fallback").await;

    // The operator teaches a handoff intent by example, without a keyword buyers write.
    let file = app.intents.join("default/zz_examples.toml");
    let intent = |examples: &str| {
        format!(
            "[[intent]]\nname = \"lens_fault\"\nhandoff = \"normal\"\nkeywords = [\"镜片故障报修\"]\nexamples = [\n{examples}\n]\n"
        )
    };
    std::fs::write(
        &file,
        intent("    \"望远镜镜片起了一层雾\",\n    \"镜片上总有一层雾看不清\","),
    )
    .unwrap();
    let status = reloaded(&app, 1).await;
    assert_eq!(status["last_reload"]["ok"], true, "{status}");
    let handed_off = first.ask(message, "2", "handoff").await;
    assert_eq!(handed_off.last().unwrap()["intent"], "lens_fault");

    // An example that is empty once punctuation goes: named by file and line, not served.
    std::fs::write(
        &file,
        intent("    \"镜片上总有一层雾看不清\",\n    \"！！\","),
    )
    .unwrap();
    let status = reloaded(&app, 2).await;
    assert_eq!(status["last_reload"]["ok"], false, "{status}");
    let errors = status["last_reload"]["errors"].to_string();
    assert!(errors.contains("zz_examples.toml:7"), "{errors}");
    let mut second = app.buyer("examples-2").await.welcomed().await;
    let still = second.ask(message, "1", "handoff").await;
    assert_eq!(still.last().unwrap()["intent"], "lens_fault");
    app.shutdown().await;
}

#[tokio::test]
async fn the_admin_endpoints_need_the_admin_token_and_say_so() {
    let app = TestApp::start().await;
    let (code, body) = app.http_get("/api/admin/status").await;
    assert_eq!(code, 401);
    assert!(body.contains("the admin token is required"), "{body}");
    assert!(!body.contains("agent"), "{body}");
    let wrong = "Authorization: Bearer token-mei";
    let (code, body) = app.http("POST", "/api/admin/reload", &[wrong]).await;
    assert_eq!(code, 401);
    assert!(body.contains("the admin token is required"), "{body}");
    let (code, _) = app
        .http_get(&format!("/api/admin/status?token={ADMIN_TOKEN}"))
        .await;
    assert_eq!(code, 200);
    app.shutdown().await;
}

#[tokio::test]
async fn without_an_admin_token_configured_the_admin_endpoints_say_how_to_set_one() {
    let dir = tempfile::tempdir().unwrap();
    let intents = dir.path().join("intents/default");
    std::fs::create_dir_all(&intents).unwrap();
    for file in std::fs::read_dir(crate::helpers::repo_path("intents/default")).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, intents.join(file.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("config.toml"), "watch_rules = false\n").unwrap();
    let (_child, address) =
        crate::crash::start_service(dir.path(), &dir.path().join("no-admin.db")).await;
    let address: std::net::SocketAddr = address.parse().unwrap();
    for (method, path) in [("GET", "/api/admin/status"), ("POST", "/api/admin/reload")] {
        // Even a request with a token: no token can be right.
        let (code, body) = crate::helpers::http_request(address, method, path, &[BEARER]).await;
        assert_eq!(code, 403, "{method} {path}: {body}");
        assert!(
            body.contains("no admin token is configured") && body.contains("admin_token_sha256"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn sighup_reloads_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let intents = dir.path().join("intents/default");
    std::fs::create_dir_all(&intents).unwrap();
    for file in std::fs::read_dir(crate::helpers::repo_path("intents/default")).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, intents.join(file.file_name().unwrap())).unwrap();
    }
    let hash = hex::encode(autoresponder::shop::staff::token_hash(ADMIN_TOKEN));
    std::fs::write(
        dir.path().join("config.toml"),
        format!("watch_rules = false\nadmin_token_sha256 = \"{hash}\"\n"),
    )
    .unwrap();
    let database = dir.path().join("hup.db");
    let (child, address) = crate::crash::start_service(dir.path(), &database).await;
    let address: std::net::SocketAddr = address.parse().unwrap();
    std::fs::write(
        intents.join("zz_operator.toml"),
        "[[intent]]\nname = \"password\"\nkeywords = [\"测试口令\"]\nreplies = [\"口令正确\"]\n",
    )
    .unwrap();
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(PATIENCE, async {
        loop {
            let (_, body) =
                crate::helpers::http_request(address, "GET", "/api/admin/status", &[BEARER]).await;
            let status: Value = serde_json::from_str(&body).unwrap();
            if status["reloads"] == 1 {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("SIGHUP reloads");
    assert_eq!(status["last_reload"]["trigger"], "SIGHUP");
    assert_eq!(status["last_reload"]["ok"], true);
}

#[tokio::test]
async fn a_promotion_answer_disappears_by_itself_when_it_ends() {
    let app = TestApp::start().await;
    std::fs::write(
        app.intents.join("default/zz_promo.toml"),
        "[[intent]]\nname = \"promo\"\nkeywords = [\"双12活动\"]\nreplies = [\n  \
         { text = \"双12当天全店满300减40，12日24点结束哦～\", valid_until = \"2026-12-13T00:00:00+08:00\" },\n]\n",
    )
    .unwrap();
    let (code, body) = app.http("POST", "/api/admin/reload", &[BEARER]).await;
    assert_eq!(code, 200, "{body}");

    let mut buyer = app.buyer("promo-fan").await.welcomed().await;
    let during = buyer.ask("双12活动有优惠吗", "1", "answer").await;
    assert_eq!(during[0]["intent"], "promo");

    app.clock
        .set(crate::helpers::at("2026-12-14T10:00:00+08:00"));
    let (after, _) = {
        buyer.say("双12活动有优惠吗", "2").await;
        buyer
            .until(|f| f["in_reply_to"] == "2" && f["kind"] != "welcome")
            .await
    };
    assert_ne!(after["intent"], "promo", "{after}");
    app.shutdown().await;
}

/// The `token_sha256` line of an agent whose token is `token`.
fn token_line(token: &str) -> String {
    let hash = hex::encode(autoresponder::shop::staff::token_hash(token));
    format!("token_sha256 = \"{hash}\"")
}

#[tokio::test]
async fn a_reload_that_revokes_a_token_closes_the_consoles_opened_with_it() {
    let zhu = format!(
        "\n[[agent]]\nid = \"zhu\"\nname = \"小竹\"\n{}\n",
        token_line("token-zhu")
    );
    let app = TestApp::launch(crate::helpers::Setup::staffed(&zhu)).await;
    let mut mei = app.agent("mei").await;
    let mut lan = app.agent("lan").await;
    let mut zhu = app.agent("zhu").await;

    // The operator gives mei a new token and removes zhu; lan's entry is untouched.
    let file = app.intents.join("default/agents.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let (kept, _zhu) = text.split_once("\n[[agent]]\nid = \"zhu\"").unwrap();
    let edited = kept.replace(&token_line("token-mei"), &token_line("token-mei-new"));
    assert_ne!(edited, kept, "mei's token line is in the file");
    std::fs::write(&file, edited).unwrap();
    let (code, body) = app.http("POST", "/api/admin/reload", &[BEARER]).await;
    assert_eq!(code, 200, "{body}");

    for console in [&mut mei, &mut zhu] {
        let closed = loop {
            match console.next().await {
                Incoming::Frame(_) => continue,
                Incoming::Closed(close) => break close,
            }
        };
        let close = closed.expect("a close frame with a code");
        assert_eq!(u16::from(close.code), 1008, "{close:?}");
        assert!(close.reason.contains("log in again"), "{close:?}");
    }
    // lan's console still works.
    lan.send_json(serde_json::json!({"type": "presence", "status": "away"}))
        .await;
    lan.until(|f| f["type"] == "presence" && f["agent"] == "lan" && f["status"] == "away")
        .await;
    // The old tokens no longer open a console; the new one does.
    assert_eq!(app.refused_upgrade("/ws/agent?token=token-mei").await, 401);
    assert_eq!(app.refused_upgrade("/ws/agent?token=token-zhu").await, 401);
    let mut again =
        crate::helpers::Client::connect(&app.url("/ws/agent?token=token-mei-new")).await;
    assert_eq!(again.frame().await["type"], "hello");
    app.shutdown().await;
}

/// Asks `text` and returns the first reply to it (whatever its kind).
async fn first_reply(buyer: &mut crate::helpers::Client, text: &str, id: &str) -> Value {
    buyer.say(text, id).await;
    buyer.until(|f| f["in_reply_to"] == id).await.0
}

#[tokio::test]
async fn an_emptied_intent_file_is_refused_even_when_forced_and_the_old_rules_keep_serving() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("truncated-file").await.welcomed().await;
    let before = buyer.ask("能开发票吗", "1", "answer").await;
    assert_eq!(before[0]["intent"], "invoice");

    // A failed copy leaves the pre-sale intents empty (a comment at most).
    let presale = app.intents.join("default/presale.toml");
    std::fs::write(
        &presale,
        "# Pre-sale and in-sale questions the bot answers itself.\n",
    )
    .unwrap();
    let status = reloaded(&app, 1).await;
    assert_eq!(status["last_reload"]["ok"], false, "{status}");
    let errors = status["last_reload"]["errors"].to_string();
    assert!(
        errors.contains("default/presale.toml: the file is empty"),
        "{errors}"
    );
    assert_eq!(status["generation"], 1, "the first rules still serve");
    let still = first_reply(&mut buyer, "能开发票吗", "2").await;
    assert_eq!(still["intent"], "invoice", "{still}");
    let (_, metrics) = app.http_get("/metrics").await;
    assert!(
        metrics.contains("autoresponder_rule_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );

    // An empty file is a broken file: forcing does not take it; deleting it would.
    let (code, body) = app
        .http("POST", "/api/admin/reload?force=true", &[BEARER])
        .await;
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("the file is empty"), "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_reload_removing_most_of_a_shops_intents_is_refused_until_an_operator_forces_it() {
    let app = TestApp::start().await;
    let mut buyer = app.buyer("cut-short").await.welcomed().await;
    let before = buyer.ask("能开发票吗", "1", "answer").await;
    assert_eq!(before[0]["intent"], "invoice");

    // presale.toml cut short after its fifth intent: 12 of the shop's 20 intents are gone.
    let presale = app.intents.join("default/presale.toml");
    let text = std::fs::read_to_string(&presale).unwrap();
    let sixth = text.match_indices("[[intent]]").nth(5).unwrap().0;
    std::fs::write(&presale, &text[..sixth]).unwrap();
    let status = reloaded(&app, 1).await;
    assert_eq!(status["last_reload"]["ok"], false, "{status}");
    let errors = status["last_reload"]["errors"].to_string();
    assert!(
        errors.contains(
            "this reload would remove 12 of 20 intents of shop default (12 from presale.toml)"
        ),
        "{errors}"
    );
    assert!(errors.contains("force=true"), "{errors}");
    assert_eq!(status["generation"], 1, "the first rules still serve");
    let still = first_reply(&mut buyer, "能开发票吗", "2").await;
    assert_eq!(still["intent"], "invoice", "{still}");
    let (_, metrics) = app.http_get("/metrics").await;
    assert!(
        metrics.contains("autoresponder_rule_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );

    // The operator meant it.
    let (code, body) = app
        .http("POST", "/api/admin/reload?force=true", &[BEARER])
        .await;
    assert_eq!(code, 200, "{body}");
    let outcome: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(outcome["forced"], true, "{outcome}");
    let after = first_reply(&mut buyer, "能开发票吗", "3").await;
    assert_ne!(after["intent"], "invoice", "{after}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_reload_removing_most_of_a_shops_faq_is_refused_until_an_operator_forces_it() {
    // A knowledge base of the test's own, since it is cut below.
    let index = tempfile::tempdir().unwrap();
    let faq_dir = index.path().join("default");
    std::fs::create_dir_all(&faq_dir).unwrap();
    for file in std::fs::read_dir(crate::helpers::repo_path("index/default")).unwrap() {
        let file = file.unwrap().path();
        if file.is_file() {
            std::fs::copy(&file, faq_dir.join(file.file_name().unwrap())).unwrap();
        }
    }
    let app = TestApp::launch(crate::helpers::Setup {
        index: Some(index.path().to_path_buf()),
        ..crate::helpers::Setup::default()
    })
    .await;
    let mut buyer = app.buyer("faq-cut-short").await.welcomed().await;
    let question = "翻毛皮的鞋子怎么清洁";
    let before = first_reply(&mut buyer, question, "1").await;
    assert_eq!(before["intent"], "suede_shoes_clean", "{before}");

    // A failed sync leaves only the first entry of every FAQ file.
    for file in std::fs::read_dir(&faq_dir).unwrap() {
        let file = file.unwrap().path();
        let text = std::fs::read_to_string(&file).unwrap();
        let kept = match file.extension().and_then(|e| e.to_str()) {
            Some("toml") => match text.match_indices("[[entry]]").nth(1) {
                Some((second, _)) => text[..second].to_string(),
                None => continue,
            },
            Some("jsonl") => text.lines().next().unwrap_or_default().to_string() + "\n",
            _ => continue,
        };
        std::fs::write(&file, kept).unwrap();
    }
    let (code, body) = app.http("POST", "/api/admin/reload", &[BEARER]).await;
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("FAQ entries of shop default"), "{body}");
    assert!(body.contains("force=true"), "{body}");
    let still = first_reply(&mut buyer, question, "2").await;
    assert_eq!(
        still["intent"], "suede_shoes_clean",
        "the old entries still answer: {still}"
    );

    // The operator meant it: the entry is gone.
    let (code, body) = app
        .http("POST", "/api/admin/reload?force=true", &[BEARER])
        .await;
    assert_eq!(code, 200, "{body}");
    let after = first_reply(&mut buyer, question, "3").await;
    assert_ne!(after["intent"], "suede_shoes_clean", "{after}");
    app.shutdown().await;
}

/// Reads what a connection gets until it is closed, and returns the close frame.
async fn closed(client: &mut crate::helpers::Client) -> Option<CloseFrame> {
    loop {
        if let Incoming::Closed(close) = client.next().await {
            return close;
        }
    }
}

#[tokio::test]
async fn removing_a_shop_closes_its_buyers_and_consoles_with_1001_and_says_why() {
    let app = TestApp::staffed().await;
    // A second shop, with an agent of its own.
    let second = app.intents.join("second");
    std::fs::create_dir_all(&second).unwrap();
    for file in std::fs::read_dir(app.intents.join("default")).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, second.join(file.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        second.join("agents.toml"),
        format!(
            "[[agent]]\nid = \"zhu\"\nname = \"小竹\"\n{}\n",
            token_line("token-zhu")
        ),
    )
    .unwrap();
    let (code, body) = app.http("POST", "/api/admin/reload", &[BEARER]).await;
    assert_eq!(code, 200, "{body}");
    let mut buyer =
        crate::helpers::Client::connect(&app.url("/ws/buyer?shop=second&buyer=left-behind"))
            .await
            .welcomed()
            .await;
    let mut console = app.agent("zhu").await;
    let mut bystander = app.buyer("stays").await.welcomed().await;

    // The operator removes the shop's folder.
    std::fs::remove_dir_all(&second).unwrap();
    let (code, body) = app.http("POST", "/api/admin/reload", &[BEARER]).await;
    assert_eq!(code, 200, "{body}");
    for (who, client) in [("buyer", &mut buyer), ("console", &mut console)] {
        let close = closed(client)
            .await
            .unwrap_or_else(|| panic!("the {who} gets a close frame"));
        assert_eq!(u16::from(close.code), 1001, "{who}: {close:?}");
        assert!(
            close.reason.contains("no longer served"),
            "{who}: {close:?}"
        );
    }
    assert_eq!(
        app.refused_upgrade("/ws/buyer?shop=second&buyer=left-behind")
            .await,
        404
    );
    // The other shop's buyers are not touched.
    let answered = bystander.ask("能开发票吗", "1", "answer").await;
    assert_eq!(
        answered.last().unwrap()["intent"],
        "invoice",
        "{answered:?}"
    );
    app.shutdown().await;
}
