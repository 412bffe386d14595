//! Turns one shop folder into a validated [`Shop`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Weekday};
use chrono_tz::Tz;

use super::calendar::{Calendar, DateSpan};
use super::files::{
    ComplaintsFile, FaqRuleFile, IntentsFile, RawReply, ReplyFile, ShopFile, SynonymsFile, Text,
    WidgetFile,
};
use super::schedule::{MinuteRange, Peak, Schedule};
use super::shipping::{Region, Shipping};
use super::staff::{STAFF_FILE, Staff, staff_from_text};
use super::widget::WidgetRules;
use super::{Action, Ladder, Shop, TemplateName, Templates};
use crate::faq::{FaqEntry, FaqIndex, FaqRule, load_entries};
use crate::intents::complaints::{ComplaintLexicon, LexiconSpec, TermSpec};
use crate::intents::{HandoffPriority, IntentSet, IntentSpec};
use crate::normalize::{Synonyms, canonical, normalize};
use crate::source::{LoadError, SourceFile, files_with_extensions, read_source};
use crate::template::{Template, Validity, Variants};

const SHOP_FILE: &str = "shop.toml";
const COMPLAINTS_FILE: &str = "complaints.toml";
const SYNONYMS_FILE: &str = "synonyms.toml";
/// Used when a shop with agents writes no `away_unstaffed` template of its own.
const DEFAULT_AWAY_UNSTAFFED: &str =
    "客服同事暂时不在座位上，您可以先把问题留下，我们回来后会按顺序第一时间回复您。";
/// Used when a shop with agents writes no `busy_queue` template of its own.
const DEFAULT_BUSY_QUEUE: &str = "现在咨询的朋友比较多，客服正在按顺序一一回复，感谢您的耐心等待！";

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
    for path in files_with_extensions(folder, &["toml"]).map_err(|e| vec![e])? {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == SHOP_FILE
            || name == COMPLAINTS_FILE
            || name == SYNONYMS_FILE
            || name == STAFF_FILE
        {
            continue;
        }
        match read_source(&path) {
            Ok(text) => intents.push((name.to_string(), text)),
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
    let shop_text = &texts.shop;
    let shop_src = SourceFile {
        path: &shop_path,
        text: shop_text,
    };
    let shop_file: ShopFile =
        toml::from_str(shop_text).map_err(|e| vec![shop_src.toml_error(&e)])?;
    let intent_files: Vec<(PathBuf, &String)> = texts
        .intents
        .iter()
        .map(|(name, text)| (folder.join(name), text))
        .collect();
    let complaints_path = folder.join(COMPLAINTS_FILE);
    let complaints_text = texts.complaints.as_ref();

    let synonyms_path = folder.join(SYNONYMS_FILE);
    let synonyms = match &texts.synonyms {
        Some(text) => {
            let src = SourceFile {
                path: &synonyms_path,
                text,
            };
            let file: SynonymsFile = toml::from_str(text).map_err(|e| vec![src.toml_error(&e)])?;
            Some(synonym_table(&src, file).map_err(|e| vec![e])?)
        }
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

    let mut specs = Vec::new();
    let mut actions = Vec::new();
    for (path, text) in &intent_files {
        let src = SourceFile { path, text };
        let file: IntentsFile = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                ctx.errors.push(src.toml_error(&e));
                continue;
            }
        };
        for intent in file.intent {
            if let Some((spec, action)) = ctx.intent(&src, intent, &specs) {
                specs.push(spec);
                actions.push(action);
            }
        }
    }

    let complaints = complaints_text.and_then(|text| {
        let src = SourceFile {
            path: &complaints_path,
            text,
        };
        match toml::from_str::<ComplaintsFile>(text) {
            Ok(file) => ctx.complaints(&src, file, &specs),
            Err(e) => {
                ctx.errors.push(src.toml_error(&e));
                None
            }
        }
    });

    let widget = ctx.widget(&shop_src, &shop_file.widget);
    let faq_rule = faq_rule(&shop_file.faq);
    let faq_index = ctx.faq(id, faq, faq_rule);
    let synonyms = ctx.synonyms;

    let intents = match IntentSet::build(specs, &negators) {
        Ok(set) => Some(set),
        Err(e) => {
            errors.push(shop_src.error(e.to_string()));
            None
        }
    };
    match (schedule, shipping, ladder, templates, intents, staff) {
        (
            Some(schedule),
            Some(shipping),
            Some(ladder),
            Some(templates),
            Some(intents),
            Some(staff),
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
            faq: faq_index,
            staff,
            widget,
        }),
        _ => Err(errors),
    }
}

fn synonym_table(src: &SourceFile, file: SynonymsFile) -> Result<Synonyms, LoadError> {
    let mut pairs = Vec::with_capacity(file.rewrite.len());
    for (from, to) in file.rewrite {
        let (from_n, to_n) = (normalize(&from), normalize(&to));
        if from_n.is_empty() || to_n.is_empty() {
            return Err(src.error(format!(
                "rewrite \"{from}\" = \"{to}\": both sides need letters or characters"
            )));
        }
        // A single character occurs in far too many words to be rewritten everywhere.
        if from_n.chars().count() < 2 {
            return Err(src.error(format!(
                "rewrite \"{from}\": a key needs at least 2 characters"
            )));
        }
        pairs.push((from_n, to_n));
    }
    // The rewrite runs once; a result that contains another key would read differently
    // depending on the order of the table.
    for (from, to) in &pairs {
        if let Some((other, _)) = pairs.iter().find(|(key, _)| to.contains(key.as_str())) {
            return Err(src.error(format!(
                "rewrite \"{from}\" = \"{to}\": the result contains the key \"{other}\""
            )));
        }
    }
    Synonyms::new(pairs).map_err(|e| src.error(e.to_string()))
}

fn faq_rule(file: &FaqRuleFile) -> FaqRule {
    let default = FaqRule::default();
    FaqRule {
        min_confidence: file.min_confidence.unwrap_or(default.min_confidence),
        single_word_confidence: file
            .single_word_confidence
            .unwrap_or(default.single_word_confidence),
        min_margin: file.min_margin.unwrap_or(default.min_margin),
    }
}

/// Collects errors while the pieces of a shop are validated one by one.
struct Context<'e> {
    errors: &'e mut Vec<LoadError>,
    /// Applied to every text the rules match against, as to buyer messages.
    synonyms: Option<Synonyms>,
}

impl Context<'_> {
    /// The form a text takes for matching: normalised, then rewritten by the synonyms.
    fn canonical(&self, text: &str) -> String {
        canonical(text, self.synonyms.as_ref())
    }

    fn faq(&mut self, shop: &str, source: FaqSource, rule: FaqRule) -> Option<FaqIndex> {
        let folder = source.folder?;
        let specs = match load_entries(folder) {
            Ok(specs) => specs,
            Err(mut e) => {
                self.errors.append(&mut e);
                return None;
            }
        };
        if specs.is_empty() {
            return None;
        }
        let before = self.errors.len();
        let mut entries = Vec::with_capacity(specs.len());
        let mut phrasings = Vec::with_capacity(specs.len());
        let mut answers = Vec::with_capacity(specs.len());
        let mut ids = std::collections::HashSet::with_capacity(specs.len());
        for spec in specs {
            let at = |message: String| LoadError {
                file: spec.file.clone(),
                line: spec.line,
                column: 0,
                message,
            };
            if spec.id.is_empty()
                || !spec
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                self.errors.push(at(format!(
                    "FAQ id \"{}\" must be ASCII letters, digits and _",
                    spec.id
                )));
            } else if !ids.insert(spec.id.clone()) {
                self.errors.push(at(format!(
                    "FAQ id \"{}\" is used twice in this shop",
                    spec.id
                )));
            }
            let mut validity = Validity::default();
            for (key, text, slot) in [
                ("valid_from", &spec.valid_from, &mut validity.from),
                ("valid_until", &spec.valid_until, &mut validity.until),
            ] {
                if let Some(text) = text {
                    match DateTime::parse_from_rfc3339(text) {
                        Ok(t) => *slot = Some(t.to_utc()),
                        Err(e) => self.errors.push(at(format!(
                            "entry \"{}\": {key}: expected a time like \"2026-11-11T00:00:00+08:00\": {e}",
                            spec.id
                        ))),
                    }
                }
            }
            if let (Some(from), Some(until)) = (validity.from, validity.until)
                && from >= until
            {
                self.errors.push(at(format!(
                    "entry \"{}\": `valid_from` must be before `valid_until`",
                    spec.id
                )));
            }
            let answer = match Template::parse(&spec.answer) {
                Ok(mut t) => {
                    t.validity = validity;
                    Some(t)
                }
                Err(e) => {
                    self.errors
                        .push(at(format!("entry \"{}\": answer: {}", spec.id, e.message)));
                    None
                }
            };
            let texts: Vec<String> = std::iter::once(&spec.question)
                .chain(&spec.alternatives)
                .map(|t| self.canonical(t))
                .filter(|t| !t.is_empty())
                .collect();
            if texts.is_empty() {
                self.errors
                    .push(at(format!("entry \"{}\" has no question text", spec.id)));
            }
            if let Some(answer) = answer {
                entries.push(FaqEntry {
                    id: Arc::from(spec.id.as_str()),
                    answer,
                    tags: spec.tags,
                });
                phrasings.push(texts);
                answers.push(self.canonical(&spec.answer));
            }
        }
        if self.errors.len() > before {
            return None;
        }
        let directory = source.on_disk.map(|dir| dir.join(shop));
        if let Some(dir) = &directory {
            // The on-disk index is rebuilt from the files at every load.
            let _ = std::fs::remove_dir_all(dir);
        }
        match FaqIndex::build(entries, phrasings, answers, rule, directory.as_deref()) {
            Ok(index) => Some(index),
            Err(e) => {
                self.errors
                    .push(LoadError::whole_file(folder, e.to_string()));
                None
            }
        }
    }

    fn variants(&mut self, src: &SourceFile, key: &str, texts: &[Text]) -> Option<Variants> {
        let mut templates = Vec::with_capacity(texts.len());
        for text in texts {
            match Template::parse(text.get_ref()) {
                Ok(t) => templates.push(t),
                Err(e) => {
                    // The span includes the opening quote.
                    let at = text.span().start + 1 + e.offset;
                    self.errors.push(src.error_at(at..at, e.message));
                }
            }
        }
        if texts.is_empty() {
            self.errors
                .push(src.error(format!("`{key}` needs at least one reply text")));
        }
        if templates.len() != texts.len() {
            return None;
        }
        Variants::new(templates)
    }

    /// An intent's reply variants, each with the time it may be sent in.
    fn replies(&mut self, src: &SourceFile, replies: &[ReplyFile]) -> Option<Variants> {
        // Errors inside a text point into it for a plain string; for a table, at the table.
        let texts: Vec<Text> = replies
            .iter()
            .map(|r| Text::new(r.span(), r.get_ref().text().to_string()))
            .collect();
        let validity: Vec<Validity> = replies
            .iter()
            .zip(&texts)
            .map(|(reply, at)| match reply.get_ref() {
                RawReply::Plain(_) => Validity::default(),
                RawReply::Dated(dated) => {
                    let spanned =
                        |t: &Option<String>| t.as_ref().map(|t| Text::new(reply.span(), t.clone()));
                    let (from, until) = (spanned(&dated.valid_from), spanned(&dated.valid_until));
                    self.validity(src, at, from.as_ref(), until.as_ref())
                }
            })
            .collect();
        Some(
            self.variants(src, "replies", &texts)?
                .with_validity(validity),
        )
    }

    fn validity(
        &mut self,
        src: &SourceFile,
        at: &Text,
        from: Option<&Text>,
        until: Option<&Text>,
    ) -> Validity {
        let validity = Validity {
            from: from.and_then(|t| self.instant(src, t)),
            until: until.and_then(|t| self.instant(src, t)),
        };
        if let (Some(from), Some(until)) = (validity.from, validity.until)
            && from >= until
        {
            self.errors
                .push(src.error_at(at.span(), "`valid_from` must be before `valid_until`"));
        }
        validity
    }

    fn widget(&mut self, src: &SourceFile, file: &WidgetFile) -> WidgetRules {
        let secret = match (&file.secret, &file.secret_env) {
            (Some(_), Some(env)) => {
                self.errors.push(src.error_at(
                    env.span(),
                    "give `secret` or `secret_env` in [widget], not both",
                ));
                None
            }
            (Some(secret), None) => Some(secret.clone()),
            (None, Some(env)) => match std::env::var(env.get_ref()) {
                Ok(secret) if !secret.is_empty() => Some(secret),
                _ => {
                    self.errors.push(src.error_at(
                        env.span(),
                        format!(
                            "the environment variable {} holding the buyer-token secret is not set",
                            env.get_ref()
                        ),
                    ));
                    None
                }
            },
            (None, None) => None,
        };
        let mut origins = Vec::new();
        for origin in &file.origins {
            let text = origin.get_ref().trim_end_matches('/');
            let host = text
                .strip_prefix("https://")
                .or_else(|| text.strip_prefix("http://"));
            if host.is_some_and(|h| !h.is_empty() && !h.contains('/')) {
                origins.push(text.to_string());
            } else {
                self.errors.push(src.error_at(
                    origin.span(),
                    format!(
                        "\"{}\" is not an origin: write scheme and host only, like \"https://shop.example.com\"",
                        origin.get_ref()
                    ),
                ));
            }
        }
        WidgetRules { secret, origins }
    }

    fn normalized_all(&mut self, src: &SourceFile, texts: &[Text]) -> Vec<String> {
        texts
            .iter()
            .filter_map(|t| self.normalized(src, t))
            .collect()
    }

    fn normalized(&mut self, src: &SourceFile, text: &Text) -> Option<String> {
        let n = self.canonical(text.get_ref());
        if n.is_empty() {
            self.errors.push(src.error_at(
                text.span(),
                format!(
                    "\"{}\" is empty once punctuation and emoji are removed",
                    text.get_ref()
                ),
            ));
            return None;
        }
        Some(n)
    }

    fn ranges(&mut self, src: &SourceFile, texts: &[Text]) -> Vec<MinuteRange> {
        texts
            .iter()
            .filter_map(|t| match MinuteRange::parse(t.get_ref()) {
                Ok(r) => Some(r),
                Err(e) => {
                    self.errors.push(src.error_at(t.span(), e));
                    None
                }
            })
            .collect()
    }

    fn instant(&mut self, src: &SourceFile, text: &Text) -> Option<DateTime<chrono::Utc>> {
        match DateTime::parse_from_rfc3339(text.get_ref()) {
            Ok(t) => Some(t.to_utc()),
            Err(e) => {
                self.errors.push(src.error_at(
                    text.span(),
                    format!("expected a time like \"2026-11-11T00:00:00+08:00\": {e}"),
                ));
                None
            }
        }
    }

    /// The `[calendar]` dates; a date may be a holiday or a make-up working day, not both.
    fn calendar(&mut self, src: &SourceFile, file: &super::files::CalendarFile) -> Calendar {
        let holidays: Vec<DateSpan> = file
            .holidays
            .iter()
            .filter_map(|t| self.date_span(src, t))
            .collect();
        let only_holidays = Calendar::new(holidays.clone(), Vec::new());
        let mut workdays = Vec::new();
        for text in &file.workdays {
            let Some(span) = self.date_span(src, text) else {
                continue;
            };
            if let Some(date) = only_holidays.first_holiday_in(span) {
                self.errors.push(src.error_at(
                    text.span(),
                    format!(
                        "{date} is a holiday and a make-up working day; \
                         list it in `holidays` or in `workdays`, not both"
                    ),
                ));
            }
            workdays.push(span);
        }
        Calendar::new(holidays, workdays)
    }

    fn date_span(&mut self, src: &SourceFile, text: &Text) -> Option<DateSpan> {
        match DateSpan::parse(text.get_ref()) {
            Ok(span) => Some(span),
            Err(e) => {
                self.errors.push(src.error_at(text.span(), e));
                None
            }
        }
    }

    fn schedule(
        &mut self,
        src: &SourceFile,
        file: &ShopFile,
        calendar: &Calendar,
    ) -> Option<Schedule> {
        let timezone: Option<Tz> = match file.timezone.get_ref().parse() {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.errors.push(src.error_at(
                    file.timezone.span(),
                    format!(
                        "unknown time zone \"{}\"; use an IANA name like \"Asia/Shanghai\"",
                        file.timezone.get_ref()
                    ),
                ));
                None
            }
        };
        let h = &file.hours;
        let week = [
            self.ranges(src, &h.mon),
            self.ranges(src, &h.tue),
            self.ranges(src, &h.wed),
            self.ranges(src, &h.thu),
            self.ranges(src, &h.fri),
            self.ranges(src, &h.sat),
            self.ranges(src, &h.sun),
        ];
        let meal_breaks = self.ranges(src, &h.meal_breaks);
        let c = &file.calendar;
        let holiday_hours = c
            .holiday_hours
            .as_deref()
            .map_or_else(Vec::new, |h| self.ranges(src, h));
        let workday_hours = match c.workday_hours.as_deref() {
            Some(h) => self.ranges(src, h),
            None => week[0].clone(),
        };
        let mut peaks = Vec::new();
        for peak in &file.peak {
            let hours = peak.hours.as_deref().map(|h| self.ranges(src, h));
            if let (Some(start), Some(end)) =
                (self.instant(src, &peak.start), self.instant(src, &peak.end))
            {
                if start >= end {
                    self.errors.push(src.error_at(
                        peak.end.span(),
                        format!("peak \"{}\" ends before it starts", peak.name),
                    ));
                }
                peaks.push(Peak {
                    name: peak.name.clone(),
                    start,
                    end,
                    hours,
                    busy: peak.busy.unwrap_or(true),
                });
            }
        }
        Some(Schedule {
            timezone: timezone?,
            week,
            meal_breaks,
            peaks,
            calendar: calendar.clone(),
            holiday_hours,
            workday_hours,
        })
    }

    fn shipping(
        &mut self,
        src: &SourceFile,
        file: &ShopFile,
        calendar: Calendar,
    ) -> Option<Shipping> {
        let s = &file.shipping;
        if *s.cutoff_hour.get_ref() > 24 {
            self.errors.push(src.error_at(
                s.cutoff_hour.span(),
                "cutoff_hour must be an hour from 0 to 24",
            ));
        }
        let mut working_days = [false; 7];
        for day in &s.working_days {
            match day.get_ref().parse::<Weekday>() {
                Ok(d) => working_days[d.num_days_from_monday() as usize] = true,
                Err(_) => self.errors.push(src.error_at(
                    day.span(),
                    format!("\"{}\" is not a weekday; use mon … sun", day.get_ref()),
                )),
            }
        }
        let dispatch_today = self.variants(src, "shipping.dispatch_today", &s.dispatch_today);
        let dispatch_next = self.variants(src, "shipping.dispatch_next", &s.dispatch_next);
        for template in dispatch_today
            .iter()
            .chain(&dispatch_next)
            .flat_map(|v| v.iter())
        {
            if template.uses(crate::template::Var::Dispatch) {
                self.errors
                    .push(src.error("the dispatch sentences cannot contain {dispatch} themselves"));
            }
        }
        let regions = s
            .region
            .iter()
            .map(|r| {
                let places = self.normalized_all(src, &r.places);
                (
                    Region {
                        name: r.name.clone(),
                        days: r.days.clone(),
                    },
                    places,
                )
            })
            .collect();
        Some(Shipping::new(
            s.courier.clone(),
            *s.cutoff_hour.get_ref(),
            working_days,
            calendar,
            s.default_days.clone(),
            s.default_region.clone(),
            dispatch_today?,
            dispatch_next?,
            regions,
        ))
    }

    fn ladder(&mut self, src: &SourceFile, file: &ShopFile) -> Option<Ladder> {
        let b = &file.bargain;
        let mut steps = vec![
            self.variants(src, "bargain.refuse", &b.refuse),
            self.variants(src, "bargain.value", &b.value),
        ];
        if !b.concession.is_empty() {
            steps.push(self.variants(src, "bargain.concession", &b.concession));
        }
        steps.push(self.variants(src, "bargain.member", &b.member));
        Some(Ladder {
            steps: steps.into_iter().collect::<Option<Vec<_>>>()?,
        })
    }

    fn templates(&mut self, src: &SourceFile, file: &ShopFile) -> Option<Templates> {
        let t = &file.templates;
        let welcome = self.variants(src, "templates.welcome", &t.welcome);
        let away = self.variants(src, "templates.away", &t.away);
        let busy = self.variants(src, "templates.busy", &t.busy);
        let fallback = self.variants(src, "templates.fallback", &t.fallback);
        let handoff = self.variants(src, "templates.handoff", &t.handoff);
        let handoff_away = self.variants(src, "templates.handoff_away", &t.handoff_away);
        let goodbye = self.variants(src, "templates.goodbye", &t.goodbye);
        let away_unstaffed = match &t.away_unstaffed {
            Some(texts) => self.variants(src, "templates.away_unstaffed", texts),
            None => Variants::new(vec![Template::parse(DEFAULT_AWAY_UNSTAFFED).ok()?]),
        };
        let busy_queue = match &t.busy_queue {
            Some(texts) => self.variants(src, "templates.busy_queue", texts),
            None => Variants::new(vec![Template::parse(DEFAULT_BUSY_QUEUE).ok()?]),
        };
        Some(Templates {
            welcome: welcome?,
            away: away?,
            busy: busy?,
            fallback: fallback?,
            handoff: handoff?,
            handoff_away: handoff_away?,
            goodbye: goodbye?,
            away_unstaffed: away_unstaffed?,
            busy_queue: busy_queue?,
        })
    }

    fn intent(
        &mut self,
        src: &SourceFile,
        intent: super::files::IntentFile,
        earlier: &[IntentSpec],
    ) -> Option<(IntentSpec, Action)> {
        let name = intent.name.get_ref().trim().to_string();
        let at = intent.name.span();
        let before = self.errors.len();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.errors.push(src.error_at(
                at.clone(),
                format!("intent name \"{name}\" must be ASCII letters, digits and _"),
            ));
        }
        if earlier.iter().any(|i| *i.name == *name) {
            self.errors.push(src.error_at(
                at.clone(),
                format!("intent \"{name}\" is defined twice in this shop"),
            ));
        }
        if intent.keywords.is_empty() {
            self.errors.push(src.error_at(
                at.clone(),
                format!("intent \"{name}\" has no keywords, so it can never match"),
            ));
        }
        let keywords: Vec<Vec<String>> = intent
            .keywords
            .iter()
            .filter_map(|k| {
                let parts: Vec<String> =
                    k.get_ref().split('+').map(|p| self.canonical(p)).collect();
                if parts.iter().any(String::is_empty) {
                    self.errors.push(src.error_at(
                        k.span(),
                        format!(
                            "keyword \"{}\" has an empty part once punctuation is removed",
                            k.get_ref()
                        ),
                    ));
                    None
                } else {
                    Some(parts)
                }
            })
            .collect();
        let exclude = self.normalized_all(src, &intent.exclude);
        let handoff = intent.handoff.as_ref().and_then(|h| {
            let priority = HandoffPriority::parse(h.get_ref());
            if priority.is_none() {
                self.errors.push(src.error_at(
                    h.span(),
                    format!(
                        "handoff must be \"normal\" or \"high\", found \"{}\"",
                        h.get_ref()
                    ),
                ));
            }
            priority
        });
        let ways = usize::from(!intent.replies.is_empty())
            + usize::from(intent.ladder)
            + usize::from(intent.template.is_some());
        if ways > 1 {
            self.errors.push(src.error_at(
                at.clone(),
                format!("intent \"{name}\": use only one of replies, ladder and template"),
            ));
        }
        let action = if let Some(template) = &intent.template {
            match TemplateName::parse(template.get_ref()) {
                Some(t) => Some(Action::Template(t)),
                None => {
                    self.errors.push(src.error_at(
                        template.span(),
                        format!("unknown template \"{}\"", template.get_ref()),
                    ));
                    None
                }
            }
        } else if intent.ladder {
            Some(Action::Ladder)
        } else if intent.handoff.is_some() {
            if intent.replies.is_empty() {
                Some(Action::Handoff(None))
            } else {
                self.replies(src, &intent.replies)
                    .map(|v| Action::Handoff(Some(v)))
            }
        } else if intent.replies.is_empty() {
            self.errors.push(src.error_at(
                at.clone(),
                format!(
                    "intent \"{name}\" has no replies; add `replies`, `ladder = true`, `template` or `handoff`"
                ),
            ));
            None
        } else {
            self.replies(src, &intent.replies).map(Action::Answer)
        };
        if self.errors.len() > before {
            return None;
        }
        Some((
            IntentSpec {
                name: Arc::from(name.as_str()),
                keywords,
                exclude,
                negatable: intent.negatable.unwrap_or(handoff.is_some()),
                handoff,
                priority: intent.priority,
                yield_to_others: intent.yield_to_others,
                defer_to_faq: intent.defer_to_faq,
            },
            action?,
        ))
    }

    fn complaints(
        &mut self,
        src: &SourceFile,
        file: ComplaintsFile,
        intents: &[IntentSpec],
    ) -> Option<ComplaintLexicon> {
        let before = self.errors.len();
        let mut terms = Vec::new();
        for term in &file.term {
            let target = intents
                .iter()
                .position(|i| *i.name == **term.handoff.get_ref() && i.handoff.is_some());
            let Some(handoff_intent) = target else {
                self.errors.push(src.error_at(
                    term.handoff.span(),
                    format!(
                        "\"{}\" is not a handoff intent of this shop",
                        term.handoff.get_ref()
                    ),
                ));
                continue;
            };
            terms.push(TermSpec {
                words: self.normalized_all(src, &term.words),
                weight: term.weight,
                handoff_intent,
            });
        }
        let spec = LexiconSpec {
            threshold: file.threshold,
            window: file.window,
            question_damping: file.question_damping,
            target_bonus: file.target_bonus,
            targets: self.normalized_all(src, &file.targets),
            negators: self.normalized_all(src, &file.negators),
            hedges: self.normalized_all(src, &file.hedges),
            neutral: self.normalized_all(src, &file.neutral),
            intensifiers: file
                .intensifiers
                .iter()
                .map(|(w, f)| (self.canonical(w), *f))
                .filter(|(w, _)| !w.is_empty())
                .collect(),
            terms,
        };
        if self.errors.len() > before {
            return None;
        }
        match ComplaintLexicon::build(spec) {
            Ok(l) => Some(l),
            Err(e) => {
                self.errors.push(src.error(e.to_string()));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<Synonyms, LoadError> {
        let path = Path::new("intents/x/synonyms.toml");
        let src = SourceFile { path, text };
        synonym_table(&src, toml::from_str(text).unwrap())
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
    fn synonym_tables_reject_short_keys_and_chained_rewrites() {
        assert!(table("[rewrite]\n\"包油\" = \"包邮\"\n").is_ok());
        let short = table("[rewrite]\n\"油\" = \"邮\"\n").unwrap_err();
        assert!(short.message.contains("2 characters"), "{short}");
        let chained = table("[rewrite]\n\"包油\" = \"包邮\"\n\"包邮\" = \"免运费\"\n").unwrap_err();
        assert!(chained.message.contains("contains the key"), "{chained}");
        assert!(
            chained.to_string().starts_with("intents/x/synonyms.toml"),
            "{chained}"
        );
    }
}
