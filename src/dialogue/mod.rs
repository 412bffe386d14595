//! The conversation step: what a buyer's arrival or message does to their conversation,
//! apart from any socket.
//!
//! [`step`] is pure: from the shop, the conversation, the message and where the humans are,
//! it makes the [`Exchange`](crate::store::Exchange) to commit (ids, the case record, its
//! webhook events) and what follows the commit. [`BuyerSession`] runs those steps for one
//! live buyer against the store and the desk, and says what the buyer is to be sent
//! ([`ToBuyer`]); transport only renders that into frames. `chat` runs the same steps.

mod session;
pub mod step;

pub use session::{Arrival, BuyerSession, CaseUpdate, NotOpened, ToBuyer};
pub use step::{AfterCommit, Humans, Step};
