//! The shipping table: which region a buyer names, how long that region takes, and whether an
//! order paid now leaves today (the warehouse works its weekdays, except on the calendar's
//! holidays, and on its make-up working days).
//!
//! Replies built from it give ranges and conditions, never a date: a promised date that slips
//! becomes a complaint.

use aho_corasick::{AhoCorasick, MatchKind};
use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use chrono_tz::Tz;

use super::calendar::{Calendar, days_from};
use super::schedule::LOOKAHEAD_DAYS;
use crate::template::Variants;

#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    pub days: String,
}

#[derive(Debug, Clone)]
pub struct Shipping {
    pub courier: String,
    /// Paid before this local hour on a working day leaves the same day.
    pub cutoff_hour: u32,
    /// The weekdays the warehouse ships, indexed by `Weekday::num_days_from_monday`.
    pub working_days: [bool; 7],
    /// Holidays (no shipping whatever the weekday) and make-up working days (shipping).
    pub calendar: Calendar,
    pub default_days: String,
    pub default_region: String,
    pub dispatch_today: Variants,
    pub dispatch_next: Variants,
    pub regions: Vec<Region>,
    /// Finds place names in normalised text; pattern `i` belongs to `place_region[i]`.
    places: AhoCorasick,
    place_region: Vec<usize>,
}

impl Shipping {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        courier: String,
        cutoff_hour: u32,
        working_days: [bool; 7],
        calendar: Calendar,
        default_days: String,
        default_region: String,
        dispatch_today: Variants,
        dispatch_next: Variants,
        regions: Vec<(Region, Vec<String>)>,
    ) -> Shipping {
        let mut patterns = Vec::new();
        let mut place_region = Vec::new();
        let mut kept = Vec::new();
        for (index, (region, places)) in regions.into_iter().enumerate() {
            for place in places {
                patterns.push(place);
                place_region.push(index);
            }
            kept.push(region);
        }
        let places = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("place names are short literals");
        Shipping {
            courier,
            cutoff_hour,
            working_days,
            calendar,
            default_days,
            default_region,
            dispatch_today,
            dispatch_next,
            regions: kept,
            places,
            place_region,
        }
    }

    /// The region named first in the normalised message, if any.
    pub fn region_in(&self, normalized: &str) -> Option<&Region> {
        self.places
            .find(normalized)
            .map(|m| &self.regions[self.place_region[m.pattern().as_usize()]])
    }

    /// Whether the warehouse ships on the shop-local `date`.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        let weekday_works = self.working_days[date.weekday().num_days_from_monday() as usize];
        self.calendar.is_working_day(date, weekday_works)
    }

    /// Whether an order paid at `local` leaves the same day: before the cut-off on a working
    /// day.
    pub fn ships_today(&self, local: DateTime<Tz>) -> bool {
        self.is_working_day(local.date_naive()) && local.hour() < self.cutoff_hour
    }

    /// The shop-local date an order paid at `local` leaves: today, or the next working day
    /// (None when there is none within [`LOOKAHEAD_DAYS`]). Replies never say this date; it
    /// is what `dispatch_next` means.
    pub fn dispatch_date(&self, local: DateTime<Tz>) -> Option<NaiveDate> {
        let today = local.date_naive();
        if self.ships_today(local) {
            return Some(today);
        }
        days_from(today, LOOKAHEAD_DAYS + 1)
            .skip(1)
            .find(|&day| self.is_working_day(day))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::shop::calendar::DateSpan;
    use crate::template::Template;

    /// Ships Monday to Saturday before 16:00, with National Day 2026 in the calendar.
    fn shipping() -> Shipping {
        let span = |t: &str| DateSpan::parse(t).unwrap();
        let sentence = |t: &str| Variants::new(vec![Template::parse(t).unwrap()]).unwrap();
        Shipping::new(
            "中通快递".to_string(),
            16,
            [true, true, true, true, true, true, false],
            Calendar::new(
                vec![span("2026-10-01..2026-10-07")],
                vec![span("2026-09-20"), span("2026-10-10")],
            ),
            "3-5".to_string(),
            "大部分地区".to_string(),
            sentence("今天发"),
            sentence("下一个工作日发"),
            vec![],
        )
    }

    fn local(text: &str) -> DateTime<Tz> {
        let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        chrono_tz::Asia::Shanghai
            .from_local_datetime(&naive)
            .unwrap()
    }

    fn check(paid: &str, today: bool, leaves: &str) {
        let shipping = shipping();
        let at = local(paid);
        assert_eq!(shipping.ships_today(at), today, "paid {paid}");
        assert_eq!(
            shipping.dispatch_date(at),
            Some(NaiveDate::parse_from_str(leaves, "%Y-%m-%d").unwrap()),
            "paid {paid}"
        );
    }

    #[test]
    fn shipping_follows_the_holidays_and_the_make_up_days() {
        // An ordinary Thursday: before the cut-off today, after it the next day.
        check("2026-09-17 10:00", true, "2026-09-17");
        check("2026-09-17 16:00", false, "2026-09-18");
        // Saturday 19 September after the cut-off: Sunday 20 is a make-up working day.
        check("2026-09-19 17:00", false, "2026-09-20");
        // On the make-up Sunday itself it leaves the same day before 16:00, not after.
        check("2026-09-20 15:59", true, "2026-09-20");
        check("2026-09-20 16:00", false, "2026-09-21");
        // An ordinary Sunday does not ship.
        check("2026-09-27 10:00", false, "2026-09-28");
        // Inside National Day nothing leaves until Thursday 8 October, although Thursdays
        // to Saturdays are working weekdays.
        check("2026-09-30 18:00", false, "2026-10-08");
        check("2026-10-01 10:00", false, "2026-10-08");
        check("2026-10-07 10:00", false, "2026-10-08");
        // Saturday 10 October is worked anyway; Sunday 11 is not.
        check("2026-10-10 10:00", true, "2026-10-10");
        check("2026-10-10 17:00", false, "2026-10-12");
    }
}
