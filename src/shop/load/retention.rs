//! `[retention]` of `shop.toml`: how many days a shop keeps its conversations, cases and
//! unanswered questions before the retention task (`crate::retention`) deletes them.

use chrono::TimeDelta;

use super::context::Context;
use crate::shop::files::RetentionFile;
use crate::source::SourceFile;

/// Kept when `days` is not set: half a year covers returns, complaints and disputes.
pub const DEFAULT_DAYS: u64 = 180;

/// Ten years: longer is surely a typo (and would overflow nothing, but keep everything).
pub const MAX_DAYS: u64 = 3650;

impl Context<'_> {
    pub(super) fn retention(&mut self, src: &SourceFile, file: &RetentionFile) -> TimeDelta {
        let days = match &file.days {
            None => DEFAULT_DAYS,
            Some(days) if !(1..=MAX_DAYS).contains(days.get_ref()) => {
                self.errors
                    .push(src.error_at(days.span(), format!("days must be from 1 to {MAX_DAYS}")));
                DEFAULT_DAYS
            }
            Some(days) => *days.get_ref(),
        };
        TimeDelta::days(days as i64)
    }
}
