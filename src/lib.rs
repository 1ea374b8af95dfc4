//! pion-node-rs: WebRTC DataChannels for Node.js over the pion-ipc sidecar.

pub mod core;
pub mod error;
pub mod log;
pub mod protocol;
pub mod sidecar;

// Test builds use napi-derive's noop macros (see Cargo.toml), which leave the napi layer
// unreferenced.
#[allow(dead_code)]
mod node;
