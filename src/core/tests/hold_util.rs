//! Helpers for the candidate hold's tests: one connection on a scripted sidecar, driven
//! the way an application and the sidecar would.

use super::sidecar::{create_payload, map, Sidecar};
use crate::core::{
    CandidateHold, ConnectionCall, ConnectionEvent, ConnectionId, ConnectionOptions, Event,
};
use crate::protocol::messages::{IceCandidate, SessionDescription};
use rmpv::Value;

/// An offer as pion-ipc makes one before gathering: no candidates.
pub fn offer_sdp(ufrag: &str) -> String {
    format!(
        "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\na=group:BUNDLE 0\r\n\
         m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:{ufrag}\r\na=mid:0\r\na=sctp-port:5000\r\n"
    )
}

pub fn description(kind: &str, sdp: &str) -> SessionDescription {
    SessionDescription {
        kind: kind.into(),
        sdp: sdp.into(),
    }
}

/// A host candidate line of foundation `name`.
pub fn line(name: &str) -> String {
    format!("candidate:{name} 1 udp 2130706431 10.0.0.1 5000 typ host")
}

pub fn candidate(line: &str) -> IceCandidate {
    IceCandidate {
        candidate: line.into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
    }
}

/// What an application of one connection saw: `c:<foundation>` for a candidate, `g:<state>`
/// for a gathering change (the state read when it fires), `ok`/`err` for a settled call.
pub fn seen(s: &mut Sidecar, pc: ConnectionId) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(event) = s.session.poll_event() {
        match event {
            Event::Connection(id, ConnectionEvent::IceCandidate(c)) if id == pc => {
                let name = c
                    .candidate
                    .split([':', ' '])
                    .nth(1)
                    .unwrap_or("")
                    .to_owned();
                out.push(format!("c:{name}"));
            }
            Event::Connection(id, ConnectionEvent::IceGatheringStateChange) if id == pc => {
                let state = s.session.connection(pc).unwrap().ice_gathering_state();
                out.push(format!("g:{state}"));
            }
            Event::Settle(_, Ok(_)) => out.push("ok".into()),
            Event::Settle(_, Err(_)) => out.push("err".into()),
            _ => {}
        }
    }
    out
}

/// One connection of a scripted sidecar.
pub struct Peer {
    pub s: Sidecar,
    pub pc: ConnectionId,
    pub pc_id: String,
}

impl Peer {
    pub fn new(pc_id: &str, hold: CandidateHold) -> Peer {
        let mut s = Sidecar::new();
        let options = ConnectionOptions {
            candidate_hold: hold,
            ..Default::default()
        };
        let pc =
            s.session
                .create_connection(pc_id.into(), Ok(create_payload(pc_id)), options, s.now);
        s.answer_first("pc.create", &[]);
        Peer {
            s,
            pc,
            pc_id: pc_id.into(),
        }
    }

    /// Makes `call` and leaves its request waiting.
    pub fn start(&mut self, call: ConnectionCall) {
        let token = self.s.token();
        self.s.session.call(self.pc, call, token, self.s.now);
    }

    /// Makes `call`; the sidecar answers it ok.
    pub fn call(&mut self, call: ConnectionCall) {
        let method = call.method();
        self.start(call);
        self.s.answer_first(method, &[]);
    }

    pub fn set_local(&mut self, kind: &str, sdp: &str) {
        self.call(ConnectionCall::SetLocalDescription(description(kind, sdp)));
    }

    pub fn set_remote(&mut self, d: SessionDescription) {
        self.call(ConnectionCall::SetRemoteDescription(d));
    }

    pub fn add(&mut self, line: &str) {
        self.call(ConnectionCall::AddIceCandidate(candidate(line)));
    }

    /// The sidecar reports one of the connection's own candidates.
    pub fn gathered(&mut self, line: &str) {
        let payload = map(&[
            ("candidate", Value::from(line)),
            ("sdpMid", Value::from("0")),
            ("sdpMLineIndex", Value::from(0)),
        ]);
        let pc_id = self.pc_id.clone();
        self.s.event(&pc_id, "", "pc.icecandidate", &payload);
    }

    /// The sidecar reports a gathering state.
    pub fn gathering(&mut self, state: &str) {
        let pc_id = self.pc_id.clone();
        let payload = map(&[("state", Value::from(state))]);
        self.s
            .event(&pc_id, "", "pc.icegatheringstatechange", &payload);
    }

    pub fn seen(&mut self) -> Vec<String> {
        seen(&mut self.s, self.pc)
    }

    pub fn local_description(&self) -> SessionDescription {
        let c = self.s.session.connection(self.pc).unwrap();
        c.local_description().expect("a local description is set")
    }
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
