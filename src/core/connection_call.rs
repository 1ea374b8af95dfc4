//! The promise methods of an RTCPeerConnection that the sidecar answers: the method each
//! sends, its payload, and how its answer is read.

use super::pending::Answer;
use crate::protocol::messages::{self, IceCandidate, SessionDescription};

/// A call of the user's on an RTCPeerConnection that the sidecar answers.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionCall {
    CreateOffer,
    CreateAnswer,
    /// A new offer with ICE restart, not yet applied.
    RestartIce,
    SetLocalDescription(SessionDescription),
    SetRemoteDescription(SessionDescription),
    AddIceCandidate(IceCandidate),
    GetSctpStats,
}

impl ConnectionCall {
    pub fn method(&self) -> &'static str {
        match self {
            ConnectionCall::CreateOffer => "pc.createOffer",
            ConnectionCall::CreateAnswer => "pc.createAnswer",
            ConnectionCall::RestartIce => "pc.restartIce",
            ConnectionCall::SetLocalDescription(_) => "pc.setLocalDescription",
            ConnectionCall::SetRemoteDescription(_) => "pc.setRemoteDescription",
            ConnectionCall::AddIceCandidate(_) => "pc.addIceCandidate",
            ConnectionCall::GetSctpStats => "pc.getSctpStats",
        }
    }

    pub fn payload(&self) -> Vec<u8> {
        match self {
            ConnectionCall::SetLocalDescription(d) | ConnectionCall::SetRemoteDescription(d) => {
                messages::encode(d)
            }
            ConnectionCall::AddIceCandidate(c) => messages::encode(c),
            _ => Vec::new(),
        }
    }

    pub fn answer(&self) -> Answer {
        match self {
            ConnectionCall::CreateOffer | ConnectionCall::RestartIce => {
                Answer::Description("offer")
            }
            ConnectionCall::CreateAnswer => Answer::Description("answer"),
            ConnectionCall::GetSctpStats => Answer::SctpStats,
            _ => Answer::Unit,
        }
    }
}
