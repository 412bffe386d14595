//! The shipped calendar end to end: National Day 2026 is away, its make-up Sunday is worked
//! and ships the same day.

use serde_json::Value;

use crate::helpers::{TestApp, at, kinds};

fn text(reply: &Value) -> &str {
    reply["text"].as_str().unwrap()
}

#[tokio::test]
async fn a_holiday_is_away_and_its_make_up_sunday_is_worked_and_ships_today() {
    let app = TestApp::start().await;

    // Thursday 1 October 2026, 10:00: an ordinary Thursday would be on duty, but it is
    // National Day; agents are back on Thursday 8 October, said as a date.
    app.clock.set(at("2026-10-01T10:00:00+08:00"));
    let mut holiday = app.buyer("ivy").await.welcomed().await;
    let replies = holiday.ask("什么时候发货", "1", "answer").await;
    assert_eq!(kinds(&replies), [("away", ""), ("answer", "shipping_time")]);
    assert!(text(&replies[0]).contains("10月8日09:00"), "{}", replies[0]);
    assert!(text(&replies[1]).contains("下一个工作日"), "{}", replies[1]);
    assert!(!text(&replies[1]).contains("当天"), "{}", replies[1]);

    // Sunday 20 September, 09:30: a make-up working day keeps Monday's hours (an ordinary
    // Sunday opens at 10:00) and the warehouse ships before the 16:00 cut-off.
    app.clock.set(at("2026-09-20T09:30:00+08:00"));
    let mut make_up = app.buyer("jack").await.welcomed().await;
    let replies = make_up.ask("什么时候发货", "1", "answer").await;
    assert_eq!(kinds(&replies), [("answer", "shipping_time")]);
    assert!(text(&replies[0]).contains("当天"), "{}", replies[0]);

    // The ordinary Sunday after National Day, at the same hour: away, and no dispatch today.
    app.clock.set(at("2026-10-11T09:30:00+08:00"));
    let mut sunday = app.buyer("kate").await.welcomed().await;
    let replies = sunday.ask("什么时候发货", "1", "answer").await;
    assert_eq!(kinds(&replies), [("away", ""), ("answer", "shipping_time")]);
    assert!(text(&replies[0]).contains("10:00"), "{}", replies[0]);
    assert!(text(&replies[1]).contains("下一个工作日"), "{}", replies[1]);
    app.shutdown().await;
}
