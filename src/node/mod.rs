//! The napi boundary: the only code that knows about JavaScript.

mod channel;
mod convert;
mod delivery;
mod driver;
mod errors;
mod hooks;
mod hot;
mod inbox;
mod ipc;
mod peer;
mod peer_options;
#[cfg(unix_io)]
mod poll;
mod pool;
mod registry;
mod tick;
mod values;
