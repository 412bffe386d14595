//! The operators' commands: what the people who write a shop's rules run on their own
//! machine, apart from the service. `chat` answers typed buyer messages as the service would,
//! `eval` measures the rules on a labelled file, and `check` finds mistakes in the files
//! before buyers see them.

pub mod chat;
pub mod check;
pub mod eval;
