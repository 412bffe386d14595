//! The shop's calendar: public holidays and the make-up working days (调休) the State Council
//! moves around them each year.
//!
//! A weekday alone does not say whether the shop works: the Saturday after National Day may be
//! a working day and the Thursday inside it is not. The calendar answers that one question for
//! a shop-local date; the schedule picks the service hours from it and the shipping table the
//! working days.

use chrono::{Days, NaiveDate};

/// Dates are written like this in `shop.toml`.
const DATE_FORMAT: &str = "%Y-%m-%d";

/// A run of whole shop-local dates, both ends included: "2026-10-01..2026-10-07", or one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateSpan {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl DateSpan {
    /// Parses "2026-10-01" or the inclusive range "2026-10-01..2026-10-07".
    pub fn parse(text: &str) -> Result<DateSpan, String> {
        let (first, last) = match text.split_once("..") {
            Some((first, last)) => (parse_date(first.trim())?, parse_date(last.trim())?),
            None => {
                let date = parse_date(text.trim())?;
                (date, date)
            }
        };
        if last < first {
            return Err(format!("range \"{text}\" ends before it starts"));
        }
        Ok(DateSpan { first, last })
    }

    pub fn contains(self, date: NaiveDate) -> bool {
        self.first <= date && date <= self.last
    }

    /// The first date both spans cover, if any.
    pub fn first_shared(self, other: DateSpan) -> Option<NaiveDate> {
        let first = self.first.max(other.first);
        (first <= self.last.min(other.last)).then_some(first)
    }
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, DATE_FORMAT).map_err(|_| {
        format!(
            "expected a date like \"2026-10-01\" or a range like \"2026-10-01..2026-10-07\", \
             found \"{text}\""
        )
    })
}

/// What kind of day a date is, as far as the calendar knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    /// Not in the calendar: the weekday decides.
    Ordinary,
    /// A public holiday: closed, or the holiday hours, and no shipping.
    Holiday,
    /// A make-up working day (调休): worked like a Monday whatever its weekday.
    Workday,
}

/// Holidays and make-up working days of one shop. The loader rejects a date listed as both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    holidays: Vec<DateSpan>,
    workdays: Vec<DateSpan>,
}

impl Calendar {
    pub fn new(holidays: Vec<DateSpan>, workdays: Vec<DateSpan>) -> Calendar {
        Calendar { holidays, workdays }
    }

    pub fn day(&self, date: NaiveDate) -> Day {
        if self.holidays.iter().any(|s| s.contains(date)) {
            Day::Holiday
        } else if self.workdays.iter().any(|s| s.contains(date)) {
            Day::Workday
        } else {
            Day::Ordinary
        }
    }

    /// Whether `date` is worked, given whether its weekday ordinarily is.
    pub fn is_working_day(&self, date: NaiveDate, weekday_works: bool) -> bool {
        match self.day(date) {
            Day::Ordinary => weekday_works,
            Day::Holiday => false,
            Day::Workday => true,
        }
    }

    /// The first holiday inside `span`, for rejecting a make-up day that is also a holiday.
    pub fn first_holiday_in(&self, span: DateSpan) -> Option<NaiveDate> {
        self.holidays
            .iter()
            .filter_map(|h| h.first_shared(span))
            .min()
    }
}

/// The dates from `first` on, one by one, for at most `count` days.
pub fn days_from(first: NaiveDate, count: u64) -> impl Iterator<Item = NaiveDate> {
    (0..count).map_while(move |offset| first.checked_add_days(Days::new(offset)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::shop::{FaqSource, load_shop};

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, DATE_FORMAT).unwrap()
    }

    fn span(text: &str) -> DateSpan {
        DateSpan::parse(text).unwrap()
    }

    /// National Day 2026 as the State Council scheduled it.
    fn national_day() -> Calendar {
        Calendar::new(
            vec![span("2026-10-01..2026-10-07")],
            vec![span("2026-09-20"), span("2026-10-10")],
        )
    }

    #[test]
    fn holidays_and_make_up_days_override_the_weekday() {
        let calendar = national_day();
        let check = |day: &str, weekday_works: bool, expected: (Day, bool)| {
            let date = date(day);
            assert_eq!(
                (
                    calendar.day(date),
                    calendar.is_working_day(date, weekday_works)
                ),
                expected,
                "{day}"
            );
        };
        // Thursday 1 October: a holiday although Thursdays are worked.
        check("2026-10-01", true, (Day::Holiday, false));
        check("2026-10-07", true, (Day::Holiday, false));
        // Sunday 20 September and Saturday 10 October: make-up working days.
        check("2026-09-20", false, (Day::Workday, true));
        check("2026-10-10", false, (Day::Workday, true));
        // Thursday 8 October: back to ordinary.
        check("2026-10-08", true, (Day::Ordinary, true));
        check("2026-10-11", false, (Day::Ordinary, false));
    }

    #[test]
    fn dates_and_ranges_parse_and_bad_ones_say_why() {
        assert_eq!(
            span("2027-01-01"),
            DateSpan {
                first: date("2027-01-01"),
                last: date("2027-01-01")
            }
        );
        assert_eq!(span(" 2026-10-01 .. 2026-10-07 ").last, date("2026-10-07"));
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "10-01",
            "2026/10/01",
            "2026-10-01..",
            "",
        ] {
            let error = DateSpan::parse(bad).unwrap_err();
            assert!(error.contains("expected a date like"), "{bad}: {error}");
        }
        let backwards = DateSpan::parse("2026-10-07..2026-10-01").unwrap_err();
        assert!(backwards.contains("ends before it starts"), "{backwards}");
    }

    #[test]
    fn a_make_up_day_inside_a_holiday_is_found() {
        let calendar = national_day();
        assert_eq!(
            calendar.first_holiday_in(span("2026-09-30..2026-10-02")),
            Some(date("2026-10-01"))
        );
        assert_eq!(calendar.first_holiday_in(span("2026-10-10")), None);
    }

    /// Loads the shipped `shop.toml` alone, its `[calendar]` table replaced by `calendar` and
    /// its first `[[peak]]` given the lines `peak_extra`. Returns the text and the loader's
    /// messages that point at a line of it (a shop without intent files has other mistakes).
    fn load_errors(calendar: &str, peak_extra: &str) -> (String, Vec<String>) {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents/default/shop.toml");
        let text = std::fs::read_to_string(&shipped).unwrap();
        let start = text
            .find("\n[calendar]")
            .expect("the shipped shop has a calendar")
            + 1;
        let end = text[start..]
            .find("\n[")
            .map_or(text.len(), |e| start + e + 1);
        let text = format!("{}{calendar}\n{}", &text[..start], &text[end..]);
        let text = text.replacen("[[peak]]\n", &format!("[[peak]]\n{peak_extra}\n"), 1);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("shop.toml"), &text).unwrap();
        // The intents that `[purchase]` names.
        std::fs::copy(
            shipped.with_file_name("presale.toml"),
            dir.path().join("presale.toml"),
        )
        .unwrap();
        let errors = match load_shop("default", dir.path(), FaqSource::default()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .iter()
                .filter(|e| e.line > 0)
                .map(|e| format!("shop.toml:{}:{}: {}", e.line, e.column, e.message))
                .collect(),
        };
        (text, errors)
    }

    /// The 1-based line of the first occurrence of `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text[..text.find(needle).unwrap()].matches('\n').count() + 1
    }

    #[test]
    fn bad_calendar_entries_are_reported_with_file_and_line() {
        let calendar = r#"[calendar]
holidays = ["2026-10-01..2026-10-07", "2026-02-30", "2027-01-03..2027-01-01"]
workdays = ["2026-10-05", "2026/10/10"]
holiday_hours = ["10:00-16:00", "9-18"]
workday_hours = ["09:00-25:00"]"#;
        let (text, errors) = load_errors(calendar, "hours = [\"20:00-19:00\"]");
        let expected = [
            (
                "\"2026-02-30\"",
                "expected a date like \"2026-10-01\" or a range like",
            ),
            ("\"2027-01-03..", "ends before it starts"),
            (
                "\"2026-10-05\"",
                "2026-10-05 is a holiday and a make-up working day",
            ),
            ("\"2026/10/10\"", "expected a date like"),
            ("\"9-18\"", "expected a time like \"09:30\", found \"9\""),
            ("\"09:00-25:00\"", "expected a time like"),
            ("\"20:00-19:00\"", "ends before it starts"),
        ];
        for (needle, message) in expected {
            let line = line_of(&text, needle);
            assert!(
                errors
                    .iter()
                    .any(|e| e.starts_with(&format!("shop.toml:{line}:")) && e.contains(message)),
                "no error at line {line} saying {message:?}: {errors:#?}"
            );
        }
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    }

    #[test]
    fn a_good_calendar_and_a_sale_event_with_hours_load() {
        let (_, errors) = load_errors(
            "[calendar]\nholidays = [\"2026-10-01..2026-10-07\"]\nworkdays = [\"2026-10-10\"]",
            "hours = [\"00:00-24:00\"]\nbusy = false",
        );
        assert_eq!(errors, Vec::<String>::new());
    }
}
