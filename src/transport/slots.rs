//! Caps on open connections, in total and per remote address: past them a new connection is
//! refused with HTTP 503 before the upgrade, a clear answer rather than a slow death.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;

/// The connections open now.
#[derive(Default)]
pub struct Slots {
    total: AtomicUsize,
    by_address: DashMap<IpAddr, usize>,
}

/// One connection's place; giving it back happens on drop, however the connection ends.
pub struct Slot {
    slots: Arc<Slots>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.total.fetch_sub(1, Ordering::AcqRel);
        if let dashmap::Entry::Occupied(mut count) = self.slots.by_address.entry(self.address) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

/// Why a connection was refused.
pub struct Full(&'static str);

impl IntoResponse for Full {
    fn into_response(self) -> Response {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!("{}; please try again shortly\n", self.0),
        )
            .into_response()
    }
}

impl Slots {
    /// Takes a place for a connection from `address`, if both caps allow it.
    pub fn take(
        self: &Arc<Self>,
        address: IpAddr,
        max_total: usize,
        max_per_address: usize,
    ) -> Result<Slot, Full> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Full("the service has all the connections it can take"));
        }
        let mut count = self.by_address.entry(address).or_insert(0);
        if *count >= max_per_address {
            drop(count);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Full("too many connections from this address"));
        }
        *count += 1;
        Ok(Slot {
            slots: self.clone(),
            address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_in_total_and_per_address_and_given_back_on_drop() {
        let slots = Arc::new(Slots::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = slots.take(a, 3, 2).ok().unwrap();
        let _second = slots.take(a, 3, 2).ok().unwrap();
        assert!(slots.take(a, 3, 2).is_err(), "per address");
        let _third = slots.take(b, 3, 2).ok().unwrap();
        assert!(slots.take(b, 3, 2).is_err(), "in total");
        drop(first);
        assert!(slots.take(a, 3, 2).is_ok());
    }
}
