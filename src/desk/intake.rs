//! How fast new cases may be opened: a token bucket per client address and one per shop. A
//! conversation has at most one open case, but buyer ids cost nothing, so without these one
//! address could fill a shop's queue in seconds by inventing buyers.

use std::net::IpAddr;
use std::sync::Mutex;

use dashmap::DashMap;
use tokio::time::Instant;

/// The rates, from `Limits`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntakeLimits {
    /// New cases per minute from one client address (IPv6 grouped by /64); also the burst.
    pub per_address_per_minute: f64,
    /// New cases per minute in one shop, from everyone; also the burst.
    pub per_shop_per_minute: f64,
}

/// Why a new case was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This address opened too many cases lately.
    Address,
    /// The shop received too many new cases lately.
    Shop,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Address => "address",
            Refusal::Shop => "shop",
        }
    }
}

/// Addresses remembered at most; past it, those whose bucket has refilled (and so are no
/// different from an address never seen) are forgotten first.
const MAX_ADDRESSES: usize = 65_536;
/// How often a full table of addresses may be swept for refilled buckets: a sweep visits
/// every entry, so a crowd of new addresses must not cause one each.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A token bucket on tokio's clock, so tests move time instead of waiting.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(per_minute: f64) -> Bucket {
        Bucket {
            tokens: per_minute.max(1.0),
            last: Instant::now(),
        }
    }

    fn refill(&mut self, per_minute: f64, now: Instant) {
        let earned = now.duration_since(self.last).as_secs_f64() * per_minute / 60.0;
        self.tokens = (self.tokens + earned).min(per_minute.max(1.0));
        self.last = now;
    }

    fn has_token(&mut self, per_minute: f64, now: Instant) -> bool {
        self.refill(per_minute, now);
        self.tokens >= 1.0
    }

    fn is_full(&self, per_minute: f64, now: Instant) -> bool {
        let mut copy = *self;
        copy.refill(per_minute, now);
        copy.tokens >= per_minute.max(1.0)
    }
}

/// The buckets of every address; the shops' buckets live in their desks.
pub struct Intake {
    limits: IntakeLimits,
    by_address: DashMap<IpAddr, Bucket>,
    /// When the table of addresses was last swept (`MAX_ADDRESSES`).
    swept_at: Mutex<Option<Instant>>,
}

impl Intake {
    pub fn new(limits: IntakeLimits) -> Intake {
        Intake {
            limits,
            by_address: DashMap::new(),
            swept_at: Mutex::new(None),
        }
    }

    /// Takes a token from `address`'s bucket and from the shop's, or from neither.
    pub fn admit(&self, address: IpAddr, shop: &Mutex<Bucket>) -> Result<(), Refusal> {
        let now = Instant::now();
        let key = group(address);
        let per_address = self.limits.per_address_per_minute;
        let per_shop = self.limits.per_shop_per_minute;
        if self.by_address.len() >= MAX_ADDRESSES && !self.by_address.contains_key(&key) {
            if self.may_sweep(now) {
                self.by_address
                    .retain(|_, bucket| !bucket.is_full(per_address, now));
            }
            if self.by_address.len() >= MAX_ADDRESSES {
                // Every remembered address is still limited: a new one waits its turn.
                return Err(Refusal::Address);
            }
        }
        let mut address_bucket = self
            .by_address
            .entry(key)
            .or_insert_with(|| Bucket::full(per_address));
        if !address_bucket.has_token(per_address, now) {
            return Err(Refusal::Address);
        }
        let mut shop_bucket = shop.lock().unwrap_or_else(|p| p.into_inner());
        if !shop_bucket.has_token(per_shop, now) {
            return Err(Refusal::Shop);
        }
        shop_bucket.tokens -= 1.0;
        address_bucket.tokens -= 1.0;
        Ok(())
    }

    /// Whether a sweep is due (none in the last `SWEEP_EVERY`); if so, it is now.
    fn may_sweep(&self, now: Instant) -> bool {
        let mut swept_at = self.swept_at.lock().unwrap_or_else(|p| p.into_inner());
        let due = swept_at.is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY);
        if due {
            *swept_at = Some(now);
        }
        due
    }

    /// A shop's bucket, full.
    pub fn shop_bucket(&self) -> Mutex<Bucket> {
        Mutex::new(Bucket::full(self.limits.per_shop_per_minute))
    }
}

/// The unit an address is limited by: itself for IPv4, its /64 for IPv6 (one subscriber's
/// line usually has a whole /64). The connection caps count by it too.
pub fn group(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn each_address_and_each_shop_has_its_own_budget_that_time_refills() {
        let intake = Intake::new(IntakeLimits {
            per_address_per_minute: 2.0,
            per_shop_per_minute: 3.0,
        });
        let shop = intake.shop_bucket();
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let two: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(intake.admit(one, &shop), Ok(()));
        assert_eq!(intake.admit(one, &shop), Ok(()));
        assert_eq!(intake.admit(one, &shop), Err(Refusal::Address));
        assert_eq!(intake.admit(two, &shop), Ok(()));
        assert_eq!(intake.admit(two, &shop), Err(Refusal::Shop));
        let other_shop = intake.shop_bucket();
        assert_eq!(
            intake.admit(one, &other_shop),
            Err(Refusal::Address),
            "an address's budget spans the shops"
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(intake.admit(one, &shop), Ok(()), "half a minute earns one");
        assert_eq!(intake.admit(two, &shop), Err(Refusal::Shop));
    }

    #[tokio::test(start_paused = true)]
    async fn the_addresses_remembered_are_bounded_and_refilled_ones_make_room() {
        let intake = Intake::new(IntakeLimits {
            per_address_per_minute: 1.0,
            per_shop_per_minute: 1e9,
        });
        let shop = intake.shop_bucket();
        let address = |n: usize| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n as u32));
        for n in 0..MAX_ADDRESSES {
            assert_eq!(intake.admit(address(n), &shop), Ok(()));
        }
        let newcomer = address(MAX_ADDRESSES);
        assert_eq!(intake.admit(newcomer, &shop), Err(Refusal::Address));
        assert_eq!(intake.by_address.len(), MAX_ADDRESSES);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            intake.admit(newcomer, &shop),
            Ok(()),
            "refilled ones were forgotten"
        );
        assert_eq!(intake.by_address.len(), 1);
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_their_64_bit_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(group(a), group(b));
        assert_ne!(group(a), group(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(group(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
