//! Turns one shop folder into a validated [`Shop`]: reads its files (or takes their texts),
//! lets the module of each file kind validate its part, and assembles the shop only when no
//! mistake was found in any of them.
//!
//! One module per file kind: `hours` (time zone, hours, calendar and peaks of `shop.toml`),
//! `shipping`, `replies` (its templates and bargaining ladder, and the intents' replies) and
//! `widget`; `intents` (the intent files), `complaints`, `synonyms` and `faq`; `agents.toml`
//! is `shop::staff`'s. `context` holds what they all share.

mod complaints;
mod context;
mod faq;
mod followup;
mod hours;
mod intents;
mod replies;
mod retention;
mod shipping;
mod synonyms;
mod widget;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::files::ShopFile;
use super::folder::{
    COMPLAINTS_FILE, SHOP_FILE, STAFF_FILE, SYNONYMS_FILE, file_name, intent_files,
};
use super::staff::{Staff, staff_from_text};
use super::{FaqShadows, RuleOrigins, Shop};
use crate::faq::ExampleIndex;
use crate::intents::IntentSet;
use crate::source::{LoadError, SourceFile, read_source};
use context::Context;

/// Where a shop's FAQ comes from and where its index goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaqSource<'a> {
    /// `index/<shop>/`; missing or empty means the shop has no FAQ.
    pub folder: Option<&'a Path>,
    /// Build the index in files under this folder instead of in RAM.
    pub on_disk: Option<&'a Path>,
}

/// A shop's files as text: read from its folder by [`load_shop`], or given directly to
/// [`load_shop_texts`] (the fuzzer does, without touching the disk).
#[derive(Debug, Clone, Default)]
pub struct ShopTexts {
    /// `shop.toml`.
    pub shop: String,
    /// The intent files, each with its file name (`presale.toml`).
    pub intents: Vec<(String, String)>,
    /// `complaints.toml`, if the shop has one.
    pub complaints: Option<String>,
    /// `synonyms.toml`, if the shop has one.
    pub synonyms: Option<String>,
    /// `agents.toml`, if the shop has one.
    pub agents: Option<String>,
}

/// Loads the shop `id` from `folder` (and its FAQ from `faq`), or every mistake found.
pub fn load_shop(id: &str, folder: &Path, faq: FaqSource) -> Result<Shop, Vec<LoadError>> {
    let mut errors = Vec::new();
    let shop = read_source(&folder.join(SHOP_FILE)).map_err(|e| vec![e])?;
    let mut intents = Vec::new();
    for path in intent_files(folder).map_err(|e| vec![e])? {
        match read_source(&path) {
            Ok(text) => intents.push((file_name(&path).to_string(), text)),
            Err(e) => errors.push(e),
        }
    }
    let optional = |name: &str| -> Result<Option<String>, Vec<LoadError>> {
        let path = folder.join(name);
        if path.is_file() {
            read_source(&path).map(Some).map_err(|e| vec![e])
        } else {
            Ok(None)
        }
    };
    let texts = ShopTexts {
        shop,
        intents,
        complaints: optional(COMPLAINTS_FILE)?,
        synonyms: optional(SYNONYMS_FILE)?,
        agents: optional(STAFF_FILE)?,
    };
    build_shop(id, folder, &texts, faq, errors)
}

/// Loads the shop `id` from its files' texts (and its FAQ from `faq`), or every mistake
/// found; `folder` only names the files in errors.
pub fn load_shop_texts(
    id: &str,
    folder: &Path,
    texts: &ShopTexts,
    faq: FaqSource,
) -> Result<Shop, Vec<LoadError>> {
    build_shop(id, folder, texts, faq, Vec::new())
}

/// Validates a shop's texts; `errors` holds what was already found reading them.
fn build_shop(
    id: &str,
    folder: &Path,
    texts: &ShopTexts,
    faq: FaqSource,
    mut errors: Vec<LoadError>,
) -> Result<Shop, Vec<LoadError>> {
    let shop_path = folder.join(SHOP_FILE);
    let shop_src = SourceFile {
        path: &shop_path,
        text: &texts.shop,
    };
    let shop_file: ShopFile = shop_src.parse_toml().map_err(|e| vec![e])?;
    let intent_files: Vec<(PathBuf, &String)> = texts
        .intents
        .iter()
        .map(|(name, text)| (folder.join(name), text))
        .collect();

    let synonyms = match &texts.synonyms {
        Some(text) => Some(
            synonyms::synonyms_from_text(&folder.join(SYNONYMS_FILE), text).map_err(|e| vec![e])?,
        ),
        None => None,
    };

    let staff = match &texts.agents {
        None => Some(Staff::default()),
        Some(text) => match staff_from_text(&folder.join(STAFF_FILE), text) {
            Ok(staff) => Some(staff),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        },
    };

    let mut ctx = Context {
        errors: &mut errors,
        synonyms,
    };
    let calendar = ctx.calendar(&shop_src, &shop_file.calendar);
    let schedule = ctx.schedule(&shop_src, &shop_file, &calendar);
    let shipping = ctx.shipping(&shop_src, &shop_file, calendar);
    let ladder = ctx.ladder(&shop_src, &shop_file);
    let templates = ctx.templates(&shop_src, &shop_file);
    let negators: Vec<String> = ctx.normalized_all(&shop_src, &shop_file.matching.negators);
    let words = ctx.standalone_words(&shop_src, &shop_file.matching.words);
    let intents::LoadedIntents {
        specs,
        actions,
        examples,
        origins: intent_origins,
    } = ctx.intent_files(&intent_files);
    let purchase = ctx.purchase(&shop_src, &shop_file.purchase, &specs);
    let questions = ctx.questions(&shop_src, &shop_file.questions, &specs);
    let complaints = texts
        .complaints
        .as_ref()
        .and_then(|text| ctx.complaints_file(&folder.join(COMPLAINTS_FILE), text, &specs));
    let widget = ctx.widget(&shop_src, &shop_file.widget);
    let followup_window = ctx.followup_window(&shop_src, &shop_file.followup);
    let retention = ctx.retention(&shop_src, &shop_file.retention);
    let faq_rule = faq::faq_rule(&shop_file.faq);
    let (faq_index, faq_questions, faq_origins) = match ctx.faq(id, faq, faq_rule) {
        Some(loaded) => (Some(loaded.index), Some(loaded.questions), loaded.origins),
        None => (None, None, Vec::new()),
    };
    let example_index =
        match ExampleIndex::build(examples.into_iter().enumerate().collect(), faq_rule) {
            Ok(index) => index,
            Err(e) => {
                ctx.errors.push(shop_src.error(e.to_string()));
                None
            }
        };
    let synonyms = ctx.synonyms;

    let intents = match IntentSet::build(specs, &negators, &words) {
        Ok(set) => Some(set),
        Err(e) => {
            errors.push(shop_src.error(e.to_string()));
            None
        }
    };
    let faq_shadows = intents
        .as_ref()
        .map(|set| FaqShadows::find(set, faq_questions.as_deref().unwrap_or(&[])));
    match (
        schedule, shipping, ladder, templates, intents, staff, purchase, questions,
    ) {
        (
            Some(schedule),
            Some(shipping),
            Some(ladder),
            Some(templates),
            Some(intents),
            Some(staff),
            Some(purchase),
            Some(questions),
        ) if errors.is_empty() => Ok(Shop {
            id: Arc::from(id),
            name: shop_file.name,
            agent: shop_file.agent,
            schedule,
            shipping,
            free_shipping_threshold: shop_file.free_shipping.map(|f| f.threshold),
            ladder,
            templates,
            intents,
            actions,
            complaints,
            synonyms,
            faq_shadows: faq_shadows.unwrap_or_default(),
            faq: faq_index,
            examples: example_index,
            staff,
            widget,
            purchase,
            questions,
            followup_window,
            origins: RuleOrigins {
                intents: intent_origins,
                faq: faq_origins,
            },
            retention,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> String {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents/default");
        std::fs::read_to_string(folder.join(name)).unwrap()
    }

    /// Loads the shipped shop's pre-sale intents with `shop` as its `shop.toml`.
    fn load_with_shop_file(shop: String) -> Result<Shop, Vec<LoadError>> {
        let texts = ShopTexts {
            shop,
            intents: vec![("presale.toml".to_string(), shipped("presale.toml"))],
            complaints: None,
            synonyms: None,
            agents: None,
        };
        load_shop_texts("default", Path::new("shop"), &texts, FaqSource::default())
    }

    #[test]
    fn a_shop_loads_from_texts_as_from_its_folder() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents/default");
        let from_folder = load_shop("default", &folder, FaqSource::default()).unwrap();
        let read = |name: &str| std::fs::read_to_string(folder.join(name)).unwrap();
        let mut texts = ShopTexts {
            shop: read(SHOP_FILE),
            intents: ["aftersale.toml", "presale.toml"]
                .iter()
                .map(|name| (name.to_string(), read(name)))
                .collect(),
            complaints: Some(read(COMPLAINTS_FILE)),
            synonyms: Some(read(SYNONYMS_FILE)),
            agents: Some(read(STAFF_FILE)),
        };
        let from_texts = load_shop_texts("default", &folder, &texts, FaqSource::default()).unwrap();
        assert_eq!(from_texts.actions.len(), from_folder.actions.len());
        assert_eq!(
            from_texts.staff.agents.len(),
            from_folder.staff.agents.len()
        );

        texts.intents[0]
            .1
            .push_str("\n[[intent]]\nname = \"x y\"\n");
        let errors = load_shop_texts("default", Path::new("shop"), &texts, FaqSource::default())
            .unwrap_err();
        assert!(
            errors[0].to_string().starts_with("shop/aftersale.toml:"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn purchase_mistakes_are_reported_with_file_and_line() {
        let shipped = shipped(SHOP_FILE);
        let errors = |purchase: &str| {
            let start = shipped.find("\n[purchase]").unwrap() + 1;
            let end = start + shipped[start..].find("\n[questions]").unwrap() + 1;
            let shop = format!("{}{purchase}\n{}", &shipped[..start], &shipped[end..]);
            let line = shop[..start].matches('\n').count() + 2;
            let errors: Vec<String> = load_with_shop_file(shop)
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect();
            (line, errors)
        };
        for (purchase, message) in [
            (
                "[purchase]\nafter_order = [\"我的订单\", \"！！\"]",
                "is empty",
            ),
            ("[purchase]\nafter_orders = [\"我的订单\"]", "unknown field"),
            ("[purchase]\nown_order = \"tracking\"", "is not an intent"),
            (
                "[purchase]\nown_order = \"shipping_time\"",
                "is marked `presale`",
            ),
            ("[purchase]\norder_number_digits = 4", "at least"),
        ] {
            let (line, errors) = errors(purchase);
            assert_eq!(errors.len(), 1, "{purchase}: {errors:#?}");
            assert!(
                errors[0].starts_with(&format!("shop/shop.toml:{line}:"))
                    && errors[0].contains(message),
                "{purchase}: {errors:#?}"
            );
        }
    }

    /// Loads the shipped shop's `shop.toml` and pre-sale intents after `intents` (`a.toml`).
    fn load_with_intents(intents: &str) -> Result<Shop, Vec<LoadError>> {
        let texts = ShopTexts {
            shop: shipped(SHOP_FILE),
            intents: vec![
                ("a.toml".to_string(), intents.to_string()),
                ("presale.toml".to_string(), shipped("presale.toml")),
            ],
            complaints: None,
            synonyms: None,
            agents: None,
        };
        load_shop_texts("default", Path::new("shop"), &texts, FaqSource::default())
    }

    #[test]
    fn examples_are_indexed_and_their_mistakes_reported_with_file_and_line() {
        let intent = |name: &str, examples: &str| {
            format!(
                "[[intent]]\nname = \"{name}\"\nkeywords = [\"{name}\"]\nreplies = [\"好的\"]\nexamples = [\n{examples}\n]\n"
            )
        };
        let shop = load_with_intents(&intent("wash", "\"羊毛衫能不能机洗\","))
            .unwrap_or_else(|e| panic!("{e:#?}"));
        let found = shop
            .examples
            .as_ref()
            .unwrap()
            .answer(&shop.canonical("请问羊毛衫能机洗吗"));
        assert_eq!(found.map(|hit| hit.intent), Some(0));

        let long = "很".repeat(crate::faq::MAX_EXAMPLE_CHARS + 1);
        for (intents, line, message) in [
            (intent("wash", "\"能机洗吗\",\n\"！！\","), 7, "is empty"),
            (
                intent("wash", "\"能机洗吗\",\n\"能机洗吗？\","),
                7,
                "already given for this intent (line 6)",
            ),
            (
                format!(
                    "{}{}",
                    intent("wash", "\"能机洗吗\","),
                    intent("dry", "\"能机洗吗\",")
                ),
                13,
                "already given for intent \"wash\" (line 6)",
            ),
            (intent("wash", &format!("\"{long}\",")), 6, "characters"),
        ] {
            let errors: Vec<String> = load_with_intents(&intents)
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(errors.len(), 1, "{intents}: {errors:#?}");
            assert!(
                errors[0].starts_with(&format!("shop/a.toml:{line}:"))
                    && errors[0].contains(message),
                "{intents}: {errors:#?}"
            );
        }
    }

    #[test]
    fn an_intent_file_without_intents_is_a_mistake() {
        for text in ["", "# the pre-sale intents, to be written\n\n"] {
            let errors: Vec<String> = load_with_intents(text)
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(errors.len(), 1, "{errors:#?}");
            assert!(
                errors[0].starts_with("shop/a.toml: the file is empty"),
                "{errors:#?}"
            );
        }
    }

    #[test]
    fn question_cue_mistakes_are_reported_with_file_and_line() {
        let shipped = shipped(SHOP_FILE);
        let start = shipped.find("\n[questions]").unwrap() + 1;
        let end = start + shipped[start..].find("\n[matching]").unwrap() + 1;
        let line = shipped[..start].matches('\n').count() + 1;
        let with = |questions: &str| {
            let shop = format!("{}{questions}\n{}", &shipped[..start], &shipped[end..]);
            load_with_shop_file(shop)
                .map(|_| ())
                .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        let errors = with("[questions]\nwords = [\"吗\"]\nshort = 40").unwrap_err();
        assert!(
            errors.len() == 1 && errors[0].starts_with(&format!("shop/shop.toml:{}:", line + 2)),
            "{errors:#?}"
        );
        assert!(errors[0].contains("short must be at most"), "{errors:#?}");
        // The shipped intents are `questions_only`: without words they could not tell.
        let errors = with("").unwrap_err();
        assert!(
            errors.len() == 1 && errors[0].contains("`questions_only`"),
            "{errors:#?}"
        );
    }

    #[test]
    fn out_of_range_lexicon_numbers_are_reported_with_file_and_line() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents/default");
        let read = |name: &str| std::fs::read_to_string(folder.join(name)).unwrap();
        let shipped = read(COMPLAINTS_FILE);
        for (from, to, message) in [
            ("threshold = 2.0", "threshold = -1.0", "`threshold` is -1"),
            (
                "praise_damping = 0.6",
                "praise_damping = 1.5",
                "`praise_damping` is 1.5",
            ),
            (
                "\"太\" = 1.5",
                "\"太\" = 0.0",
                "the intensifier \"太\" is 0",
            ),
            ("weight = 3.0", "weight = -3.0", "a term's `weight` is -3"),
        ] {
            let at = shipped.find(from).unwrap();
            let line = shipped[..at].matches('\n').count() + 1;
            let complaints = shipped.replacen(from, to, 1);
            let texts = ShopTexts {
                shop: read(SHOP_FILE),
                intents: ["aftersale.toml", "presale.toml"]
                    .iter()
                    .map(|name| (name.to_string(), read(name)))
                    .collect(),
                complaints: Some(complaints),
                synonyms: None,
                agents: None,
            };
            let errors: Vec<String> =
                load_shop_texts("default", Path::new("shop"), &texts, FaqSource::default())
                    .unwrap_err()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
            assert!(
                errors.len() == 1
                    && errors[0].starts_with(&format!("shop/complaints.toml:{line}:"))
                    && errors[0].contains(message),
                "{to}: {errors:#?}"
            );
        }
    }

    #[test]
    fn standalone_word_mistakes_are_reported_with_file_and_line() {
        // The shipped file without its own list of words.
        let mut shipped = shipped(SHOP_FILE);
        let matching = shipped.find("\n[matching]\n").unwrap();
        if let Some(start) = shipped[matching..]
            .find("\nwords = [")
            .map(|at| matching + at)
        {
            let end = start + shipped[start..].find("]\n").unwrap() + 2;
            shipped.replace_range(start + 1..end, "");
        }
        let at = shipped.find("\n[matching]\n").unwrap() + "\n[matching]\n".len();
        let line = shipped[..at].matches('\n').count() + 1;
        let load = |words: &str| {
            let shop = format!("{}words = {words}\n{}", &shipped[..at], &shipped[at..]);
            load_with_shop_file(shop)
        };
        let shop = load("[\"收到货\", \"包装尺寸\"]").unwrap();
        let shipping = shop.intents.index_of("shipping_time").unwrap();
        let found = |text: &str| -> Vec<usize> {
            let canonical = shop.canonical(text);
            shop.intents
                .detect(&canonical)
                .iter()
                .map(|h| h.intent)
                .collect()
        };
        assert!(!found("收到货了").contains(&shipping));
        assert!(found("什么时候到货").contains(&shipping));
        for (words, message) in [
            ("[\"收到货\", \"！！\"]", "is empty"),
            ("[\"斤\"]", "is one character"),
            ("[\"收到货\", \"收到货！\"]", "listed twice"),
        ] {
            let errors: Vec<String> = load(words)
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(errors.len(), 1, "{words}: {errors:#?}");
            assert!(
                errors[0].starts_with(&format!("shop/shop.toml:{line}:"))
                    && errors[0].contains(message),
                "{words}: {errors:#?}"
            );
        }
    }

    #[test]
    fn the_follow_up_window_defaults_to_minutes_and_is_bounded() {
        let shipped = shipped(SHOP_FILE);
        let window = |table: &str| {
            load_with_shop_file(format!("{shipped}\n{table}\n"))
                .map(|shop| shop.followup_window.num_seconds())
                .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(window(""), Ok(300));
        assert_eq!(window("[followup]\nwindow_seconds = 90"), Ok(90));
        assert_eq!(window("[followup]\nwindow_seconds = 0"), Ok(0));
        let line = shipped.lines().count() + 3;
        let errors = window("[followup]\nwindow_seconds = 86400").unwrap_err();
        assert!(
            errors.len() == 1
                && errors[0].starts_with(&format!("shop/shop.toml:{line}:"))
                && errors[0].contains("at most 3600"),
            "{errors:#?}"
        );
        assert!(window("[followup]\nwindow = 60").unwrap_err()[0].contains("unknown field"));
    }

    #[test]
    fn retention_defaults_to_half_a_year_and_is_checked_with_its_line() {
        let shipped = shipped(SHOP_FILE);
        let days = |table: &str| {
            load_with_shop_file(format!("{shipped}\n{table}\n"))
                .map(|shop| shop.retention.num_days())
                .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(days(""), Ok(180));
        assert_eq!(days("[retention]\ndays = 30"), Ok(30));
        let line = shipped.lines().count() + 3;
        for bad in ["0", "100000"] {
            let errors = days(&format!("[retention]\ndays = {bad}")).unwrap_err();
            assert!(
                errors.len() == 1
                    && errors[0].starts_with(&format!("shop/shop.toml:{line}:"))
                    && errors[0].contains("from 1 to 3650"),
                "{errors:#?}"
            );
        }
        assert!(days("[retention]\nmonths = 6").unwrap_err()[0].contains("unknown field"));
    }

    #[test]
    fn the_case_variables_belong_to_the_case_texts() {
        let load = load_with_shop_file;
        let shipped = shipped(SHOP_FILE);
        assert_eq!(
            load(shipped.clone()).unwrap().templates.case.queued.len(),
            2
        );
        // Without case texts of its own, a shop gets the built-in ones.
        let start = shipped.find("\nqueued = [").unwrap();
        let end = shipped.find("\ngoodbye = [").unwrap();
        let without = format!("{}{}", &shipped[..start], &shipped[end..]);
        let defaults = load(without).unwrap().templates.case;
        assert_eq!(defaults.queued.len(), 1);
        assert_eq!(defaults.claimed.len(), 1);

        let misplaced = shipped.replace(
            "\ngoodbye = [\n",
            "\ngoodbye = [\n    \"再见，您排第 {place} 位\",\n",
        );
        let errors = load(misplaced).unwrap_err();
        let message = errors[0].to_string();
        assert!(message.starts_with("shop/shop.toml:"), "{message}");
        assert!(message.contains("`templates.goodbye`"), "{message}");
    }
}
