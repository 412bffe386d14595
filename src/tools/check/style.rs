//! The house rules of Chinese shop customer service (`intents/README.md` section 7,
//! `index/README.md` section 6), applied to every text a buyer can receive: intent replies,
//! templates, ladder steps, dispatch sentences and FAQ answers.
//!
//! The rules read the text as written, not as rendered: template variables stand for a value
//! of unknown wording, so nothing is matched across them, and each counts as a few characters
//! towards the length. Traditional characters are read as simplified.

use super::report::{Finding, Report, Rule};
use super::sources::{Reply, ReplyUse, ShopSources};
use crate::normalize::normalize;

/// Said to a buyer, these read as a refusal or as not caring.
const FORBIDDEN: [&str; 9] = [
    "我不知道",
    "不行",
    "那不是我的工作",
    "我现在很忙",
    "你找别人吧",
    "我是新来的",
    "不清楚",
    "我不确定",
    "没见过实物",
];
/// Longer words that contain a forbidden phrase but mean something else ("照片看不清楚").
const FORBIDDEN_EXCEPTIONS: [&str; 4] = ["看不清楚", "听不清楚", "拍不清楚", "不行动"];

/// More than this many 亲 in one reply reads as a robot ("好的亲，包邮亲，明天到亲").
const MAX_QIN: usize = 2;
/// 亲 inside these words is not the form of address.
const QIN_WORDS_AFTER: &str = "自肤手子戚友属人切身眼近密情和生笔历临睐朋";
const QIN_WORDS_BEFORE: &str = "父母双相探乡省成娘血宗表";

/// Longer than this (variables counted as [`VARIABLE_LENGTH`]) is a wall of text in a chat.
const MAX_REPLY_CHARS: usize = 150;
const VARIABLE_LENGTH: usize = 4;

/// Words that mention or offer a gift.
const GIFT_WORDS: [&str; 12] = [
    "赠品",
    "赠送",
    "附赠",
    "送您",
    "送你",
    "礼品",
    "小礼物",
    "礼物",
    "买一送一",
    "免费送",
    "加送",
    "随单送",
];
/// Gift words that are about wrapping or paying, not about giving something away.
const GIFT_EXCEPTIONS: [&str; 6] = ["礼品包装", "礼品袋", "礼品盒", "礼品卡", "送您到", "送你到"];
/// A negation right before a gift word ("没有赠品", "不送") is not a promise.
const GIFT_NEGATIONS: [&str; 5] = ["不", "没", "无", "未", "暂不"];

/// A day named exactly: what a date promise starts with.
const DAY_WORDS: [&str; 7] = ["大后天", "今天", "今日", "明天", "明日", "后天", "今儿"];
const WEEK_WORDS: [&str; 3] = ["星期", "礼拜", "周"];
const WEEKDAYS: &str = "一二三四五六日天七1234567";
/// Words that may stand between the day and the verb ("明天一定能到").
const DATE_FILLERS: [&str; 24] = [
    "一定", "肯定", "保证", "绝对", "准时", "必须", "必定", "马上", "立刻", "立即", "就能", "就会",
    "就", "能", "会", "可以", "可", "给您", "为您", "帮您", "安排", "之前", "以前", "前",
];
/// What a date promise promises: dispatch or arrival.
const DATE_VERBS: [&str; 16] = [
    "发货", "发出", "寄出", "发走", "出库", "到货", "送到", "送达", "到达", "收到", "揽收", "签收",
    "到", "发", "寄", "送",
];
/// Right before the day, these make it the opposite of a promise ("不能保证明天到").
const DATE_HEDGES: [&str; 8] = [
    "不能保证",
    "无法保证",
    "没法保证",
    "不保证",
    "不一定",
    "很难保证",
    "不承诺",
    "没办法保证",
];

/// What introduces an off-platform account id.
const CONTACT_MARKERS: [&str; 12] = [
    "微信号",
    "微信",
    "威信",
    "v信",
    "vx",
    "wx",
    "加我",
    "qq号",
    "qq",
    "扣扣",
    "企鹅号",
    "企鹅",
];
/// Characters allowed between a contact marker and the id ("微信号：abc123").
const CONTACT_GAP: &str = ":：是为号 -_﹕";

/// A variable stands here in the scanned text; it matches nothing.
const VARIABLE: char = '\u{FFFC}';

/// Checks every reply text of a shop.
pub fn check(sources: &ShopSources, report: &mut Report) {
    for reply in &sources.replies {
        check_reply(sources, reply, report);
    }
}

/// A reply as the rules read it: variables replaced by [`VARIABLE`], simplified, full-width
/// letters and digits folded to ASCII, lower-cased.
struct Scanned {
    text: String,
    variables: usize,
}

fn scan(template: &str) -> Scanned {
    let mut text = String::with_capacity(template.len());
    let mut variables = 0;
    let mut chars = template.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().is_some_and(|&(_, n)| n == '{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek().is_some_and(|&(_, n)| n == '}') => {
                chars.next();
                text.push('}');
            }
            '{' if template[at..].contains('}') => {
                variables += 1;
                text.push(VARIABLE);
                while chars.next_if(|&(_, n)| n != '}').is_some() {}
                chars.next();
            }
            _ => text.push(fold(c)),
        }
    }
    let text = if text.is_ascii() {
        text
    } else {
        fast2s::convert(&text)
    };
    Scanned { text, variables }
}

/// Full-width letters and digits become ASCII, lower case; punctuation stays as written so
/// that what a rule found can be found again in the file.
fn fold(c: char) -> char {
    let half = match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    if half.is_ascii_alphanumeric() {
        half.to_ascii_lowercase()
    } else {
        c
    }
}

fn check_reply(sources: &ShopSources, reply: &Reply, report: &mut Report) {
    let scanned = scan(&reply.item.text);
    let text = scanned.text.as_str();
    let mut warn = |rule: Rule, needle: Option<&str>, message: String, hint: &str| {
        let at = sources.locate(&reply.item, needle);
        report.push(Finding::new(rule, at, message, hint));
    };
    let quoted = short(&reply.item.text);

    let forbidden = forbidden_phrases(text);
    if let Some(first) = forbidden.first() {
        warn(
            Rule::ForbiddenPhrase,
            Some(first),
            format!(
                "{quoted} says {}, which buyers read as a refusal",
                list(&forbidden)
            ),
            "say what you can do instead, e.g. “让我帮您确认一下，请稍等”, and offer a human",
        );
    }

    let content = normalize(&text.replace(VARIABLE, ""));
    if scanned.variables == 0 && content.chars().count() <= 1 {
        warn(
            Rule::OneCharacterReply,
            None,
            format!("{quoted} is a one-character reply"),
            "write a whole sentence, e.g. “在的，请问有什么可以帮您？”",
        );
    }

    let qin = count_qin(text);
    if qin > MAX_QIN {
        warn(
            Rule::TooManyQin,
            Some("亲"),
            format!("{quoted} says 亲 {qin} times"),
            "prefer 您, and use 亲 at most once per reply",
        );
    }

    if let Some(promise) = date_promise(text) {
        warn(
            Rule::DatePromise,
            Some(&promise),
            format!("{quoted} promises an exact date: “{promise}”"),
            "give a range and its conditions instead, e.g. “{cutoff}点前付款一般当天发出”, “{days}天左右”",
        );
    }

    if !gift_allowed(sources, &reply.used_as)
        && let Some(word) = gift_word(text)
    {
        warn(
            Rule::GiftPromise,
            Some(word),
            format!(
                "{quoted} mentions a gift (“{word}”) in {}",
                describe_use(sources, &reply.used_as)
            ),
            "mention gifts only in the `gift` intent or the bargaining `concession`",
        );
    }

    if let Some(contact) = off_platform_contact(text) {
        warn(
            Rule::OffPlatformContact,
            Some(&contact),
            format!("{quoted} gives an off-platform contact: “{contact}”"),
            "remove it: buyers must stay in the platform's chat (no WeChat, QQ or phone numbers)",
        );
    }

    let length =
        text.chars().filter(|&c| c != VARIABLE).count() + VARIABLE_LENGTH * scanned.variables;
    if length > MAX_REPLY_CHARS {
        warn(
            Rule::LongReply,
            None,
            format!("{quoted} is about {length} characters long (more than {MAX_REPLY_CHARS})"),
            "shorten it to about 120 characters; put details in the FAQ or the details page",
        );
    }
}

/// The forbidden phrases the text says, in the order of the list.
fn forbidden_phrases(text: &str) -> Vec<&'static str> {
    FORBIDDEN
        .into_iter()
        .filter(|phrase| {
            text.match_indices(phrase)
                .any(|(at, _)| !inside_any(text, at, phrase, &FORBIDDEN_EXCEPTIONS))
        })
        .collect()
}

/// Whether the occurrence of `word` at byte `at` of `text` is part of one of `longer`.
fn inside_any(text: &str, at: usize, word: &str, longer: &[&str]) -> bool {
    longer.iter().any(|long| {
        long.match_indices(word)
            .any(|(offset, _)| at >= offset && text[at - offset..].starts_with(long))
    })
}

/// How many times 亲 is used as a form of address (not inside 亲自, 亲肤, 父亲 …).
fn count_qin(text: &str) -> usize {
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len())
        .filter(|&i| chars[i] == '亲')
        .filter(|&i| {
            let after = chars
                .get(i + 1)
                .is_some_and(|c| QIN_WORDS_AFTER.contains(*c));
            let before = i > 0 && QIN_WORDS_BEFORE.contains(chars[i - 1]);
            !after && !before
        })
        .count()
}

/// The first exact dispatch or arrival date the text promises ("明天一定到", "周三发货",
/// "11月11日发出"); ranges of days are not dates.
fn date_promise(text: &str) -> Option<String> {
    let boundaries: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    for &start in &boundaries {
        let Some(day_end) = day_at(text, start) else {
            continue;
        };
        let hedged = DATE_HEDGES
            .iter()
            .any(|hedge| text[..start].ends_with(hedge));
        if hedged {
            continue;
        }
        let mut at = day_end;
        while let Some(filler) = DATE_FILLERS.iter().find(|f| text[at..].starts_with(*f)) {
            at += filler.len();
        }
        if let Some(verb) = DATE_VERBS.iter().find(|v| text[at..].starts_with(*v)) {
            let end = at + verb.len();
            // "周一到周五", "1号到5号" are spans of days, not arrivals.
            if *verb == "到" && day_at(text, end).is_some() {
                continue;
            }
            return Some(text[start..end].to_string());
        }
    }
    None
}

/// The end of an exact day named at byte `start`: 明天, 周三, 星期五, 11月11日, 3号.
fn day_at(text: &str, start: usize) -> Option<usize> {
    let rest = &text[start..];
    if let Some(word) = DAY_WORDS.iter().find(|w| rest.starts_with(*w)) {
        return Some(start + word.len());
    }
    if let Some(week) = WEEK_WORDS.iter().find(|w| rest.starts_with(*w)) {
        let after = &rest[week.len()..];
        let day = after.chars().next().filter(|c| WEEKDAYS.contains(*c))?;
        return Some(start + week.len() + day.len_utf8());
    }
    // A number right before would make this the middle of a longer one.
    if text[..start]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_ascii_digit())
    {
        return None;
    }
    if let Some((month, after)) = number_then(rest, &['月']) {
        return number_then(after, &['日', '号']).map(|(day, _)| start + month + day);
    }
    // "3号发货" names a day of this month; a Chinese numeral before 号 rarely does.
    if rest.starts_with(|c: char| c.is_ascii_digit()) {
        return number_then(rest, &['号', '日']).map(|(day, _)| start + day);
    }
    None
}

/// Digits (or Chinese numerals) followed by one of `units`: the bytes taken and the rest.
fn number_then<'a>(text: &'a str, units: &[char]) -> Option<(usize, &'a str)> {
    let digits = text
        .char_indices()
        .take_while(|(_, c)| c.is_ascii_digit() || "一二三四五六七八九十".contains(*c))
        .last()
        .map(|(i, c)| i + c.len_utf8())?;
    let unit = text[digits..]
        .chars()
        .next()
        .filter(|c| units.contains(c))?;
    let taken = digits + unit.len_utf8();
    Some((taken, &text[taken..]))
}

/// Whether `used_as` may talk about gifts: the `gift` intent and intents whose keywords ask
/// about gifts, the ladder's concession, and FAQ entries whose questions ask about gifts.
fn gift_allowed(sources: &ShopSources, used_as: &ReplyUse) -> bool {
    let mentions_gift = |text: &str| {
        let text = normalize(text);
        GIFT_WORDS.iter().any(|w| text.contains(w))
    };
    match used_as {
        ReplyUse::Intent(i) => {
            let intent = &sources.intents[*i];
            intent.name.text == "gift" || intent.keywords.iter().any(|k| mentions_gift(&k.text))
        }
        ReplyUse::Ladder(step) => step == "concession",
        ReplyUse::FaqAnswer(i) => sources.faq[*i].phrasings().any(|p| mentions_gift(&p.text)),
        ReplyUse::Template(_) | ReplyUse::Dispatch => false,
    }
}

/// The first gift word that is not negated or part of a wrapping word.
fn gift_word(text: &str) -> Option<&'static str> {
    let mut found: Option<(usize, &'static str)> = None;
    for word in GIFT_WORDS {
        for (at, _) in text.match_indices(word) {
            let before: String = {
                let reversed: Vec<char> = text[..at].chars().rev().take(3).collect();
                reversed.into_iter().rev().collect()
            };
            let negated = GIFT_NEGATIONS.iter().any(|n| before.contains(n));
            if negated || inside_any(text, at, word, &GIFT_EXCEPTIONS) {
                continue;
            }
            if found.is_none_or(|(first, _)| at < first) {
                found = Some((at, word));
            }
        }
    }
    found.map(|(_, word)| word)
}

/// A phone number or a WeChat / QQ id in the text.
fn off_platform_contact(text: &str) -> Option<String> {
    phone_number(text).or_else(|| account_id(text))
}

/// An 11-digit mobile number, a 400/800 service number or a landline with its area code;
/// digits may be grouped with spaces or dashes.
fn phone_number(text: &str) -> Option<String> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].1.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = chars[i].0;
        let mut digits = String::new();
        let mut dashed = false;
        let mut end = i;
        while end < chars.len() {
            let c = chars[end].1;
            if c.is_ascii_digit() {
                digits.push(c);
            } else if (c == '-' || c == ' ')
                && chars.get(end + 1).is_some_and(|n| n.1.is_ascii_digit())
                && chars
                    .get(end.wrapping_sub(1))
                    .is_some_and(|p| p.1.is_ascii_digit())
            {
                dashed = true;
            } else {
                break;
            }
            end += 1;
        }
        let byte_end = chars.get(end).map_or(text.len(), |c| c.0);
        let bytes = digits.as_bytes();
        let mobile = digits.len() == 11 && bytes[0] == b'1' && (b'3'..=b'9').contains(&bytes[1]);
        let service =
            digits.len() == 10 && (digits.starts_with("400") || digits.starts_with("800"));
        let landline = dashed && (10..=12).contains(&digits.len()) && bytes[0] == b'0';
        if mobile || service || landline {
            return Some(text[start..byte_end].to_string());
        }
        i = end.max(i + 1);
    }
    None
}

/// A WeChat or QQ id after its marker: "微信：abc_123", "加我vx 12345678", "QQ号 10001".
fn account_id(text: &str) -> Option<String> {
    for marker in CONTACT_MARKERS {
        for (at, _) in text.match_indices(marker) {
            let glued = marker.is_ascii()
                && text[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric());
            if glued {
                continue;
            }
            let after = &text[at + marker.len()..];
            let gap: usize = after
                .chars()
                .take_while(|c| CONTACT_GAP.contains(*c))
                .map(char::len_utf8)
                .sum();
            let id: String = after[gap..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if id.len() >= 5
                && id
                    .chars()
                    .any(|c| c.is_ascii_digit() || c.is_ascii_alphabetic())
            {
                return Some(text[at..at + marker.len() + gap + id.len()].to_string());
            }
        }
    }
    None
}

fn describe_use(sources: &ShopSources, used_as: &ReplyUse) -> String {
    match used_as {
        ReplyUse::Intent(i) => format!("a reply of intent `{}`", sources.intents[*i].name.text),
        ReplyUse::Template(name) => format!("the `{name}` template"),
        ReplyUse::Ladder(step) => format!("the bargaining step `{step}`"),
        ReplyUse::Dispatch => "a dispatch sentence".to_string(),
        ReplyUse::FaqAnswer(i) => format!("the answer of FAQ entry `{}`", sources.faq[*i].id),
    }
}

/// A reply quoted in a message: whole when short, else its start.
fn short(text: &str) -> String {
    const SHOWN: usize = 24;
    if text.chars().count() <= SHOWN {
        format!("“{text}”")
    } else {
        let start: String = text.chars().take(SHOWN).collect();
        format!("“{start}…”")
    }
}

fn list(phrases: &[&str]) -> String {
    phrases
        .iter()
        .map(|p| format!("“{p}”"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_date(text: &str, expected: Option<&str>) {
        assert_eq!(
            date_promise(&scan(text).text).as_deref(),
            expected,
            "date promise in {text:?}"
        );
    }

    #[test]
    fn exact_days_are_promises_and_ranges_are_not() {
        check_date("今天一定发货哦", Some("今天一定发货"));
        check_date("明天到", Some("明天到"));
        check_date("现在下单后天就能到", Some("后天就能到"));
        check_date("预计11月11日发货", Some("11月11日发货"));
        check_date("3号发出", Some("3号发出"));
        check_date("周三发货", Some("周三发货"));
        check_date("一般3-5天送达", None);
        check_date("{cutoff}点前付款一般当天发出", None);
        check_date("发往{region}一般{days}天到", None);
        check_date("快递不能保证明天到", None);
        check_date("周日也正常发货", None);
        check_date("今天看到您的留言了", None);
        check_date("周一到周五都发货", None);
        check_date("12315投诉", None);
    }

    fn check_contact(text: &str, expected: Option<&str>) {
        assert_eq!(
            off_platform_contact(&scan(text).text).as_deref(),
            expected,
            "contact in {text:?}"
        );
    }

    #[test]
    fn phone_numbers_and_account_ids_are_contacts() {
        check_contact("有问题打13812345678", Some("13812345678"));
        check_contact("电话138-1234-5678", Some("138-1234-5678"));
        check_contact("热线400-123-4567", Some("400-123-4567"));
        check_contact("加我微信：shop_2024", Some("微信：shop_2024"));
        check_contact("VX abc123", Some("vx abc123"));
        check_contact("QQ号 10001234", Some("qq号 10001234"));
        check_contact("满99元包邮，3-5天送达", None);
        check_contact("可以用微信支付", None);
        check_contact("订单号12345", None);
    }

    #[test]
    fn forbidden_phrases_skip_longer_innocent_words() {
        assert_eq!(forbidden_phrases("这个我不清楚"), ["不清楚"]);
        assert_eq!(forbidden_phrases("不行哦，我不知道"), ["我不知道", "不行"]);
        assert!(forbidden_phrases("照片看不清楚的话请重拍").is_empty());
    }

    #[test]
    fn qin_counts_the_form_of_address_only() {
        assert_eq!(count_qin("亲，好的亲，包邮亲"), 3);
        assert_eq!(count_qin("亲，面料亲肤，可以亲自试穿"), 1);
        assert_eq!(count_qin(&scan("親，好的親").text), 2);
    }

    #[test]
    fn gift_words_not_negated_nor_about_wrapping() {
        assert_eq!(gift_word("下单就送您小袜子"), Some("送您"));
        assert_eq!(gift_word("还有精美小礼物"), Some("小礼物"));
        assert_eq!(gift_word("目前没有赠品哦"), None);
        assert_eq!(gift_word("可以帮您做礼品包装"), None);
    }

    #[test]
    fn variables_match_nothing_and_count_as_a_few_characters() {
        let s = scan("欢迎{shop}，{{原样}}");
        assert_eq!(s.variables, 1);
        assert_eq!(s.text, format!("欢迎{VARIABLE}，{{原样}}"));
    }
}
