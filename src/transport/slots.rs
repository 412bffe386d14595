//! Caps on open connections, in total and per remote address (IPv6 grouped by /64, as the
//! handoff limits group it): past them a new connection is refused with HTTP 503, a clear
//! answer rather than a slow death. The service keeps three sets of places: every accepted
//! TCP connection, buyers' websockets and agents' websockets (`App`).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;

use crate::desk::intake::group;

/// How many places a set has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub total: usize,
    /// `None` when connections are not told apart by address (all come from one balancer).
    pub per_address: Option<usize>,
}

/// The connections open now, within their caps.
pub struct Slots {
    caps: Caps,
    total: AtomicUsize,
    by_address: DashMap<IpAddr, usize>,
}

/// One connection's place; giving it back happens on drop, however the connection ends.
pub struct Slot {
    slots: Arc<Slots>,
    /// The address group counted, when addresses are counted.
    address: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(address) = self.address
            && let dashmap::Entry::Occupied(mut count) = self.slots.by_address.entry(address)
        {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full(&'static str);

impl Full {
    pub fn reason(self) -> &'static str {
        self.0
    }
}

impl IntoResponse for Full {
    fn into_response(self) -> Response {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
            format!("{}; please try again shortly\n", self.0),
        )
            .into_response()
    }
}

/// What a refused client is told to wait before trying again.
pub const RETRY_AFTER_SECONDS: &str = "5";

impl Slots {
    pub fn new(caps: Caps) -> Arc<Slots> {
        Arc::new(Slots {
            caps,
            total: AtomicUsize::new(0),
            by_address: DashMap::new(),
        })
    }

    /// Takes a place for a connection from `address`, if the caps allow it.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Result<Slot, Full> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.caps.total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Full("the service has all the connections it can take"));
        }
        let Some(max_per_address) = self.caps.per_address else {
            return Ok(Slot {
                slots: self.clone(),
                address: None,
            });
        };
        let key = group(address);
        let mut count = self.by_address.entry(key).or_insert(0);
        if *count >= max_per_address {
            drop(count);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Full("too many connections from this address"));
        }
        *count += 1;
        Ok(Slot {
            slots: self.clone(),
            address: Some(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_in_total_and_per_address_and_given_back_on_drop() {
        let slots = Slots::new(Caps {
            total: 3,
            per_address: Some(2),
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = slots.take(a).ok().unwrap();
        let _second = slots.take(a).ok().unwrap();
        assert!(slots.take(a).is_err(), "per address");
        let _third = slots.take(b).ok().unwrap();
        assert!(slots.take(b).is_err(), "in total");
        drop(first);
        assert!(slots.take(a).is_ok());
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_cap() {
        let slots = Slots::new(Caps {
            total: 10,
            per_address: Some(1),
        });
        let _one = slots.take("2001:db8:1:2::1".parse().unwrap()).ok().unwrap();
        assert!(slots.take("2001:db8:1:2:ffff::9".parse().unwrap()).is_err());
        assert!(slots.take("2001:db8:1:3::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn without_a_per_address_cap_only_the_total_counts() {
        let slots = Slots::new(Caps {
            total: 2,
            per_address: None,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let _one = slots.take(a).ok().unwrap();
        let two = slots.take(a).ok().unwrap();
        assert!(slots.take(a).is_err());
        drop(two);
        assert!(slots.take(a).is_ok());
        assert!(slots.by_address.is_empty());
    }
}
