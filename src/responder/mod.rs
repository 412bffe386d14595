//! Decides what the bot says to a buyer message, and when a human must take over.
//!
//! `respond` is synchronous and does no I/O: normalise → keyword intents and the complaint
//! lexicon → the duty state (away, busy) → replies rendered from the shop's templates, with
//! the conversation's state updated in place. The caller stores the result and sends it.

mod examples;
mod followup;
mod vars;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::conversation::ConversationState;
use crate::faq::FaqRule;
use crate::intents::HandoffPriority;
use crate::reply::{Reply, ReplyKind};
use crate::shop::schedule::Duty;
use crate::shop::{Action, Shop, TemplateName};
use crate::staffing::Staffing;
use crate::template::{Template, Variants};
use examples::ExampleChoice;
pub use vars::CaseNotice;
use vars::Vars;

/// At most this many intents are answered for one message; more reads as spam.
const MAX_ANSWERS: usize = 3;

/// What is left of a greeting needs more characters than this to be a question of its own
/// ("你好，我想问一下" is still a greeting).
const MIN_QUESTION_AFTER_GREETING: usize = 5;

/// How sure the FAQ must be, and how far its best entry must lead the next, for an entry to
/// take the place of an intent's generic reply (see `specific_entry_replaces`). Set on the
/// shop's own FAQ questions against `tests/cases/buyer_messages.tsv` (`docs/quality.md`).
const SPECIFIC_CONFIDENCE: f32 = 0.5;
const SPECIFIC_MARGIN: f32 = 0.3;

/// A request to queue the conversation for a human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffRequest {
    pub intent: Arc<str>,
    pub priority: HandoffPriority,
}

/// Everything the bot does for one buyer message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub replies: Vec<Reply>,
    /// Set when a new handoff must be created; it must be stored before the replies are sent.
    pub handoff: Option<HandoffRequest>,
    /// The canonical text of a question nothing could answer, for the operators' report.
    pub unmatched: Option<String>,
}

/// One thing the bot answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answerable {
    /// A keyword intent (index into the shop's intents).
    Intent(usize),
    /// An FAQ entry (index into the shop's FAQ entries).
    Faq(usize),
}

/// What a message asks for, before any reply is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Hand off for this intent (index into the shop's intents).
    Handoff(usize),
    /// Answer these, in order.
    Answer(Vec<Answerable>),
    Nothing,
}

/// Classifies a canonical message (see [`Shop::canonical`]) with the shop's own FAQ rule.
pub fn decide(shop: &Shop, canonical: &str) -> Decision {
    decide_with(shop, canonical, shop.faq.as_ref().map(|f| f.rule()))
}

/// Classifies a canonical message: handoff intents win over everything; otherwise every
/// answerable intent is answered in order of appearance; the FAQ is asked when no intent
/// matched, or when a matched intent defers to it, and answers if `faq_rule` accepts it;
/// when no intent but social ones matched, the intents' examples are asked too, and the
/// more confident of an example match and the FAQ's answer wins.
pub fn decide_with(shop: &Shop, normalized: &str, faq_rule: Option<FaqRule>) -> Decision {
    classify(shop, normalized, faq_rule, None)
}

/// Classifies a canonical message as the service does at `now`: answers whose every
/// wording has expired (or is not valid yet) do not count, so a promotion's answer
/// disappears by itself when the promotion ends.
pub fn decide_at(shop: &Shop, canonical: &str, now: DateTime<Utc>) -> Decision {
    classify(
        shop,
        canonical,
        shop.faq.as_ref().map(|f| f.rule()),
        Some(now),
    )
}

fn classify(
    shop: &Shop,
    normalized: &str,
    faq_rule: Option<FaqRule>,
    now: Option<DateTime<Utc>>,
) -> Decision {
    let hits = shop.intents.detect(normalized);
    let complaint = shop
        .complaints
        .as_ref()
        .and_then(|lexicon| lexicon.score(normalized).handoff_intent);
    let keyword_handoffs = hits.iter().map(|h| (h.intent, h.position));
    let best_handoff = keyword_handoffs
        .chain(complaint.map(|i| (i, usize::MAX)))
        .filter_map(|(intent, position)| {
            let spec = shop.intents.intent(intent);
            spec.handoff.map(|priority| {
                (
                    (priority, spec.priority, std::cmp::Reverse(position)),
                    intent,
                )
            })
        })
        .max_by_key(|(rank, _)| *rank);
    if let Some((_, intent)) = best_handoff {
        return Decision::Handoff(intent);
    }
    let mut intents: Vec<usize> = hits.iter().map(|h| h.intent).collect();
    if let Some(now) = now {
        intents.retain(|&i| match &shop.actions[i] {
            Action::Answer(variants) => variants.any_valid(now),
            _ => true,
        });
    }
    // "用了几天不错，还送了赠品" names the gift but asks nothing about it, nor anything the
    // FAQ would answer.
    let only_told = intents
        .iter()
        .any(|&i| shop.intents.intent(i).questions_only)
        && !shop.questions.asks(normalized);
    if only_told {
        intents.retain(|&i| !shop.intents.intent(i).questions_only);
    }
    let social = |i: &usize| shop.intents.intent(*i).yield_to_others;
    // A pre-sale answer (the dispatch promise, stock…) is wrong for an order already placed:
    // such a message goes to the shop's own-order intent when nothing else answers it. A
    // pre-sale keyword inside a cue ("到货" in "收到货了") asked nothing: it only goes.
    let presale = |i: &usize| shop.intents.intent(*i).presale;
    let cues = if intents.iter().any(presale) {
        shop.purchase.cues_in(normalized)
    } else {
        Vec::new()
    };
    if !cues.is_empty() {
        let asked = hits.iter().any(|h| {
            presale(&h.intent)
                && intents.contains(&h.intent)
                && !cues.iter().any(|cue| cue.contains(&h.position))
        });
        intents.retain(|i| !presale(i));
        if let Some(own) = shop.purchase.own_order
            && asked
            && intents.iter().all(social)
        {
            intents = vec![own];
        }
    }
    if intents.len() > 1 {
        intents.retain(|i| !social(i));
    }
    // Social intents (greeting, thanks…) give way to any real answer, the FAQ's included:
    // "你好，我想申请价格保护" is a question, not a greeting.
    let only_social = !intents.is_empty() && intents.iter().all(social);
    let defers = |i: &usize| shop.intents.intent(*i).defer_to_faq;
    // An intent whose keywords stand in FAQ entries' own questions asks the FAQ whether one of
    // those more specific entries fits the message (known at load time: the others never ask).
    let shadowing = |i: &usize| shop.faq_shadows.consults_faq(*i);
    let ask_faq = !only_told
        && (intents.is_empty() || only_social || intents.iter().any(|i| defers(i) || shadowing(i)));
    // Past social words, the FAQ answers what is left: "客服在吗" asks for nobody's hours.
    let rest;
    let question = if only_social {
        rest = shop.intents.without_keywords_of(normalized, &intents);
        rest.as_str()
    } else {
        normalized
    };
    let mut faq_answer = match (&shop.faq, faq_rule) {
        (Some(faq), Some(rule)) if ask_faq && !question.trim().is_empty() => faq
            .rank(question, crate::faq::RESPONDER_HITS)
            .into_iter()
            .find(|hit| {
                now.is_none_or(|now| faq.entries()[hit.entry].answer.validity.contains(now))
            })
            // A greeting's leftovers ("在不") are no question: taking the place of a social
            // intent needs an entry that shares two words or more with what is left.
            .filter(|best| rule.accepts(best) && (!only_social || best.shared_words >= 2)),
        _ => None,
    };
    // Past the keywords, the intents' examples may know what was meant.
    if intents.is_empty() || only_social {
        let faq_confidence = faq_answer.map(|hit| hit.confidence);
        match examples::ask(shop, question, normalized, faq_confidence, now) {
            Some(ExampleChoice::Handoff(intent)) => return Decision::Handoff(intent),
            Some(ExampleChoice::Answer(intent)) => {
                intents = vec![intent];
                faq_answer = None;
            }
            None => {}
        }
    }
    if only_social && faq_answer.is_some() {
        intents.clear();
    }
    // A greeting before a real question nothing here answers ("您好，这款耳机支持无线充电吗")
    // is not answered with the greeting: the fallback says honestly that the bot cannot tell.
    if only_social
        && faq_answer.is_none()
        && intents.iter().all(social)
        && question.chars().nth(MIN_QUESTION_AFTER_GREETING).is_some()
        && shop.questions.asks_in_words(question)
    {
        intents.clear();
    }
    let replaced = match (&shop.faq, faq_answer) {
        (Some(faq), Some(hit)) => specific_entry_replaces(shop, faq, normalized, &intents, hit),
        _ => Vec::new(),
    };
    let mut answers: Vec<Answerable> = Vec::with_capacity(intents.len() + 1);
    for intent in intents {
        match faq_answer {
            // The FAQ's specific answer takes the place of the deferring intent's generic one,
            // and of the generic one of an intent whose keyword shadows that entry.
            Some(hit) if defers(&intent) || replaced.contains(&intent) => {
                if !answers.contains(&Answerable::Faq(hit.entry)) {
                    answers.push(Answerable::Faq(hit.entry));
                }
            }
            _ => answers.push(Answerable::Intent(intent)),
        }
    }
    if answers.is_empty()
        && let Some(hit) = faq_answer
    {
        answers.push(Answerable::Faq(hit.entry));
    }
    answers.truncate(MAX_ANSWERS);
    if answers.is_empty() {
        Decision::Nothing
    } else {
        Decision::Answer(answers)
    }
}

/// The intents whose generic replies FAQ entry `hit` takes the place of: those among
/// `intents` whose keywords stand in the entry's own questions, when the entry matches the
/// message beyond those keywords. "羊毛衫能放洗衣机洗吗" shares 洗衣机 with the entry on
/// washing wool in a machine besides the `material` keyword 羊毛, so the entry answers;
/// "羊毛的吗" asks nothing more than the keyword, so the generic reply stays.
fn specific_entry_replaces(
    shop: &Shop,
    faq: &crate::faq::FaqIndex,
    normalized: &str,
    intents: &[usize],
    hit: crate::faq::FaqHit,
) -> Vec<usize> {
    let shadowing: Vec<usize> = intents
        .iter()
        .copied()
        .filter(|&i| shop.faq_shadows.shadows(i, hit.entry))
        .collect();
    // Two shared words at least (one of them may be the keyword itself), and a clearer lead
    // than an answer to a message no intent took needs: here the entry competes with a reply
    // that is right in general.
    if shadowing.is_empty()
        || hit.shared_words < 2
        || hit.confidence < SPECIFIC_CONFIDENCE
        || hit.margin < SPECIFIC_MARGIN
    {
        return Vec::new();
    }
    let spans = shop.intents.keyword_spans_of(normalized, &shadowing);
    if faq.shared_words_outside(hit.entry, normalized, &spans) == 0 {
        return Vec::new();
    }
    shadowing
}

/// What a buyer reads about their case with the humans, from the shop's case templates.
/// These texts are not stored as replies, so their wording rotates by the buyer's place.
pub fn case_text(shop: &Shop, case: CaseNotice<'_>, now: DateTime<Utc>) -> String {
    let templates = &shop.templates.case;
    let (variants, turn) = match case {
        CaseNotice::Queued {
            wait_seconds: None,
            ahead,
        } => (&templates.queued_unstaffed, ahead),
        CaseNotice::Queued { ahead: 0, .. } => (&templates.queued_first, 0),
        CaseNotice::Queued { ahead, .. } => (&templates.queued, ahead),
        CaseNotice::Claimed { .. } => (&templates.claimed, 0),
    };
    variants.get(turn).render(&Vars::for_case(shop, now, case))
}

/// The welcome for a buyer who just connected, unless they were welcomed today already.
pub fn welcome(shop: &Shop, state: &mut ConversationState, now: DateTime<Utc>) -> Option<Reply> {
    let today = shop.schedule.local(now).date_naive();
    if state.welcomed_on == Some(today) {
        return None;
    }
    state.welcomed_on = Some(today);
    let vars = Vars::new(shop, now, "");
    let text = render_next(
        state,
        TemplateName::Welcome.name(),
        &shop.templates.welcome,
        &vars,
    );
    Some(Reply {
        kind: ReplyKind::Welcome,
        intent: None,
        text,
    })
}

/// Answers one buyer message, with away and busy following the shop's hours and peaks only.
pub fn respond(
    shop: &Shop,
    state: &mut ConversationState,
    text: &str,
    now: DateTime<Utc>,
) -> Response {
    respond_staffed(shop, state, text, now, Staffing::default())
}

/// Answers one buyer message; away and busy also follow the agents' presence and queue.
pub fn respond_staffed(
    shop: &Shop,
    state: &mut ConversationState,
    text: &str,
    now: DateTime<Utc>,
    staffing: Staffing,
) -> Response {
    let normalized = shop.canonical(text);
    let decision = decide_at(shop, &normalized, now);
    // A short follow-up ("那新疆呢") that asks nothing alone is read in the last answer's topic.
    let reading = followup::read(shop, state.topic.as_ref(), text, &normalized, decision, now);
    state.topic = followup::next_topic(shop, state.topic.take(), &reading, &normalized, now);
    let decision = reading.decision;
    let vars = Vars::new(shop, now, &normalized);
    let handing_off = matches!(decision, Decision::Handoff(_));
    let duty = duty_notice(shop, state, now, staffing, handing_off, &vars);
    let mut replies = Vec::with_capacity(2);
    if let Some((template, kind)) = duty.notice {
        replies.push(template_reply(state, shop, template, kind, &vars));
    }
    render_decision(shop, state, decision, duty.away, &vars, replies)
}

/// What the duty state means for one message.
struct DutyNotice {
    /// The shop counts as away (out of hours, or nobody at the desk): a handoff says so.
    away: bool,
    /// The away or busy notice to send before the answer, if one is due.
    notice: Option<(TemplateName, ReplyKind)>,
}

/// Decides whether an away or busy notice is due: each is sent once per period (until the
/// shop opens, a day while nobody is at the desk or the queue is long, a peak), and the
/// period told is recorded in `state`.
fn duty_notice(
    shop: &Shop,
    state: &mut ConversationState,
    now: DateTime<Utc>,
    staffing: Staffing,
    handing_off: bool,
    vars: &Vars,
) -> DutyNotice {
    let duty = shop.schedule.duty_at(now);
    let away = matches!(duty, Duty::Away { .. }) || staffing.unstaffed;
    let mut notice = None;
    if away {
        // Out of hours the period ends when the shop opens; in hours with nobody at the desk
        // the buyer is told once a day.
        let (period, template) = match duty {
            Duty::Away { back } => (
                back.map_or_else(|| "closed".to_string(), |b| b.to_rfc3339()),
                TemplateName::Away,
            ),
            Duty::OnDuty => (
                format!("unstaffed@{}", vars.local_date()),
                TemplateName::AwayUnstaffed,
            ),
        };
        if state.away_period.as_deref() != Some(period.as_str()) {
            state.away_period = Some(period);
            // A handoff while away gets its own notice that says the same and more.
            if !handing_off {
                notice = Some((template, ReplyKind::Away));
            }
        }
    } else if staffing.overloaded && shop.schedule.peak_at(now).is_none() {
        let period = format!("queue@{}", vars.local_date());
        if state.busy_period.as_deref() != Some(period.as_str()) {
            state.busy_period = Some(period);
            notice = Some((TemplateName::BusyQueue, ReplyKind::Busy));
        }
    } else if let Some(peak) = shop.schedule.peak_at(now) {
        let period = format!("{}@{}", peak.name, peak.start.to_rfc3339());
        if state.busy_period.as_deref() != Some(period.as_str()) {
            state.busy_period = Some(period);
            notice = Some((TemplateName::Busy, ReplyKind::Busy));
        }
    }
    DutyNotice { away, notice }
}

/// Renders the decision into replies after the `replies` already there (the duty notice);
/// `away` picks the handoff's away wording.
fn render_decision(
    shop: &Shop,
    state: &mut ConversationState,
    decision: Decision,
    away: bool,
    vars: &Vars,
    mut replies: Vec<Reply>,
) -> Response {
    let mut handoff = None;
    let mut unmatched = None;
    match decision {
        Decision::Handoff(index) => {
            let spec = shop.intents.intent(index);
            let Action::Handoff(own) = &shop.actions[index] else {
                unreachable!("only handoff intents are chosen for a handoff");
            };
            let (key, variants) = match (own, away) {
                (_, true) => (
                    TemplateName::HandoffAway.name(),
                    &shop.templates.handoff_away,
                ),
                (Some(own), false) => (&*spec.name, own),
                (None, false) => (TemplateName::Handoff.name(), &shop.templates.handoff),
            };
            let text = render_next(state, key, variants, vars);
            replies.push(Reply {
                kind: ReplyKind::Handoff,
                intent: Some(spec.name.clone()),
                text,
            });
            if state.open_handoff.is_none() {
                handoff = Some(HandoffRequest {
                    intent: spec.name.clone(),
                    priority: spec.handoff.unwrap_or(HandoffPriority::Normal),
                });
            }
        }
        Decision::Answer(answers) => {
            for answer in answers {
                let index = match answer {
                    Answerable::Intent(index) => index,
                    Answerable::Faq(entry) => {
                        let entry = &shop
                            .faq
                            .as_ref()
                            .expect("FAQ answers need an FAQ")
                            .entries()[entry];
                        replies.push(Reply {
                            kind: ReplyKind::Faq,
                            intent: Some(entry.id.clone()),
                            text: entry.answer.render(vars),
                        });
                        continue;
                    }
                };
                let spec = shop.intents.intent(index);
                let text = match &shop.actions[index] {
                    Action::Answer(variants) => render_next(state, &spec.name, variants, vars),
                    Action::Template(name) => {
                        render_next(state, name.name(), shop.templates.get(*name), vars)
                    }
                    Action::Ladder => {
                        let last = shop.ladder.steps.len() - 1;
                        let step = state.bargain_step.min(last);
                        state.bargain_step = (step + 1).min(last);
                        let key = format!("bargain#{step}");
                        render_next(state, &key, &shop.ladder.steps[step], vars)
                    }
                    Action::Handoff(_) => unreachable!("handoff intents never reach answers"),
                };
                replies.push(Reply {
                    kind: ReplyKind::Answer,
                    intent: Some(spec.name.clone()),
                    text,
                });
            }
        }
        Decision::Nothing => {
            replies.push(template_reply(
                state,
                shop,
                TemplateName::Fallback,
                ReplyKind::Fallback,
                vars,
            ));
            unmatched = Some(vars.normalized().to_string());
        }
    }
    Response {
        replies,
        handoff,
        unmatched,
    }
}

fn template_reply(
    state: &mut ConversationState,
    shop: &Shop,
    name: TemplateName,
    kind: ReplyKind,
    vars: &Vars,
) -> Reply {
    Reply {
        kind,
        intent: None,
        text: render_next(state, name.name(), shop.templates.get(name), vars),
    }
}

/// Renders the variant after the one this conversation got last time for `key`.
fn render_next(
    state: &mut ConversationState,
    key: &str,
    variants: &Variants,
    vars: &Vars,
) -> String {
    let previous = state.last_variant.get(key).copied();
    // `decide_at` only picks answers with a valid wording; templates are always valid.
    let (index, template): (usize, &Template) = variants
        .next_valid_after(previous, vars.now())
        .unwrap_or_else(|| variants.next_after(previous));
    if variants.len() > 1 {
        match state.last_variant.get_mut(key) {
            Some(slot) => *slot = index,
            None => {
                state.last_variant.insert(key.to_string(), index);
            }
        }
    }
    template.render(vars)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::shop::{FaqSource, load_shop};

    /// The shipped shop with its FAQ, as the service loads it.
    fn shipped_catalog() -> crate::shop::Catalog {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::shop::Catalog::load_with_faq(
            &folder.join("intents"),
            Some(&folder.join("index")),
            None,
        )
        .unwrap()
    }

    fn answers(shop: &Shop, message: &str) -> Vec<String> {
        let answered = match decide(shop, &shop.canonical(message)) {
            Decision::Answer(answers) => answers,
            Decision::Nothing => Vec::new(),
            other => panic!("{message}: {other:?}"),
        };
        answered
            .into_iter()
            .map(|a| match a {
                Answerable::Intent(i) => shop.intents.intent(i).name.to_string(),
                Answerable::Faq(e) => format!("faq:{}", shop.faq.as_ref().unwrap().entries()[e].id),
            })
            .collect()
    }

    #[test]
    fn a_presale_answer_gives_way_to_the_own_order_intent_after_an_order() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents/default");
        let mut shop = load_shop("default", &folder, FaqSource::default()).unwrap();
        let check = |shop: &Shop, message: &str, expected: Decision| {
            let names = |d: &Decision| format!("{d:?}");
            let got = decide_with(shop, &shop.canonical(message), None);
            assert_eq!(names(&got), names(&expected), "{message}");
        };
        let intent = |name: &str| Answerable::Intent(shop.intents.index_of(name).unwrap());
        let (shipping, logistics, free) = (
            intent("shipping_time"),
            intent("logistics"),
            intent("free_shipping"),
        );
        check(&shop, "什么时候能到", Decision::Answer(vec![shipping]));
        check(
            &shop,
            "我的快递什么时候能到",
            Decision::Answer(vec![logistics]),
        );
        check(
            &shop,
            "在吗，这单今天能发吗",
            Decision::Answer(vec![logistics]),
        );
        check(
            &shop,
            "单号 ７７３２０１４５６７８９０１ 什么时候到",
            Decision::Answer(vec![logistics]),
        );
        // Another answer stays; the pre-sale one goes without a replacement.
        check(
            &shop,
            "已付款了，能开发票吗，包邮吗",
            Decision::Answer(vec![intent("invoice")]),
        );
        check(&shop, "包邮吗", Decision::Answer(vec![free]));
        // "到货" inside the cue "收到货了" asks nothing about dispatch.
        check(&shop, "收到货了，颜色挺正", Decision::Nothing);
        // Without an own-order intent (nor examples to find one) the message falls back.
        shop.purchase.own_order = None;
        shop.examples = None;
        check(&shop, "我的快递什么时候能到", Decision::Nothing);
    }

    #[test]
    fn examples_answer_when_no_keyword_fires_and_hand_off_for_handoff_intents() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents/default");
        let intents = r#"
[[intent]]
name = "after_sale"
handoff = "normal"
keywords = ["退货"]
examples = ["收到的杯子裂开了一条缝", "寄去修的东西什么时候寄回来"]

[[intent]]
name = "stock"
presale = true
keywords = ["有货"]
replies = ["页面能选的都有现货"]
examples = ["这个颜色现在还能买到吗"]

[[intent]]
name = "greeting"
yield_to_others = true
keywords = ["你好"]
replies = ["您好"]

[[intent]]
name = "logistics"
keywords = ["物流"]
replies = ["订单详情里能看物流"]
"#;
        let texts = crate::shop::ShopTexts {
            shop: std::fs::read_to_string(folder.join("shop.toml")).unwrap(),
            intents: vec![("a.toml".to_string(), intents.to_string())],
            ..Default::default()
        };
        let shop = crate::shop::load_shop_texts("t", &folder, &texts, FaqSource::default())
            .unwrap_or_else(|e| panic!("{e:#?}"));
        let check = |message: &str, expected: Decision| {
            let got = decide(&shop, &shop.canonical(message));
            assert_eq!(got, expected, "{message}");
        };
        let intent = |name: &str| shop.intents.index_of(name).unwrap();
        // Words of no keyword: the closest example hands off.
        check(
            "刚收到的盘子裂开了一条缝",
            Decision::Handoff(intent("after_sale")),
        );
        check(
            "你好，寄去修的手机什么时候能寄回来",
            Decision::Handoff(intent("after_sale")),
        );
        check(
            "这个颜色还能买到吗",
            Decision::Answer(vec![Answerable::Intent(intent("stock"))]),
        );
        // A pre-sale example does not answer a message about an order already placed.
        check(
            "我买的这个颜色还能买到吗",
            Decision::Answer(vec![Answerable::Intent(intent("logistics"))]),
        );
        // A keyword still decides, and one shared word is not enough.
        check(
            "杯子有货吗",
            Decision::Answer(vec![Answerable::Intent(intent("stock"))]),
        );
        check("杯子好看吗", Decision::Nothing);
        check(
            "你好",
            Decision::Answer(vec![Answerable::Intent(intent("greeting"))]),
        );
    }

    #[test]
    fn a_greeting_gives_way_to_the_faq_but_not_to_its_own_leftovers() {
        let catalog = shipped_catalog();
        let shop = catalog.get("default").unwrap();
        let check = |message: &str, expected: &[&str]| {
            assert_eq!(answers(shop, message), expected, "{message}");
        };
        check("你好，我想申请价格保护", &["faq:price_protection"]);
        check("在吗", &["greeting"]);
        check("客服在吗", &["greeting"]);
        check("哈喽，有人在不", &["greeting"]);
        check("在吗？能开发票吗", &["invoice"]);
        // A real question the shop cannot answer gets the fallback, not "您好，我在的".
        check("您好，这款耳机支持无线充电吗", &[]);
        check("你好，我想问一下", &["greeting"]);
        check("thank you so much", &["thanks"]);
    }

    #[test]
    fn a_statement_that_names_a_topic_asks_nothing_about_it() {
        let catalog = shipped_catalog();
        let shop = catalog.get("default").unwrap();
        let check = |message: &str, expected: &[&str]| {
            assert_eq!(answers(shop, message), expected, "{message}");
        };
        check("用了几天挺好的，还送了赠品", &[]);
        check("裤子收到了，穿着很合身", &[]);
        check("有赠品吗", &["gift"]);
        check("偏远地区包不包邮", &["free_shipping"]);
        check("赠品", &["gift"]);
    }

    #[test]
    fn a_specific_faq_entry_takes_the_place_of_the_generic_reply_that_shadows_it() {
        let catalog = shipped_catalog();
        let shop = catalog.get("default").unwrap();
        let intent = |name: &str| shop.intents.index_of(name).unwrap();
        // Known at load time: only intents whose keywords stand in entries' questions ask.
        assert!(shop.faq_shadows.consults_faq(intent("material")));
        assert!(!shop.faq_shadows.consults_faq(intent("greeting")));
        assert!(!shop.faq_shadows.consults_faq(intent("after_sale")));
        let check = |message: &str, expected: &[&str]| {
            assert_eq!(answers(shop, message), expected, "{message}");
        };
        // 洗衣机 and 羊毛衫 say more than the keyword 羊毛.
        check("羊毛衫能放洗衣机洗吗", &["faq:wool_sweater_wash"]);
        check("发票信息填错了能重开吗", &["faq:invoice_reissue"]);
        // Only the shadowing intent's reply is replaced; the other answer stays.
        check(
            "包邮吗？羊毛衫能放洗衣机洗吗",
            &["free_shipping", "faq:wool_sweater_wash"],
        );
        // Nothing beyond the keyword (or only words that ask): the generic reply stays.
        check("能开发票吗", &["invoice"]);
        check("发货要多久啊", &["shipping_time"]);
        check("是羊毛的吗", &["material"]);
    }

    #[test]
    fn case_texts_tell_the_place_the_wait_and_who_took_the_case() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents/default");
        let shop = load_shop("default", &folder, FaqSource::default()).unwrap();
        let now = Utc::now();
        let check = |case: CaseNotice<'_>, expected: &[&str]| {
            let text = case_text(&shop, case, now);
            for part in expected {
                assert!(text.contains(part), "{case:?}: {text}");
            }
        };
        let queued = |ahead, wait_seconds| CaseNotice::Queued {
            ahead,
            wait_seconds,
        };
        check(queued(2, Some(150)), &["2 位", "3 分钟"]);
        check(queued(0, Some(20)), &["第一位", "1 分钟"]);
        check(queued(4, None), &["第 5 位"]);
        check(CaseNotice::Claimed { agent: "小美" }, &["小美"]);
    }
}
