//! Who may open a shop's chat: the signed buyer token and the allowed page origins
//! (`[widget]` in shop.toml).
//!
//! A shop with a secret only accepts buyers its own backend vouched for: the widget passes
//! `token=<expiry>.<signature>`, where expiry is Unix seconds and the signature is the hex
//! HMAC-SHA256, keyed with the secret, of `"<shop>\n<buyer>\n<expiry>"`. Without a secret (the
//! demo) any buyer id is accepted.

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WidgetRules {
    /// The key of buyer tokens; `None` accepts any buyer id.
    pub secret: Option<String>,
    /// Page origins (`https://shop.example.com`) the widget may be opened from; empty allows
    /// any.
    pub origins: Vec<String>,
}

/// Why a buyer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this shop needs a signed buyer token (`token=`)")]
    Missing,
    #[error("the buyer token is not valid for this shop and buyer")]
    Invalid,
    #[error("the buyer token has expired")]
    Expired,
}

/// The token a shop's backend gives the widget of `buyer` until `expiry`.
pub fn sign(secret: &str, shop: &str, buyer: &str, expiry: i64) -> String {
    format!(
        "{expiry}.{}",
        hex::encode(mac(secret, shop, buyer, expiry).finalize().into_bytes())
    )
}

fn mac(secret: &str, shop: &str, buyer: &str, expiry: i64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{shop}\n{buyer}\n{expiry}").as_bytes());
    mac
}

impl WidgetRules {
    /// Checks a buyer's token (when the shop has a secret) at `now`.
    pub fn verify(
        &self,
        shop: &str,
        buyer: &str,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), TokenError> {
        let Some(secret) = &self.secret else {
            return Ok(());
        };
        let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
        let (expiry, signature) = token.split_once('.').ok_or(TokenError::Invalid)?;
        let expiry: i64 = expiry.parse().map_err(|_| TokenError::Invalid)?;
        let signature = hex::decode(signature).map_err(|_| TokenError::Invalid)?;
        // verify_slice compares in constant time.
        mac(secret, shop, buyer, expiry)
            .verify_slice(&signature)
            .map_err(|_| TokenError::Invalid)?;
        if expiry <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    /// True when a page of `origin` may open the widget.
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        self.origins.is_empty()
            || origin.is_some_and(|o| self.origins.iter().any(|allowed| allowed == o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_shop_buyer_and_time() {
        let rules = WidgetRules {
            secret: Some("k".into()),
            origins: Vec::new(),
        };
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let token = sign("k", "default", "alice", 1_800_000_600);
        assert_eq!(rules.verify("default", "alice", Some(&token), now), Ok(()));
        assert_eq!(
            rules.verify("default", "bob", Some(&token), now),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            rules.verify("other", "alice", Some(&token), now),
            Err(TokenError::Invalid)
        );
        let later = DateTime::from_timestamp(1_800_000_600, 0).unwrap();
        assert_eq!(
            rules.verify("default", "alice", Some(&token), later),
            Err(TokenError::Expired)
        );
        assert_eq!(
            rules.verify("default", "alice", None, now),
            Err(TokenError::Missing)
        );
        assert_eq!(
            rules.verify("default", "alice", Some("123.zz"), now),
            Err(TokenError::Invalid)
        );
        let open = WidgetRules::default();
        assert_eq!(open.verify("default", "alice", None, now), Ok(()));
    }

    #[test]
    fn origins_are_matched_exactly_when_listed() {
        let rules = WidgetRules {
            secret: None,
            origins: vec!["https://shop.example.com".into()],
        };
        assert!(rules.allows_origin(Some("https://shop.example.com")));
        assert!(!rules.allows_origin(Some("https://shop.example.com.evil.cn")));
        assert!(!rules.allows_origin(None));
        assert!(WidgetRules::default().allows_origin(None));
    }
}
