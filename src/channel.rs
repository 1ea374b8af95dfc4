//! RTCDataChannel's state machine: readyState, the pipelined send queue, the dual-source
//! bufferedAmount and its low-threshold edge, graceful and forced close. No napi.

use crate::error::Error;
use crate::events::{ChannelEvent, Emit};
use crate::peer::Peer;
use crate::protocol::messages::{self, BufferedAmount, DcCreate, SetThreshold};
use crate::sidecar::pending::{Reply, Responder};
use crate::sidecar::Sidecar;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// The largest message pion-ipc 0.4.1 delivers: exactly 65536 bytes silently kills the
/// association (PROTOCOL.md, trap 6).
pub const MAX_MESSAGE_SIZE: usize = 65535;

/// How long close() waits for queued messages to reach the sidecar.
pub const CLOSE_DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How soon an idle channel with a sidecar backlog asks for it, and the slowest it polls.
const FIRST_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_millis(250);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Ids shared by connections and channels, so one table can hold both.
pub fn next_object_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyState {
    Connecting,
    Open,
    Closing,
    Closed,
}

impl ReadyState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadyState::Connecting => "connecting",
            ReadyState::Open => "open",
            ReadyState::Closing => "closing",
            ReadyState::Closed => "closed",
        }
    }
}

struct Outgoing {
    data: Vec<u8>,
    binary: bool,
}

struct State {
    ready: ReadyState,
    queue: VecDeque<Outgoing>,
    /// Bytes given to send() and not yet acknowledged by the sidecar.
    unacked: u64,
    in_flight: usize,
    /// The sidecar's own SCTP buffered amount, as last reported.
    sidecar_buffered: u64,
    threshold: u64,
    /// The sidecar knows the channel (dc.create answered, or the remote opened it).
    created: bool,
    /// A poll of the sidecar's buffered amount is scheduled (see `poll_when_idle`).
    polling: bool,
    /// A failed send was reported: the others that fail with it (every send in flight,
    /// when the sidecar dies) are not, so one failure is one `error`.
    send_failed: bool,
    /// close() finished before the sidecar knew the channel: its `dc.close` waits for the
    /// `dc.create` answer.
    close_after_create: bool,
}

impl State {
    fn buffered_amount(&self) -> u64 {
        match self.ready {
            ReadyState::Connecting | ReadyState::Closed => 0,
            _ => self.unacked + self.sidecar_buffered,
        }
    }

    fn drained(&self) -> bool {
        self.queue.is_empty() && self.in_flight == 0
    }
}

pub struct Channel {
    pub id: u64,
    pub label: String,
    pub ordered: bool,
    peer: Weak<Peer>,
    state: Mutex<State>,
    drained: Notify,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("label", &self.label)
            .finish()
    }
}

/// A valid reported buffered amount: present, finite, not negative.
fn reported_amount(reply: &Frame) -> Option<u64> {
    let ba: BufferedAmount = messages::decode(&reply.payload).ok()?;
    ba.buffered_amount
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v as u64)
}

use crate::protocol::Frame;

impl Channel {
    pub(crate) fn new(peer: &Arc<Peer>, label: String, ordered: bool, created: bool) -> Arc<Self> {
        Arc::new(Channel {
            id: next_object_id(),
            label,
            ordered,
            peer: Arc::downgrade(peer),
            state: Mutex::new(State {
                ready: ReadyState::Connecting,
                queue: VecDeque::new(),
                unacked: 0,
                in_flight: 0,
                sidecar_buffered: 0,
                threshold: 0,
                created,
                polling: false,
                send_failed: false,
                close_after_create: false,
            }),
            drained: Notify::new(),
        })
    }

    pub fn ready_state(&self) -> ReadyState {
        self.state.lock().unwrap().ready
    }

    pub fn buffered_amount(&self) -> u64 {
        self.state.lock().unwrap().buffered_amount()
    }

    pub fn threshold(&self) -> u64 {
        self.state.lock().unwrap().threshold
    }

    /// Emits on this channel. Errors are also logged, whether or not anyone listens.
    fn emit(&self, event: ChannelEvent) {
        if let Some(peer) = self.peer.upgrade() {
            if let ChannelEvent::Error(text) = &event {
                peer.log(format!(
                    "data channel {:?} of {}: error: {text}",
                    self.label, peer.pc_id
                ));
            }
            peer.emit(Emit::Channel(self.id, event));
        }
    }

    fn flush(&self) {
        if let Some(peer) = self.peer.upgrade() {
            peer.flush();
        }
    }

    /// Queues one message; it goes out as soon as the connection's in-flight budget allows.
    /// Synchronous: never waits for an acknowledgement. With nothing queued ahead of it and
    /// room in the budget, the bytes go straight into the sidecar's outgoing buffer (no copy
    /// of their own).
    pub fn send(self: &Arc<Self>, data: &[u8], binary: bool) -> Result<(), Error> {
        if data.len() > MAX_MESSAGE_SIZE {
            return Err(Error::Type(format!(
                "message of {} bytes exceeds maxMessageSize ({MAX_MESSAGE_SIZE} bytes)",
                data.len()
            )));
        }
        let peer = self.peer.upgrade();
        {
            let mut state = self.state.lock().unwrap();
            if state.ready != ReadyState::Open {
                return Err(Error::InvalidState(format!(
                    "RTCDataChannel.readyState is '{}', not 'open'",
                    state.ready.as_str()
                )));
            }
            let limit = peer.as_ref().map_or(u64::MAX, |p| p.max_buffered_amount());
            let after = state.buffered_amount().saturating_add(data.len() as u64);
            if after > limit {
                return Err(Error::Operation(format!(
                    "send() would take bufferedAmount to {after} bytes, over the connection's \
                     _maxBufferedAmount of {limit}"
                )));
            }
            state.unacked += data.len() as u64;
            let direct = state.queue.is_empty() && state.created;
            if let (true, Some(peer)) = (direct, &peer) {
                if let Some(sidecar) = peer.sidecar_ref() {
                    if peer.try_acquire_send() {
                        self.send_now(&mut state, peer, sidecar, data, binary);
                        return Ok(());
                    }
                }
            }
            state.queue.push_back(Outgoing {
                data: data.to_vec(),
                binary,
            });
        }
        if let Some(peer) = peer {
            peer.pump();
        }
        Ok(())
    }

    /// Hands queued messages to the sidecar while the connection's budget allows. The lock
    /// is held while frames are queued, so two threads pumping cannot reorder messages.
    /// Returns true when messages are still waiting.
    pub(crate) fn pump(self: &Arc<Self>, peer: &Peer, sidecar: &Sidecar) -> bool {
        let mut state = self.state.lock().unwrap();
        if !state.created || !matches!(state.ready, ReadyState::Open | ReadyState::Closing) {
            return false;
        }
        while !state.queue.is_empty() {
            if !peer.try_acquire_send() {
                return true;
            }
            let message = state.queue.pop_front().expect("queue is not empty");
            self.send_now(&mut state, peer, sidecar, &message.data, message.binary);
        }
        if state.drained() {
            self.drained.notify_waiters();
        }
        false
    }

    /// Writes one `dc.send` for which a slot of the budget is already taken, under the
    /// channel's lock (`state`).
    fn send_now(
        self: &Arc<Self>,
        state: &mut State,
        peer: &Peer,
        sidecar: &Sidecar,
        data: &[u8],
        binary: bool,
    ) {
        let len = data.len() as u64;
        let channel = self.clone();
        let sent = sidecar.request_with(
            "dc.send",
            &peer.pc_id,
            &self.label,
            binary,
            data,
            Responder::Callback(Box::new(move |reply| channel.on_ack(len, reply))),
        );
        match sent {
            Ok(()) => state.in_flight += 1,
            Err(_unsent) => {
                // The sidecar is going away; the channel is force-closed with it, on the
                // JavaScript thread. Until then the bytes stay in bufferedAmount, as a
                // browser keeps what it can no longer send: a loop that sends while
                // bufferedAmount is low must end even though readyState is still 'open'.
                peer.release_send();
            }
        }
    }

    fn on_ack(self: &Arc<Self>, len: u64, reply: Reply) {
        let peer = self.peer.upgrade();
        if let Some(peer) = &peer {
            peer.release_send();
        }
        let mut error = None;
        let low = {
            let mut state = self.state.lock().unwrap();
            let before = state.buffered_amount();
            state.in_flight = state.in_flight.saturating_sub(1);
            state.unacked = state.unacked.saturating_sub(len);
            match &reply {
                Ok(frame) => {
                    if let Some(amount) = reported_amount(frame) {
                        state.sidecar_buffered = amount;
                    }
                }
                Err(e) if state.ready != ReadyState::Closed && !state.send_failed => {
                    state.send_failed = true;
                    error = Some(e.to_string());
                }
                Err(_) => {}
            }
            if state.drained() {
                self.drained.notify_waiters();
            }
            let after = state.buffered_amount();
            state.ready == ReadyState::Open && before > state.threshold && after <= state.threshold
        };
        if let Some(error) = error {
            self.emit(ChannelEvent::Error(format!("send failed: {error}")));
        }
        if low {
            self.emit_low();
        }
        if let Some(peer) = peer {
            peer.pump();
        }
        self.poll_when_idle(FIRST_POLL);
    }

    /// `bufferedamountlow` after the amount fell to the threshold, unless JavaScript has
    /// sent it above again by the time the event would reach it.
    fn emit_low(self: &Arc<Self>) {
        let Some(peer) = self.peer.upgrade() else {
            return;
        };
        let channel = self.clone();
        peer.on_js(move || {
            let still_low = {
                let state = channel.state.lock().unwrap();
                state.ready == ReadyState::Open && state.buffered_amount() <= state.threshold
            };
            if still_low {
                channel.emit(ChannelEvent::BufferedAmountLow);
            }
        });
    }

    /// With nothing in flight there are no acknowledgements to report the sidecar's backlog,
    /// and the sidecar's own `dc.bufferedamountlow` only fires when its amount crosses its
    /// threshold from above. So while idle with a backlog left, ask for it now and then, or
    /// a sender waiting for `bufferedamountlow` on a stale figure would wait forever.
    fn poll_when_idle(self: &Arc<Self>, delay: Duration) {
        {
            let mut state = self.state.lock().unwrap();
            if state.polling
                || !state.drained()
                || state.sidecar_buffered == 0
                || state.ready != ReadyState::Open
            {
                return;
            }
            state.polling = true;
        }
        let Some(sidecar) = self.peer.upgrade().and_then(|p| p.sidecar()) else {
            self.state.lock().unwrap().polling = false;
            return;
        };
        let channel = self.clone();
        sidecar.run_task(async move {
            tokio::time::sleep(delay).await;
            if channel.ready_state() != ReadyState::Open {
                // Closed meanwhile: the sidecar no longer knows the channel, and the
                // question would only come back as an error.
                channel.state.lock().unwrap().polling = false;
                return;
            }
            let polled = channel.clone();
            channel.request("dc.getBA", &[], move |reply| {
                let Some(peer) = polled.peer.upgrade() else {
                    return;
                };
                peer.on_js(move || polled.on_polled(reply, delay));
            });
        });
    }

    fn on_polled(self: &Arc<Self>, reply: Reply, delay: Duration) {
        let low = {
            let mut state = self.state.lock().unwrap();
            state.polling = false;
            let before = state.buffered_amount();
            if let Ok(frame) = &reply {
                if let Some(amount) = reported_amount(frame) {
                    state.sidecar_buffered = amount;
                }
            }
            let after = state.buffered_amount();
            state.ready == ReadyState::Open && before > state.threshold && after <= state.threshold
        };
        if low {
            self.emit_low();
        }
        if reply.is_ok() {
            self.poll_when_idle((delay * 2).min(MAX_POLL));
        }
    }

    /// Sets the low-water mark; the sidecar is told once it knows the channel.
    pub fn set_threshold(self: &Arc<Self>, threshold: u64) {
        let created = {
            let mut state = self.state.lock().unwrap();
            state.threshold = threshold;
            state.created && state.ready != ReadyState::Closed
        };
        if created {
            self.send_threshold(threshold);
        }
    }

    fn send_threshold(self: &Arc<Self>, threshold: u64) {
        self.request(
            "dc.setBALT",
            &messages::encode(&SetThreshold { threshold }),
            {
                let channel = self.clone();
                move |reply| {
                    if let Err(e) = reply {
                        if channel.ready_state() != ReadyState::Closed {
                            channel.emit(ChannelEvent::Error(format!(
                                "setting bufferedAmountLowThreshold failed: {e}"
                            )));
                            channel.flush();
                        }
                    }
                }
            },
        );
    }

    /// Sends a request about this channel; `done` gets the reply, or the send error.
    fn request(&self, method: &str, payload: &[u8], done: impl FnOnce(Reply) + Send + 'static) {
        let Some(peer) = self.peer.upgrade() else {
            return done(Err(Error::Stopped));
        };
        let Some(sidecar) = peer.sidecar() else {
            return done(Err(Error::NotStarted));
        };
        if let Err((e, unused)) = sidecar.request_with(
            method,
            &peer.pc_id,
            &self.label,
            false,
            payload,
            Responder::Callback(Box::new(done)),
        ) {
            unused.respond(Err(e));
        }
    }

    /// Sends `dc.create` (after `pc.create` succeeded).
    pub(crate) fn create_on_sidecar(self: &Arc<Self>) {
        let payload = messages::encode(&DcCreate {
            label: self.label.clone(),
            ordered: self.ordered,
        });
        let channel = self.clone();
        self.request("dc.create", &payload, move |reply| {
            let Some(peer) = channel.peer.upgrade() else {
                return;
            };
            peer.on_js(move || match reply {
                Ok(_) => channel.on_created(),
                Err(e) => channel.fail(e),
            })
        });
    }

    fn on_created(self: &Arc<Self>) {
        let threshold = {
            let mut state = self.state.lock().unwrap();
            if state.ready == ReadyState::Closed {
                let tell = std::mem::take(&mut state.close_after_create);
                drop(state);
                // Closed while the sidecar was creating it: now it knows it, tell it (unless
                // its connection is closing: pc.close takes the channel with it).
                let closing = self.peer.upgrade().is_none_or(|p| p.is_closing());
                if tell && !closing {
                    self.tell_closed();
                }
                return;
            }
            state.created = true;
            state.threshold
        };
        if threshold != 0 {
            self.send_threshold(threshold);
        }
        if let Some(peer) = self.peer.upgrade() {
            peer.pump();
        }
    }

    /// The channel could not be created: error (when someone listens), then close.
    pub(crate) fn fail(self: &Arc<Self>, err: Error) {
        if self.ready_state() == ReadyState::Closed {
            return;
        }
        self.emit(ChannelEvent::Error(err.to_string()));
        self.force_close();
        self.flush();
    }

    /// Closed at once: queue dropped, amounts zero, `close` emitted; no request. Only once.
    pub fn force_close(self: &Arc<Self>) -> bool {
        {
            let mut state = self.state.lock().unwrap();
            if state.ready == ReadyState::Closed {
                return false;
            }
            state.ready = ReadyState::Closed;
            state.queue.clear();
            state.unacked = 0;
            state.sidecar_buffered = 0;
        }
        self.drained.notify_waiters();
        self.finish_close();
        true
    }

    fn finish_close(self: &Arc<Self>) {
        if let Some(peer) = self.peer.upgrade() {
            peer.forget_channel(self);
        }
        self.emit(ChannelEvent::Close);
        if let Some(peer) = self.peer.upgrade() {
            peer.emit(Emit::Release(self.id));
        }
    }

    /// The synchronous start of close(): readyState becomes 'closing'. False when closed.
    pub fn begin_close(&self) -> bool {
        let mut state = self.state.lock().unwrap();
        match state.ready {
            ReadyState::Closed => false,
            ReadyState::Closing => true,
            _ => {
                state.ready = ReadyState::Closing;
                true
            }
        }
    }

    /// Graceful close: waits (at most [`CLOSE_DRAIN_LIMIT`]) until every queued message was
    /// acknowledged by the sidecar, then closes and tells the sidecar. The last step runs
    /// on the JavaScript thread, so readyState turns 'closed' together with the `close`
    /// event.
    pub async fn close(self: &Arc<Self>) {
        if !self.begin_close() {
            return;
        }
        let deadline = tokio::time::Instant::now() + CLOSE_DRAIN_LIMIT;
        let dropped = loop {
            let notified = self.drained.notified();
            {
                let state = self.state.lock().unwrap();
                if state.ready == ReadyState::Closed || state.drained() {
                    break 0;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break self.state.lock().unwrap().queue.len();
            }
        };
        let Some(peer) = self.peer.upgrade() else {
            return;
        };
        if dropped > 0 {
            peer.log(format!(
                "channel {:?}: {dropped} queued messages dropped after waiting {} s to close",
                self.label,
                CLOSE_DRAIN_LIMIT.as_secs()
            ));
        }
        let channel = self.clone();
        // Done when that step ran (or was dropped, with the JavaScript side gone): a pc.close
        // after this close must reach the sidecar after its dc.close.
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        peer.on_js(move || {
            let _done = done;
            let known = {
                let mut state = channel.state.lock().unwrap();
                if state.ready == ReadyState::Closed {
                    return;
                }
                state.ready = ReadyState::Closed;
                state.queue.clear();
                state.unacked = 0;
                state.sidecar_buffered = 0;
                // Not known to the sidecar yet (its dc.create unanswered or not even sent):
                // nothing to close there now.
                state.close_after_create = !state.created;
                state.created
            };
            // A second close() waiting for the drain goes on now.
            channel.drained.notify_waiters();
            if known {
                channel.tell_closed();
            }
            channel.finish_close();
        });
        let _ = finished.await;
    }

    /// `dc.close` to the sidecar, whose own `dc.close` event for it is then expected.
    fn tell_closed(&self) {
        self.request("dc.close", &[], |_| {});
        if let Some(peer) = self.peer.upgrade() {
            peer.expect_stale_close(&self.label);
        }
    }

    /// A sidecar event for this channel.
    pub(crate) fn on_event(self: &Arc<Self>, event: &str, binary: bool, payload: &Bytes) {
        match event {
            "dc.open" if self.open_if_connecting() => self.emit(ChannelEvent::Open),
            "dc.message" => {
                // Nothing is delivered once close() was called ('closing'), as in browsers.
                if matches!(self.ready_state(), ReadyState::Closing | ReadyState::Closed) {
                    return;
                }
                // The sidecar can deliver a message before dc.open: open first.
                if self.open_if_connecting() {
                    self.emit(ChannelEvent::Open);
                }
                self.emit(ChannelEvent::Message {
                    binary,
                    data: payload.clone(),
                });
            }
            "dc.close" => {
                self.force_close();
            }
            "dc.error" if self.ready_state() != ReadyState::Closed => {
                let text = String::from_utf8_lossy(payload);
                let text = if text.is_empty() {
                    "unknown error".into()
                } else {
                    text
                };
                self.emit(ChannelEvent::Error(text.into_owned()));
            }
            "dc.bufferedamountlow" if self.ready_state() == ReadyState::Open => {
                self.refresh_buffered_amount();
            }
            _ => {}
        }
    }

    fn open_if_connecting(&self) -> bool {
        let mut state = self.state.lock().unwrap();
        if state.ready == ReadyState::Connecting {
            state.ready = ReadyState::Open;
            true
        } else {
            false
        }
    }

    /// After the sidecar's own `dc.bufferedamountlow`: ask for its buffered amount and fire
    /// `bufferedamountlow` only when the total really is at or below the threshold.
    fn refresh_buffered_amount(self: &Arc<Self>) {
        let channel = self.clone();
        self.request("dc.getBA", &[], move |reply| {
            let Some(peer) = channel.peer.upgrade() else {
                return;
            };
            peer.on_js(move || channel.on_refreshed(reply));
        });
    }

    fn on_refreshed(self: &Arc<Self>, reply: Reply) {
        let channel = self;
        {
            let fire = {
                let mut state = channel.state.lock().unwrap();
                match &reply {
                    Ok(frame) => {
                        if let Some(amount) = reported_amount(frame) {
                            state.sidecar_buffered = amount;
                        }
                        state.ready == ReadyState::Open
                            && state.buffered_amount() <= state.threshold
                    }
                    // As the old SDK did when the refresh fails.
                    Err(_) => state.ready == ReadyState::Open,
                }
            };
            if fire {
                channel.emit(ChannelEvent::BufferedAmountLow);
            }
        }
    }
}
