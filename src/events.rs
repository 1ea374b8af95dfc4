//! What the state machines hand to JavaScript: events on connections and channels, and the
//! values that settle promises. No napi here; `node/` turns these into JavaScript values.

use crate::channel::Channel;
use crate::protocol::messages::{CandidatePair, IceCandidate, SctpStats};
use crate::protocol::Frame;
use bytes::Bytes;
use std::sync::Arc;

#[derive(Debug)]
pub enum PeerEvent {
    ConnectionStateChange,
    IceConnectionStateChange,
    IceGatheringStateChange,
    SignalingStateChange,
    SelectedCandidatePairChange,
    IceCandidate(IceCandidate),
    /// The remote opened a channel.
    DataChannel(Arc<Channel>),
}

impl PeerEvent {
    pub fn name(&self) -> &'static str {
        match self {
            PeerEvent::ConnectionStateChange => "connectionstatechange",
            PeerEvent::IceConnectionStateChange => "iceconnectionstatechange",
            PeerEvent::IceGatheringStateChange => "icegatheringstatechange",
            PeerEvent::SignalingStateChange => "signalingstatechange",
            PeerEvent::SelectedCandidatePairChange => "selectedcandidatepairchange",
            PeerEvent::IceCandidate(_) => "icecandidate",
            PeerEvent::DataChannel(_) => "datachannel",
        }
    }
}

#[derive(Debug)]
pub enum ChannelEvent {
    Open,
    Message { binary: bool, data: Bytes },
    Error(String),
    BufferedAmountLow,
    Close,
}

impl ChannelEvent {
    pub fn name(&self) -> &'static str {
        match self {
            ChannelEvent::Open => "open",
            ChannelEvent::Message { .. } => "message",
            ChannelEvent::Error(_) => "error",
            ChannelEvent::BufferedAmountLow => "bufferedamountlow",
            ChannelEvent::Close => "close",
        }
    }
}

/// One thing to emit, addressed by the id of the connection or channel it belongs to.
#[derive(Debug)]
pub enum Emit {
    Peer(u64, PeerEvent),
    Channel(u64, ChannelEvent),
    /// Nothing more will be emitted on this object: JavaScript may let go of it.
    Release(u64),
    /// Only a call of the user's (close()) can make this object emit from now on (a failed
    /// connection, one never created): it is held weakly, so that one nobody references any
    /// more is collected.
    Weaken(u64),
}

/// The value a promise settles with.
#[derive(Debug)]
pub enum Output {
    Unit,
    Frame(Frame),
    Description { kind: &'static str, sdp: String },
    SctpStats(Option<SctpStats>),
}

pub use crate::protocol::messages::CandidateInfo;

/// The selected candidate pair as the getter shows it.
pub type SelectedPair = CandidatePair;
