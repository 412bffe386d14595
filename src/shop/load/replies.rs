//! Reply texts wherever they are written: the shop-wide `[templates]` and the `[bargain]`
//! ladder of `shop.toml`, and the `replies` of intents (each with the time it may be sent
//! in). Every text is parsed into a [`Template`] here, so an unknown variable is found at load.

use super::context::Context;
use crate::shop::files::{RawReply, ReplyFile, ShopFile, Text};
use crate::shop::{CaseTemplates, Ladder, Templates};
use crate::source::SourceFile;
use crate::template::{Template, Validity, Var, Variants};

/// Used when a shop with agents writes no `away_unstaffed` template of its own.
const DEFAULT_AWAY_UNSTAFFED: &str =
    "客服同事暂时不在座位上，您可以先把问题留下，我们回来后会按顺序第一时间回复您。";
/// Used when a shop with agents writes no `busy_queue` template of its own.
const DEFAULT_BUSY_QUEUE: &str = "现在咨询的朋友比较多，客服正在按顺序一一回复，感谢您的耐心等待！";
/// The case texts a shop may leave out.
const DEFAULT_QUEUED: &str =
    "前面还有 {ahead} 位，预计等待约 {minutes} 分钟，客服会按顺序为您服务，感谢您的耐心。";
const DEFAULT_QUEUED_FIRST: &str =
    "您已排在第一位，预计等待约 {minutes} 分钟，客服会按顺序为您服务，感谢您的耐心。";
const DEFAULT_QUEUED_UNSTAFFED: &str =
    "您现在排在第 {place} 位，客服上线后会按顺序第一时间为您处理。";
const DEFAULT_CLAIMED: &str = "客服{agent}已为您接入，请问有什么可以帮您？";

impl Context<'_> {
    /// The wordings of one reply, each parsed; `key` names the reply in errors.
    pub(super) fn variants(
        &mut self,
        src: &SourceFile,
        key: &str,
        texts: &[Text],
    ) -> Option<Variants> {
        self.parse_variants(src, key, texts, false)
    }

    /// `variants`, where `about_the_case` says whether the case variables (`{place}`,
    /// `{ahead}`, `{minutes}`) may be used.
    fn parse_variants(
        &mut self,
        src: &SourceFile,
        key: &str,
        texts: &[Text],
        about_the_case: bool,
    ) -> Option<Variants> {
        let mut templates = Vec::with_capacity(texts.len());
        for text in texts {
            match Template::parse(text.get_ref()) {
                Ok(t)
                    if !about_the_case
                        && Var::ALL.iter().any(|v| v.is_about_the_case() && t.uses(*v)) =>
                {
                    self.errors.push(src.error_at(
                        text.span(),
                        format!(
                            "`{{place}}`, `{{ahead}}` and `{{minutes}}` mean something only in \
                             the queue texts (`templates.queued…`), not in `{key}`"
                        ),
                    ));
                }
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
    pub(super) fn replies(&mut self, src: &SourceFile, replies: &[ReplyFile]) -> Option<Variants> {
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

    /// The `[bargain]` steps in order.
    pub(super) fn ladder(&mut self, src: &SourceFile, file: &ShopFile) -> Option<Ladder> {
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

    /// The `[templates]`, with the defaults for the two a shop may leave out.
    pub(super) fn templates(&mut self, src: &SourceFile, file: &ShopFile) -> Option<Templates> {
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
        let mut case_text = |key: &str, texts: &Option<Vec<Text>>, default: &str| match texts {
            Some(texts) => self.parse_variants(src, key, texts, true),
            None => Variants::new(vec![Template::parse(default).ok()?]),
        };
        let queued = case_text("templates.queued", &t.queued, DEFAULT_QUEUED);
        let queued_first = case_text(
            "templates.queued_first",
            &t.queued_first,
            DEFAULT_QUEUED_FIRST,
        );
        let queued_unstaffed = case_text(
            "templates.queued_unstaffed",
            &t.queued_unstaffed,
            DEFAULT_QUEUED_UNSTAFFED,
        );
        let claimed = case_text("templates.claimed", &t.claimed, DEFAULT_CLAIMED);
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
            case: CaseTemplates {
                queued: queued?,
                queued_first: queued_first?,
                queued_unstaffed: queued_unstaffed?,
                claimed: claimed?,
            },
        })
    }
}
