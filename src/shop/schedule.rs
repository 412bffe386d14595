//! When humans are on duty: service hours per weekday, meal breaks and peak windows.
//!
//! Everything is computed in the shop's own time zone from an instant the caller passes in, so
//! tests choose the instant instead of waiting for it.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

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

/// A sale event during which the shop is `busy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peak {
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Whether humans are on duty at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    OnDuty,
    /// Off duty until `back` (None when the shop never opens in the coming week). `back` also
    /// identifies the away period, so a buyer is told once per period.
    Away {
        back: Option<DateTime<Tz>>,
    },
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub timezone: Tz,
    /// Service hours indexed by `Weekday::num_days_from_monday`.
    pub week: [Vec<MinuteRange>; 7],
    pub meal_breaks: Vec<MinuteRange>,
    pub peaks: Vec<Peak>,
}

impl Schedule {
    pub fn local(&self, now: DateTime<Utc>) -> DateTime<Tz> {
        now.with_timezone(&self.timezone)
    }

    pub fn duty_at(&self, now: DateTime<Utc>) -> Duty {
        let local = self.local(now);
        let minute = minute_of_day(local.time());
        if self.is_open(local.weekday(), minute) {
            Duty::OnDuty
        } else {
            Duty::Away {
                back: self.next_opening(local.date_naive(), minute),
            }
        }
    }

    pub fn peak_at(&self, now: DateTime<Utc>) -> Option<&Peak> {
        self.peaks.iter().find(|p| p.start <= now && now < p.end)
    }

    fn is_open(&self, weekday: Weekday, minute: u16) -> bool {
        self.week[weekday.num_days_from_monday() as usize]
            .iter()
            .any(|r| r.contains(minute))
            && !self.meal_breaks.iter().any(|b| b.contains(minute))
    }

    /// The first instant after `minute` on `date` (or on one of the next seven days) at which
    /// the shop is open. Openings only happen at a range start or a break end, so only those
    /// minutes are tried.
    fn next_opening(&self, date: NaiveDate, minute: u16) -> Option<DateTime<Tz>> {
        for offset in 0..8u64 {
            let day = date.checked_add_days(Days::new(offset))?;
            let weekday = day.weekday();
            let mut candidates: Vec<u16> = self.week[weekday.num_days_from_monday() as usize]
                .iter()
                .map(|r| r.start)
                .chain(self.meal_breaks.iter().map(|b| b.end))
                .filter(|&m| offset > 0 || m > minute)
                .collect();
            candidates.sort_unstable();
            if let Some(&open) = candidates.iter().find(|&&m| self.is_open(weekday, m)) {
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

    fn schedule() -> Schedule {
        let day = vec![MinuteRange::parse("09:00-23:00").unwrap()];
        Schedule {
            timezone: chrono_tz::Asia::Shanghai,
            week: [
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                vec![MinuteRange::parse("10:00-18:00").unwrap()],
                vec![],
            ],
            meal_breaks: vec![MinuteRange::parse("12:00-13:00").unwrap()],
            peaks: vec![],
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn check(now: &str, expected_back: Option<&str>) {
        let duty = schedule().duty_at(at(now));
        let expected = match expected_back {
            None => Duty::OnDuty,
            Some(back) => Duty::Away {
                back: Some(at(back).with_timezone(&chrono_tz::Asia::Shanghai)),
            },
        };
        assert_eq!(duty, expected, "at {now}");
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
