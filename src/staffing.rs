//! `Staffing`: what the human side (the desk) tells the bot (the responder) for its away and
//! busy notices.

/// What the humans' side means for the bot's away and busy notices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Staffing {
    /// The shop has agents but none is at the desk.
    pub unstaffed: bool,
    /// Agents are there but the queue per available agent is over the shop's limit.
    pub overloaded: bool,
}
