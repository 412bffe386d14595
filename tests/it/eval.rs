//! The shipped shop on the committed labelled messages: the accuracy bar of the product.

use autoresponder::shop::Catalog;
use autoresponder::tools::eval::{evaluate, parse_cases};

use crate::helpers::repo_path;

#[test]
fn the_default_shop_understands_buyers_and_hands_off_every_complaint() {
    let catalog = Catalog::load(&repo_path("intents")).unwrap_or_else(|e| panic!("{e}"));
    let shop = catalog.get("default").unwrap();
    let text = std::fs::read_to_string(repo_path("tests/cases/buyer_messages.tsv")).unwrap();
    let cases = parse_cases(&text).unwrap();
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    let chit_chat = cases.iter().filter(|c| c.expected.contains("none")).count();
    assert!(
        chit_chat >= 30,
        "only {chit_chat} lines that must not match"
    );
    let report = evaluate(shop, &cases);
    assert!(
        report.unhanded.is_empty(),
        "buyers who needed a human would not get one:\n{}",
        report.render()
    );
    assert!(report.accuracy() >= 0.95, "{}", report.render());
}

#[test]
fn every_contracted_intent_is_shipped() {
    let catalog = Catalog::load(&repo_path("intents")).unwrap();
    let shop = catalog.get("default").unwrap();
    for name in [
        "greeting",
        "shipping_time",
        "logistics",
        "bargain",
        "free_shipping",
        "authenticity",
        "stock",
        "size",
        "invoice",
        "payment",
        "return_policy",
        "promotion",
        "gift",
        "goodbye",
        "after_sale",
        "complaint",
        "human",
    ] {
        assert!(
            shop.intents.index_of(name).is_some(),
            "missing intent {name}"
        );
    }
    let handoff = |name: &str| {
        shop.intents
            .intent(shop.intents.index_of(name).unwrap())
            .handoff
            .map(|p| p.as_str())
    };
    assert_eq!(handoff("after_sale"), Some("normal"));
    assert_eq!(handoff("complaint"), Some("high"));
    assert_eq!(handoff("human"), Some("high"));
}
