//! The core driven by a scripted sidecar in memory: every state-machine sentence of
//! SPEC.md that the core covers, and property tests over random event orders.

mod buffered_amount;
mod candidate_hold;
mod candidate_shapes;
mod channel_state;
mod closing;
mod closing_early;
mod connection_state;
mod crash;
mod hold_util;
mod properties;
mod session_io;
mod sidecar;
mod standard_api;
mod supervisor;
