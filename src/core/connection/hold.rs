//! The offering side's candidate hold (issue 15; PROTOCOL.md, trap 15). The offerer is
//! ICE-controlling; if the answerer's checks reach it before the answerer's candidates, it
//! knows the answerer only as peer-reflexive and pion/ice waits 1000 ms before nominating
//! such a pair. Holding the offerer's own candidates until the answerer's have reached it
//! lets the answerer's checks find known candidates.
//!
//! From the moment a local offer is handed to `pc.setLocalDescription` (sent, not only
//! answered: the sidecar's events are not ordered with its answers, trap 5, and its first
//! candidates can overtake the answer), the connection's own `icecandidate` events are held.
//! They are released, in their order, once `setRemoteDescription(answer)` succeeded and one
//! of these happened: the answer's SDP carried `a=candidate` lines; a remote candidate that
//! is UDP and not a `.local` name was acknowledged by `pc.addIceCandidate`; the timeout,
//! counted from the answer applied (a remote that trickles nothing must be pinged first;
//! before the answer is applied no remote candidate can be added, so the clock would only
//! run out earlier for slow signalling). Then candidates flow as they come. A refused local
//! offer, or a local answer, opens the gate. Every local offer (an ICE restart's too) holds
//! again. An answer that has not been applied [`ANSWER_WAIT_LIMIT`] after the offer went out
//! releases them too: an application may wait for a first candidate before it sends its
//! offer (simple-peer's "ice candidates received before description" does), and its offer
//! would otherwise never go.
//!
//! The rule for the end of gathering (`icegatheringstatechange`; the core emits no
//! end-of-candidates event of its own, trap 16):
//! - while the answer is awaited, gathering-state changes are emitted at once, even though
//!   candidates are held: the hold's only reason then is the remote, and the remote of an
//!   application that does not trickle gets nothing before that application saw 'complete'
//!   and sent [`local_description`](super::Connection::local_description), which carries
//!   every gathered candidate and `a=end-of-candidates` whatever is held;
//! - once the answer is applied, a gathering-state change that comes while candidates are
//!   held is held behind them (all candidates, then the end of gathering): that wait is
//!   bounded by the timeout, so nothing can wait on it for ever.
//!
//! The `iceGatheringState` getter is the sidecar's at once, held event or not: an
//! application that polls it instead of listening never waits on the hold either.
//!
//! Why no application shape deadlocks, since nothing the remote needs to answer is held:
//! - trickle at once: the answer and the answerer's candidates do not depend on the
//!   offerer's candidates; the first acknowledged one (or the timeout) releases them;
//! - trickle with queueing: a remote candidate queued until the answer is applied is added
//!   after it; one added too early is refused (trap 17) and the timeout releases;
//! - non-trickle both ways: 'complete' is emitted while the answer is awaited, the offer is
//!   read with its candidates, the answer carries `a=candidate` lines and releases;
//! - non-trickle answer only: the offer goes out at once, the answer comes with its
//!   candidates and releases (or the timeout, if it has none);
//! - a remote on the old SDK (trickles, never holds): as the answerer it is "trickle at
//!   once"; as the offerer it does not hold, and the answering side here never holds;
//! - an application that sends its offer only once a candidate was emitted: the answer
//!   wait limit releases them, and it connects that much later (and may meet the 1000 ms
//!   peer-reflexive wait the hold is for).

use crate::core::events::{ConnectionEvent, ConnectionId, Event};
use crate::core::output::{SessionOutput, Timer};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long an offerer waits, after the answer is applied, for a first remote candidate
/// before it releases its own (PROTOCOL.md, trap 15: 250 ms measured 7.8 ms median).
pub const DEFAULT_CANDIDATE_HOLD: Duration = Duration::from_millis(250);

/// How long an offerer holds its candidates for an answer that is not applied: then they
/// go, so that nothing waits on them for ever (see the module's rule). Longer than a
/// signalling round trip usually takes, so that the hold keeps its use.
pub const ANSWER_WAIT_LIMIT: Duration = Duration::from_millis(1500);

/// Whether an offering connection holds its own candidates until the answerer's reached it
/// (the napi layer maps `candidateHold: false | { timeoutMs }` here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateHold {
    /// Candidates are emitted as the sidecar reports them (the old SDK's behaviour).
    Off,
    /// Held; released at the latest this long after the answer is applied.
    After(Duration),
}

impl Default for CandidateHold {
    fn default() -> Self {
        CandidateHold::After(DEFAULT_CANDIDATE_HOLD)
    }
}

/// The options of `new RTCPeerConnection()` that the core keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// At most this many bytes queued per channel (unbounded when `None`).
    pub max_buffered: Option<u64>,
    pub candidate_hold: CandidateHold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Candidates flow.
    Open,
    /// A local offer is set (or being set); the answer is awaited.
    AwaitingAnswer,
    /// The answer is applied; a remote candidate or the deadline is awaited.
    AwaitingRemote,
}

/// The hold's state: where it is and what it holds, in order.
#[derive(Debug)]
pub struct CandidateGate {
    setting: CandidateHold,
    stage: Stage,
    /// A qualifying remote candidate was acknowledged during this hold.
    remote_candidate: bool,
    /// Counts holds, so that a timer of an earlier one is ignored.
    generation: u64,
    held: VecDeque<ConnectionEvent>,
}

impl CandidateGate {
    pub fn new(setting: CandidateHold) -> Self {
        CandidateGate {
            setting,
            stage: Stage::Open,
            remote_candidate: false,
            generation: 0,
            held: VecDeque::new(),
        }
    }

    pub fn is_holding(&self) -> bool {
        self.stage != Stage::Open
    }

    /// A local offer goes to `pc.setLocalDescription`: hold (again), for an answer applied
    /// within [`ANSWER_WAIT_LIMIT`].
    pub fn on_local_offer(&mut self, id: ConnectionId, out: &mut SessionOutput, now: Instant) {
        if self.setting == CandidateHold::Off {
            return;
        }
        self.stage = Stage::AwaitingAnswer;
        self.remote_candidate = false;
        self.generation += 1;
        let timer = Timer::CandidateHold {
            connection: id,
            generation: self.generation,
        };
        out.timers.set(now + ANSWER_WAIT_LIMIT, timer);
    }

    /// The answer was applied; `candidates`: its SDP carried `a=candidate` lines.
    pub fn on_answer_applied(
        &mut self,
        id: ConnectionId,
        out: &mut SessionOutput,
        candidates: bool,
        now: Instant,
    ) {
        if self.stage != Stage::AwaitingAnswer {
            return;
        }
        if candidates || self.remote_candidate {
            return self.release(id, out);
        }
        self.stage = Stage::AwaitingRemote;
        // The answer wait limit's timer is for the stage that ended.
        self.generation += 1;
        if let CandidateHold::After(timeout) = self.setting {
            let timer = Timer::CandidateHold {
                connection: id,
                generation: self.generation,
            };
            out.timers.set(now + timeout, timer);
        }
    }

    /// A qualifying remote candidate was acknowledged.
    pub fn on_remote_candidate(&mut self, id: ConnectionId, out: &mut SessionOutput) {
        match self.stage {
            Stage::AwaitingRemote => self.release(id, out),
            Stage::AwaitingAnswer => self.remote_candidate = true,
            Stage::Open => {}
        }
    }

    /// A timer of this hold: the answer wait limit (while the answer is awaited) or the
    /// timeout after the answer. Each stage has its own generation, so that the answer wait
    /// limit of a hold never cuts short the timeout after its answer.
    pub fn on_timer(&mut self, id: ConnectionId, out: &mut SessionOutput, generation: u64) {
        if self.stage != Stage::Open && generation == self.generation {
            self.release(id, out);
        }
    }

    /// Nothing is waited for any more (a refused offer, a local answer).
    pub fn open(&mut self, id: ConnectionId, out: &mut SessionOutput) {
        if self.stage != Stage::Open {
            self.release(id, out);
        }
    }

    /// One of the connection's own candidates.
    pub fn candidate(&mut self, id: ConnectionId, out: &mut SessionOutput, event: ConnectionEvent) {
        if self.stage == Stage::Open {
            out.emit(Event::Connection(id, event));
        } else {
            self.held.push_back(event);
        }
    }

    /// A change of the gathering state: see the module's rule.
    pub fn gathering(&mut self, id: ConnectionId, out: &mut SessionOutput) {
        let event = ConnectionEvent::IceGatheringStateChange;
        if self.stage == Stage::AwaitingRemote && !self.held.is_empty() {
            self.held.push_back(event);
        } else {
            out.emit(Event::Connection(id, event));
        }
    }

    /// The connection closed or failed: what is held is never emitted.
    pub fn drop_held(&mut self) {
        self.stage = Stage::Open;
        self.held.clear();
    }

    fn release(&mut self, id: ConnectionId, out: &mut SessionOutput) {
        self.stage = Stage::Open;
        for event in self.held.drain(..) {
            out.emit(Event::Connection(id, event));
        }
    }
}

/// Whether a remote candidate, once acknowledged, proves the answerer's candidates reach
/// the offerer: UDP and not an mDNS (`.local`) name, which pion-ipc 0.4.1 cannot resolve.
pub fn releases_hold(candidate: &str) -> bool {
    let line = candidate.trim().trim_start_matches("a=");
    let Some(rest) = line.strip_prefix("candidate:") else {
        return false;
    };
    // foundation component transport priority address port typ type …
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    match (fields.get(2), fields.get(4)) {
        (Some(transport), Some(address)) => {
            transport.eq_ignore_ascii_case("udp")
                && !address.to_ascii_lowercase().ends_with(".local")
        }
        _ => false,
    }
}

/// Whether an SDP carries `a=candidate` lines.
pub fn carries_candidates(sdp: &str) -> bool {
    sdp.lines()
        .any(|l| l.trim_start().starts_with("a=candidate:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_udp_candidates_that_are_not_mdns_names_release() {
        let host = "candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host";
        assert!(releases_hold(host));
        assert!(releases_hold(&format!("a={host}")));
        assert!(releases_hold(
            "candidate:1 1 UDP 1 192.0.2.1 9 typ srflx raddr 0.0.0.0 rport 0"
        ));
        assert!(!releases_hold(
            "candidate:1 1 tcp 1 10.0.0.1 9 typ host tcptype passive"
        ));
        assert!(!releases_hold(
            "candidate:1 1 udp 1 3f0c-1a.local 9 typ host"
        ));
        assert!(!releases_hold("candidate:1 1 udp 1 AB.LOCAL 9 typ host"));
        assert!(!releases_hold(""));
        assert!(!releases_hold("candidate:1 1 udp"));
    }

    #[test]
    fn an_sdp_carries_candidates_only_with_candidate_lines() {
        assert!(carries_candidates(
            "v=0\r\nm=application 9\r\na=candidate:1 1 udp 1 a 9 typ host\r\n"
        ));
        assert!(!carries_candidates(
            "v=0\r\nm=application 9\r\na=end-of-candidates\r\n"
        ));
    }
}
