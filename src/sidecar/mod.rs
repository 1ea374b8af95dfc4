//! The pion-ipc child process: finding it, running it, talking to it, restarting it.
//! No napi here: everything reaches its owner through a [`NoticeSink`].

pub mod backlog;
pub mod controller;
pub mod lookup;
mod outbox;
pub mod pending;
pub mod process;
mod stderr;
mod stdout;

pub use backlog::{Backlog, Ticket};
pub use controller::{Ipc, IpcConfig};
pub use lookup::{find_binary, Found, LookupInput, Refusal};
pub use outbox::{defer_writes, flush_deferred_writes};
pub use process::{Kill, Notice, NoticeSink, Sidecar};
#[cfg(unix_io)]
pub use stdout::StdoutReader;
