//! Switchboard's SIP protocol core.
//!
//! What it owns: the message layer (parse, typed access, edit, print), framing
//! for stream transports, the transaction state machines of RFC 3261 §17 with
//! their timers, dialogs (§12) and the requests built in them, wire helpers
//! a B2BUA needs (our Via and Contact, end-to-end headers), and server-side
//! digest authentication.
//!
//! What it must not do: IO or clock reads. Every function that depends on time
//! takes `now` as an argument; every output is returned to the caller, who
//! sends the bytes and arms the timers. Identifiers (branches, tags, Call-IDs)
//! come from an [`ids::IdGenerator`] that tests seed, so the bytes repeat.

pub mod auth;
pub mod build;
pub mod dialog;
pub mod framing;
pub mod header;
pub mod ids;
pub mod message;
pub mod reliable;
pub mod session_timer;
pub mod transaction;
pub mod validate;

pub use header::{CSeq, NameAddr, Params, Scheme, Uri, Via};
pub use message::{HeaderName, Message, Method, ParseError, MAX_MESSAGE_SIZE};
