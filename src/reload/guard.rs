//! What a reload may take away at once. Most of a shop's intents or FAQ entries vanishing in
//! one reload is far more often a file cut short (a failed copy, a half-saved edit) than an
//! operator's wish, so such a reload is refused unless the operator forces it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::shop::{Catalog, Shop};

/// How much of a shop's rules one reload may remove (`[reload]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReloadGuard {
    /// The share (0 to 1) of a shop's intents, or of its FAQ entries, one reload may remove;
    /// removing more is refused unless forced.
    pub max_removed_share: f64,
}

impl Default for ReloadGuard {
    fn default() -> Self {
        ReloadGuard {
            max_removed_share: 0.5,
        }
    }
}

/// Whether a reload is held to the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removals {
    /// Refused when it removes more than the guard allows.
    Guarded,
    /// The operator asked for it: whatever it removes.
    Forced,
}

impl ReloadGuard {
    /// Why `new` may not replace `old`: one sentence per shop and kind of rule that would lose
    /// more than the allowed share. Shops only in one of them are not compared (a new shop
    /// removes nothing; a shop whose folder is gone is no longer served).
    pub fn refusals(&self, old: &Catalog, new: &Catalog) -> Vec<String> {
        let mut refusals = Vec::new();
        for id in old.ids() {
            let (Some(before), Some(after)) = (old.get(id), new.get(id)) else {
                continue;
            };
            let intents = |shop: &Shop| -> Vec<(Arc<str>, Arc<str>)> {
                let names = shop.intents.intents().iter().map(|i| i.name.clone());
                names.zip(shop.origins.intents.iter().cloned()).collect()
            };
            let entries = |shop: &Shop| -> Vec<(Arc<str>, Arc<str>)> {
                let Some(faq) = &shop.faq else {
                    return Vec::new();
                };
                let ids = faq.entries().iter().map(|e| e.id.clone());
                ids.zip(shop.origins.faq.iter().cloned()).collect()
            };
            for (kind, was, is) in [
                ("intents", intents(before), intents(after)),
                ("FAQ entries", entries(before), entries(after)),
            ] {
                if let Some(refusal) = self.refusal(id, kind, &was, &is) {
                    refusals.push(refusal);
                }
            }
        }
        refusals
    }

    /// The refusal for one kind of rule of shop `shop`, given each rule's name and file before
    /// and after, if it loses too many.
    fn refusal(
        &self,
        shop: &str,
        kind: &str,
        was: &[(Arc<str>, Arc<str>)],
        is: &[(Arc<str>, Arc<str>)],
    ) -> Option<String> {
        let kept: HashSet<&str> = is.iter().map(|(name, _)| &**name).collect();
        // How many each file loses, so the operator knows where to look.
        let mut by_file: BTreeMap<&str, usize> = BTreeMap::new();
        for (name, file) in was {
            if !kept.contains(&**name) {
                *by_file.entry(file).or_default() += 1;
            }
        }
        let removed: usize = by_file.values().sum();
        if removed == 0 || removed as f64 <= self.max_removed_share * was.len() as f64 {
            return None;
        }
        let files: Vec<String> = by_file
            .iter()
            .map(|(file, n)| format!("{n} from {file}"))
            .collect();
        Some(format!(
            "this reload would remove {removed} of {} {kind} of shop {shop} ({}), more than the \
             {}% a reload may remove ([reload] max_removed_share); if that is meant, reload \
             with POST /api/admin/reload?force=true",
            was.len(),
            files.join(", "),
            (self.max_removed_share * 100.0).round(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(names: &[(&str, &str)]) -> Vec<(Arc<str>, Arc<str>)> {
        names
            .iter()
            .map(|(name, file)| (Arc::from(*name), Arc::from(*file)))
            .collect()
    }

    #[test]
    fn more_than_the_share_removed_is_refused_with_each_file_named() {
        let guard = ReloadGuard::default();
        let was = rules(&[
            ("a", "x.toml"),
            ("b", "x.toml"),
            ("c", "y.toml"),
            ("d", "y.toml"),
        ]);
        // Half removed, or one renamed: allowed.
        assert_eq!(guard.refusal("s", "intents", &was, &was[2..]), None);
        let renamed = rules(&[
            ("a2", "x.toml"),
            ("b", "x.toml"),
            ("c", "y.toml"),
            ("d", "y.toml"),
        ]);
        assert_eq!(guard.refusal("s", "intents", &was, &renamed), None);
        // Three of four: refused, with where they were.
        let refusal = guard.refusal("s", "intents", &was, &was[3..]).unwrap();
        assert!(
            refusal.starts_with(
                "this reload would remove 3 of 4 intents of shop s (2 from x.toml, 1 from y.toml)"
            ),
            "{refusal}"
        );
        assert!(refusal.contains("50%"), "{refusal}");
        // A shop that had none loses none.
        assert_eq!(guard.refusal("s", "FAQ entries", &[], &[]), None);
        let strict = ReloadGuard {
            max_removed_share: 0.0,
        };
        assert!(strict.refusal("s", "intents", &was, &was[1..]).is_some());
    }
}
