//! `[followup]` of `shop.toml`: how long after an answer a short follow-up ("那新疆呢") is
//! read in its topic.

use chrono::TimeDelta;

use super::context::Context;
use crate::shop::files::FollowupFile;
use crate::source::SourceFile;

/// The window when `window_seconds` is not set: long enough for a buyer to read an answer
/// and type a short question, short enough that a new visit starts afresh.
pub const DEFAULT_WINDOW_SECONDS: u64 = 300;

/// A longer window would read a message typed much later in a topic long gone.
pub const MAX_WINDOW_SECONDS: u64 = 3600;

impl Context<'_> {
    pub(super) fn followup_window(&mut self, src: &SourceFile, file: &FollowupFile) -> TimeDelta {
        let seconds = match &file.window_seconds {
            None => DEFAULT_WINDOW_SECONDS,
            Some(seconds) if *seconds.get_ref() > MAX_WINDOW_SECONDS => {
                self.errors.push(src.error_at(
                    seconds.span(),
                    format!(
                        "window_seconds must be at most {MAX_WINDOW_SECONDS} (an hour); 0 turns \
                         follow-ups off"
                    ),
                ));
                0
            }
            Some(seconds) => *seconds.get_ref(),
        };
        TimeDelta::seconds(seconds as i64)
    }
}
