//! The responder alone (normalise + match + render), no network and no store.
//!
//! `cargo bench --bench responder` reports the time per message on the shipped `default` shop
//! (with its FAQ, asked for messages no intent matches) and on a generated shop with 300
//! intents and 5,000 keywords. Target: median ≤ 20 µs.

use std::hint::black_box;
use std::path::Path;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

use autoresponder::conversation::ConversationState;
use autoresponder::responder::respond;
use autoresponder::shop::{Catalog, Shop};

/// What buyers send on a sale night: greetings, shipping, bargaining, after-sale, chit-chat.
const MESSAGES: &[&str] = &[
    "親，在嗎？",
    "包邮吗？什么时候发货",
    "发到新疆要几天",
    "能便宜点吗",
    "我要退货，质量太差了",
    "这个是正品吗",
    "L码还有货吗，我170斤穿什么码",
    "可以开发票吗",
    "今天天气真好",
    "支持七天无理由退换吗",
    "客服态度很差，我要投诉",
    "不用转人工了，谢谢",
];

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-26T10:00:00+08:00")
        .unwrap()
        .to_utc()
}

/// The shipped shop as the service loads it, FAQ included: messages no intent matches are
/// looked up in the FAQ, as in production.
fn default_shop() -> std::sync::Arc<Shop> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = Catalog::load_with_faq(&root.join("intents"), Some(&root.join("index")), None)
        .unwrap_or_else(|e| panic!("{e}"));
    catalog.get("default").unwrap().clone()
}

/// A shop with the default shop's settings and 300 generated intents of about 17 keywords
/// each (5,100 in all), written to a temporary folder and loaded like any other.
fn generated_shop() -> std::sync::Arc<Shop> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents/default");
    let dir = tempfile::tempdir().unwrap();
    let shop_dir = dir.path().join("big");
    std::fs::create_dir_all(&shop_dir).unwrap();
    std::fs::copy(source.join("shop.toml"), shop_dir.join("shop.toml")).unwrap();
    std::fs::copy(
        source.join("complaints.toml"),
        shop_dir.join("complaints.toml"),
    )
    .unwrap();
    std::fs::copy(
        source.join("aftersale.toml"),
        shop_dir.join("aftersale.toml"),
    )
    .unwrap();
    // A fixed pseudo-random sequence so every run measures the same shop.
    let pool: Vec<char> = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严龙飞".chars().collect();
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    let mut intents = String::new();
    for i in 0..300 {
        intents.push_str(&format!(
            "[[intent]]\nname = \"generated_{i}\"\nkeywords = ["
        ));
        for k in 0..17 {
            let len = 2 + next(3);
            let keyword: String = (0..len).map(|_| pool[next(pool.len())]).collect();
            if k > 0 {
                intents.push_str(", ");
            }
            intents.push_str(&format!("\"{keyword}\""));
        }
        intents.push_str(&format!(
            "]\nreplies = [\"这是第{i}个问题的答复，{{shop}}感谢您的咨询\"]\n\n"
        ));
    }
    std::fs::write(shop_dir.join("generated.toml"), intents).unwrap();
    std::fs::copy(source.join("presale.toml"), shop_dir.join("presale.toml")).unwrap();
    let catalog = Catalog::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    catalog.get("big").unwrap().clone()
}

fn bench_shop(c: &mut Criterion, name: &str, shop: &Shop) {
    let now = now();
    let mut group = c.benchmark_group(name);
    group.bench_function("one message (mix of 12)", |b| {
        let mut state = ConversationState::default();
        let mut i = 0;
        b.iter(|| {
            let message = MESSAGES[i % MESSAGES.len()];
            i += 1;
            black_box(respond(shop, &mut state, black_box(message), now))
        })
    });
    group.finish();
}

fn responder(c: &mut Criterion) {
    let default = default_shop();
    bench_shop(c, "default shop", &default);
    let big = generated_shop();
    let keywords: usize = big.intents.intents().iter().map(|i| i.keywords.len()).sum();
    eprintln!(
        "generated shop: {} intents, {keywords} keywords",
        big.intents.intents().len()
    );
    bench_shop(c, "generated shop (300 intents, 5k keywords)", &big);
}

criterion_group!(benches, responder);
criterion_main!(benches);
