//! The ceiling: how fast this crate's own protocol and sidecar modules can drive ONE pion-ipc
//! sidecar, without Node. Two connections A and B in the same sidecar, one channel "bench"
//! from A to B, then:
//!
//! (a) 1 KiB binary messages per second (N=50,000, or `CEILING_N_1K`: `npm run bench` asks
//!     for as many as its Node run sends; up to 64 `dc.send` in flight, paced so that
//!     unacknowledged bytes + last acknowledged `bufferedAmount` stay within 64 KiB);
//! (b) 16-byte text messages per second (same pacing, N=100,000);
//! (c) 65535-byte binary messages in MB/s (paced within 128 KiB, N=2,000);
//! (d) 64-byte echo round trip (B echoes from its sink), 5,000 sequential, p50 / p99;
//! (e) spawn to first ping answer, and pc.create to both channel ends open.
//!
//! Everything B receives is checked in the sink (count, order by sequence number, length,
//! binary or text). Run it inside the private network namespace (pion gathers no loopback
//! candidates):
//!
//! ```text
//! cargo build --release --example ceiling
//! scripts/netns-run.sh target/release/examples/ceiling /tmp/ceiling.json
//! ```
//!
//! The first argument is where the JSON goes (default `target/ceiling.json`); the binary
//! comes from `PION_IPC_BIN` or node_modules. Tuning knobs for experiments (defaults are what
//! the figures use): `CEILING_POLL_US` (1000: how long a sender with nothing in flight and no
//! room waits for `dc.bufferedamountlow` before asking `dc.getBA` again), `CEILING_LOW`
//! (1, the default: `dc.setBALT` threshold at the pacing limit minus one message, the fastest
//! measured: 16,200-16,800 1 KiB msg/s against 13,600-15,100 with 0; 0: half the pacing limit;
//! any other number: that many bytes), `CEILING_RT=current` (a current-thread tokio runtime instead of
//! the multi-thread one).

use bytes::Bytes;
use pion_node_rs::protocol::messages::{
    self, BufferedAmount, DcCreate, IceCandidate, PcCreate, Sdp, SessionDescription, SetThreshold,
    StateChange,
};
use pion_node_rs::protocol::Frame;
use pion_node_rs::sidecar::pending::Responder;
use pion_node_rs::sidecar::{Notice, NoticeSink, Sidecar};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const A: &str = "A";
const B: &str = "B";
const PCS: [&str; 2] = [A, B];
const LABEL: &str = "bench";
/// The sidecar's own timeout for each request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Every single wait of this program is bounded by this, unless it says otherwise.
const LIMIT: Duration = Duration::from_secs(15);
/// How long one measured phase may take at most.
const PHASE_LIMIT: Duration = Duration::from_secs(120);
const MAX_IN_FLIGHT: usize = 64;
/// With nothing in flight and the last known backlog too big to send, ask for the backlog
/// after this long without news (a `dc.bufferedamountlow` normally comes first).
fn idle_poll() -> Duration {
    Duration::from_micros(env_u64("CEILING_POLL_US", 1000))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
const LOG_LINES: usize = 200;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// A sends, B counts and checks.
    Bulk,
    /// A sends, B echoes, A counts and checks.
    Echo,
}

struct Rx {
    phase: Phase,
    binary: bool,
    len: usize,
    target: u64,
    count: u64,
    next_seq: u32,
    errors: u64,
    first_error: Option<String>,
    finished: Option<Instant>,
    last_at: Option<Instant>,
}

impl Rx {
    fn new(phase: Phase, binary: bool, len: usize, target: u64) -> Rx {
        Rx {
            phase,
            binary,
            len,
            target,
            count: 0,
            next_seq: 0,
            errors: 0,
            first_error: None,
            finished: None,
            last_at: None,
        }
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    /// Checks one message against the phase's shape and order; counts it.
    fn accept(&mut self, is_binary: bool, payload: &[u8], now: Instant) {
        let seq = if self.binary {
            if !is_binary || payload.len() != self.len || payload.len() < 4 {
                self.error(format!(
                    "message {}: binary={is_binary} len={} (want binary, {})",
                    self.count,
                    payload.len(),
                    self.len
                ));
                None
            } else {
                Some(u32::from_le_bytes(payload[..4].try_into().unwrap()))
            }
        } else if is_binary || payload.len() != self.len {
            self.error(format!(
                "message {}: binary={is_binary} len={} (want text, {})",
                self.count,
                payload.len(),
                self.len
            ));
            None
        } else {
            parse_decimal(payload)
        };
        match seq {
            Some(seq) if seq == self.next_seq => {}
            Some(seq) => self.error(format!(
                "message {}: sequence {seq}, want {}",
                self.count, self.next_seq
            )),
            None => {}
        }
        if let Some(seq) = seq {
            self.next_seq = seq.wrapping_add(1);
        }
        self.count += 1;
        self.last_at = Some(now);
        if self.count == self.target {
            self.finished = Some(now);
        }
    }
}

fn parse_decimal(text: &[u8]) -> Option<u32> {
    let mut n: u32 = 0;
    for &c in text {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u32::from(c - b'0'))?;
    }
    Some(n)
}

#[derive(Default)]
struct Setup {
    a_open: bool,
    b_announced: bool,
    b_open: bool,
    a_opened_at: Option<Instant>,
    b_opened_at: Option<Instant>,
    /// First `iceState: connected` and first `connState: connected`, per connection.
    ice_connected_at: [Option<Instant>; 2],
    connected_at: [Option<Instant>; 2],
}

#[derive(Default)]
struct Relay {
    remote_set: [bool; 2],
    queued: [Vec<Bytes>; 2],
    forwarded: u32,
    queued_total: u32,
    errors: Vec<String>,
}

#[derive(Default)]
struct Flow {
    in_flight: usize,
    unacked: usize,
    last_ba: u64,
    acks: u64,
    low_events: u64,
    polls: u64,
    idle: Duration,
}

#[derive(Default)]
struct State {
    sidecar: OnceLock<Sidecar>,
    setup: Mutex<Setup>,
    relay: Mutex<Relay>,
    rx: Mutex<Option<Rx>>,
    flow: Mutex<Flow>,
    /// Set-up progress, phase completion, echoes, failures.
    changed: Notify,
    /// Acknowledgements and `dc.bufferedamountlow`.
    pace: Notify,
    failed: AtomicBool,
    failures: Mutex<Vec<String>>,
    stopping: AtomicBool,
    logs: Mutex<VecDeque<String>>,
}

impl State {
    fn fail(&self, what: String) {
        {
            let mut failures = self.failures.lock().unwrap();
            if failures.len() < 20 {
                failures.push(what);
            }
        }
        self.failed.store(true, Ordering::SeqCst);
        self.changed.notify_one();
        self.pace.notify_one();
    }

    fn failure_text(&self) -> String {
        self.failures.lock().unwrap().join("; ")
    }

    fn log(&self, line: String) {
        let mut logs = self.logs.lock().unwrap();
        if logs.len() == LOG_LINES {
            logs.pop_front();
        }
        logs.push_back(line);
    }

    fn on_event(self: &Arc<Self>, frame: Frame) {
        let h = &frame.header;
        match h.event.as_str() {
            "dc.message" => self.on_message(&frame),
            "pc.icecandidate" => self.on_candidate(&frame),
            "dc.open" if h.dc_label == LABEL => {
                let now = Instant::now();
                let mut setup = self.setup.lock().unwrap();
                if h.pc_id == A {
                    setup.a_open = true;
                    setup.a_opened_at.get_or_insert(now);
                } else if h.pc_id == B {
                    setup.b_open = true;
                    setup.b_opened_at.get_or_insert(now);
                }
                drop(setup);
                self.changed.notify_one();
            }
            "pc.datachannel" if h.pc_id == B && h.dc_label == LABEL => {
                self.setup.lock().unwrap().b_announced = true;
                self.changed.notify_one();
            }
            "dc.bufferedamountlow" if h.pc_id == A => {
                self.flow.lock().unwrap().low_events += 1;
                self.pace.notify_one();
            }
            "dc.close" | "dc.error" if !self.stopping.load(Ordering::SeqCst) => {
                self.fail(format!(
                    "{} on {}/{}: {}",
                    h.event,
                    h.pc_id,
                    h.dc_label,
                    String::from_utf8_lossy(&frame.payload)
                ));
            }
            "pc.statechange" => {
                let Ok(state) = messages::decode::<StateChange>(&frame.payload) else {
                    return;
                };
                if state.conn_state == "failed" && !self.stopping.load(Ordering::SeqCst) {
                    self.fail(format!("connection {} failed", h.pc_id));
                }
                if let Some(i) = PCS.iter().position(|pc| *pc == h.pc_id) {
                    let now = Instant::now();
                    let mut setup = self.setup.lock().unwrap();
                    if state.ice_state == "connected" {
                        setup.ice_connected_at[i].get_or_insert(now);
                    }
                    if state.conn_state == "connected" {
                        setup.connected_at[i].get_or_insert(now);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_message(self: &Arc<Self>, frame: &Frame) {
        let h = &frame.header;
        let now = Instant::now();
        let mut guard = self.rx.lock().unwrap();
        let Some(rx) = guard.as_mut() else {
            drop(guard);
            self.fail(format!("dc.message on {} outside a phase", h.pc_id));
            return;
        };
        match (rx.phase, h.pc_id.as_str()) {
            (Phase::Bulk, B) | (Phase::Echo, A) => {
                rx.accept(h.is_binary, &frame.payload, now);
                let wake = rx.phase == Phase::Echo || rx.finished.is_some();
                drop(guard);
                if wake {
                    self.changed.notify_one();
                }
            }
            (Phase::Echo, B) => {
                drop(guard);
                let Some(sidecar) = self.sidecar.get() else {
                    return;
                };
                let st = self.clone();
                let sent = sidecar.request_with(
                    "dc.send",
                    B,
                    LABEL,
                    h.is_binary,
                    &frame.payload,
                    Responder::Callback(Box::new(move |reply| {
                        if let Err(e) = reply {
                            st.fail(format!("echo dc.send on B: {e}"));
                        }
                    })),
                );
                if let Err((e, _)) = sent {
                    self.fail(format!("echo dc.send on B: {e}"));
                }
            }
            (phase, pc) => {
                drop(guard);
                self.fail(format!("dc.message on {pc} during {phase:?}"));
            }
        }
    }

    fn on_candidate(self: &Arc<Self>, frame: &Frame) {
        let from = match frame.header.pc_id.as_str() {
            A => 0,
            B => 1,
            _ => return,
        };
        // An empty candidate would be the end-of-candidates marker: nothing to forward.
        match messages::decode::<IceCandidate>(&frame.payload) {
            Ok(c) if c.candidate.is_empty() => return,
            Ok(_) => {}
            Err(e) => {
                self.log(format!("bad pc.icecandidate payload: {e}"));
                return;
            }
        }
        let to = 1 - from;
        let mut relay = self.relay.lock().unwrap();
        if relay.remote_set[to] {
            self.add_candidate(&mut relay, to, &frame.payload);
        } else {
            relay.queued[to].push(frame.payload.clone());
            relay.queued_total += 1;
        }
    }

    /// Sends one candidate to `PCS[to]`; called with the relay locked, so that candidates
    /// reach each connection in the order they were gathered.
    fn add_candidate(self: &Arc<Self>, relay: &mut Relay, to: usize, payload: &[u8]) {
        let Some(sidecar) = self.sidecar.get() else {
            return;
        };
        let st = self.clone();
        let sent = sidecar.request_with(
            "pc.addIceCandidate",
            PCS[to],
            "",
            false,
            payload,
            Responder::Callback(Box::new(move |reply| {
                if let Err(e) = reply {
                    st.relay
                        .lock()
                        .unwrap()
                        .errors
                        .push(format!("addIceCandidate on {}: {e}", PCS[to]));
                }
            })),
        );
        match sent {
            Ok(()) => relay.forwarded += 1,
            Err((e, _)) => relay
                .errors
                .push(format!("addIceCandidate on {}: {e}", PCS[to])),
        }
    }

    /// `PCS[to]` has its remote description: send what waited, and from now on at once.
    fn remote_set(self: &Arc<Self>, to: usize) {
        let mut relay = self.relay.lock().unwrap();
        relay.remote_set[to] = true;
        let queued = std::mem::take(&mut relay.queued[to]);
        for payload in queued {
            self.add_candidate(&mut relay, to, &payload);
        }
    }

    /// The acknowledgement of one paced `dc.send` of `size` bytes.
    fn acked(&self, size: usize, reply: Result<Frame, pion_node_rs::error::Error>) {
        let ba = match reply {
            Ok(frame) => match messages::decode::<BufferedAmount>(&frame.payload) {
                Ok(ba) => ba.buffered_amount.map(|v| v as u64),
                Err(e) => {
                    self.fail(format!("dc.send ack: {e}"));
                    None
                }
            },
            Err(e) => {
                self.fail(format!("dc.send on A: {e}"));
                None
            }
        };
        let mut flow = self.flow.lock().unwrap();
        flow.in_flight -= 1;
        flow.unacked -= size;
        flow.acks += 1;
        if let Some(ba) = ba {
            flow.last_ba = ba;
        }
        drop(flow);
        self.pace.notify_one();
    }
}

struct Sink(Arc<State>);

impl NoticeSink for Sink {
    fn notice(&self, notice: Notice) {
        match notice {
            Notice::Event(frame) => self.0.on_event(frame),
            Notice::Log(line) => self.0.log(line),
            Notice::Error(e) => self.0.fail(format!("sidecar error: {e}")),
            Notice::Exited {
                code,
                signal,
                intentional,
            } if !intentional && !self.0.stopping.load(Ordering::SeqCst) => {
                self.0
                    .fail(format!("sidecar exited (code={code:?}, signal={signal:?})"));
            }
            _ => {}
        }
    }
}

async fn call(sidecar: &Sidecar, method: &str, pc: &str, payload: &[u8]) -> Result<Frame, String> {
    match tokio::time::timeout(LIMIT, sidecar.call(method, pc, "", false, payload)).await {
        Ok(Ok(frame)) => Ok(frame),
        Ok(Err(e)) => Err(format!("{method} {pc}: {e}")),
        Err(_) => Err(format!("{method} {pc}: no answer within {LIMIT:?}")),
    }
}

async fn call_dc(sidecar: &Sidecar, method: &str, payload: &[u8]) -> Result<Frame, String> {
    match tokio::time::timeout(LIMIT, sidecar.call(method, A, LABEL, false, payload)).await {
        Ok(Ok(frame)) => Ok(frame),
        Ok(Err(e)) => Err(format!("{method} A/{LABEL}: {e}")),
        Err(_) => Err(format!("{method} A/{LABEL}: no answer within {LIMIT:?}")),
    }
}

/// Waits until `check` gives a value, a failure is recorded, or `limit` passes.
async fn wait_until<T>(
    st: &State,
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let end = Instant::now() + limit;
    loop {
        if st.failed.load(Ordering::SeqCst) {
            return Err(format!("{what}: {}", st.failure_text()));
        }
        if let Some(value) = check() {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= end {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        let _ = tokio::time::timeout(end - now, st.changed.notified()).await;
    }
}

async fn get_ba(sidecar: &Sidecar) -> Result<u64, String> {
    let frame = call_dc(sidecar, "dc.getBA", &[]).await?;
    let ba: BufferedAmount =
        messages::decode(&frame.payload).map_err(|e| format!("dc.getBA answer: {e}"))?;
    Ok(ba.buffered_amount.unwrap_or(0.0) as u64)
}

struct BulkResult {
    elapsed: Duration,
    low_events: u64,
    polls: u64,
    idle: Duration,
}

/// Sends `n` messages of `size` bytes from A, paced within `limit` bytes, and waits until B
/// has received and checked all of them. The time runs from the first send to the last
/// receipt.
async fn bulk(
    st: &Arc<State>,
    sidecar: &Sidecar,
    binary: bool,
    size: usize,
    n: u32,
    limit: usize,
) -> Result<BulkResult, String> {
    let threshold = match env_u64("CEILING_LOW", 1) {
        0 => (limit / 2) as u64,
        1 => (limit - size) as u64,
        n => n,
    };
    call_dc(
        sidecar,
        "dc.setBALT",
        &messages::encode(&SetThreshold { threshold }),
    )
    .await?;
    let backlog = get_ba(sidecar).await?;
    *st.flow.lock().unwrap() = Flow {
        last_ba: backlog,
        ..Flow::default()
    };
    *st.rx.lock().unwrap() = Some(Rx::new(Phase::Bulk, binary, size, u64::from(n)));
    let mut payload = vec![b'x'; size];
    let start = Instant::now();
    let end = start + PHASE_LIMIT;
    for seq in 0..n {
        if binary {
            payload[..4].copy_from_slice(&seq.to_le_bytes());
        } else {
            write_decimal(&mut payload, seq);
        }
        loop {
            if st.failed.load(Ordering::Relaxed) {
                return Err(format!("message {seq}: {}", st.failure_text()));
            }
            let idle = {
                let mut flow = st.flow.lock().unwrap();
                let fits = flow.unacked as u64 + flow.last_ba + size as u64 <= limit as u64;
                if flow.in_flight < MAX_IN_FLIGHT
                    && (fits || (flow.in_flight == 0 && flow.last_ba == 0))
                {
                    flow.in_flight += 1;
                    flow.unacked += size;
                    break;
                }
                flow.in_flight == 0
            };
            let now = Instant::now();
            if now >= end {
                return Err(format!("timed out sending message {seq}"));
            }
            if !idle {
                // An acknowledgement is on its way.
                let _ = tokio::time::timeout(end - now, st.pace.notified()).await;
            } else {
                // Nothing in flight, so no acknowledgement will bring news: ask. The answer
                // queues behind every earlier request of A, so it is fresher than any
                // acknowledgement. Still no room: sleep until `dc.bufferedamountlow` (only a
                // hint, as events and responses are not ordered) or the poll interval.
                let t = Instant::now();
                let ba = get_ba(sidecar).await?;
                let fits = ba + size as u64 <= limit as u64;
                {
                    let mut flow = st.flow.lock().unwrap();
                    flow.polls += 1;
                    flow.last_ba = ba;
                }
                if !fits {
                    let nap = idle_poll().min(end.saturating_duration_since(Instant::now()));
                    let _ = tokio::time::timeout(nap, st.pace.notified()).await;
                }
                st.flow.lock().unwrap().idle += t.elapsed();
            }
        }
        let acker = st.clone();
        sidecar
            .request_with(
                "dc.send",
                A,
                LABEL,
                binary,
                &payload,
                Responder::Callback(Box::new(move |reply| acker.acked(size, reply))),
            )
            .map_err(|(e, _)| format!("dc.send {seq}: {e}"))?;
    }
    let finished = wait_until(st, "every message on B", end - Instant::now(), || {
        st.rx.lock().unwrap().as_ref().and_then(|rx| rx.finished)
    })
    .await;
    let rx = st.rx.lock().unwrap().take().expect("phase state");
    let finished = finished.map_err(|e| {
        format!(
            "{e} (received {} of {n}, {} bad{})",
            rx.count,
            rx.errors,
            rx.first_error
                .as_deref()
                .map(|s| format!(", first: {s}"))
                .unwrap_or_default()
        )
    })?;
    if rx.errors > 0 {
        return Err(format!(
            "{} of {n} messages wrong, first: {}",
            rx.errors,
            rx.first_error.unwrap_or_default()
        ));
    }
    wait_until(st, "every dc.send acknowledged", LIMIT, || {
        (st.flow.lock().unwrap().in_flight == 0).then_some(())
    })
    .await?;
    let flow = st.flow.lock().unwrap();
    Ok(BulkResult {
        elapsed: finished - start,
        low_events: flow.low_events,
        polls: flow.polls,
        idle: flow.idle,
    })
}

/// Writes `n` as zero-padded decimal filling all of `out`.
fn write_decimal(out: &mut [u8], mut n: u32) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

struct EchoResult {
    /// Send call to receipt in A's sink.
    rtts: Vec<Duration>,
    /// Send call to the main task awake again.
    rtts_woken: Vec<Duration>,
}

async fn echo(st: &Arc<State>, sidecar: &Sidecar, n: u32) -> Result<EchoResult, String> {
    *st.rx.lock().unwrap() = Some(Rx::new(Phase::Echo, true, 64, u64::from(n)));
    let mut payload = vec![b'e'; 64];
    let mut rtts = Vec::with_capacity(n as usize);
    let mut rtts_woken = Vec::with_capacity(n as usize);
    for seq in 0..n {
        payload[..4].copy_from_slice(&seq.to_le_bytes());
        let acker = st.clone();
        let sent_at = Instant::now();
        sidecar
            .request_with(
                "dc.send",
                A,
                LABEL,
                true,
                &payload,
                Responder::Callback(Box::new(move |reply| {
                    if let Err(e) = reply {
                        acker.fail(format!("dc.send on A: {e}"));
                    }
                })),
            )
            .map_err(|(e, _)| format!("dc.send {seq}: {e}"))?;
        let received_at = wait_until(st, "the echo", LIMIT, || {
            let guard = st.rx.lock().unwrap();
            let rx = guard.as_ref()?;
            (rx.count > u64::from(seq)).then_some(rx.last_at)?
        })
        .await?;
        rtts_woken.push(sent_at.elapsed());
        rtts.push(received_at - sent_at);
    }
    let rx = st.rx.lock().unwrap().take().expect("phase state");
    if rx.errors > 0 || rx.count != u64::from(n) {
        return Err(format!(
            "echo: {} received, {} wrong, first: {}",
            rx.count,
            rx.errors,
            rx.first_error.unwrap_or_default()
        ));
    }
    Ok(EchoResult { rtts, rtts_woken })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

#[derive(Default)]
struct Results {
    start_ms: f64,
    connect_ms: f64,
    msgs_1k_per_s: f64,
    msgs_16b_per_s: f64,
    mb_per_s_64k: f64,
    echo_p50_us: f64,
    echo_p99_us: f64,
}

impl Results {
    fn json(&self) -> String {
        let fields = [
            ("msgs_1k_per_s", self.msgs_1k_per_s),
            ("msgs_16b_per_s", self.msgs_16b_per_s),
            ("mb_per_s_64k", self.mb_per_s_64k),
            ("echo_p50_us", self.echo_p50_us),
            ("echo_p99_us", self.echo_p99_us),
            ("start_ms", self.start_ms),
            ("connect_ms", self.connect_ms),
        ];
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("  \"{k}\": {}", if v.is_finite() { *v } else { 0.0 }))
            .collect();
        format!("{{\n{}\n}}\n", body.join(",\n"))
    }
}

async fn connect(st: &Arc<State>, sidecar: &Sidecar) -> Result<(), String> {
    let rto_max = env_u64("CEILING_RTO_MAX", 0);
    for pc in PCS {
        let create = PcCreate {
            pc_id: pc.to_owned(),
            ice_servers: Vec::new(),
            settings: (rto_max > 0).then(|| {
                rmpv::Value::Map(vec![(
                    rmpv::Value::from("sctpRtoMax"),
                    rmpv::Value::from(rto_max),
                )])
            }),
        };
        call(sidecar, "pc.create", pc, &messages::encode(&create)).await?;
    }
    let dc = DcCreate {
        label: LABEL.to_owned(),
        ordered: true,
    };
    call_dc(sidecar, "dc.create", &messages::encode(&dc)).await?;

    describe(sidecar, "offer", A, B).await?;
    st.remote_set(1);
    describe(sidecar, "answer", B, A).await?;
    st.remote_set(0);

    wait_until(st, "dc.open on A and B", LIMIT, || {
        let s = st.setup.lock().unwrap();
        (s.a_open && s.b_announced && s.b_open).then_some(())
    })
    .await
}

/// `from` creates an offer or answer (`kind`) and sets it as its local description, `to` as
/// its remote one.
async fn describe(sidecar: &Sidecar, kind: &str, from: &str, to: &str) -> Result<(), String> {
    let create = if kind == "offer" {
        "pc.createOffer"
    } else {
        "pc.createAnswer"
    };
    let made = call(sidecar, create, from, &[]).await?;
    let made: Sdp = messages::decode(&made.payload).map_err(|e| format!("{kind}: {e}"))?;
    let description = messages::encode(&SessionDescription {
        kind: kind.into(),
        sdp: made.sdp,
    });
    call(sidecar, "pc.setLocalDescription", from, &description).await?;
    call(sidecar, "pc.setRemoteDescription", to, &description).await?;
    Ok(())
}

async fn run(st: &Arc<State>, bin: &Path, results: &mut Results) -> Result<Sidecar, String> {
    let spawned_at = Instant::now();
    let sink: Arc<dyn NoticeSink> = Arc::new(Sink(st.clone()));
    let sidecar = Sidecar::spawn(bin, REQUEST_TIMEOUT, sink).map_err(|e| e.to_string())?;
    let _ = st.sidecar.set(sidecar.clone());
    call(&sidecar, "ping", "", &[]).await?;
    results.start_ms = spawned_at.elapsed().as_secs_f64() * 1e3;
    println!("spawn to first ping        {:>12.2} ms", results.start_ms);

    let connect_started = Instant::now();
    if let Err(e) = connect(st, &sidecar).await {
        return Err(format!("connect: {e}"));
    }
    results.connect_ms = connect_started.elapsed().as_secs_f64() * 1e3;
    {
        let relay = st.relay.lock().unwrap();
        println!(
            "create to both open        {:>12.2} ms   ({} candidates forwarded, {} queued first)",
            results.connect_ms, relay.forwarded, relay.queued_total
        );
        for e in &relay.errors {
            println!("  warning: {e}");
        }
        let setup = st.setup.lock().unwrap();
        let ms = |t: Option<Instant>| {
            t.map(|t| format!("{:.1}", (t - connect_started).as_secs_f64() * 1e3))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "  ice connected A {} / B {} ms, connected A {} / B {} ms, dc.open A {} / B {} ms",
            ms(setup.ice_connected_at[0]),
            ms(setup.ice_connected_at[1]),
            ms(setup.connected_at[0]),
            ms(setup.connected_at[1]),
            ms(setup.a_opened_at),
            ms(setup.b_opened_at)
        );
    }
    let announced = st.setup.lock().unwrap().b_announced;
    if !announced {
        return Err("no pc.datachannel on B".into());
    }

    let mut cpu = CpuMeter::new(sidecar.pid());
    let n_1k = env_u64("CEILING_N_1K", 50_000).clamp(1, u64::from(u32::MAX)) as u32;
    let r = bulk(st, &sidecar, true, 1024, n_1k, 64 * 1024)
        .await
        .map_err(|e| format!("(a) 1 KiB: {e}"))?;
    results.msgs_1k_per_s = f64::from(n_1k) / r.elapsed.as_secs_f64();
    println!(
        "(a) 1 KiB binary           {:>12.0} msg/s  ({n_1k} in {:.3} s, {:.1} MB/s; {} low events, {} polls, idle {:.3} s; {})",
        results.msgs_1k_per_s,
        r.elapsed.as_secs_f64(),
        results.msgs_1k_per_s * 1024.0 / 1e6,
        r.low_events,
        r.polls,
        r.idle.as_secs_f64(),
        cpu.lap()
    );

    const N_16: u32 = 100_000;
    let r = bulk(st, &sidecar, false, 16, N_16, 64 * 1024)
        .await
        .map_err(|e| format!("(b) 16 B text: {e}"))?;
    results.msgs_16b_per_s = f64::from(N_16) / r.elapsed.as_secs_f64();
    println!(
        "(b) 16 B text              {:>12.0} msg/s  ({N_16} in {:.3} s; {} low events, {} polls, idle {:.3} s; {})",
        results.msgs_16b_per_s,
        r.elapsed.as_secs_f64(),
        r.low_events,
        r.polls,
        r.idle.as_secs_f64(),
        cpu.lap()
    );

    const N_64K: u32 = 2_000;
    const SIZE_64K: usize = 65_535;
    let r = bulk(st, &sidecar, true, SIZE_64K, N_64K, 128 * 1024)
        .await
        .map_err(|e| format!("(c) 65535 B: {e}"))?;
    let bytes = f64::from(N_64K) * SIZE_64K as f64;
    results.mb_per_s_64k = bytes / r.elapsed.as_secs_f64() / 1e6;
    println!(
        "(c) 65535 B binary         {:>12.1} MB/s   ({N_64K} in {:.3} s, {:.0} msg/s; {} low events, {} polls, idle {:.3} s; {})",
        results.mb_per_s_64k,
        r.elapsed.as_secs_f64(),
        f64::from(N_64K) / r.elapsed.as_secs_f64(),
        r.low_events,
        r.polls,
        r.idle.as_secs_f64(),
        cpu.lap()
    );

    const N_ECHO: u32 = 5_000;
    let mut r = echo(st, &sidecar, N_ECHO)
        .await
        .map_err(|e| format!("(d) echo: {e}"))?;
    r.rtts.sort_unstable();
    r.rtts_woken.sort_unstable();
    results.echo_p50_us = percentile(&r.rtts, 0.50);
    results.echo_p99_us = percentile(&r.rtts, 0.99);
    println!(
        "(d) 64 B echo round trip   {:>9.0} µs p50 {:>6.0} µs p99  (main task awake again: {:.0} / {:.0} µs; {})",
        results.echo_p50_us,
        results.echo_p99_us,
        percentile(&r.rtts_woken, 0.50),
        percentile(&r.rtts_woken, 0.99),
        cpu.lap()
    );
    Ok(sidecar)
}

/// CPU seconds (user + system) used so far by process `pid` (0: this process), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let path = if pid == 0 {
        "/proc/self/stat".to_owned()
    } else {
        format!("/proc/{pid}/stat")
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU use of this process and of the sidecar since the last call, as a table cell.
struct CpuMeter {
    pid: u32,
    at: Instant,
    ours: f64,
    theirs: f64,
}

impl CpuMeter {
    fn new(pid: u32) -> Self {
        CpuMeter {
            pid,
            at: Instant::now(),
            ours: cpu_seconds(0),
            theirs: cpu_seconds(pid),
        }
    }

    fn lap(&mut self) -> String {
        let next = CpuMeter::new(self.pid);
        let wall = (next.at - self.at).as_secs_f64().max(1e-9);
        let text = format!(
            "cpu: client {:.0}%, sidecar {:.0}%",
            (next.ours - self.ours) / wall * 100.0,
            (next.theirs - self.theirs) / wall * 100.0
        );
        *self = next;
        text
    }
}

fn binary_path() -> PathBuf {
    match std::env::var_os("PION_IPC_BIN").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("node_modules/@coclaw/pion-ipc-linux-x64/bin/pion-ipc"),
    }
}

fn main() {
    let mut builder = if std::env::var("CEILING_RT").as_deref() == Ok("current") {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let rt = builder.enable_all().build().expect("tokio runtime");
    rt.block_on(amain());
}

async fn amain() {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/ceiling.json"));
    let bin = binary_path();
    if !bin.is_file() {
        eprintln!("pion-ipc binary not found at {}", bin.display());
        std::process::exit(2);
    }
    if std::env::var_os("PION_NETNS_ACTIVE").is_none() {
        eprintln!("warning: not inside scripts/netns-run.sh; ICE may find no candidates");
    }
    let st = Arc::new(State::default());
    let mut results = Results::default();
    let outcome = run(&st, &bin, &mut results).await;

    st.stopping.store(true, Ordering::SeqCst);
    if let Some(sidecar) = st.sidecar.get() {
        let stopped_at = Instant::now();
        for pc in PCS {
            let _ = call(sidecar, "pc.close", pc, &[]).await;
        }
        // stop() itself gives up after its timeout + 3 s; this is only a backstop.
        let stop = tokio::time::timeout(Duration::from_secs(10), sidecar.stop(LIMIT / 3));
        if stop.await.is_err() || !sidecar.has_exited() {
            eprintln!("warning: sidecar {} did not exit", sidecar.pid());
        } else {
            println!(
                "closed and stopped in       {:>11.2} ms",
                stopped_at.elapsed().as_secs_f64() * 1e3
            );
        }
    }

    if let Err(e) = outcome {
        eprintln!("FAILED: {e}");
        let logs = st.logs.lock().unwrap();
        eprintln!("last {} sidecar log lines:", logs.len().min(40));
        for line in logs.iter().rev().take(40).rev() {
            eprintln!("  {line}");
        }
        std::process::exit(1);
    }

    let json = results.json();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&out, &json) {
        eprintln!("cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
    println!("wrote {}", out.display());
}
