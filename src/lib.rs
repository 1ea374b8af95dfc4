//! pion-node-rs: WebRTC DataChannels for Node.js over the pion-ipc sidecar.

pub mod error;
pub mod protocol;
pub mod sidecar;

mod node;
