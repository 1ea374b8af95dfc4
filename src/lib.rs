//! pion-node-rs: WebRTC DataChannels for Node.js over the pion-ipc sidecar.

pub mod channel;
pub mod error;
pub mod events;
pub mod peer;
pub mod protocol;
pub mod sidecar;

mod node;
