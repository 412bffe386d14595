//! Integration tests: the real server on 127.0.0.1:0 with a temporary SQLite file, driven by
//! real tokio-tungstenite clients. One binary with modules keeps link time down.

mod abuse;
mod agents;
mod browser;
mod buyer;
mod calendar;
mod cluster;
mod crash;
mod eval;
mod faq;
mod flood;
mod helpers;
mod limits;
mod metrics;
mod nodes;
mod outage;
mod pages;
mod pg;
mod reload;
mod retention;
mod startup;
mod store_contract;
mod webhooks;
