//! The sans-IO core, in quinn-proto's shape: one [`Session`] per sidecar holds its
//! connections and channels as plain state machines, and one [`Supervisor`] decides when
//! the sidecar is started again. Neither reads a clock or does I/O: time comes in as `now`,
//! frames come in decoded and go out encoded, and everything JavaScript must see comes out
//! of [`Session::poll_event`] in order. Nothing here knows of napi.
//!
//! A driver (`node/driver/` in the addon, `tests/support/driver.rs` in the Rust tests) owns
//! a session on one thread (the JavaScript thread, in the addon) and, after every input
//! (a command, a decoded frame, a due timeout):
//! - writes [`Session::poll_transmit`] to the sidecar's stdin, once per tick;
//! - hands [`Session::poll_event`] to JavaScript until it returns `None` (a
//!   `bufferedamountlow` is checked again as it is taken out);
//! - arms one timer for [`Session::poll_timeout`] and calls [`Session::handle_timeout`];
//! - calls [`Session::forget`] once JavaScript's object is collected (after `Release` or
//!   `Weaken`): until then the object's state stays readable;
//! - reports the sidecar's end with [`Session::sidecar_exited`] or
//!   [`Session::sidecar_stopped`]; a restarted sidecar gets a new session.
//!
//! The [`Supervisor`] gets the facts of the current [`Life`] and returns what to do.
//!
//! Layers, each using only those below it: `events` → `pending` → `outbox`,
//! `connection_call`; `registry`; `output` → `channel` → `connection` → `session`;
//! `paused` (the events held for paused channels) uses only `events` and `id_map` (maps
//! keyed by the core's own ids, below all of them); `supervisor` stands alone. A module's
//! files (`channel/`, `connection/`, `session/`) add methods to its one type and import
//! nothing from each other but that type.

pub mod channel;
pub mod connection;
pub mod connection_call;
pub mod events;
pub mod id_map;
pub mod outbox;
pub mod output;
pub mod paused;
pub mod pending;
pub mod registry;
pub mod session;
pub mod supervisor;

#[cfg(test)]
mod tests;

pub use channel::{Channel, Counters, ReadyState, CLOSE_DRAIN_LIMIT, MAX_MESSAGE_SIZE};
pub use connection::hold::{CandidateHold, ConnectionOptions, DEFAULT_CANDIDATE_HOLD};
pub use connection::{Connection, MAX_LABEL_BYTES};
pub use connection_call::ConnectionCall;
pub use events::{
    ChannelEvent, ChannelId, ConnectionEvent, ConnectionId, Event, Object, Outcome, SettleToken,
};
pub use outbox::Request;
pub use registry::MAX_SENDS_IN_FLIGHT;
pub use session::Session;
pub use supervisor::{Action, Life, Supervisor, SupervisorConfig};
