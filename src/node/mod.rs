//! The napi boundary: the only code that knows about JavaScript.

mod bridge;
mod channel;
mod convert;
mod errors;
mod ipc;
mod peer;
#[cfg(unix_io)]
mod poll;
