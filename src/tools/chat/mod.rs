//! The operators' console (`autoresponder chat`): type as a buyer and see what the service
//! would answer, reply by reply, with each reply's kind and intent, how sure the FAQ was,
//! and the handoffs it would create.
//!
//! [`ChatSession`] is the whole console without a terminal: it takes one typed line and
//! returns the lines to print, so it is tested like the responder. [`run`] loads the shops
//! and wraps a session in a line editor (history, arrows, Ctrl-D).
//!
//! The answers are the service's own: the same conversation step (`dialogue::step`) with
//! the same conversation state between lines, including the case a handoff opens. Nothing is
//! stored and nothing is queued: what the step would commit is taken as committed, so after
//! a handoff the bot stays silent until `/resolve`.

mod session;
mod terminal;

pub use session::{ChatError, ChatSession, SILENT};
pub use terminal::{ChatArgs, run};
