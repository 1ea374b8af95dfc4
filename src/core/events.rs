//! What the core hands out: the ids of the objects JavaScript holds, the events it must see
//! (in order) and the values promises settle with.

use crate::error::Error;
use crate::protocol::messages::{IceCandidate, SctpStats};
use crate::protocol::Frame;
use bytes::Bytes;
use std::collections::VecDeque;

/// An RTCPeerConnection of a [`Session`](super::Session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// An RTCDataChannel of a [`Session`](super::Session). Channel and connection ids come from
/// one counter, so one table of JavaScript objects can hold both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub u64);

/// A promise the driver registered; the core settles each one exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SettleToken(pub u64);

/// A JavaScript object of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Object {
    Connection(ConnectionId),
    Channel(ChannelId),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionEvent {
    ConnectionStateChange,
    IceConnectionStateChange,
    IceGatheringStateChange,
    SignalingStateChange,
    SelectedCandidatePairChange,
    IceCandidate(IceCandidate),
    /// The remote opened a channel; its label and `ordered` are readable at once.
    DataChannel(ChannelId),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChannelEvent {
    Open,
    Message { binary: bool, data: Bytes },
    Error(String),
    BufferedAmountLow,
    Close,
}

/// The value a settled promise resolves with.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Unit,
    /// The raw response of `ipc.request()`.
    Frame(Box<Frame>),
    /// createOffer, createAnswer, restartIce: `kind` is "offer" or "answer".
    Description {
        kind: &'static str,
        sdp: String,
    },
    SctpStats(Option<SctpStats>),
}

/// One thing JavaScript must see, in the order [`Session::poll_event`](super::Session)
/// hands them out.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Connection(ConnectionId, ConnectionEvent),
    Channel(ChannelId, ChannelEvent),
    Settle(SettleToken, Result<Outcome, Error>),
    /// Nothing more will be emitted on this object: JavaScript may let go of it.
    Release(Object),
    /// Only a call of the user's (close()) can make this object emit from now on: it may be
    /// held weakly.
    Weaken(Object),
    /// A line for the PionIpc's logger (without its `[pion-ipc] ` prefix).
    Log(String),
    /// A sidecar event to re-emit raw on the PionIpc (only while that is switched on).
    SidecarEvent(Box<Frame>),
}

/// An entry of the event queue: most are ready; a `bufferedamountlow` after an
/// acknowledgement is checked again when it is taken out, since JavaScript may have sent
/// the amount above the threshold again by then; a connection that skipped 'connecting'
/// becomes 'connected' only when that change is taken out, after the listeners of its
/// 'connecting' ran.
#[derive(Debug)]
pub enum Queued {
    Ready(Event),
    LowIfStillLow(ChannelId),
    Connected(ConnectionId),
}

/// The events waiting for JavaScript, in order.
#[derive(Debug, Default)]
pub struct EventQueue {
    entries: VecDeque<Queued>,
}

impl EventQueue {
    pub fn push(&mut self, event: Event) {
        self.entries.push_back(Queued::Ready(event));
    }

    pub fn push_low_if_still_low(&mut self, channel: ChannelId) {
        self.entries.push_back(Queued::LowIfStillLow(channel));
    }

    pub fn push_connected(&mut self, connection: ConnectionId) {
        self.entries.push_back(Queued::Connected(connection));
    }

    pub fn pop(&mut self) -> Option<Queued> {
        self.entries.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
