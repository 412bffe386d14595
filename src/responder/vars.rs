//! The values reply templates insert, computed only when a template asks for them.

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;

use crate::shop::Shop;
use crate::shop::schedule::Duty;
use crate::shop::shipping::Region;
use crate::shop::template::{Var, VarSource};

pub struct Vars<'a> {
    shop: &'a Shop,
    now: DateTime<Utc>,
    local: DateTime<Tz>,
    normalized: &'a str,
}

impl<'a> Vars<'a> {
    pub fn new(shop: &'a Shop, now: DateTime<Utc>, normalized: &'a str) -> Vars<'a> {
        Vars {
            shop,
            now,
            local: shop.schedule.local(now),
            normalized,
        }
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
            Var::Agent => out.push_str(&shop.agent),
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
                    let days = (back.date_naive() - self.local.date_naive()).num_days();
                    match days {
                        0 => {}
                        1 => out.push_str("明天"),
                        _ => out.push_str(weekday_name(back.weekday())),
                    }
                    out.push_str(&back.format("%H:%M").to_string());
                }
            }
            Var::Peak => {
                if let Some(peak) = shop.schedule.peak_at(self.now) {
                    out.push_str(&peak.name);
                }
            }
        }
    }
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
