//! The pion-ipc child process: finding it, running it, talking to it, restarting it.
//! No napi here: everything reaches its owner through a [`NoticeSink`].

pub mod backlog;
pub mod controller;
pub mod lookup;
pub mod pending;
pub mod process;

pub use backlog::{Backlog, Ticket};
pub use controller::{Ipc, IpcConfig};
pub use lookup::{find_binary, Found, LookupInput, Refusal};
#[cfg(unix_io)]
pub use process::StdoutReader;
pub use process::{Kill, Notice, NoticeSink, Sidecar};
