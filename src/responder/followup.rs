//! Short follow-ups: "那新疆呢？" right after a shipping answer asks the same thing for 新疆.
//!
//! A message that does not stand on its own (nothing answers it: [`Decision::Nothing`]) and
//! has the short form of a follow-up (a leading 那/那么/那如果…, or a closing 呢/的呢/也是吗…,
//! and a question) is read in the topic of the bot's last real answer, when that answer was
//! given within the shop's window (`[followup]` in `shop.toml`):
//!
//! - an intent answered then answers again, its variables ({region}, {days}) taken from the
//!   new message; a pre-sale intent never answers a message with an after-order cue (the
//!   shop's own-order intent does, as in `decide`);
//! - an FAQ entry answered then makes the FAQ asked again, with the earlier question and
//!   what the follow-up adds, under the same rule as any FAQ answer.
//!
//! A follow-up that stands on its own (its own intent or FAQ entry answers, or it is handed
//! off) is answered on its own. After a handoff or the fallback there is no topic, so
//! nothing is carried. Social answers (a greeting, thanks) neither set nor clear a topic.
//! Everything here is pure: the caller passes the state and the instant.

use chrono::{DateTime, Utc};

use super::{Answerable, Decision};
use crate::conversation::{Answered, Topic};
#[cfg(doc)]
use crate::faq::FaqRule;
use crate::shop::{Action, Shop};

/// A follow-up adds at most this many characters to the topic ("新疆", "xl码的", "两件").
const MAX_SUBJECT_CHARS: usize = 8;

/// Openings of a follow-up, longest first.
const OPENINGS: &[&str] = &["那如果是", "那如果", "那要是", "那么", "那"];

/// Closings of a follow-up, longest first. Each makes the message a question.
const CLOSINGS: &[&str] = &[
    "也是这样吗",
    "也是一样吗",
    "也一样吗",
    "也可以吗",
    "也是吗",
    "也行吗",
    "也能吗",
    "的呢",
    "呢",
];

/// After an opening 那, these make it the demonstrative "that": "那个呢", "那款呢" point at
/// another item, and the 那 stays part of what is asked.
const DEMONSTRATIVE: &[char] = &[
    '个', '些', '种', '款', '件', '边', '里', '样', '位', '双', '套',
];

/// A subject containing one of these is a question of its own ("那多少钱呢", "那怎么办呢"),
/// not the earlier one asked again.
const QUESTION_WORDS: &[&str] = &[
    "什么",
    "怎么",
    "为什么",
    "为啥",
    "咋",
    "哪",
    "几",
    "多少",
    "多久",
    "谁",
];

/// Subjects that name nothing to carry the topic to: a pronoun ("那你呢") or an
/// acknowledgement ("那好吧？", "那行吗？").
const NOT_SUBJECTS: &[&str] = &[
    "你",
    "我",
    "他",
    "她",
    "它",
    "您",
    "你们",
    "我们",
    "咱们",
    "自己",
    "好",
    "好吧",
    "好的",
    "行",
    "行吗",
    "行吧",
    "算了",
    "可以",
    "可以吗",
    "就这样",
    "嗯",
    "哦",
    "噢",
    "啊",
];

/// What a message asks once the last answer's topic is taken into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub decision: Decision,
    /// True when the decision comes from the topic (the message alone asked nothing).
    pub carried: bool,
}

/// Reads a message in the topic of the last answer when it is a short follow-up that does
/// not stand on its own; otherwise `decision` (the message's own) stands. `text` is what the
/// buyer typed (a closing question mark counts), `canonical` its canonical form.
pub fn read(
    shop: &Shop,
    topic: Option<&Topic>,
    text: &str,
    canonical: &str,
    decision: Decision,
    now: DateTime<Utc>,
) -> Reading {
    let own = |decision| Reading {
        decision,
        carried: false,
    };
    if decision != Decision::Nothing {
        return own(decision);
    }
    let Some(topic) = topic.filter(|t| within_window(shop, t, now)) else {
        return own(decision);
    };
    let Some(subject) = follow_up_subject(canonical, ends_in_question_mark(text)) else {
        return own(decision);
    };
    let after_order = shop.purchase.after_order(canonical);
    let mut answers: Vec<Answerable> = Vec::with_capacity(topic.answered.len());
    // The FAQ is asked once, however many of its entries the topic answered.
    let mut faq_asked = false;
    let mut push = |answer: Answerable| {
        if !answers.contains(&answer) {
            answers.push(answer);
        }
    };
    for answered in &topic.answered {
        match answered {
            Answered::Intent(name) => {
                let Some(index) = shop.intents.index_of(name) else {
                    continue; // Gone with a reload.
                };
                let spec = shop.intents.intent(index);
                let still_valid = match &shop.actions[index] {
                    Action::Answer(variants) => variants.any_valid(now),
                    Action::Handoff(_) => false,
                    _ => true,
                };
                if !still_valid {
                    continue;
                }
                if spec.presale && after_order {
                    // "那我买的那件呢" after a dispatch promise asks about an order placed.
                    if let Some(own_order) = shop.purchase.own_order {
                        push(Answerable::Intent(own_order));
                    }
                    continue;
                }
                push(Answerable::Intent(index));
            }
            Answered::Faq(_) if !faq_asked => {
                faq_asked = true;
                if let Some(entry) = faq_follow_up(shop, topic, subject, now) {
                    push(Answerable::Faq(entry));
                }
            }
            Answered::Faq(_) => {}
        }
    }
    if answers.is_empty() {
        own(Decision::Nothing)
    } else {
        Reading {
            decision: Decision::Answer(answers),
            carried: true,
        }
    }
}

/// The topic after a message read as `reading`: a carried answer keeps the topic (and its
/// question) and restarts the window; a real answer of its own starts a new one; a handoff
/// or the fallback ends it; a social answer (greeting, thanks) leaves it as it was.
pub fn next_topic(
    shop: &Shop,
    previous: Option<Topic>,
    reading: &Reading,
    canonical: &str,
    now: DateTime<Utc>,
) -> Option<Topic> {
    match &reading.decision {
        Decision::Handoff(_) | Decision::Nothing => None,
        Decision::Answer(_) if reading.carried => previous.map(|topic| Topic { at: now, ..topic }),
        Decision::Answer(answers) => {
            let answered: Vec<Answered> = answers
                .iter()
                .filter_map(|answer| match *answer {
                    Answerable::Intent(index) => {
                        let spec = shop.intents.intent(index);
                        (!spec.yield_to_others).then(|| Answered::Intent(spec.name.to_string()))
                    }
                    Answerable::Faq(entry) => shop
                        .faq
                        .as_ref()
                        .map(|faq| Answered::Faq(faq.entries()[entry].id.to_string())),
                })
                .collect();
            if answered.is_empty() {
                previous
            } else {
                Some(Topic::new(answered, canonical, now))
            }
        }
    }
}

fn within_window(shop: &Shop, topic: &Topic, now: DateTime<Utc>) -> bool {
    let window = shop.followup_window;
    // A node whose clock runs a little behind the one that answered still counts it.
    !window.is_zero() && now - topic.at <= window && topic.at - now <= window
}

/// The FAQ entry that answers the topic's question about the follow-up's subject: the FAQ
/// is asked the earlier question with the subject added, and the entry must also be one the
/// subject alone finds (so the subject is what changed the answer) and not one the topic
/// already answered (the buyer has just read it, and it ignores what they added). Entries
/// below the best need the confidence of a one-word match ([`FaqRule::accepts`] with no
/// shared words counted).
fn faq_follow_up(shop: &Shop, topic: &Topic, subject: &str, now: DateTime<Utc>) -> Option<usize> {
    let faq = shop.faq.as_ref()?;
    if topic.question.is_empty() {
        return None;
    }
    // Words are counted for the best hit only; below it, that the subject alone ranks the
    // entry (`about_subject`) is the evidence, so no shared word is asked for.
    let rule = crate::faq::FaqRule {
        question_words: 0,
        ..faq.rule()
    };
    let about_subject = faq.rank(subject, crate::faq::RESPONDER_HITS);
    if about_subject.is_empty() {
        return None;
    }
    let answered_before = |entry: usize| {
        let id = &faq.entries()[entry].id;
        topic
            .answered
            .iter()
            .any(|a| matches!(a, Answered::Faq(before) if **before == **id))
    };
    let question = format!("{}{subject}", topic.question);
    faq.rank(&question, crate::faq::RESPONDER_HITS)
        .into_iter()
        .filter(|hit| faq.entries()[hit.entry].answer.validity.contains(now))
        .find(|hit| !answered_before(hit.entry))
        .filter(|hit| rule.accepts(hit))
        .filter(|hit| about_subject.iter().any(|s| s.entry == hit.entry))
        .map(|hit| hit.entry)
}

/// Whether the buyer's text ends in a question mark (before any closing emoji or spaces).
fn ends_in_question_mark(text: &str) -> bool {
    text.chars()
        .rev()
        .take_while(|c| !c.is_alphanumeric())
        .any(|c| matches!(c, '?' | '？'))
}

/// What a short follow-up adds to the topic ("新疆" of "那新疆呢"), or none when the
/// canonical message is not one: it needs an opening or a closing, must read as a question
/// (a closing, or a question mark after an opening), and what is left must be short, name
/// something, and ask nothing of its own.
pub fn follow_up_subject(canonical: &str, question_mark: bool) -> Option<&str> {
    let mut rest = canonical;
    let mut opened = false;
    for opening in OPENINGS {
        if let Some(after) = rest.strip_prefix(opening) {
            let demonstrative = *opening == "那"
                && after
                    .chars()
                    .next()
                    .is_some_and(|c| DEMONSTRATIVE.contains(&c));
            if !demonstrative {
                rest = after;
                opened = true;
            }
            break;
        }
    }
    let mut closed = false;
    for closing in CLOSINGS {
        if let Some(before) = rest.strip_suffix(closing) {
            rest = before;
            closed = true;
            break;
        }
    }
    let reads_as_question = closed || (opened && question_mark);
    let chars = rest.chars().count();
    let names_something = (1..=MAX_SUBJECT_CHARS).contains(&chars)
        && !NOT_SUBJECTS.contains(&rest)
        && !QUESTION_WORDS.iter().any(|word| rest.contains(word));
    (reads_as_question && names_something).then_some(rest)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use chrono::TimeDelta;

    use super::*;
    use crate::conversation::ConversationState;
    use crate::reply::ReplyKind;
    use crate::responder::respond;

    #[test]
    fn the_follow_up_form_is_short_asks_and_names_something() {
        let check = |canonical: &str, question_mark: bool, expected: Option<&str>| {
            assert_eq!(
                follow_up_subject(canonical, question_mark),
                expected,
                "{canonical} (question mark: {question_mark})"
            );
        };
        check("那新疆呢", false, Some("新疆"));
        check("新疆呢", false, Some("新疆"));
        check("那么新疆的呢", false, Some("新疆"));
        check("那如果是新疆", true, Some("新疆"));
        check("新疆也可以吗", false, Some("新疆"));
        check("那xl码的呢", false, Some("xl码"));
        check("那个呢", false, Some("那个"));
        // An opening without a question is a statement: "那新疆" may be the start of one.
        check("那新疆", false, None);
        check("那好吧", true, None);
        check("那行吗", true, None);
        check("那你呢", false, None);
        check("那多少钱呢", false, None);
        check("那怎么办呢", false, None);
        check("呢", false, None);
        check("那这件衣服的面料和做工呢", false, None);
        check("新疆", true, None);
        assert!(ends_in_question_mark("那新疆？"));
        assert!(ends_in_question_mark("那新疆?😊 "));
        assert!(!ends_in_question_mark("那新疆"));
        assert!(!ends_in_question_mark("那新疆？好的"));
    }

    fn default_shop() -> Arc<Shop> {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"));
        let catalog = crate::shop::Catalog::load_with_faq(
            &folder.join("intents"),
            Some(&folder.join("index")),
            None,
        )
        .unwrap();
        catalog.get("default").unwrap().clone()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    /// A conversation with the default shop: each message at its instant, and what the bot
    /// answered it with ("shipping_time", "faq:…", "handoff:…", "fallback").
    struct Dialogue {
        shop: Arc<Shop>,
        state: ConversationState,
        texts: Vec<String>,
    }

    impl Dialogue {
        fn new(shop: &Arc<Shop>) -> Dialogue {
            Dialogue {
                shop: shop.clone(),
                state: ConversationState::default(),
                texts: Vec::new(),
            }
        }

        fn say(&mut self, message: &str, now: &str) -> String {
            let response = respond(&self.shop, &mut self.state, message, at(now));
            let last = response.replies.last().expect("a reply");
            self.texts.push(last.text.clone());
            match last.kind {
                ReplyKind::Answer => last.intent.as_deref().unwrap().to_string(),
                ReplyKind::Faq => format!("faq:{}", last.intent.as_deref().unwrap()),
                ReplyKind::Handoff => format!("handoff:{}", last.intent.as_deref().unwrap()),
                ReplyKind::Fallback => "fallback".to_string(),
                other => format!("{other:?}"),
            }
        }

        fn last_text(&self) -> &str {
            self.texts.last().unwrap()
        }
    }

    /// In service hours on a Tuesday.
    const T0: &str = "2026-11-24T10:00:00+08:00";
    const T1: &str = "2026-11-24T10:01:00+08:00";
    const T2: &str = "2026-11-24T10:02:00+08:00";
    const LATE: &str = "2026-11-24T10:30:00+08:00";

    #[test]
    fn a_follow_up_within_the_window_asks_the_last_answer_again_for_its_own_place() {
        let shop = default_shop();
        let mut chat = Dialogue::new(&shop);
        assert_eq!(chat.say("发江苏几天到", T0), "shipping_time");
        assert!(chat.last_text().contains("江浙沪"), "{}", chat.last_text());
        assert_eq!(chat.say("那新疆呢？", T1), "shipping_time");
        assert!(
            chat.last_text().contains("偏远地区") && chat.last_text().contains("5-7"),
            "{}",
            chat.last_text()
        );
        // The window restarts with each answer, carried ones included.
        assert_eq!(chat.say("西藏也是吗", T2), "shipping_time");
        assert_eq!(
            chat.state.topic.as_ref().map(|t| t.question.as_str()),
            Some("发江苏几天到")
        );

        let mut chat = Dialogue::new(&shop);
        assert_eq!(chat.say("包邮吗", T0), "free_shipping");
        assert_eq!(chat.say("那新疆呢", T1), "free_shipping");
    }

    #[test]
    fn outside_the_window_a_follow_up_is_not_carried() {
        let shop = default_shop();
        let mut chat = Dialogue::new(&shop);
        assert_eq!(chat.say("发江苏几天到", T0), "shipping_time");
        assert_eq!(chat.say("那新疆呢", LATE), "fallback");

        // A shop that turns follow-ups off.
        let mut off = (*shop).clone();
        off.followup_window = TimeDelta::zero();
        let mut chat = Dialogue::new(&Arc::new(off));
        assert_eq!(chat.say("发江苏几天到", T0), "shipping_time");
        assert_eq!(chat.say("那新疆呢", T0), "fallback");
    }

    #[test]
    fn after_a_handoff_or_the_fallback_nothing_is_carried() {
        let shop = default_shop();
        let mut chat = Dialogue::new(&shop);
        assert_eq!(chat.say("发江苏几天到", T0), "shipping_time");
        assert_eq!(chat.say("我要退货", T1), "handoff:after_sale");
        assert_eq!(chat.state.topic, None);
        chat.state.open_handoff = None; // The case was resolved.
        assert_eq!(chat.say("那新疆呢", T2), "fallback");

        let mut chat = Dialogue::new(&shop);
        assert_eq!(chat.say("发江苏几天到", T0), "shipping_time");
        assert_eq!(chat.say("今天天气真好", T1), "fallback");
        assert_eq!(chat.say("那新疆呢", T2), "fallback");
    }

    #[test]
    fn a_follow_up_that_stands_alone_is_answered_alone_and_a_greeting_keeps_the_topic() {
        let shop = default_shop();
        let mut chat = Dialogue::new(&shop);
        assert_eq!(chat.say("发江苏几天到", T0), "shipping_time");
        assert_eq!(chat.say("那有赠品吗？", T1), "gift");
        // The gift answer is the topic now.
        assert_eq!(chat.say("那新疆呢", T2), "gift");
        // The default shop reads "赠品呢" as a gift missing from the parcel: that stands
        // alone too, and goes to a human.
        assert_eq!(chat.say("那赠品呢", T2), "handoff:after_sale");

        let mut chat = Dialogue::new(&shop);
        assert_eq!(chat.say("包邮吗", T0), "free_shipping");
        assert_eq!(chat.say("谢谢", T1), "thanks");
        assert_eq!(chat.say("那新疆呢", T2), "free_shipping");
        // Not follow-ups: a question of its own, a pronoun.
        assert_eq!(chat.say("那你呢", T2), "fallback");
    }

    #[test]
    fn a_carried_presale_topic_never_answers_after_an_order() {
        let shop = default_shop();
        let mut chat = Dialogue::new(&shop);
        assert_eq!(chat.say("发江苏几天到", T0), "shipping_time");
        assert_eq!(chat.say("那我买的呢", T1), "logistics");

        let mut without_own_order = (*shop).clone();
        without_own_order.purchase.own_order = None;
        let mut chat = Dialogue::new(&Arc::new(without_own_order));
        assert_eq!(chat.say("发江苏几天到", T0), "shipping_time");
        assert_eq!(chat.say("那我买的呢", T1), "fallback");
    }

    #[test]
    fn after_an_faq_answer_the_faq_is_asked_with_the_earlier_question() {
        let shop = default_shop();
        let mut chat = Dialogue::new(&shop);
        assert_eq!(
            chat.say("白鞋发黄怎么办", T0),
            "faq:white_sneakers_yellowing"
        );
        assert_eq!(
            chat.state.topic.as_ref().map(|t| t.answered.clone()),
            Some(vec![Answered::Faq("white_sneakers_yellowing".into())])
        );
        // "那翻毛皮呢" alone is too short for the FAQ; with the earlier question it asks
        // how suede shoes are cleaned.
        assert_eq!(chat.say("那翻毛皮呢", T1), "faq:suede_shoes_clean");
        assert_eq!(Dialogue::new(&shop).say("那翻毛皮呢", T1), "fallback");
        // Not confident enough about leather shoes: the earlier answer is not repeated.
        let mut chat = Dialogue::new(&shop);
        assert_eq!(
            chat.say("白鞋发黄怎么办", T0),
            "faq:white_sneakers_yellowing"
        );
        assert_eq!(chat.say("那皮鞋呢", T1), "fallback");
        // The earlier question alone would find the earlier entry again: the subject (棉服)
        // finds nothing, so nothing is carried.
        let mut chat = Dialogue::new(&shop);
        assert_eq!(
            chat.say("羽绒服洗完结块了怎么办", T0),
            "faq:down_jacket_clumps"
        );
        assert_eq!(chat.say("那棉服呢", T1), "fallback");
    }
}
