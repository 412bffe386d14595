//! After a kill -9: is every handoff a buyer was told of in the service's `handoffs` table?

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct StoreCheck {
    /// `handoff` replies buyers received.
    pub told: usize,
    /// Rows in the `handoffs` table.
    pub stored: u64,
    /// Told but not stored: must be 0.
    pub missing: u64,
}

impl StoreCheck {
    pub fn line(&self) -> String {
        format!(
            "{} handoffs told to buyers, {} rows in `handoffs`, {} missing (must be 0)",
            self.told, self.stored, self.missing
        )
    }
}

/// Counts, per conversation, the handoffs told against those stored: a conversation may be
/// handed off several times in a run (the agent resolves each case).
pub fn check(database: &Path, told: &[String]) -> anyhow::Result<StoreCheck> {
    let connection = rusqlite::Connection::open(database)
        .with_context(|| format!("cannot open {}", database.display()))?;
    let mut statement =
        connection.prepare("SELECT conversation, COUNT(*) FROM handoffs GROUP BY conversation")?;
    let stored: HashMap<String, u64> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?
        .collect::<Result<_, _>>()?;
    let mut told_by: HashMap<&str, u64> = HashMap::new();
    for conversation in told {
        *told_by.entry(conversation).or_default() += 1;
    }
    let missing = told_by
        .iter()
        .map(|(c, n)| n.saturating_sub(stored.get(*c).copied().unwrap_or(0)))
        .sum();
    Ok(StoreCheck {
        told: told.len(),
        stored: stored.values().sum(),
        missing,
    })
}
