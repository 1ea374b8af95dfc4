//! pion-node-rs: WebRTC DataChannels for Node.js over the pion-ipc sidecar.

pub mod channel;
pub mod core;
pub mod error;
pub mod events;
pub mod log;
pub mod peer;
pub mod protocol;
pub mod sidecar;

// Test builds use napi-derive's noop macros (see Cargo.toml), which leave the napi layer
// unreferenced.
#[allow(dead_code)]
mod node;
