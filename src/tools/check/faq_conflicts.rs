//! FAQ entries that buyers cannot reach: entries whose own question a keyword intent takes and
//! that none of their phrasings reaches (a specific entry may beat the intent's generic reply,
//! see `responder::decide`), and entries so close to another that the two compete for the
//! same questions.
//!
//! Both checks stay cheap for large knowledge bases. The first runs each question through
//! `decide` without the FAQ, and only the questions an intent takes through the real decision
//! with each of their phrasings. The
//! second never compares all pairs: each entry's question is searched in the shop's own index,
//! and only the few entries ranked best are compared with it, by the character bigrams of
//! their phrasings. Identical phrasings are found with one hash map. The entries are split
//! over the machine's cores.

use std::collections::{BTreeMap, HashMap};

use super::report::{Finding, Report, Rule};
use super::sources::{FaqRecord, ShopSources};
use crate::responder::{Answerable, Decision, decide, decide_with};
use crate::shop::Shop;

/// Two entries whose phrasings share this share of their character bigrams compete.
const NEAR_DUPLICATE: f64 = 0.8;
/// How many of the index's best entries for a question are compared with its entry.
const CANDIDATES: usize = 5;
/// Below this many entries, threads cost more than they save.
const PARALLEL_FROM: usize = 256;

/// A keyword as written and its canonical parts, to name the keyword that took a question.
struct WrittenKeyword {
    text: String,
    parts: Vec<String>,
}

/// Two entries that read alike: the pair, the similarity, and which phrasings.
#[derive(Debug, Clone, Copy)]
struct Pair {
    earlier: (usize, usize),
    later: (usize, usize),
    similarity: f64,
}

pub fn check(shop: &Shop, sources: &ShopSources, report: &mut Report) {
    let Some(faq) = &shop.faq else {
        return;
    };
    // A loaded shop indexed exactly these entries in this order; anything else means the
    // files changed while checking.
    let aligned = sources.faq.len() == faq.entries().len()
        && sources
            .faq
            .iter()
            .zip(faq.entries())
            .all(|(record, entry)| record.id == *entry.id);
    if !aligned {
        return;
    }
    let phrasings: Vec<Vec<String>> = sources
        .faq
        .iter()
        .map(|r| r.phrasings().map(|p| shop.canonical(&p.text)).collect())
        .collect();
    let bigram_sets: Vec<Vec<Vec<(char, char)>>> = phrasings
        .iter()
        .map(|texts| texts.iter().map(|t| bigram_set(t)).collect())
        .collect();
    let keywords = written_keywords(shop, sources);

    let per_entry = parallel_map(sources.faq.len(), |entry| {
        let shadowed = shadowed_by_intent(shop, sources, &keywords, entry, &phrasings[entry]);
        let candidates: Vec<usize> = faq
            .rank(&phrasings[entry][0], CANDIDATES + 1)
            .iter()
            .map(|hit| hit.entry)
            .filter(|&other| other != entry)
            .take(CANDIDATES)
            .collect();
        let pairs: Vec<Pair> = candidates
            .into_iter()
            .filter_map(|other| most_similar(&bigram_sets, entry, other))
            .filter(|pair| pair.similarity >= NEAR_DUPLICATE)
            .collect();
        (shadowed, pairs)
    });

    let mut pairs: BTreeMap<(usize, usize), Pair> = BTreeMap::new();
    let mut keep = |pair: Pair| {
        pairs
            .entry((pair.earlier.0, pair.later.0))
            .and_modify(|p| {
                if pair.similarity > p.similarity {
                    *p = pair;
                }
            })
            .or_insert(pair);
    };
    for (shadowed, found) in per_entry {
        if let Some(finding) = shadowed {
            report.push(finding);
        }
        found.into_iter().for_each(&mut keep);
    }
    // Identical phrasings, whether or not the index ranked the other entry high.
    let mut first_with: HashMap<&str, (usize, usize)> = HashMap::new();
    for (entry, texts) in phrasings.iter().enumerate() {
        for (phrasing, text) in texts.iter().enumerate() {
            if text.is_empty() {
                continue;
            }
            match first_with.get(text.as_str()) {
                Some(&(other, other_phrasing)) if other != entry => keep(Pair {
                    earlier: (other, other_phrasing),
                    later: (entry, phrasing),
                    similarity: 1.0,
                }),
                Some(_) => {}
                None => {
                    first_with.insert(text, (entry, phrasing));
                }
            }
        }
    }
    for pair in pairs.values() {
        report.push(near_duplicate(sources, pair));
    }
}

/// Reports the entry when none of its own phrasings reaches it: the intents take its question
/// (a handoff, or a generic reply the entry does not beat, see `responder::decide`) and no
/// alternative phrasing gets the entry either.
fn shadowed_by_intent(
    shop: &Shop,
    sources: &ShopSources,
    keywords: &[Vec<WrittenKeyword>],
    entry: usize,
    phrasings: &[String],
) -> Option<Finding> {
    let question = phrasings.first()?.as_str();
    // Without the FAQ first: a question no intent takes is reached (no index search needed).
    let decision = decide_with(shop, question, None);
    let taken = match &decision {
        Decision::Handoff(_) => true,
        Decision::Answer(answers) => answers.iter().any(|a| matches!(a, Answerable::Intent(_))),
        Decision::Nothing => false,
    };
    if !taken {
        return None;
    }
    // An intent that defers to the FAQ or shadows entries asks it: only the real decision says
    // who answers, and any phrasing that gets the entry is a way buyers reach it.
    let reaches = |text: &String| match decide(shop, text) {
        Decision::Answer(answers) => answers.contains(&Answerable::Faq(entry)),
        _ => false,
    };
    if phrasings.iter().any(reaches) {
        return None;
    }
    let decision = decide(shop, question);
    let record = &sources.faq[entry];
    let (verb, intents) = match decision {
        Decision::Handoff(intent) => ("is handed off to", vec![intent]),
        Decision::Answer(answers) if !answers.contains(&Answerable::Faq(entry)) => {
            let intents: Vec<usize> = answers
                .iter()
                .filter_map(|a| match a {
                    Answerable::Intent(i) => Some(*i),
                    Answerable::Faq(_) => None,
                })
                .collect();
            if intents.is_empty() {
                return None;
            }
            ("is answered by", intents)
        }
        _ => return None,
    };
    let named: Vec<String> = intents
        .iter()
        .map(|&i| {
            let name = &shop.intents.intent(i).name;
            match matched_keyword(&keywords[i], question) {
                Some(k) => format!("intent `{name}` (keyword “{}”)", k.text),
                None => format!("intent `{name}` ({})", unkeyed_taker(shop, i, question)),
            }
        })
        .collect();
    Some(Finding::new(
        Rule::FaqShadowedByIntent,
        sources.locate(&record.question, None),
        format!(
            "the question of FAQ entry `{}` “{}” {verb} {} and no phrasing of the entry reaches it",
            record.id,
            record.question.text,
            named.join(" and ")
        ),
        "add a phrasing that asks more than the intent's keyword, reword the question, set `defer_to_faq = true` on the intent, or delete the entry",
    ))
}

/// What took a question for an intent when none of its keywords did.
fn unkeyed_taker(shop: &Shop, intent: usize, question: &str) -> &'static str {
    let by_lexicon = shop
        .complaints
        .as_ref()
        .and_then(|lexicon| lexicon.score(question).handoff_intent)
        == Some(intent);
    if by_lexicon {
        "complaint lexicon"
    } else {
        "its examples"
    }
}

/// The keyword most likely to have matched: present in the question, leftmost, then
/// longest, as the automaton picks them.
fn matched_keyword<'k>(
    keywords: &'k [WrittenKeyword],
    question: &str,
) -> Option<&'k WrittenKeyword> {
    keywords
        .iter()
        .filter_map(|k| {
            let positions: Option<Vec<usize>> =
                k.parts.iter().map(|p| question.find(p.as_str())).collect();
            let start = positions?.into_iter().min()?;
            let length: usize = k.parts.iter().map(String::len).sum();
            Some((start, std::cmp::Reverse(length), k))
        })
        .min_by_key(|&(start, length, _)| (start, length))
        .map(|(_, _, k)| k)
}

/// Each intent's keywords as written, by intent index of the loaded shop.
fn written_keywords(shop: &Shop, sources: &ShopSources) -> Vec<Vec<WrittenKeyword>> {
    let mut keywords: Vec<Vec<WrittenKeyword>> = (0..shop.intents.intents().len())
        .map(|_| Vec::new())
        .collect();
    for record in &sources.intents {
        if let Some(intent) = shop.intents.index_of(record.name.text.trim()) {
            keywords[intent].extend(record.keywords.iter().map(|k| WrittenKeyword {
                text: k.text.clone(),
                parts: k.text.split('+').map(|p| shop.canonical(p)).collect(),
            }));
        }
    }
    keywords
}

fn near_duplicate(sources: &ShopSources, pair: &Pair) -> Finding {
    let phrasing = |(entry, index): (usize, usize)| -> (&FaqRecord, &super::sources::Item) {
        let record = &sources.faq[entry];
        (
            record,
            record.phrasings().nth(index).expect("a known phrasing"),
        )
    };
    let (earlier, earlier_text) = phrasing(pair.earlier);
    let (later, later_text) = phrasing(pair.later);
    let at = sources.locate(earlier_text, None);
    let how = if pair.similarity >= 1.0 {
        "is the same question as".to_string()
    } else {
        format!(
            "shares {:.0}% of its character pairs with",
            pair.similarity * 100.0
        )
    };
    Finding::new(
        Rule::FaqNearDuplicate,
        sources.locate(later_text, None),
        format!(
            "FAQ entry `{}`: “{}” {how} “{}” of entry `{}` ({}:{}); buyers get either one",
            later.id,
            later_text.text,
            earlier_text.text,
            earlier.id,
            at.file.display(),
            at.line
        ),
        "merge the two entries, or make their questions more specific",
    )
}

/// The two phrasings of two entries that read most alike, with the earlier entry first.
fn most_similar(bigram_sets: &[Vec<Vec<(char, char)>>], a: usize, b: usize) -> Option<Pair> {
    let (earlier, later) = (a.min(b), a.max(b));
    let mut best: Option<Pair> = None;
    for (i, x) in bigram_sets[earlier].iter().enumerate() {
        for (j, y) in bigram_sets[later].iter().enumerate() {
            let similarity = jaccard(x, y);
            if best.is_none_or(|p| similarity > p.similarity) {
                best = Some(Pair {
                    earlier: (earlier, i),
                    later: (later, j),
                    similarity,
                });
            }
        }
    }
    best
}

/// The sorted, distinct character bigrams of a text (a one-character text is its own).
fn bigram_set(text: &str) -> Vec<(char, char)> {
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut set: Vec<(char, char)> = match chars.as_slice() {
        [] => Vec::new(),
        [only] => vec![(*only, '\0')],
        _ => chars.windows(2).map(|w| (w[0], w[1])).collect(),
    };
    set.sort_unstable();
    set.dedup();
    set
}

/// |a ∩ b| / |a ∪ b| of two sorted sets.
fn jaccard(a: &[(char, char)], b: &[(char, char)]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut shared) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    shared as f64 / (a.len() + b.len() - shared) as f64
}

/// `f(0) … f(n - 1)`, in order, spread over the machine's cores when `n` is large.
fn parallel_map<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get().min(16));
    if n < PARALLEL_FROM || threads == 1 {
        return (0..n).map(f).collect();
    }
    let chunk = n.div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|start| {
                scope.spawn(move || (start..(start + chunk).min(n)).map(f).collect::<Vec<R>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a check worker panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaccard_of_character_bigrams() {
        let a = bigram_set("羊毛衫能机洗吗");
        let b = bigram_set("羊毛衫能机洗吗");
        assert_eq!(jaccard(&a, &b), 1.0);
        let c = bigram_set("羊毛衫可以机洗吗");
        let partial = jaccard(&a, &c);
        assert!(partial > 0.3 && partial < 0.8, "{partial}");
        assert_eq!(jaccard(&a, &bigram_set("发票怎么开")), 0.0);
        assert_eq!(jaccard(&bigram_set("在"), &bigram_set("在")), 1.0);
    }

    #[test]
    fn parallel_map_keeps_order() {
        let out = parallel_map(1000, |i| i * 2);
        assert_eq!(out.len(), 1000);
        assert!(out.iter().enumerate().all(|(i, &v)| v == i * 2));
    }
}
