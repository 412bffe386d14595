//! The operators' commands: what the people who write a shop's rules run beside the
//! service. `chat` answers typed buyer messages as the service would, `eval` measures the
//! rules on a labelled file, `check` finds mistakes in the files before buyers see them, and
//! `unmatched` lists what buyers asked that nothing could answer.

pub mod chat;
pub mod check;
pub mod eval;
pub mod unmatched;
