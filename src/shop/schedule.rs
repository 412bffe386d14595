//! When humans are on duty: service hours per weekday with meal breaks, the calendar's
//! holidays and make-up working days (调休), and sale events, which may bring their own hours
//! and decide whether buyers are told the shop is busy.
//!
//! Everything is computed in the shop's own time zone from an instant the caller passes in, so
//! tests choose the instant instead of waiting for it.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::calendar::{Calendar, DateSpan, Day, days_from};

/// How many days ahead `next_opening` looks: longer than the longest public holiday (the
/// Spring Festival's nine or ten days), with room for a shop that closes for a few weeks.
pub const LOOKAHEAD_DAYS: u64 = 62;

/// A span of minutes within a day, `start` inclusive, `end` exclusive (1440 = midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteRange {
    pub start: u16,
    pub end: u16,
}

impl MinuteRange {
    /// Parses "09:00-23:00"; "24:00" is allowed as an end.
    pub fn parse(text: &str) -> Result<MinuteRange, String> {
        let (start, end) = text
            .split_once('-')
            .ok_or_else(|| format!("expected a range like \"09:00-18:00\", found \"{text}\""))?;
        let start = parse_minute(start.trim())?;
        let end = parse_minute(end.trim())?;
        if start >= end {
            return Err(format!("range \"{text}\" ends before it starts"));
        }
        Ok(MinuteRange { start, end })
    }

    fn contains(self, minute: u16) -> bool {
        self.start <= minute && minute < self.end
    }
}

fn parse_minute(text: &str) -> Result<u16, String> {
    let bad = || format!("expected a time like \"09:30\", found \"{text}\"");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// A sale event (`[[peak]]`): while it runs the shop may be `busy`, and on the dates it
/// touches it may keep its own service hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peak {
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The service hours on every shop-local date the event touches, instead of the weekday
    /// or holiday hours and the meal breaks; `None` keeps the ordinary hours.
    pub hours: Option<Vec<MinuteRange>>,
    /// Whether buyers get the `busy` notice while the event runs.
    pub busy: bool,
}

impl Peak {
    /// The shop-local dates the event touches: from the date of its start to the date of its
    /// last instant (an event ending at midnight does not touch the next date).
    pub fn dates(&self, timezone: Tz) -> DateSpan {
        let last = (self.end - TimeDelta::nanoseconds(1)).max(self.start);
        DateSpan {
            first: self.start.with_timezone(&timezone).date_naive(),
            last: last.with_timezone(&timezone).date_naive(),
        }
    }
}

/// Whether humans are on duty at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    OnDuty,
    /// Off duty until `back` (None when the shop does not open in the next
    /// [`LOOKAHEAD_DAYS`] days). `back` also identifies the away period, so a buyer is told
    /// once per period.
    Away {
        back: Option<DateTime<Tz>>,
    },
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub timezone: Tz,
    /// Service hours indexed by `Weekday::num_days_from_monday`.
    pub week: [Vec<MinuteRange>; 7],
    /// Breaks on ordinary days and make-up working days; not on holidays or event hours.
    pub meal_breaks: Vec<MinuteRange>,
    pub peaks: Vec<Peak>,
    /// Which dates are holidays or make-up working days.
    pub calendar: Calendar,
    /// Service hours on a holiday, without meal breaks (empty: closed all day).
    pub holiday_hours: Vec<MinuteRange>,
    /// Service hours on a make-up working day, whatever its weekday (with the meal breaks).
    pub workday_hours: Vec<MinuteRange>,
}

/// The service hours of one shop-local date.
struct DayHours<'a> {
    open: &'a [MinuteRange],
    breaks: &'a [MinuteRange],
}

impl DayHours<'_> {
    fn is_open(&self, minute: u16) -> bool {
        self.open.iter().any(|r| r.contains(minute))
            && !self.breaks.iter().any(|b| b.contains(minute))
    }
}

impl Schedule {
    pub fn local(&self, now: DateTime<Utc>) -> DateTime<Tz> {
        now.with_timezone(&self.timezone)
    }

    pub fn duty_at(&self, now: DateTime<Utc>) -> Duty {
        let local = self.local(now);
        let minute = minute_of_day(local.time());
        if self.hours_on(local.date_naive()).is_open(minute) {
            Duty::OnDuty
        } else {
            Duty::Away {
                back: self.next_opening(local.date_naive(), minute),
            }
        }
    }

    /// The sale event whose `busy` notice is due at `now`; events with `busy = false` only
    /// change the hours.
    pub fn peak_at(&self, now: DateTime<Utc>) -> Option<&Peak> {
        self.peaks
            .iter()
            .find(|p| p.busy && p.start <= now && now < p.end)
    }

    /// The hours of `date`: a sale event's own hours win (the first in file order), then a
    /// holiday's, then a make-up working day's, then the weekday's.
    fn hours_on(&self, date: NaiveDate) -> DayHours<'_> {
        let event = self.peaks.iter().find_map(|p| {
            let hours = p.hours.as_deref()?;
            p.dates(self.timezone).contains(date).then_some(hours)
        });
        if let Some(open) = event {
            return DayHours { open, breaks: &[] };
        }
        match self.calendar.day(date) {
            Day::Holiday => DayHours {
                open: &self.holiday_hours,
                breaks: &[],
            },
            Day::Workday => DayHours {
                open: &self.workday_hours,
                breaks: &self.meal_breaks,
            },
            Day::Ordinary => DayHours {
                open: &self.week[date.weekday().num_days_from_monday() as usize],
                breaks: &self.meal_breaks,
            },
        }
    }

    /// The first instant after `minute` on `date` (or on one of the following days, up to
    /// [`LOOKAHEAD_DAYS`]) at which the shop is open. Openings only happen at a range start or
    /// a break end, so only those minutes are tried.
    fn next_opening(&self, date: NaiveDate, minute: u16) -> Option<DateTime<Tz>> {
        for day in days_from(date, LOOKAHEAD_DAYS + 1) {
            let hours = self.hours_on(day);
            let mut candidates: Vec<u16> = hours
                .open
                .iter()
                .map(|r| r.start)
                .chain(hours.breaks.iter().map(|b| b.end))
                .filter(|&m| day > date || m > minute)
                .collect();
            candidates.sort_unstable();
            if let Some(&open) = candidates.iter().find(|&&m| hours.is_open(m)) {
                let time = NaiveTime::from_hms_opt(u32::from(open / 60), u32::from(open % 60), 0)?;
                return self
                    .timezone
                    .from_local_datetime(&day.and_time(time))
                    .earliest();
            }
        }
        None
    }
}

pub fn minute_of_day(time: NaiveTime) -> u16 {
    (time.hour() * 60 + time.minute()) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(texts: &[&str]) -> Vec<MinuteRange> {
        texts
            .iter()
            .map(|t| MinuteRange::parse(t).unwrap())
            .collect()
    }

    /// Weekdays 09:00-23:00, Saturday 10:00-18:00, Sunday closed, lunch 12:00-13:00.
    fn schedule() -> Schedule {
        let day = ranges(&["09:00-23:00"]);
        Schedule {
            timezone: chrono_tz::Asia::Shanghai,
            week: [
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                ranges(&["10:00-18:00"]),
                vec![],
            ],
            meal_breaks: ranges(&["12:00-13:00"]),
            peaks: vec![],
            calendar: Calendar::default(),
            holiday_hours: vec![],
            workday_hours: day,
        }
    }

    /// The same shop with National Day 2026: 1-7 October off, Sunday 20 September and
    /// Saturday 10 October worked.
    fn national_day() -> Schedule {
        let span = |t: &str| DateSpan::parse(t).unwrap();
        Schedule {
            calendar: Calendar::new(
                vec![span("2026-10-01..2026-10-07")],
                vec![span("2026-09-20"), span("2026-10-10")],
            ),
            ..schedule()
        }
    }

    fn event(name: &str, start: &str, end: &str, hours: Option<&[&str]>, busy: bool) -> Peak {
        Peak {
            name: name.to_string(),
            start: at(start),
            end: at(end),
            hours: hours.map(ranges),
            busy,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn check_in(schedule: &Schedule, now: &str, expected_back: Option<&str>) {
        let duty = schedule.duty_at(at(now));
        let expected = match expected_back {
            None => Duty::OnDuty,
            Some(back) => Duty::Away {
                back: Some(at(back).with_timezone(&chrono_tz::Asia::Shanghai)),
            },
        };
        assert_eq!(duty, expected, "at {now}");
    }

    fn check(now: &str, expected_back: Option<&str>) {
        check_in(&schedule(), now, expected_back);
    }

    #[test]
    fn a_holiday_is_away_until_the_first_working_day_after_it() {
        let shop = national_day();
        // Thursday 1 October, 10:00: an ordinary Thursday would be on duty.
        check_in(
            &shop,
            "2026-10-01T10:00:00+08:00",
            Some("2026-10-08T09:00:00+08:00"),
        );
        // The evening before, the next opening is already after the whole holiday.
        check_in(
            &shop,
            "2026-09-30T23:30:00+08:00",
            Some("2026-10-08T09:00:00+08:00"),
        );
        check_in(&shop, "2026-10-08T09:00:00+08:00", None);
    }

    #[test]
    fn a_make_up_day_keeps_monday_hours_and_the_meal_breaks() {
        let shop = national_day();
        // Sunday 20 September is worked: on duty at 09:30 although Sundays are closed.
        check_in(&shop, "2026-09-20T09:30:00+08:00", None);
        check_in(
            &shop,
            "2026-09-20T12:30:00+08:00",
            Some("2026-09-20T13:00:00+08:00"),
        );
        // Saturday 10 October opens at 09:00 like a Monday, not at 10:00 like a Saturday.
        check_in(&shop, "2026-10-10T09:30:00+08:00", None);
        check_in(&shop, "2026-10-10T20:00:00+08:00", None);
        // Saturday 19 September evening: the next opening is the make-up Sunday morning.
        check_in(
            &shop,
            "2026-09-19T19:00:00+08:00",
            Some("2026-09-20T09:00:00+08:00"),
        );
    }

    #[test]
    fn holiday_hours_have_no_meal_break() {
        let shop = Schedule {
            holiday_hours: ranges(&["10:00-16:00"]),
            ..national_day()
        };
        check_in(&shop, "2026-10-02T12:30:00+08:00", None);
        check_in(
            &shop,
            "2026-10-02T16:00:00+08:00",
            Some("2026-10-03T10:00:00+08:00"),
        );
    }

    #[test]
    fn the_next_opening_is_found_after_a_holiday_longer_than_a_week() {
        // A ten-day Spring Festival: back on Monday 15 February.
        let shop = Schedule {
            calendar: Calendar::new(
                vec![DateSpan::parse("2027-02-05..2027-02-14").unwrap()],
                vec![],
            ),
            ..schedule()
        };
        check_in(
            &shop,
            "2027-02-05T10:00:00+08:00",
            Some("2027-02-15T09:00:00+08:00"),
        );
    }

    #[test]
    fn a_sale_event_keeps_its_own_hours_and_may_skip_the_busy_notice() {
        let shop = Schedule {
            peaks: vec![
                // On duty around the clock on 10, 11 and 12 November, without a busy notice.
                event(
                    "双11",
                    "2026-11-10T20:00:00+08:00",
                    "2026-11-12T02:00:00+08:00",
                    Some(&["00:00-24:00"]),
                    false,
                ),
                // Ends at midnight, so 13 December keeps its ordinary hours.
                event(
                    "双12",
                    "2026-12-11T20:00:00+08:00",
                    "2026-12-13T00:00:00+08:00",
                    Some(&["08:00-24:00"]),
                    true,
                ),
            ],
            ..national_day()
        };
        check_in(&shop, "2026-11-11T03:00:00+08:00", None);
        check_in(&shop, "2026-11-11T12:30:00+08:00", None);
        assert_eq!(shop.peak_at(at("2026-11-11T03:00:00+08:00")), None);
        // Saturday 12 December 08:30: the event's hours, not Saturday's 10:00.
        check_in(&shop, "2026-12-12T08:30:00+08:00", None);
        let peak = shop.peak_at(at("2026-12-12T08:30:00+08:00"));
        assert_eq!(peak.map(|p| p.name.as_str()), Some("双12"));
        // Sunday 13 December is closed as usual.
        check_in(
            &shop,
            "2026-12-13T10:00:00+08:00",
            Some("2026-12-14T09:00:00+08:00"),
        );
        // The evening before the event, the shop reopens at midnight.
        check_in(
            &shop,
            "2026-11-09T23:30:00+08:00",
            Some("2026-11-10T00:00:00+08:00"),
        );
    }

    #[test]
    fn a_sale_event_without_new_keys_behaves_as_before() {
        let shop = Schedule {
            peaks: vec![event(
                "双11",
                "2026-11-10T20:00:00+08:00",
                "2026-11-12T02:00:00+08:00",
                None,
                true,
            )],
            ..schedule()
        };
        // Inside the event but outside the hours: away, and the peak is on.
        check_in(
            &shop,
            "2026-11-11T00:05:00+08:00",
            Some("2026-11-11T09:00:00+08:00"),
        );
        assert!(shop.peak_at(at("2026-11-11T00:05:00+08:00")).is_some());
        assert!(shop.peak_at(at("2026-11-12T02:00:00+08:00")).is_none());
    }

    #[test]
    fn a_shop_that_never_opens_has_no_back() {
        let shop = Schedule {
            week: Default::default(),
            workday_hours: vec![],
            ..schedule()
        };
        assert_eq!(
            shop.duty_at(at("2026-11-26T10:00:00+08:00")),
            Duty::Away { back: None }
        );
    }

    #[test]
    fn duty_follows_hours_breaks_and_weekdays() {
        // 2026-11-26 is a Thursday.
        check("2026-11-26T10:00:00+08:00", None);
        check(
            "2026-11-26T12:30:00+08:00",
            Some("2026-11-26T13:00:00+08:00"),
        );
        check(
            "2026-11-26T08:59:00+08:00",
            Some("2026-11-26T09:00:00+08:00"),
        );
        check(
            "2026-11-26T23:30:00+08:00",
            Some("2026-11-27T09:00:00+08:00"),
        );
        // Saturday evening: Sunday is closed, so the next opening is Monday.
        check(
            "2026-11-28T18:00:00+08:00",
            Some("2026-11-30T09:00:00+08:00"),
        );
        // The same instant written in UTC is judged in the shop's zone.
        check("2026-11-26T04:30:00Z", Some("2026-11-26T13:00:00+08:00"));
    }

    #[test]
    fn bad_ranges_are_rejected_with_a_reason() {
        assert!(MinuteRange::parse("9-18").is_err());
        assert!(MinuteRange::parse("18:00-09:00").is_err());
        assert!(MinuteRange::parse("09:00-24:30").is_err());
        assert_eq!(
            MinuteRange::parse("00:00-24:00").unwrap(),
            MinuteRange {
                start: 0,
                end: 1440
            }
        );
    }
}
