//! The FAQ index: query latency and build time.
//!
//! `cargo bench --bench faq` measures a query on the shipped `default` shop and on a generated
//! knowledge base of 100,000 entries (target p99 ≤ 1 ms per query), and the time to build that
//! index (target ≤ 15 s). Criterion reports means and medians; the p50/p99/max lines printed
//! first come from timing 20,000 queries one by one.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use autoresponder::faq::{FaqEntry, FaqIndex, FaqRule};
use autoresponder::normalize::normalize;
use autoresponder::shop::Catalog;
use autoresponder::template::Template;

#[path = "support/words.rs"]
mod words;
use words::Words;

const QUESTIONS: &[&str] = &[
    "羊毛衫可以放洗衣机洗吗",
    "会员积分怎么用",
    "两件能一起发吗",
    "羽绒服的充绒量是多少",
    "下单后还能改地址吗",
    "鞋子开胶了保修吗",
    "发票抬头写错了能重开吗",
    "定金付了能退吗",
    "你们招聘客服吗",
    "明天会下雨吗",
];

fn generated(
    entries: usize,
    shop_texts: &[String],
) -> (Vec<FaqEntry>, Vec<Vec<String>>, Vec<String>) {
    let mut words = Words::new(shop_texts);
    let answer = Template::parse("感谢您的咨询，{shop}为您解答。").unwrap();
    let mut faq = Vec::with_capacity(entries);
    let mut phrasings = Vec::with_capacity(entries);
    let mut answers = Vec::with_capacity(entries);
    for i in 0..entries {
        faq.push(FaqEntry {
            id: Arc::from(format!("entry_{i}").as_str()),
            answer: answer.clone(),
            tags: Vec::new(),
        });
        let count = 3 + words.next(2);
        phrasings.push(
            (0..count)
                .map(|_| {
                    let n = 3 + words.next(4);
                    normalize(&words.sentence(n))
                })
                .collect(),
        );
        answers.push(normalize(&words.sentence(8)));
    }
    (faq, phrasings, answers)
}

fn percentiles(index: &FaqIndex, queries: &[String], label: &str) {
    let mut times: Vec<Duration> = Vec::with_capacity(20_000);
    for i in 0..20_000 {
        let query = &queries[i % queries.len()];
        let started = Instant::now();
        black_box(index.rank(query, 5));
        times.push(started.elapsed());
    }
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    eprintln!(
        "{label}: p50 {:?}  p99 {:?}  p99.9 {:?}  max {:?}  ({} queries)",
        at(0.5),
        at(0.99),
        at(0.999),
        times[times.len() - 1],
        times.len()
    );
}

fn faq(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = Catalog::load_with_faq(&root.join("intents"), Some(&root.join("index")), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let shop = catalog.get("default").unwrap().clone();
    let faq = shop.faq.as_ref().expect("the default shop ships an FAQ");
    let queries: Vec<String> = QUESTIONS.iter().map(|q| shop.canonical(q)).collect();
    percentiles(faq, &queries, "default shop FAQ query");
    c.bench_function("faq query, default shop", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(faq.rank(&queries[i % queries.len()], 5))
        })
    });

    let shop_texts: Vec<String> = autoresponder::faq::load_entries(&root.join("index/default"))
        .unwrap()
        .into_iter()
        .flat_map(|e| {
            std::iter::once(e.question)
                .chain(e.alternatives)
                .chain(std::iter::once(e.answer))
        })
        .collect();
    let (entries, phrasings, answers) = generated(100_000, &shop_texts);
    let started = Instant::now();
    let big = FaqIndex::build(
        entries.clone(),
        phrasings.clone(),
        answers.clone(),
        FaqRule::default(),
        None,
    )
    .unwrap();
    eprintln!("build of 100,000 entries: {:?}", started.elapsed());
    // Queries: real phrasings of generated entries (so they hit) and shop questions (misses).
    let mut big_queries: Vec<String> = (0..200).map(|i| phrasings[i * 97][0].clone()).collect();
    big_queries.extend(queries.iter().cloned());
    percentiles(&big, &big_queries, "100,000-entry FAQ query");
    c.bench_function("faq query, 100,000 entries", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(big.rank(&big_queries[i % big_queries.len()], 5))
        })
    });

    let mut group = c.benchmark_group("faq build");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("100,000 entries, in RAM", |b| {
        b.iter(|| {
            black_box(
                FaqIndex::build(
                    entries.clone(),
                    phrasings.clone(),
                    answers.clone(),
                    FaqRule::default(),
                    None,
                )
                .unwrap(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, faq);
criterion_main!(benches);
