//! The `[widget]` table of `shop.toml`: the buyer-token secret (inline or from the
//! environment) and the origins allowed to open the chat, validated into [`WidgetRules`].

use super::context::Context;
use crate::shop::files::WidgetFile;
use crate::shop::widget::WidgetRules;
use crate::source::SourceFile;

impl Context<'_> {
    /// The `[widget]` table: the buyer-token secret and the allowed origins.
    pub(super) fn widget(&mut self, src: &SourceFile, file: &WidgetFile) -> WidgetRules {
        let secret = match (&file.secret, &file.secret_env) {
            (Some(_), Some(env)) => {
                self.errors.push(src.error_at(
                    env.span(),
                    "give `secret` or `secret_env` in [widget], not both",
                ));
                None
            }
            (Some(secret), None) => Some(secret.clone()),
            (None, Some(env)) => match std::env::var(env.get_ref()) {
                Ok(secret) if !secret.is_empty() => Some(secret),
                _ => {
                    self.errors.push(src.error_at(
                        env.span(),
                        format!(
                            "the environment variable {} holding the buyer-token secret is not set",
                            env.get_ref()
                        ),
                    ));
                    None
                }
            },
            (None, None) => None,
        };
        let mut origins = Vec::new();
        for origin in &file.origins {
            let text = origin.get_ref().trim_end_matches('/');
            let host = text
                .strip_prefix("https://")
                .or_else(|| text.strip_prefix("http://"));
            if host.is_some_and(|h| !h.is_empty() && !h.contains('/')) {
                origins.push(text.to_string());
            } else {
                self.errors.push(src.error_at(
                    origin.span(),
                    format!(
                        "\"{}\" is not an origin: write scheme and host only, like \"https://shop.example.com\"",
                        origin.get_ref()
                    ),
                ));
            }
        }
        WidgetRules { secret, origins }
    }
}
