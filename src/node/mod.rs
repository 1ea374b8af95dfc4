//! The napi boundary: the only code that knows about JavaScript.

mod bridge;
mod channel;
mod convert;
mod delivery;
mod errors;
mod ipc;
mod peer;
#[cfg(unix_io)]
mod poll;
mod pool;
mod values;
