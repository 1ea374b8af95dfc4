//! The napi boundary: the only code that knows about JavaScript.

mod bridge;
mod convert;
mod errors;
mod ipc;
