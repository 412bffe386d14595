//! Token buckets: a burst is fine, a flood gets `rate_limited`.
//!
//! An agent console has its own bucket, which ends with the connection ([`RateLimiter`]).
//! A buyer's buckets outlive the connection ([`Buckets`]): they are kept per buyer and per
//! client address, so hanging up and reconnecting does not buy a fresh burst.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

/// How fast a bucket refills and how much it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    pub fn new(per_second: f64, burst: u32) -> Rate {
        Rate {
            per_second,
            burst: f64::from(burst.max(1)),
        }
    }

    /// `per_minute` a minute, with the same amount as the burst.
    pub fn per_minute(per_minute: f64) -> Rate {
        Rate {
            per_second: per_minute / 60.0,
            burst: per_minute.max(1.0),
        }
    }
}

/// One bucket, on tokio's clock so tests move time instead of waiting.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: Rate) -> Bucket {
        Bucket {
            tokens: rate.burst,
            last: Instant::now(),
        }
    }

    fn has_token(&mut self, rate: Rate, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * rate.per_second;
        self.tokens = (self.tokens + earned).min(rate.burst);
        self.last = now;
        self.tokens >= 1.0
    }
}

/// The bucket of one connection.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    bucket: Bucket,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: u32) -> RateLimiter {
        let rate = Rate::new(per_second, burst);
        RateLimiter {
            rate,
            bucket: Bucket::full(rate),
        }
    }

    /// Takes a token if one is left.
    pub fn allow(&mut self) -> bool {
        let allowed = self.bucket.has_token(self.rate, Instant::now());
        if allowed {
            self.bucket.tokens -= 1.0;
        }
        allowed
    }
}

/// What a shared bucket limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// One buyer's messages, whichever connection they come from.
    BuyerMessages { shop: String, buyer: String },
    /// The messages of every buyer behind one address (IPv6 by /64, see
    /// [`group`](crate::desk::intake::group)).
    AddressMessages(IpAddr),
    /// New conversations (fresh buyer ids) opened from one address, grouped the same way.
    AddressConversations(IpAddr),
}

/// Buckets remembered at most. Past it the least used are forgotten first, which gives their
/// owner a full bucket again: an idle one was full anyway, and to push out a busy one an
/// attacker must keep more buyers and addresses busy than this, each within its own limits.
const MAX_BUCKETS: usize = 100_000;

/// Buckets shared by every connection, by [`Key`], in a bounded concurrent cache: each
/// bucket has its own lock, held only to take a token, so there is no global lock.
pub struct Buckets {
    buckets: quick_cache::sync::Cache<Key, Arc<Mutex<Bucket>>>,
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets::with_capacity(MAX_BUCKETS)
    }
}

impl Buckets {
    fn with_capacity(capacity: usize) -> Buckets {
        Buckets {
            buckets: quick_cache::sync::Cache::new(capacity),
        }
    }

    /// Takes a token from every one of `wanted`'s buckets if each has one, else from none.
    /// Callers list keys in the same order (buyer before address), so two takers never wait
    /// on each other's locks crosswise.
    pub fn take(&self, wanted: &[(&Key, Rate)]) -> bool {
        let now = Instant::now();
        let buckets: Vec<_> = wanted
            .iter()
            .map(|(key, rate)| {
                let bucket = self
                    .buckets
                    .get_or_insert_with(*key, || {
                        Ok::<_, std::convert::Infallible>(Arc::new(Mutex::new(Bucket::full(*rate))))
                    })
                    .unwrap_or_else(|never| match never {});
                (bucket, *rate)
            })
            .collect();
        let mut locked: Vec<_> = buckets
            .iter()
            .map(|(bucket, rate)| (bucket.lock().unwrap_or_else(|p| p.into_inner()), *rate))
            .collect();
        if !locked
            .iter_mut()
            .all(|(bucket, rate)| bucket.has_token(*rate, now))
        {
            return false;
        }
        for (bucket, _) in &mut locked {
            bucket.tokens -= 1.0;
        }
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_a_flood_does_not_and_time_refills() {
        let mut limiter = RateLimiter::new(2.0, 3);
        assert!((0..3).all(|_| limiter.allow()));
        assert!(!limiter.allow());
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(limiter.allow());
        assert!(!limiter.allow());
    }

    fn buyer(name: &str) -> Key {
        Key::BuyerMessages {
            shop: "s".into(),
            buyer: name.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_bucket_is_found_again_and_all_or_none_are_taken() {
        let buckets = Buckets::default();
        let per_buyer = Rate::new(1.0, 2);
        let per_address = Rate::new(1.0, 3);
        let address = Key::AddressMessages("10.0.0.1".parse().unwrap());
        let both = |name: &str| buckets.take(&[(&buyer(name), per_buyer), (&address, per_address)]);
        assert!(both("a"));
        assert!(both("a"));
        assert!(!both("a"), "the buyer's burst is spent");
        assert!(both("b"));
        assert!(
            !both("b"),
            "the address's burst is spent, though b has tokens"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(both("b"), "b's token was not taken before");
        assert!(!both("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_buckets_remembered_are_bounded() {
        let buckets = Buckets::with_capacity(1000);
        let rate = Rate::new(1.0, 1);
        for n in 0..10_000 {
            assert!(buckets.take(&[(&buyer(&n.to_string()), rate)]));
        }
        assert!(buckets.len() <= 1000, "{}", buckets.len());
    }
}
