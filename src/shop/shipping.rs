//! The shipping table: which region a buyer names, how long that region takes, and whether an
//! order paid now leaves today.
//!
//! Replies built from it give ranges and conditions, never a date: a promised date that slips
//! becomes a complaint.

use aho_corasick::{AhoCorasick, MatchKind};
use chrono::{DateTime, Datelike, Timelike};
use chrono_tz::Tz;

use super::template::Variants;

#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    pub days: String,
}

#[derive(Debug, Clone)]
pub struct Shipping {
    pub courier: String,
    /// Paid before this local hour on a working day leaves the same day.
    pub cutoff_hour: u32,
    /// Indexed by `Weekday::num_days_from_monday`.
    pub working_days: [bool; 7],
    pub default_days: String,
    pub default_region: String,
    pub dispatch_today: Variants,
    pub dispatch_next: Variants,
    pub regions: Vec<Region>,
    /// Finds place names in normalised text; pattern `i` belongs to `place_region[i]`.
    places: AhoCorasick,
    place_region: Vec<usize>,
}

impl Shipping {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        courier: String,
        cutoff_hour: u32,
        working_days: [bool; 7],
        default_days: String,
        default_region: String,
        dispatch_today: Variants,
        dispatch_next: Variants,
        regions: Vec<(Region, Vec<String>)>,
    ) -> Shipping {
        let mut patterns = Vec::new();
        let mut place_region = Vec::new();
        let mut kept = Vec::new();
        for (index, (region, places)) in regions.into_iter().enumerate() {
            for place in places {
                patterns.push(place);
                place_region.push(index);
            }
            kept.push(region);
        }
        let places = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("place names are short literals");
        Shipping {
            courier,
            cutoff_hour,
            working_days,
            default_days,
            default_region,
            dispatch_today,
            dispatch_next,
            regions: kept,
            places,
            place_region,
        }
    }

    /// The region named first in the normalised message, if any.
    pub fn region_in(&self, normalized: &str) -> Option<&Region> {
        self.places
            .find(normalized)
            .map(|m| &self.regions[self.place_region[m.pattern().as_usize()]])
    }

    /// Whether an order paid at `local` leaves the same day.
    pub fn ships_today(&self, local: DateTime<Tz>) -> bool {
        self.working_days[local.weekday().num_days_from_monday() as usize]
            && local.hour() < self.cutoff_hour
    }
}
