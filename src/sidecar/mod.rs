//! The pion-ipc child process: finding it, running it, writing its stdin, reading its
//! stdout and stderr, and ending it. It knows nothing of requests or connections: what it
//! reads reaches its owner as [`Notice`]s (frames, log lines, its exit) through a
//! [`NoticeSink`]; what the owner writes are bytes the core encoded.

pub mod backlog;
pub mod lookup;
mod outbox;
pub mod process;
mod shared;
pub mod sink;
mod stderr;
mod stdout;

pub use backlog::{Backlog, Ticket, FRAME_OVERHEAD};
pub use lookup::{find_binary, Found, LookupInput, Refusal};
pub use process::Sidecar;
#[cfg(unix_io)]
pub use sink::LoopRead;
pub use sink::{Kill, Notice, NoticeSink};
