//! The signalling calls that move the candidate hold and the local description: what is
//! noted when they go out and what their answers mean (see `hold.rs` for the rule).

use super::hold::{carries_candidates, releases_hold};
use super::Connection;
use crate::core::connection_call::ConnectionCall;
use crate::core::output::SessionOutput;
use crate::core::pending::Signal;
use crate::protocol::messages::SessionDescription;
use std::time::Instant;

impl Connection {
    /// The signal `call` is, noted as it goes out; `None` for the other calls.
    pub(super) fn signal_sent(
        &mut self,
        call: &ConnectionCall,
        out: &mut SessionOutput,
        now: Instant,
    ) -> Option<Signal> {
        match call {
            ConnectionCall::SetLocalDescription(d) => {
                self.local.on_sent(&d.sdp);
                if d.kind == "offer" {
                    self.gate.on_local_offer(self.id, out, now);
                }
                Some(Signal::Local {
                    kind: d.kind.clone(),
                    sdp: d.sdp.clone(),
                })
            }
            ConnectionCall::SetRemoteDescription(d) => Some(Signal::Remote {
                kind: d.kind.clone(),
                sdp: d.sdp.clone(),
                candidates: carries_candidates(&d.sdp),
            }),
            ConnectionCall::AddIceCandidate(c) if releases_hold(&c.candidate) => {
                Some(Signal::RemoteCandidate)
            }
            _ => None,
        }
    }

    /// The answer to a signalling call (its promise is settled already).
    pub(crate) fn on_signal_reply(
        &mut self,
        out: &mut SessionOutput,
        signal: Signal,
        ok: bool,
        now: Instant,
    ) {
        if !self.listening {
            return;
        }
        let id = self.id;
        match signal {
            Signal::Local { kind, sdp } => {
                let offer = kind == "offer";
                if ok {
                    let description = SessionDescription { kind, sdp };
                    self.descriptions.local_set(description.clone());
                    self.local.on_set(description);
                }
                // A refused offer holds for nothing; an answer set means this side answers.
                if !ok && offer || ok && !offer {
                    self.gate.open(id, out);
                }
            }
            Signal::Remote {
                kind,
                sdp,
                candidates,
            } if ok => {
                let answer = kind == "answer";
                self.descriptions
                    .remote_set(SessionDescription { kind, sdp });
                if answer {
                    self.gate.on_answer_applied(id, out, candidates, now)
                }
            }
            Signal::RemoteCandidate if ok => self.gate.on_remote_candidate(id, out),
            Signal::Remote { .. } | Signal::RemoteCandidate => {}
        }
    }

    /// The hold's timeout passed.
    pub(crate) fn on_hold_timer(&mut self, out: &mut SessionOutput, generation: u64) {
        if self.listening {
            self.gate.on_timer(self.id, out, generation);
        }
    }

    /// The local description with the candidates gathered for it (PROTOCOL.md, trap 16):
    /// `None` before a `setLocalDescription` succeeded.
    pub fn local_description(&self) -> Option<SessionDescription> {
        self.local.assemble()
    }

    /// `currentLocalDescription` (with its candidates when it is the one set last).
    pub fn current_local_description(&self) -> Option<SessionDescription> {
        self.descriptions
            .current_local
            .as_ref()
            .map(|d| self.local.with_candidates(d))
    }

    /// `pendingLocalDescription` (with its candidates when it is the one set last).
    pub fn pending_local_description(&self) -> Option<SessionDescription> {
        self.descriptions
            .pending_local
            .as_ref()
            .map(|d| self.local.with_candidates(d))
    }

    /// `remoteDescription`: the pending remote description if any, else the current one.
    pub fn remote_description(&self) -> Option<&SessionDescription> {
        self.descriptions.remote()
    }

    pub fn current_remote_description(&self) -> Option<&SessionDescription> {
        self.descriptions.current_remote.as_ref()
    }

    pub fn pending_remote_description(&self) -> Option<&SessionDescription> {
        self.descriptions.pending_remote.as_ref()
    }

    /// The standard API's `signalingState`: implied by the accepted descriptions.
    pub fn described_signaling_state(&self) -> &'static str {
        self.descriptions.signaling_state()
    }

    /// Whether this connection's own candidates are being held now.
    pub fn holds_candidates(&self) -> bool {
        self.gate.is_holding()
    }
}
