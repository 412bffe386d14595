//! The values reply templates insert, computed only when a template asks for them.

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;

use crate::shop::Shop;
use crate::shop::schedule::Duty;
use crate::shop::shipping::Region;
use crate::template::{Var, VarSource};

/// Where a buyer's case stands, as the texts about it tell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseNotice<'a> {
    /// Waiting, with `ahead` cases before it; `wait_seconds` is none while no agent takes
    /// cases.
    Queued {
        ahead: usize,
        wait_seconds: Option<u64>,
    },
    /// `agent` (their display name) took it.
    Claimed { agent: &'a str },
}

pub struct Vars<'a> {
    shop: &'a Shop,
    now: DateTime<Utc>,
    local: DateTime<Tz>,
    normalized: &'a str,
    /// The buyer's case, for the texts about it.
    case: Option<CaseNotice<'a>>,
}

impl<'a> Vars<'a> {
    pub fn new(shop: &'a Shop, now: DateTime<Utc>, normalized: &'a str) -> Vars<'a> {
        Vars {
            shop,
            now,
            local: shop.schedule.local(now),
            normalized,
            case: None,
        }
    }

    /// The values of a text about the buyer's case.
    pub fn for_case(shop: &'a Shop, now: DateTime<Utc>, case: CaseNotice<'a>) -> Vars<'a> {
        Vars {
            case: Some(case),
            ..Vars::new(shop, now, "")
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The buyer's message in canonical form.
    pub fn normalized(&self) -> &'a str {
        self.normalized
    }

    /// The shop-local date, for once-a-day notices.
    pub fn local_date(&self) -> chrono::NaiveDate {
        self.local.date_naive()
    }

    fn region(&self) -> Option<&'a Region> {
        self.shop.shipping.region_in(self.normalized)
    }
}

impl VarSource for Vars<'_> {
    fn write_var(&self, var: Var, out: &mut String) {
        let shop = self.shop;
        let shipping = &shop.shipping;
        match var {
            Var::Shop => out.push_str(&shop.name),
            Var::Agent => match self.case {
                Some(CaseNotice::Claimed { agent }) => out.push_str(agent),
                _ => out.push_str(&shop.agent),
            },
            Var::Courier => out.push_str(&shipping.courier),
            Var::Days => out.push_str(self.region().map_or(&shipping.default_days, |r| &r.days)),
            Var::Region => {
                out.push_str(self.region().map_or(&shipping.default_region, |r| &r.name))
            }
            Var::Cutoff => out.push_str(&shipping.cutoff_hour.to_string()),
            Var::Dispatch => {
                let variants = if shipping.ships_today(self.local) {
                    &shipping.dispatch_today
                } else {
                    &shipping.dispatch_next
                };
                // Stateless rotation: the wording changes from day to day.
                variants
                    .get(self.local.ordinal0() as usize)
                    .render_into(self, out);
            }
            Var::Threshold => {
                if let Some(threshold) = shop.free_shipping_threshold {
                    out.push_str(&threshold.to_string());
                }
            }
            Var::Back => {
                if let Duty::Away { back: Some(back) } = shop.schedule.duty_at(self.now) {
                    write_back(back, self.local.date_naive(), out);
                }
            }
            Var::Peak => {
                if let Some(peak) = shop.schedule.peak_at(self.now) {
                    out.push_str(&peak.name);
                }
            }
            Var::Place | Var::Ahead | Var::Minutes => {
                if let Some(CaseNotice::Queued {
                    ahead,
                    wait_seconds,
                }) = self.case
                {
                    let value = match var {
                        Var::Place => ahead as u64 + 1,
                        Var::Ahead => ahead as u64,
                        _ => wait_seconds.map_or(1, |s| s.div_ceil(60).max(1)),
                    };
                    out.push_str(&value.to_string());
                }
            }
        }
    }
}

/// When agents are back, as a buyer reads it on `today`: "13:00", "明天09:00", "周四09:00"
/// within the coming week, and the date ("10月8日09:00") after a long holiday, where a
/// weekday name would point at the wrong week.
fn write_back(back: DateTime<Tz>, today: chrono::NaiveDate, out: &mut String) {
    match (back.date_naive() - today).num_days() {
        0 => {}
        1 => out.push_str("明天"),
        2..=6 => out.push_str(weekday_name(back.weekday())),
        _ => out.push_str(&format!("{}月{}日", back.month(), back.day())),
    }
    out.push_str(&back.format("%H:%M").to_string());
}

fn weekday_name(day: chrono::Weekday) -> &'static str {
    match day {
        chrono::Weekday::Mon => "周一",
        chrono::Weekday::Tue => "周二",
        chrono::Weekday::Wed => "周三",
        chrono::Weekday::Thu => "周四",
        chrono::Weekday::Fri => "周五",
        chrono::Weekday::Sat => "周六",
        chrono::Weekday::Sun => "周日",
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    fn check(today: &str, back: &str, expected: &str) {
        let today = NaiveDate::parse_from_str(today, "%Y-%m-%d").unwrap();
        let back = chrono::NaiveDateTime::parse_from_str(back, "%Y-%m-%d %H:%M").unwrap();
        let back = chrono_tz::Asia::Shanghai
            .from_local_datetime(&back)
            .unwrap();
        let mut out = String::new();
        write_back(back, today, &mut out);
        assert_eq!(out, expected, "today {today}, back {back}");
    }

    #[test]
    fn back_reads_as_a_time_a_weekday_or_after_a_long_holiday_a_date() {
        check("2026-11-26", "2026-11-26 13:00", "13:00");
        check("2026-11-26", "2026-11-27 09:00", "明天09:00");
        check("2026-11-28", "2026-11-30 09:00", "周一09:00");
        // From Saturday 3 October, Thursday 8 October is still this week.
        check("2026-10-03", "2026-10-08 09:00", "周四09:00");
        // From 1 October a weekday name would be ambiguous: the date is said instead.
        check("2026-10-01", "2026-10-08 09:00", "10月8日09:00");
        check("2026-09-30", "2026-10-08 09:00", "10月8日09:00");
    }
}
