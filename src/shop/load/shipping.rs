//! The `[shipping]` table of `shop.toml`: cut-off hour, the warehouse's working days, the
//! dispatch sentences and the regions buyers name, validated into a [`Shipping`].

use chrono::Weekday;

use super::context::Context;
use crate::shop::calendar::Calendar;
use crate::shop::files::ShopFile;
use crate::shop::shipping::{Region, Shipping};
use crate::source::SourceFile;
use crate::template::Var;

impl Context<'_> {
    /// The `[shipping]` table, following `calendar` for the warehouse's days off.
    pub(super) fn shipping(
        &mut self,
        src: &SourceFile,
        file: &ShopFile,
        calendar: Calendar,
    ) -> Option<Shipping> {
        let s = &file.shipping;
        if *s.cutoff_hour.get_ref() > 24 {
            self.errors.push(src.error_at(
                s.cutoff_hour.span(),
                "cutoff_hour must be an hour from 0 to 24",
            ));
        }
        let mut working_days = [false; 7];
        for day in &s.working_days {
            match day.get_ref().parse::<Weekday>() {
                Ok(d) => working_days[d.num_days_from_monday() as usize] = true,
                Err(_) => self.errors.push(src.error_at(
                    day.span(),
                    format!("\"{}\" is not a weekday; use mon … sun", day.get_ref()),
                )),
            }
        }
        let dispatch_today = self.variants(src, "shipping.dispatch_today", &s.dispatch_today);
        let dispatch_next = self.variants(src, "shipping.dispatch_next", &s.dispatch_next);
        for template in dispatch_today
            .iter()
            .chain(&dispatch_next)
            .flat_map(|v| v.iter())
        {
            if template.uses(Var::Dispatch) {
                self.errors
                    .push(src.error("the dispatch sentences cannot contain {dispatch} themselves"));
            }
        }
        let regions = s
            .region
            .iter()
            .map(|r| {
                let places = self.normalized_all(src, &r.places);
                (
                    Region {
                        name: r.name.clone(),
                        days: r.days.clone(),
                    },
                    places,
                )
            })
            .collect();
        Some(Shipping::new(
            s.courier.clone(),
            *s.cutoff_hour.get_ref(),
            working_days,
            calendar,
            s.default_days.clone(),
            s.default_region.clone(),
            dispatch_today?,
            dispatch_next?,
            regions,
        ))
    }
}
