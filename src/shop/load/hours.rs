//! The hours of `shop.toml`: the time zone, the week's `[hours]` and meal breaks, the
//! `[calendar]` (holidays, make-up working days and their hours) and the `[[peak]]` windows,
//! validated into a [`Calendar`] and a [`Schedule`].

use chrono_tz::Tz;

use super::context::Context;
use crate::shop::calendar::{Calendar, DateSpan};
use crate::shop::files::{CalendarFile, ShopFile, Text};
use crate::shop::schedule::{MinuteRange, Peak, Schedule};
use crate::source::SourceFile;

impl Context<'_> {
    /// The `[calendar]` dates; a date may be a holiday or a make-up working day, not both.
    pub(super) fn calendar(&mut self, src: &SourceFile, file: &CalendarFile) -> Calendar {
        let holidays: Vec<DateSpan> = file
            .holidays
            .iter()
            .filter_map(|t| self.date_span(src, t))
            .collect();
        let only_holidays = Calendar::new(holidays.clone(), Vec::new());
        let mut workdays = Vec::new();
        for text in &file.workdays {
            let Some(span) = self.date_span(src, text) else {
                continue;
            };
            if let Some(date) = only_holidays.first_holiday_in(span) {
                self.errors.push(src.error_at(
                    text.span(),
                    format!(
                        "{date} is a holiday and a make-up working day; \
                         list it in `holidays` or in `workdays`, not both"
                    ),
                ));
            }
            workdays.push(span);
        }
        Calendar::new(holidays, workdays)
    }

    fn date_span(&mut self, src: &SourceFile, text: &Text) -> Option<DateSpan> {
        match DateSpan::parse(text.get_ref()) {
            Ok(span) => Some(span),
            Err(e) => {
                self.errors.push(src.error_at(text.span(), e));
                None
            }
        }
    }

    /// The week's hours, meal breaks, calendar hours and peaks, in the shop's time zone.
    pub(super) fn schedule(
        &mut self,
        src: &SourceFile,
        file: &ShopFile,
        calendar: &Calendar,
    ) -> Option<Schedule> {
        let timezone: Option<Tz> = match file.timezone.get_ref().parse() {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.errors.push(src.error_at(
                    file.timezone.span(),
                    format!(
                        "unknown time zone \"{}\"; use an IANA name like \"Asia/Shanghai\"",
                        file.timezone.get_ref()
                    ),
                ));
                None
            }
        };
        let h = &file.hours;
        let week = [
            self.ranges(src, &h.mon),
            self.ranges(src, &h.tue),
            self.ranges(src, &h.wed),
            self.ranges(src, &h.thu),
            self.ranges(src, &h.fri),
            self.ranges(src, &h.sat),
            self.ranges(src, &h.sun),
        ];
        let meal_breaks = self.ranges(src, &h.meal_breaks);
        let c = &file.calendar;
        let holiday_hours = c
            .holiday_hours
            .as_deref()
            .map_or_else(Vec::new, |h| self.ranges(src, h));
        let workday_hours = match c.workday_hours.as_deref() {
            Some(h) => self.ranges(src, h),
            None => week[0].clone(),
        };
        let mut peaks = Vec::new();
        for peak in &file.peak {
            let hours = peak.hours.as_deref().map(|h| self.ranges(src, h));
            if let (Some(start), Some(end)) =
                (self.instant(src, &peak.start), self.instant(src, &peak.end))
            {
                if start >= end {
                    self.errors.push(src.error_at(
                        peak.end.span(),
                        format!("peak \"{}\" ends before it starts", peak.name),
                    ));
                }
                peaks.push(Peak {
                    name: peak.name.clone(),
                    start,
                    end,
                    hours,
                    busy: peak.busy.unwrap_or(true),
                });
            }
        }
        Some(Schedule {
            timezone: timezone?,
            week,
            meal_breaks,
            peaks,
            calendar: calendar.clone(),
            holiday_hours,
            workday_hours,
        })
    }

    fn ranges(&mut self, src: &SourceFile, texts: &[Text]) -> Vec<MinuteRange> {
        texts
            .iter()
            .filter_map(|t| match MinuteRange::parse(t.get_ref()) {
                Ok(r) => Some(r),
                Err(e) => {
                    self.errors.push(src.error_at(t.span(), e));
                    None
                }
            })
            .collect()
    }
}
