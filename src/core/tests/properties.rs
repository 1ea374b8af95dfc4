//! Property tests: random orders of commands, answers, sidecar events and time, then the
//! sidecar's end. After every step the invariants hold: no message on a channel that did
//! not open, 'closed' is final, bufferedAmount is exactly the model's (never below zero)
//! and 0 when connecting or closed, and every settle token is settled exactly once. What goes
//! to the sidecar is checked too: no `dc.create` for a closed channel, no `dc.close` for a
//! channel the sidecar never knew, no `pc.close` before `pc.create` succeeded, and a
//! `pc.close` as soon as a `pc.create` the close waited for succeeds.

use super::sidecar::{amount, create_payload, map, state_change, Sent, Sidecar, TIMEOUT};
use crate::core::{
    ChannelEvent, ChannelId, ConnectionCall, ConnectionEvent, ConnectionId, Event, ReadyState,
    SettleToken, CLOSE_DRAIN_LIMIT,
};
use proptest::prelude::*;
use rmpv::Value;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const PC_IDS: [&str; 2] = ["p0", "p1"];
const LABELS: [&str; 3] = ["a", "b", "c"];
const CONN_STATES: [&str; 7] = [
    "",
    "new",
    "connecting",
    "connected",
    "disconnected",
    "failed",
    "closed",
];
const ICE_STATES: [&str; 6] = ["", "new", "checking", "connected", "completed", "failed"];
const CHANNEL_EVENTS: [&str; 6] = [
    "dc.open",
    "dc.message",
    "dc.close",
    "dc.error",
    "dc.bufferedamountlow",
    "pc.datachannel",
];

#[derive(Debug, Clone)]
enum Op {
    CreateChannel {
        conn: usize,
        label: usize,
    },
    Send {
        channel: usize,
        len: usize,
    },
    CloseChannel {
        channel: usize,
    },
    CloseConnection {
        conn: usize,
    },
    SetThreshold {
        channel: usize,
        threshold: u64,
    },
    Call {
        conn: usize,
        kind: usize,
    },
    SidecarEvent {
        conn: usize,
        label: usize,
        kind: usize,
    },
    StateChange {
        conn: usize,
        state: usize,
        ice: usize,
    },
    Answer {
        pick: usize,
        ok: bool,
        amount: Option<u64>,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..2usize, 0..3usize).prop_map(|(conn, label)| Op::CreateChannel { conn, label }),
        4 => (0..8usize, 0..3000usize).prop_map(|(channel, len)| Op::Send { channel, len }),
        1 => (0..8usize).prop_map(|channel| Op::CloseChannel { channel }),
        1 => (0..2usize).prop_map(|conn| Op::CloseConnection { conn }),
        1 => (0..8usize, 0..4000u64).prop_map(|(channel, threshold)| Op::SetThreshold { channel, threshold }),
        1 => (0..2usize, 0..3usize).prop_map(|(conn, kind)| Op::Call { conn, kind }),
        3 => (0..2usize, 0..3usize, 0..6usize)
            .prop_map(|(conn, label, kind)| Op::SidecarEvent { conn, label, kind }),
        1 => (0..2usize, 0..7usize, 0..6usize).prop_map(|(conn, state, ice)| Op::StateChange { conn, state, ice }),
        6 => (0..64usize, prop::bool::weighted(0.85), prop::option::of(0..5000u64))
            .prop_map(|(pick, ok, amount)| Op::Answer { pick, ok, amount }),
        2 => prop_oneof![0..30u64, 4000..6000u64, 9000..11000u64].prop_map(|ms| Op::Advance { ms }),
    ]
}

/// What the test expects of one channel.
#[derive(Debug, Default)]
struct ChannelModel {
    opened: bool,
    closed_event: bool,
    closed_state: bool,
    unacked: i64,
    reported: u64,
}

struct Run {
    s: Sidecar,
    conns: Vec<ConnectionId>,
    /// Channels in the order the test learnt of them.
    channels: Vec<ChannelId>,
    models: HashMap<ChannelId, ChannelModel>,
    /// The newest channel of each (pcId, label): the one a request of that label is from.
    newest: HashMap<(String, String), ChannelId>,
    /// Waiting requests with the channel they are from and when they time out.
    requests: Vec<(Sent, Option<ChannelId>, Instant)>,
    issued: Vec<SettleToken>,
    settled: HashMap<SettleToken, usize>,
    closed_connections: Vec<ConnectionId>,
    /// (pcId, label) pairs the sidecar has known: a `dc.create` answered ok, or announced.
    sidecar_knows: HashSet<(String, String)>,
    /// pcIds whose `pc.create` was answered ok.
    created: HashSet<String>,
    /// Connections close() was called on.
    close_called: HashSet<ConnectionId>,
    /// When a connection close() was called on turned 'closed' (its wait for `pc.create`
    /// began then, if that was unanswered).
    closed_at: HashMap<ConnectionId, Instant>,
}

impl Run {
    fn new() -> Self {
        let mut s = Sidecar::new();
        let conns = PC_IDS
            .iter()
            .map(|id| {
                let payload = Ok(create_payload(id));
                s.session
                    .create_connection((*id).into(), payload, Default::default(), s.now)
            })
            .collect();
        let mut run = Run {
            s,
            conns,
            channels: Vec::new(),
            models: HashMap::new(),
            newest: HashMap::new(),
            requests: Vec::new(),
            issued: Vec::new(),
            settled: HashMap::new(),
            closed_connections: Vec::new(),
            sidecar_knows: HashSet::new(),
            created: HashSet::new(),
            close_called: HashSet::new(),
            closed_at: HashMap::new(),
        };
        run.after_step();
        run
    }

    fn learn_channel(&mut self, id: ChannelId) {
        let ch = self.s.session.channel(id).expect("a new channel is known");
        let pc_id = self.s.pc_id(ch.connection());
        self.newest.insert((pc_id, ch.label().to_owned()), id);
        self.channels.push(id);
        self.models.insert(id, ChannelModel::default());
    }

    fn pick_channel(&self, n: usize) -> Option<ChannelId> {
        (!self.channels.is_empty()).then(|| self.channels[n % self.channels.len()])
    }

    fn token(&mut self) -> SettleToken {
        let token = self.s.token();
        self.issued.push(token);
        token
    }

    fn model(&mut self, id: ChannelId) -> Option<&mut ChannelModel> {
        self.models.get_mut(&id).filter(|m| !m.closed_state)
    }

    /// The effect of an answer (or failure) of `request` on the model.
    fn answered(&mut self, request: &Sent, from: Option<ChannelId>, ok: Option<&[u8]>) {
        let Some(model) = from.and_then(|id| self.model(id)) else {
            return;
        };
        let valid = ok
            .and_then(|p| {
                crate::protocol::messages::decode::<crate::protocol::messages::BufferedAmount>(p)
                    .ok()
            })
            .and_then(|b| b.buffered_amount)
            .filter(|v| v.is_finite() && *v >= 0.0);
        match request.method.as_str() {
            "dc.send" => {
                model.unacked -= request.payload.len() as i64;
                if let Some(v) = valid {
                    model.reported = v as u64;
                }
            }
            "dc.getBA" => {
                if let Some(v) = valid {
                    model.reported = v as u64;
                }
            }
            _ => {}
        }
    }

    /// What the sidecar knows after `request` succeeded; a close that waited for this
    /// `pc.create` (and not for longer than the drain limit) sends `pc.close` at once.
    fn answered_ok(&mut self, request: &Sent, now: Instant) {
        let key = (request.pc_id.clone(), request.dc_label.clone());
        match request.method.as_str() {
            "dc.create" => {
                self.sidecar_knows.insert(key);
            }
            "pc.create" => {
                self.created.insert(request.pc_id.clone());
                let at = PC_IDS.iter().position(|id| *id == request.pc_id).unwrap();
                let waited = self.closed_at.get(&self.conns[at]);
                if waited.is_some_and(|t| now < *t + CLOSE_DRAIN_LIMIT) {
                    self.read_requests();
                    assert!(
                        self.requests
                            .iter()
                            .any(|(r, ..)| r.method == "pc.close" && r.pc_id == request.pc_id),
                        "pc.close once the pc.create a close waited for succeeded"
                    );
                }
            }
            _ => {}
        }
    }

    fn step(&mut self, op: Op) {
        let now = self.s.now;
        match op {
            Op::CreateChannel { conn, label } => {
                let created = self.s.session.create_channel(
                    self.conns[conn],
                    LABELS[label].into(),
                    true,
                    now,
                );
                if let Ok(id) = created {
                    self.learn_channel(id);
                }
            }
            Op::Send { channel, len } => {
                let Some(id) = self.pick_channel(channel) else {
                    return;
                };
                let data = vec![1u8; len];
                if self.s.session.send(id, &data, true, now).is_ok() {
                    self.model(id).expect("send on an open channel").unacked += len as i64;
                }
            }
            Op::CloseChannel { channel } => {
                let Some(id) = self.pick_channel(channel) else {
                    return;
                };
                let token = self.token();
                self.s.session.close_channel(id, token, now);
            }
            Op::CloseConnection { conn } => {
                self.close_called.insert(self.conns[conn]);
                let token = self.token();
                self.s
                    .session
                    .close_connection(self.conns[conn], token, now);
            }
            Op::SetThreshold { channel, threshold } => {
                let Some(id) = self.pick_channel(channel) else {
                    return;
                };
                self.s.session.set_threshold(id, threshold, now);
            }
            Op::Call { conn, kind } => {
                let call = [
                    ConnectionCall::CreateOffer,
                    ConnectionCall::RestartIce,
                    ConnectionCall::GetSctpStats,
                ][kind]
                    .clone();
                let token = self.token();
                self.s.session.call(self.conns[conn], call, token, now);
            }
            Op::SidecarEvent { conn, label, kind } => {
                let event = CHANNEL_EVENTS[kind];
                let label = LABELS[label];
                if event == "pc.datachannel" {
                    self.sidecar_knows
                        .insert((PC_IDS[conn].to_owned(), label.to_owned()));
                }
                self.s.event_with(PC_IDS[conn], label, event, true, b"m");
            }
            Op::StateChange { conn, state, ice } => {
                let payload = state_change(CONN_STATES[state], ICE_STATES[ice]);
                self.s.event(PC_IDS[conn], "", "pc.statechange", &payload);
            }
            Op::Answer {
                pick,
                ok,
                amount: reported,
            } => {
                if self.requests.is_empty() {
                    return;
                }
                let (request, from, _) = self.requests.remove(pick % self.requests.len());
                let payload = match (request.method.as_str(), reported) {
                    ("dc.send" | "dc.getBA", Some(n)) => amount(n),
                    ("pc.createOffer" | "pc.restartIce", _) => map(&[("sdp", Value::from("v=0"))]),
                    ("pc.getSctpStats", _) => vec![0xc0],
                    _ => Vec::new(),
                };
                if ok {
                    self.s.answer(&request, &payload);
                    self.answered(&request, from, Some(&payload));
                    self.answered_ok(&request, now);
                } else {
                    self.s.refuse(&request, "boom");
                    self.answered(&request, from, None);
                }
            }
            Op::Advance { ms } => self.advance(Duration::from_millis(ms)),
        }
        self.after_step();
    }

    /// Moves the clock to each deadline in turn, as a driver would; a request that times
    /// out there is a failed answer for the model too.
    fn advance(&mut self, by: Duration) {
        let end = self.s.now + by;
        while let Some(at) = self.s.session.poll_timeout().filter(|at| *at <= end) {
            let at = at.max(self.s.now);
            self.s.now = at;
            let (expired, kept): (Vec<_>, Vec<_>) =
                self.requests.drain(..).partition(|(_, _, due)| *due <= at);
            self.requests = kept;
            for (request, from, _) in expired {
                self.answered(&request, from, None);
            }
            self.s.session.handle_timeout(at);
            self.read_requests();
            self.note_closes(at);
        }
        self.s.now = end;
    }

    /// Takes the requests written since the last look, each with the channel it is from.
    fn read_requests(&mut self) {
        self.s.read_stdin();
        let deadline = self.s.now + TIMEOUT;
        while let Some(request) = self.s.requests.pop_front() {
            let key = (request.pc_id.clone(), request.dc_label.clone());
            let from = self
                .newest
                .get(&key)
                .copied()
                .filter(|_| !request.dc_label.is_empty());
            match request.method.as_str() {
                "dc.create" => {
                    let closed = from.is_some_and(|id| self.models[&id].closed_state);
                    assert!(!closed, "dc.create for a closed channel: {key:?}");
                }
                "dc.close" => assert!(
                    self.sidecar_knows.contains(&key),
                    "dc.close for a channel the sidecar never knew: {key:?}"
                ),
                "pc.close" => assert!(
                    self.created.contains(&request.pc_id),
                    "pc.close before pc.create succeeded: {key:?}"
                ),
                _ => {}
            }
            self.requests.push((request, from, deadline));
        }
    }

    /// Notes when each connection close() was called on turned 'closed'.
    fn note_closes(&mut self, at: Instant) {
        for &pc in &self.conns {
            let closed = self.s.session.connection(pc).unwrap().connection_state() == "closed";
            if closed && self.close_called.contains(&pc) {
                self.closed_at.entry(pc).or_insert(at);
            }
        }
    }

    /// Reads what was written, takes the events and checks every invariant.
    fn after_step(&mut self) {
        self.read_requests();
        self.note_closes(self.s.now);
        while let Some(event) = self.s.session.poll_event() {
            self.check_event(event);
        }
        for &id in &self.channels {
            let ch = self
                .s
                .session
                .channel(id)
                .expect("channels are never forgotten here");
            let model = self.models.get_mut(&id).unwrap();
            let state = ch.ready_state();
            if model.closed_state {
                assert_eq!(state, ReadyState::Closed, "'closed' is final");
            }
            if state == ReadyState::Closed {
                model.closed_state = true;
                model.unacked = 0;
                model.reported = 0;
            }
            match state {
                ReadyState::Connecting | ReadyState::Closed => {
                    assert_eq!(ch.buffered_amount(), 0, "{state:?}")
                }
                _ => {
                    assert!(model.unacked >= 0, "more acknowledged than sent: {model:?}");
                    let expected = model.unacked as u64 + model.reported;
                    assert_eq!(ch.buffered_amount(), expected, "{model:?}");
                }
            }
        }
        for &pc in &self.conns {
            let state = self.s.session.connection(pc).unwrap().connection_state();
            if self.closed_connections.contains(&pc) {
                assert_eq!(state, "closed", "a closed connection stays closed");
            } else if state == "closed" {
                self.closed_connections.push(pc);
            }
        }
    }

    fn check_event(&mut self, event: Event) {
        match event {
            Event::Channel(id, event) => {
                let model = self.models.get_mut(&id).expect("events of known channels");
                assert!(!model.closed_event, "{event:?} after close");
                match event {
                    ChannelEvent::Open => {
                        assert!(!model.opened, "open twice");
                        model.opened = true;
                    }
                    ChannelEvent::Message { .. } => assert!(model.opened, "message before open"),
                    ChannelEvent::BufferedAmountLow => assert!(model.opened, "low before open"),
                    ChannelEvent::Close => model.closed_event = true,
                    ChannelEvent::Error(_) => {}
                }
            }
            Event::Connection(_, ConnectionEvent::DataChannel(id)) => self.learn_channel(id),
            Event::Settle(token, _) => {
                assert!(self.issued.contains(&token), "an unknown token");
                let count = self.settled.entry(token).or_default();
                *count += 1;
                assert_eq!(*count, 1, "settled twice");
            }
            _ => {}
        }
    }

    /// The sidecar's end: everything settles, every channel is closed.
    fn finish(&mut self, crash: bool) {
        // Today's behaviour, kept (and reported): the sidecar's end fails only connections
        // that are neither 'closed' nor 'failed', so the channels of one the sidecar itself
        // reported 'closed' (or that were opened after 'failed') stay as they are; so do
        // remote channels of a connection whose create failed (only a scripted sidecar
        // announces those).
        let skipped: Vec<ConnectionId> = self
            .conns
            .iter()
            .copied()
            .filter(|pc| {
                let c = self.s.session.connection(*pc).unwrap();
                let skipped_state = matches!(c.connection_state(), "closed" | "failed");
                (c.is_listening() && skipped_state) || c.creation_failed()
            })
            .collect();
        if crash {
            self.s
                .session
                .sidecar_exited(None, Some("SIGKILL".into()), self.s.now);
        } else {
            self.s.session.sidecar_stopped(self.s.now);
        }
        // Every waiting request failed with the sidecar.
        for (request, from, _) in std::mem::take(&mut self.requests) {
            self.answered(&request, from, None);
        }
        self.advance(Duration::from_secs(20));
        self.after_step();
        for token in &self.issued {
            assert_eq!(self.settled.get(token), Some(&1), "{token:?} settled once");
        }
        for id in &self.channels {
            let ch = self.s.session.channel(*id).unwrap();
            if skipped.contains(&ch.connection()) {
                continue;
            }
            assert_eq!(ch.ready_state(), ReadyState::Closed);
            assert!(self.models[id].closed_event, "every channel emitted close");
        }
        assert!(self.s.session.poll_transmit().is_none());
        assert_eq!(self.s.session.pending_requests(), 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // Found failures are printed, not written into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_for_any_order_of_inputs(
        ops in prop::collection::vec(op(), 1..80),
        crash in any::<bool>(),
    ) {
        let mut run = Run::new();
        for op in ops {
            run.step(op);
        }
        run.finish(crash);
    }

    #[test]
    fn invariants_hold_when_everything_is_answered_at_once(
        ops in prop::collection::vec(op(), 1..60),
    ) {
        // Each step is followed by answering every waiting request, as a fast sidecar would.
        let mut run = Run::new();
        for op in ops {
            run.step(op);
            while !run.requests.is_empty() {
                run.step(Op::Answer { pick: 0, ok: true, amount: Some(0) });
            }
        }
        run.finish(true);
    }
}
