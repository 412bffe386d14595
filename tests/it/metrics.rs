//! `/metrics` is no amplifier: the KPIs are computed on a timer, never per scrape, and only a
//! scraper with the metrics token sees them.

use crate::helpers::{METRICS_TOKEN, TestApp};

fn has_kpis(body: &str) -> bool {
    body.lines().any(|l| l.starts_with("autoresponder_kpi{"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scrapes_share_one_kpi_computation() {
    let mut app = TestApp::start().await;
    app.ready().await;
    let mut buyer = app.buyer("scraped").await.welcomed().await;
    buyer.ask("包邮吗", "q", "answer").await;
    let before = app.kpi_refreshes().await;
    assert!(before >= 1, "the KPIs are computed at start");

    let authorization = format!("Authorization: Bearer {METRICS_TOKEN}");
    let scrapes: Vec<_> = (0..128)
        .map(|_| {
            let (address, authorization) = (app.address, authorization.clone());
            tokio::spawn(async move {
                crate::helpers::http_request(address, "GET", "/metrics", &[&authorization]).await
            })
        })
        .collect();
    for scrape in scrapes {
        let (status, body) = scrape.await.unwrap();
        assert_eq!(status, 200);
        assert!(has_kpis(&body), "{body}");
    }
    assert_eq!(
        app.kpi_refreshes().await,
        before,
        "no scrape computed the KPIs"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_kpis_follow_the_timer_and_need_the_metrics_token() {
    let mut app = TestApp::start().await;
    app.ready().await;
    let mut buyer = app.buyer("counted").await.welcomed().await;
    buyer.ask("包邮吗", "q", "answer").await;
    let body = app.fresh_kpis().await;
    assert!(
        body.contains("autoresponder_kpi{figure=\"reply_ratio\",shop=\"default\"} 2"),
        "{body}"
    );

    for headers in [vec![], vec!["Authorization: Bearer wrong"]] {
        let (status, body) = app.http("GET", "/metrics", &headers).await;
        assert_eq!(status, 200);
        assert!(!has_kpis(&body), "KPIs shown without the token:\n{body}");
        assert!(body.contains("autoresponder_buyer_messages_total{shop=\"default\"} 1"));
    }
    let (_, body) = app
        .http_get(&format!("/metrics?token={METRICS_TOKEN}"))
        .await;
    assert!(!has_kpis(&body), "the token is not taken from the URL");
    app.shutdown().await;
}
