//! `autoresponder check`: what operators run on their shop files before buyers see them.
//!
//! Every shop folder is loaded exactly as the service loads it, and every mistake the loader
//! reports is an error (rule `load`). Then come warnings about what would still load but
//! serve buyers badly: keywords that fight each other or can never win
//! (`keyword_conflicts`), stand-alone words that hide nothing or their own intent's keywords
//! (`words`), FAQ entries that an intent or another entry takes first
//! (`faq_conflicts`), intents' examples that another intent or the FAQ takes first
//! (`example_conflicts`), and replies that break the house rules of customer service (`style`).
//! Style is read from the raw files, so a shop that does not load still gets it.
//!
//! Each finding names the file and line to fix. Reading files is the only I/O; nothing is
//! written.

pub mod command;
mod example_conflicts;
mod faq_conflicts;
mod keyword_conflicts;
pub mod report;
mod sources;
mod style;
mod validity;
mod words;

use std::path::Path;

pub use report::{Finding, Location, Report, Rule, Severity};

use crate::shop::folder::shop_folders;
use crate::shop::{FaqSource, load_shop};
use crate::source::LoadError;
use sources::ShopSources;

/// Checks every shop of `intents` (folders with a `shop.toml`) with its FAQ from
/// `index/<shop>/`. Blocking: FAQ indexes are built in RAM, as the service builds them.
pub fn check(intents: &Path, index: &Path) -> Report {
    let mut report = Report::default();
    let folders = match shop_folders(intents) {
        Ok(folders) => folders,
        Err(error) => {
            report.push(Finding::from_load_error(&error));
            return report;
        }
    };
    if folders.is_empty() {
        report.push(Finding::from_load_error(&LoadError::whole_file(
            intents,
            "no shop found: expected folders like intents/default/shop.toml",
        )));
    }
    for (id, folder) in folders {
        let faq_folder = index.join(&id);
        let sources = ShopSources::read(&folder, Some(&faq_folder));
        style::check(&sources, &mut report);
        validity::check(&sources, chrono::Utc::now(), &mut report);
        let faq = FaqSource {
            folder: Some(&faq_folder),
            on_disk: None,
        };
        match load_shop(&id, &folder, faq) {
            Ok(shop) => {
                keyword_conflicts::check(&shop, &sources, &mut report);
                words::check(&shop, &sources, &mut report);
                faq_conflicts::check(&shop, &sources, &mut report);
                example_conflicts::check(&shop, &sources, &mut report);
            }
            Err(errors) => {
                for error in &errors {
                    report.push(Finding::from_load_error(error));
                }
            }
        }
        report.shops += 1;
    }
    report.sort();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shop that loads, with `files` (name, text) added to `intents/shop/`, or written to
    /// `index/shop/` when the name starts with `index/`.
    pub(super) fn shop_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Report) {
        let dir = tempfile::tempdir().unwrap();
        let intents = dir.path().join("intents/shop");
        let index = dir.path().join("index/shop");
        std::fs::create_dir_all(&intents).unwrap();
        std::fs::create_dir_all(&index).unwrap();
        std::fs::write(intents.join("shop.toml"), SHOP).unwrap();
        for (name, text) in files {
            let path = match name.strip_prefix("index/") {
                Some(name) => index.join(name),
                None => intents.join(name),
            };
            std::fs::write(path, text).unwrap();
        }
        let report = check(&dir.path().join("intents"), &dir.path().join("index"));
        (dir, report)
    }

    const SHOP: &str = r#"
name = "测试店"
agent = "小测"
timezone = "Asia/Shanghai"
[hours]
mon = ["09:00-18:00"]
[shipping]
courier = "中通快递"
cutoff_hour = 16
working_days = ["mon"]
default_days = "3-5"
default_region = "大部分地区"
dispatch_today = ["{cutoff}点前付款一般当天发出"]
dispatch_next = ["一般下一个工作日发出"]
[bargain]
refuse = ["价格已经是最优惠的啦"]
value = ["品质有保障，售后无忧"]
member = ["成为会员后可享会员价"]
[templates]
welcome = ["您好，欢迎光临{shop}"]
away = ["客服{back}回来后第一时间回复您"]
busy = ["咨询的朋友较多，请您耐心等待"]
fallback = ["让我帮您确认一下，请稍等"]
handoff = ["已为您转接人工客服，请稍等"]
handoff_away = ["已为您登记，客服{back}上线后联系您"]
goodbye = ["感谢光临，祝您生活愉快"]
"#;

    /// (line, rule id) of every finding in one file.
    fn found(report: &Report, file: &str) -> Vec<(usize, &'static str)> {
        report
            .findings
            .iter()
            .filter(|f| f.at.file.ends_with(file))
            .map(|f| (f.at.line, f.rule.id()))
            .collect()
    }

    fn check_intents(intents: &str, expected: &[(usize, &str)]) {
        let (_dir, report) = shop_with(&[("a.toml", intents)]);
        assert_eq!(
            found(&report, "a.toml"),
            expected,
            "{}",
            report.render_human()
        );
    }

    #[test]
    fn a_clean_shop_has_no_findings() {
        let (_dir, report) = shop_with(&[(
            "a.toml",
            "[[intent]]\nname = \"free_shipping\"\nkeywords = [\"包邮\"]\nreplies = [\"全店满99元包邮哦\"]\n",
        )]);
        assert!(report.findings.is_empty(), "{}", report.render_human());
        assert_eq!(report.shops, 1);
    }

    #[test]
    fn loader_errors_are_errors_and_style_still_runs() {
        let (_dir, report) = shop_with(&[(
            "a.toml",
            "[[intent]]\nname = \"x\"\nkeywords = [\"包邮\"]\nreplies = [\"不行\"]\nkeyword = [\"y\"]\n",
        )]);
        assert_eq!(
            found(&report, "a.toml"),
            [(4, "forbidden-phrase"), (5, "load")],
            "{}",
            report.render_human()
        );
        assert_eq!(report.errors(), 1);
    }

    #[test]
    fn a_keyword_inside_a_longer_one_still_wins_on_its_own() {
        check_intents(
            "[[intent]]\nname = \"policy\"\nkeywords = [\"七天无理由退货\"]\nreplies = [\"支持七天无理由退货\"]\n\
             [[intent]]\nname = \"after_sale\"\nhandoff = \"normal\"\nkeywords = [\"退货\"]\n",
            &[],
        );
    }

    #[test]
    fn keywords_that_never_win_are_shadowed() {
        check_intents(
            "[[intent]]\nname = \"greeting\"\nyield_to_others = true\nkeywords = [\"在吗\", \"你好\"]\nexclude = [\"好\"]\nreplies = [\"您好，请问有什么可以帮您？\"]\n",
            &[(4, "shadowed-keyword")],
        );
    }

    #[test]
    fn one_keyword_in_two_intents_is_a_duplicate() {
        check_intents(
            "[[intent]]\nname = \"a\"\nkeywords = [\"包邮\"]\nreplies = [\"满99元包邮\"]\n\
             [[intent]]\nname = \"b\"\nkeywords = [\"包郵\", \"运费\"]\nreplies = [\"运费以下单页为准\"]\n",
            &[(7, "duplicate-keyword")],
        );
    }

    #[test]
    fn a_duplicate_says_which_intent_takes_the_keyword() {
        let (_dir, report) = shop_with(&[(
            "a.toml",
            "[[intent]]\nname = \"return_policy\"\nkeywords = [\"退货\"]\nreplies = [\"支持七天无理由退货\"]\n\
             [[intent]]\nname = \"after_sale\"\nhandoff = \"normal\"\nkeywords = [\"退货\"]\n\
             [[intent]]\nname = \"greeting\"\nyield_to_others = true\nkeywords = [\"你好\"]\nreplies = [\"您好\"]\n\
             [[intent]]\nname = \"thanks\"\nkeywords = [\"你好\"]\nreplies = [\"不客气\"]\n",
        )]);
        let messages: Vec<&str> = report.findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0]
                .ends_with("handed off to `after_sale`, so `return_policy` does not answer it"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].ends_with("`greeting` yields to `thanks`, so only `thanks` answers it"),
            "{}",
            messages[1]
        );
    }

    #[test]
    fn faq_questions_taken_by_intents_and_near_duplicates() {
        let (_dir, report) = shop_with(&[
            (
                "a.toml",
                "[[intent]]\nname = \"invoice\"\nkeywords = [\"发票\"]\nreplies = [\"可以开电子发票\"]\n",
            ),
            (
                "index/f.toml",
                "[[entry]]\nid = \"invoice_ask\"\nquestion = \"能开发票吗\"\nanswer = \"可以开电子发票\"\n\n\
                 [[entry]]\nid = \"wool_wash\"\nquestion = \"羊毛衫能放洗衣机洗吗\"\nanswer = \"建议手洗\"\n\n\
                 [[entry]]\nid = \"wool_wash_again\"\nquestion = \"羊毛衫能放洗衣机洗吗？\"\nanswer = \"建议冷水手洗\"\n",
            ),
        ]);
        assert_eq!(
            found(&report, "f.toml"),
            [(3, "faq-shadowed-by-intent"), (13, "faq-near-duplicate")],
            "{}",
            report.render_human()
        );
    }

    #[test]
    fn an_entry_that_asks_more_than_the_keyword_is_reached() {
        let (_dir, report) = shop_with(&[
            (
                "a.toml",
                "[[intent]]\nname = \"invoice\"\nkeywords = [\"发票\"]\nreplies = [\"可以开电子发票\"]\n",
            ),
            (
                "index/f.toml",
                "[[entry]]\nid = \"invoice_reissue\"\nquestion = \"发票抬头写错了能重开吗\"\nanswer = \"可以作废后重开\"\n\n\
                 [[entry]]\nid = \"invoice_ask\"\nquestion = \"能开发票吗\"\nanswer = \"可以开电子发票\"\n\n\
                 [[entry]]\nid = \"wool_wash\"\nquestion = \"羊毛衫能放洗衣机洗吗\"\nanswer = \"建议手洗\"\n\n\
                 [[entry]]\nid = \"points\"\nquestion = \"会员积分怎么兑换礼品\"\nanswer = \"在会员中心兑换\"\n",
            ),
        ]);
        // The reissue question shares 抬头, 写错 and 重开 with its entry beyond the keyword 发票,
        // so the entry answers it; "能开发票吗" asks nothing beyond the keyword.
        assert_eq!(
            found(&report, "f.toml"),
            [(8, "faq-shadowed-by-intent")],
            "{}",
            report.render_human()
        );
    }

    #[test]
    fn a_missing_folder_is_an_error() {
        let report = check(
            Path::new("/nonexistent/intents"),
            Path::new("/nonexistent/index"),
        );
        assert_eq!(report.errors(), 1);
        assert_eq!(report.findings[0].rule, Rule::Load);
    }
}
