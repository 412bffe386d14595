//! Answers that have expired: a reply variant or FAQ entry whose `valid_until` has passed is
//! never sent again, so it is dead text an operator should remove or extend.

use chrono::{DateTime, Utc};

use super::report::{Finding, Location, Report, Rule};
use super::sources::ShopSources;

/// Reports every `valid_until` (TOML `valid_until = "…"`, JSON `"valid_until": "…"`) that is
/// at or before `now`.
pub fn check(sources: &ShopSources, now: DateTime<Utc>, report: &mut Report) {
    for file in &sources.files {
        let mut from = 0;
        while let Some(found) = file.text[from..].find("valid_until") {
            let key = from + found;
            from = key + "valid_until".len();
            // `valid_until = "…"` in TOML, `"valid_until": "…"` in JSON Lines.
            let rest = file.text[from..]
                .strip_prefix('"')
                .unwrap_or(&file.text[from..]);
            let Some(rest) = rest.trim_start_matches(' ').strip_prefix(['=', ':']) else {
                continue;
            };
            let Some(value) = rest.trim_start_matches(' ').strip_prefix('"') else {
                continue;
            };
            let Some(close) = value.find('"') else { break };
            let Ok(until) = DateTime::parse_from_rfc3339(&value[..close]) else {
                continue; // the loader reports malformed times
            };
            if until.to_utc() <= now {
                let (line, column) = file.line_and_column(key);
                report.push(Finding::new(
                    Rule::ExpiredAnswer,
                    Location::new(&file.path, line, column),
                    format!(
                        "this answer expired at {}; buyers no longer get it",
                        &value[..close]
                    ),
                    "delete the expired answer, or move `valid_until` if the offer goes on",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_answers_are_found_in_toml_and_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let intents = dir.path().join("intents");
        let index = dir.path().join("index");
        std::fs::create_dir_all(&intents).unwrap();
        std::fs::create_dir_all(&index).unwrap();
        std::fs::write(
            intents.join("a.toml"),
            "[[intent]]\nname = \"promo\"\nkeywords = [\"活动\"]\nreplies = [\n  \
             { text = \"满减进行中\", valid_until = \"2026-06-19T00:00:00+08:00\" },\n  \
             { text = \"双12预告\", valid_until = \"2026-12-13T00:00:00+08:00\" },\n]\n",
        )
        .unwrap();
        std::fs::write(
            index.join("b.jsonl"),
            "{\"id\": \"x\", \"question\": \"q\", \"answer\": \"a\", \"valid_until\": \"2026-01-01T00:00:00Z\"}\n",
        )
        .unwrap();
        let sources = ShopSources::read(&intents, Some(&index));
        let mut report = Report::default();
        let now = DateTime::parse_from_rfc3339("2026-11-26T10:00:00+08:00")
            .unwrap()
            .to_utc();
        check(&sources, now, &mut report);
        let found: Vec<(String, usize)> = report
            .findings
            .iter()
            .map(|f| {
                let name =
                    f.at.file
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                (name, f.at.line)
            })
            .collect();
        assert_eq!(
            found,
            [("a.toml".to_string(), 5), ("b.jsonl".to_string(), 1)]
        );
    }
}
