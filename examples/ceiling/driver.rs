//! The ceiling's driver: one `core::Session` for its sidecar, owned by the task that runs the
//! benchmark, as the napi layer's driver owns one on the JavaScript thread. The sidecar's
//! reader thread hands each read's notices over as one [`Batch`]; the driver feeds them to the
//! session, hands the session's events to the benchmark (`on_event`), arms one deadline for
//! `poll_timeout()` and writes `poll_transmit()` to stdin once per batch.

use crate::phases::{Phase, Rx};
use pion_node_rs::core::{
    ChannelEvent, ChannelId, ConnectionCall, ConnectionEvent, ConnectionId, Event, Outcome,
    Session, SettleToken,
};
use pion_node_rs::error::Error;
use pion_node_rs::protocol::messages::IceCandidate;
use pion_node_rs::sidecar::{Notice, NoticeSink, Sidecar};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

pub const A: usize = 0;
pub const B: usize = 1;
pub const PCS: [&str; 2] = ["A", "B"];
pub const LABEL: &str = "bench";
/// How long the session lets each request wait for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Every single wait of this program is bounded by this, unless it says otherwise.
pub const LIMIT: Duration = Duration::from_secs(15);
const LOG_LINES: usize = 200;

/// The notices of one read of the sidecar's stdout (or of its stderr, or its exit).
pub struct Batch {
    notices: Vec<Notice>,
    /// When the reader handed them over.
    read_at: Instant,
}

/// Collects notices on whichever thread reports them, and hands them over at each flush.
pub struct Sink {
    pending: Mutex<Vec<Notice>>,
    tx: UnboundedSender<Batch>,
}

impl Sink {
    pub fn new() -> (Arc<Sink>, UnboundedReceiver<Batch>) {
        let (tx, rx) = unbounded_channel();
        let sink = Sink {
            pending: Mutex::new(Vec::new()),
            tx,
        };
        (Arc::new(sink), rx)
    }
}

impl NoticeSink for Sink {
    fn notice(&self, notice: Notice) {
        self.pending.lock().unwrap().push(notice);
    }

    fn flush(&self) {
        let notices = std::mem::take(&mut *self.pending.lock().unwrap());
        if !notices.is_empty() {
            let read_at = Instant::now();
            let _ = self.tx.send(Batch { notices, read_at });
        }
    }
}

#[derive(Default)]
pub struct Setup {
    pub a_open: bool,
    pub b_open: bool,
    pub a_opened_at: Option<Instant>,
    pub b_opened_at: Option<Instant>,
    /// First `iceConnectionState` and `connectionState` 'connected', per connection.
    pub ice_connected_at: [Option<Instant>; 2],
    pub connected_at: [Option<Instant>; 2],
}

/// Trickle ICE between the two connections, as an application does (and as the Node
/// benchmark's connectPair does): a candidate waits until its target has its remote
/// description.
#[derive(Default)]
pub struct Relay {
    pub remote_set: [bool; 2],
    queued: [Vec<IceCandidate>; 2],
    pub forwarded: u32,
    pub queued_total: u32,
    /// The `addIceCandidate` calls in flight, by the connection they went to.
    calls: HashMap<SettleToken, usize>,
    pub errors: Vec<String>,
}

/// What the sender's pacing saw in one bulk phase.
#[derive(Default)]
pub struct Flow {
    /// `bufferedamountlow` events on A's channel.
    pub low_events: u64,
    /// One came since the sender last started to wait.
    pub low_seen: bool,
    /// Times the sender stopped waiting without one (after `CEILING_POLL_US`).
    pub fallbacks: u64,
    /// Time the sender spent waiting for room.
    pub idle: Duration,
}

pub struct Driver {
    pub session: Session,
    pub sidecar: Sidecar,
    notices: UnboundedReceiver<Batch>,
    next_token: u64,
    settled: HashMap<SettleToken, Result<Outcome, Error>>,
    pub pcs: [Option<ConnectionId>; 2],
    pub a_channel: Option<ChannelId>,
    pub b_channel: Option<ChannelId>,
    pub setup: Setup,
    pub relay: Relay,
    pub rx: Option<Rx>,
    pub flow: Flow,
    failures: Vec<String>,
    pub stopping: bool,
    pub logs: VecDeque<String>,
    /// When the batch handled last was handed over by the reader.
    read_at: Instant,
}

impl Driver {
    pub fn new(sidecar: Sidecar, notices: UnboundedReceiver<Batch>) -> Driver {
        Driver {
            session: Session::new(REQUEST_TIMEOUT),
            sidecar,
            notices,
            next_token: 0,
            settled: HashMap::new(),
            pcs: [None; 2],
            a_channel: None,
            b_channel: None,
            setup: Setup::default(),
            relay: Relay::default(),
            rx: None,
            flow: Flow::default(),
            failures: Vec::new(),
            stopping: false,
            logs: VecDeque::new(),
            read_at: Instant::now(),
        }
    }

    pub fn token(&mut self) -> SettleToken {
        self.next_token += 1;
        SettleToken(self.next_token)
    }

    pub fn fail(&mut self, what: String) {
        if self.failures.len() < 20 {
            self.failures.push(what);
        }
    }

    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    pub fn failure_text(&self) -> String {
        self.failures.join("; ")
    }

    fn log(&mut self, line: String) {
        if self.logs.len() == LOG_LINES {
            self.logs.pop_front();
        }
        self.logs.push_back(line);
    }

    /// Writes what the session encoded since the last call, in one flush.
    fn transmit(&mut self) {
        if let Some(bytes) = self.session.poll_transmit() {
            if self.sidecar.write(&bytes) {
                self.sidecar.flush();
            }
        }
    }

    /// One turn of the loop: what the commands since the last turn produced goes out (events
    /// first, then stdin); then one batch of notices, or the session's deadline, or `until`,
    /// whichever comes first, is handled.
    pub async fn step(&mut self, until: Instant) {
        self.deliver();
        self.transmit();
        let at = self.session.poll_timeout().map_or(until, |t| t.min(until));
        match tokio::time::timeout_at(at.into(), self.notices.recv()).await {
            Ok(Some(batch)) => self.handle_batch(batch),
            // Every caller looks at the failure before its next step.
            Ok(None) => self.fail("the sidecar's notices ended".into()),
            Err(_) => {}
        }
        let now = Instant::now();
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        self.deliver();
    }

    fn handle_batch(&mut self, batch: Batch) {
        let now = Instant::now();
        self.read_at = batch.read_at;
        for notice in batch.notices {
            match notice {
                Notice::Frame(frame) => self.session.handle_frame(frame, now),
                Notice::Log(line) => self.log(line),
                Notice::Error(e) => self.fail(format!("sidecar error: {e}")),
                Notice::Exited {
                    code,
                    signal,
                    intentional,
                } => {
                    if !intentional && !self.stopping {
                        self.fail(format!("sidecar exited (code={code:?}, signal={signal:?})"));
                    }
                    self.session.sidecar_exited(code, signal, now);
                }
            }
        }
    }

    /// Hands every event the session has to the benchmark.
    fn deliver(&mut self) {
        let mut now = None;
        while let Some(event) = self.session.poll_event() {
            let now = *now.get_or_insert_with(Instant::now);
            self.on_event(event, now);
        }
    }

    /// Waits until `check` gives a value, a failure is recorded, or `limit` passes.
    pub async fn wait_until<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&mut Driver) -> Option<T>,
    ) -> Result<T, String> {
        let end = Instant::now() + limit;
        loop {
            if self.failed() {
                return Err(format!("{what}: {}", self.failure_text()));
            }
            if let Some(value) = check(self) {
                return Ok(value);
            }
            if Instant::now() >= end {
                return Err(format!("timed out after {limit:?} waiting for {what}"));
            }
            self.step(end).await;
        }
    }

    /// Waits for `token` to settle.
    pub async fn settled(&mut self, what: &str, token: SettleToken) -> Result<Outcome, String> {
        let outcome = self
            .wait_until(what, LIMIT, |d| d.settled.remove(&token))
            .await?;
        outcome.map_err(|e| format!("{what}: {e}"))
    }

    /// A promise method of connection `pc`, waited for.
    pub async fn call(&mut self, pc: usize, call: ConnectionCall) -> Result<Outcome, String> {
        let what = format!("{} {}", call.method(), PCS[pc]);
        let connection = self.pcs[pc].ok_or_else(|| format!("{what}: no connection"))?;
        let token = self.token();
        self.session.call(connection, call, token, Instant::now());
        self.settled(&what, token).await
    }

    /// Connection `to` has its remote description: what waited for it goes now, and from now
    /// on every candidate at once.
    pub fn remote_set(&mut self, to: usize) {
        self.relay.remote_set[to] = true;
        for candidate in std::mem::take(&mut self.relay.queued[to]) {
            self.add_candidate(to, candidate);
        }
    }

    fn add_candidate(
        &mut self,
        to: usize,
        candidate: pion_node_rs::protocol::messages::IceCandidate,
    ) {
        let Some(connection) = self.pcs[to] else {
            return;
        };
        let token = self.token();
        self.relay.calls.insert(token, to);
        self.relay.forwarded += 1;
        let call = ConnectionCall::AddIceCandidate(candidate);
        self.session.call(connection, call, token, Instant::now());
    }

    fn pc_of(&self, id: ConnectionId) -> Option<usize> {
        self.pcs.iter().position(|pc| *pc == Some(id))
    }

    /// One event of the session: what the benchmark's listeners would do.
    fn on_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Channel(id, ChannelEvent::Message { binary, data }) => {
                self.on_message(id, binary, &data, now)
            }
            Event::Channel(id, ChannelEvent::BufferedAmountLow) if Some(id) == self.a_channel => {
                self.flow.low_events += 1;
                self.flow.low_seen = true;
            }
            Event::Channel(id, ChannelEvent::Open) => {
                if Some(id) == self.a_channel {
                    self.setup.a_open = true;
                    self.setup.a_opened_at.get_or_insert(now);
                } else if Some(id) == self.b_channel {
                    self.setup.b_open = true;
                    self.setup.b_opened_at.get_or_insert(now);
                }
            }
            Event::Channel(id, ChannelEvent::Error(text)) if !self.stopping => {
                self.fail(format!("error on channel {id:?}: {text}"));
            }
            Event::Channel(id, ChannelEvent::Close) if !self.stopping => {
                self.fail(format!("channel {id:?} closed"));
            }
            Event::Connection(id, event) => self.on_connection_event(id, event, now),
            Event::Settle(token, outcome) => {
                if let Some(to) = self.relay.calls.remove(&token) {
                    if let Err(e) = outcome {
                        let text = format!("addIceCandidate on {}: {e}", PCS[to]);
                        self.relay.errors.push(text);
                    }
                } else {
                    self.settled.insert(token, outcome);
                }
            }
            Event::Log(line) => self.log(line),
            _ => {}
        }
    }

    fn on_connection_event(&mut self, id: ConnectionId, event: ConnectionEvent, now: Instant) {
        let Some(pc) = self.pc_of(id) else {
            return;
        };
        match event {
            ConnectionEvent::IceCandidate(candidate) => {
                // An empty candidate would be the end-of-candidates marker: nothing to forward.
                if candidate.candidate.is_empty() {
                    return;
                }
                let to = 1 - pc;
                if self.relay.remote_set[to] {
                    self.add_candidate(to, candidate);
                } else {
                    self.relay.queued[to].push(candidate);
                    self.relay.queued_total += 1;
                }
            }
            ConnectionEvent::DataChannel(channel) if pc == B => {
                let label = self.session.channel(channel).map(|c| c.label().to_owned());
                if label.as_deref() == Some(LABEL) {
                    self.b_channel = Some(channel);
                }
            }
            ConnectionEvent::ConnectionStateChange => {
                let state = self.session.connection(id).map(|c| c.connection_state());
                match state {
                    Some("connected") => {
                        self.setup.connected_at[pc].get_or_insert(now);
                    }
                    Some("failed") if !self.stopping => {
                        self.fail(format!("connection {} failed", PCS[pc]));
                    }
                    _ => {}
                }
            }
            ConnectionEvent::IceConnectionStateChange => {
                let state = self
                    .session
                    .connection(id)
                    .map(|c| c.ice_connection_state());
                if state == Some("connected") {
                    self.setup.ice_connected_at[pc].get_or_insert(now);
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, id: ChannelId, binary: bool, data: &bytes::Bytes, now: Instant) {
        let Some(rx) = self.rx.as_mut() else {
            self.fail(format!("message on {id:?} outside a phase"));
            return;
        };
        let on_a = Some(id) == self.a_channel;
        let on_b = Some(id) == self.b_channel;
        match rx.phase {
            Phase::Bulk if on_b => rx.accept(binary, data, now, self.read_at),
            Phase::Echo if on_a => rx.accept(binary, data, now, self.read_at),
            Phase::Echo if on_b => {
                // B echoes from its listener, as the Node benchmark's B does.
                if let Err(e) = self.session.send(id, data, binary, now) {
                    self.fail(format!("echo send on B: {e}"));
                }
            }
            phase => {
                let pc = if on_a { "A" } else { "B" };
                self.fail(format!("message on {pc} during {phase:?}"));
            }
        }
    }
}
