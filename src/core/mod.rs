//! The sans-IO core, in quinn-proto's shape: one [`Session`] per sidecar holds its
//! connections and channels as plain state machines, and one [`Supervisor`] decides when
//! the sidecar is started again. Neither reads a clock or does I/O: time comes in as `now`,
//! frames come in decoded and go out encoded, and everything JavaScript must see comes out
//! of [`Session::poll_event`] in order. Nothing here is wired to the napi layer yet.
//!
//! Layers, each using only those below it: `events` → `pending` → `outbox`,
//! `connection_call`; `registry`; `output` → `channel` → `connection` → `session`;
//! `supervisor` stands alone. A module's files (`channel/`, `connection/`, `session/`) add
//! methods to its one type and import nothing from each other but that type.

pub mod channel;
pub mod connection;
pub mod connection_call;
pub mod events;
pub mod outbox;
pub mod output;
pub mod pending;
pub mod registry;
pub mod session;
pub mod supervisor;

#[cfg(test)]
mod tests;

pub use channel::{Channel, ReadyState, CLOSE_DRAIN_LIMIT, MAX_MESSAGE_SIZE};
pub use connection::{Connection, MAX_LABEL_BYTES};
pub use connection_call::ConnectionCall;
pub use events::{
    ChannelEvent, ChannelId, ConnectionEvent, ConnectionId, Event, Object, Outcome, SettleToken,
};
pub use outbox::Request;
pub use registry::MAX_SENDS_IN_FLIGHT;
pub use session::Session;
pub use supervisor::{Action, Life, Supervisor, SupervisorConfig};
