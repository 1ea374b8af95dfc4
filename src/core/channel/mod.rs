//! RTCDataChannel's state machine: readyState, the pipelined send queue, the dual-source
//! bufferedAmount and its low-threshold edge, graceful and forced close.

mod buffered_amount;

use crate::core::events::{
    ChannelEvent, ChannelId, ConnectionId, Event, Object, Outcome, SettleToken,
};
use crate::core::outbox::Request;
use crate::core::output::{SessionOutput, Timer};
use crate::core::pending::{BufferedAmountQuery, RequestKind};
use crate::core::registry::{ChannelRegistry, SendBudget};
use crate::error::Error;
use crate::protocol::messages::{self, BufferedAmount, DcCreate};
use crate::protocol::Frame;
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The largest message pion-ipc 0.4.1 delivers: exactly 65536 bytes silently kills the
/// association (PROTOCOL.md, trap 6).
pub const MAX_MESSAGE_SIZE: usize = 65535;

/// How long close() waits for queued messages to reach the sidecar.
pub const CLOSE_DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How soon an idle channel with a sidecar backlog asks for it, and the slowest it polls.
pub const FIRST_POLL: Duration = Duration::from_millis(10);
pub const MAX_POLL: Duration = Duration::from_millis(250);

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

/// What a channel needs of its connection while it handles something.
pub struct ChannelContext<'a> {
    pub pc_id: &'a str,
    /// close() was called on the connection: its `pc.close` takes the channels with it.
    pub closing: bool,
    pub budget: &'a mut SendBudget,
    /// The connection's `_maxBufferedAmount`, u64::MAX when none was given.
    pub max_buffered: u64,
    pub registry: &'a mut ChannelRegistry,
}

#[derive(Debug)]
struct Outgoing {
    data: Vec<u8>,
    binary: bool,
}

/// What a channel moved, counted by the SDK for `getStats()`: messages given to `send()`
/// and accepted, messages delivered, and their bytes (text as UTF-8).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub messages_received: u64,
    pub bytes_received: u64,
}

#[derive(Debug)]
pub struct Channel {
    id: ChannelId,
    connection: ConnectionId,
    label: String,
    ordered: bool,
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
    /// A poll of the sidecar's buffered amount is scheduled or asked.
    polling: bool,
    /// A failed send was reported: the others that fail with it are not, so one failure is
    /// one `error`.
    send_failed: bool,
    /// close() was called: the queue drains, then the channel closes.
    draining: bool,
    /// close() calls waiting for the channel to be closed.
    close_waiters: Vec<SettleToken>,
    /// Closed gracefully before the sidecar knew it: its `dc.close` waits for the
    /// `dc.create` answer.
    close_after_create: bool,
    counters: Counters,
}

/// A valid reported buffered amount: present, finite, not negative.
fn reported_amount(reply: &Frame) -> Option<u64> {
    let ba: BufferedAmount = messages::decode(&reply.payload).ok()?;
    ba.buffered_amount
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v as u64)
}

impl Channel {
    /// A channel of `connection`; `created` when the sidecar knows it already.
    pub fn new(
        id: ChannelId,
        connection: ConnectionId,
        label: String,
        ordered: bool,
        created: bool,
    ) -> Self {
        Channel {
            id,
            connection,
            label,
            ordered,
            ready: ReadyState::Connecting,
            queue: VecDeque::new(),
            unacked: 0,
            in_flight: 0,
            sidecar_buffered: 0,
            threshold: 0,
            created,
            polling: false,
            send_failed: false,
            draining: false,
            close_waiters: Vec::new(),
            close_after_create: false,
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn id(&self) -> ChannelId {
        self.id
    }

    pub fn connection(&self) -> ConnectionId {
        self.connection
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn ordered(&self) -> bool {
        self.ordered
    }

    pub fn ready_state(&self) -> ReadyState {
        self.ready
    }

    pub fn threshold(&self) -> u64 {
        self.threshold
    }

    /// 0 while connecting and once closed; otherwise the unacknowledged bytes plus the
    /// sidecar's own backlog as last reported.
    pub fn buffered_amount(&self) -> u64 {
        match self.ready {
            ReadyState::Connecting | ReadyState::Closed => 0,
            _ => self.unacked + self.sidecar_buffered,
        }
    }

    /// Closed before the sidecar knew it, with its `dc.close` still owed once `dc.create`
    /// is answered.
    pub fn owes_close(&self) -> bool {
        self.close_after_create
    }

    /// Messages queued here, not yet handed to the sidecar.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn drained(&self) -> bool {
        self.queue.is_empty() && self.in_flight == 0
    }

    fn is_low(&self) -> bool {
        self.ready == ReadyState::Open && self.buffered_amount() <= self.threshold
    }

    /// Emits an `error`, which is also logged whether or not anyone listens.
    fn emit_error(&self, ctx: &ChannelContext<'_>, out: &mut SessionOutput, text: String) {
        out.log(format!(
            "data channel {:?} of {}: error: {text}",
            self.label, ctx.pc_id
        ));
        out.emit(Event::Channel(self.id, ChannelEvent::Error(text)));
    }

    /// Queues one message; it goes out at once when nothing is queued ahead of it and the
    /// connection's budget allows. Returns true when it waits in the queue (the connection
    /// should pump).
    pub fn send(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        out: &mut SessionOutput,
        data: &[u8],
        binary: bool,
        now: Instant,
    ) -> Result<bool, Error> {
        if data.len() > MAX_MESSAGE_SIZE {
            return Err(Error::Type(format!(
                "message of {} bytes exceeds maxMessageSize ({MAX_MESSAGE_SIZE} bytes)",
                data.len()
            )));
        }
        if self.ready != ReadyState::Open {
            return Err(Error::InvalidState(format!(
                "RTCDataChannel.readyState is '{}', not 'open'",
                self.ready.as_str()
            )));
        }
        let limit = ctx.max_buffered;
        let after = self.buffered_amount().saturating_add(data.len() as u64);
        if after > limit {
            return Err(Error::Operation(format!(
                "send() would take bufferedAmount to {after} bytes, over the connection's \
                 _maxBufferedAmount of {limit}"
            )));
        }
        self.unacked += data.len() as u64;
        self.counters.messages_sent += 1;
        self.counters.bytes_sent += data.len() as u64;
        if self.queue.is_empty() && self.created && ctx.budget.try_acquire() {
            self.send_now(ctx, out, data, binary, now);
            return Ok(false);
        }
        self.queue.push_back(Outgoing {
            data: data.to_vec(),
            binary,
        });
        Ok(true)
    }

    /// Hands queued messages to the sidecar while the budget allows. Returns true when
    /// messages still wait for room in the budget.
    pub fn pump(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        out: &mut SessionOutput,
        now: Instant,
    ) -> bool {
        if !self.created || !matches!(self.ready, ReadyState::Open | ReadyState::Closing) {
            return false;
        }
        while !self.queue.is_empty() {
            if !ctx.budget.try_acquire() {
                return true;
            }
            let message = self.queue.pop_front().expect("the queue is not empty");
            self.send_now(ctx, out, &message.data, message.binary, now);
        }
        self.finish_drain(ctx, out, now);
        false
    }

    /// Writes one `dc.send` for which a slot of the budget is already taken.
    fn send_now(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        out: &mut SessionOutput,
        data: &[u8],
        binary: bool,
        now: Instant,
    ) {
        let request = Request {
            is_binary: binary,
            ..Request::new("dc.send", ctx.pc_id, &self.label, data)
        };
        let kind = RequestKind::Ack {
            connection: self.connection,
            channel: self.id,
            len: data.len() as u64,
        };
        match out.outbox.try_send(request, kind, now) {
            Ok(_) => self.in_flight += 1,
            // The sidecar is going away and the channel with it. Until then the bytes stay
            // in bufferedAmount, as a browser keeps what it can no longer send.
            Err(_) => ctx.budget.release(),
        }
    }

    /// The answer to one of this channel's `dc.send` (its budget slot is already given
    /// back): bufferedAmount, the low edge, one `error` for sends failing together.
    pub fn on_ack(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        out: &mut SessionOutput,
        len: u64,
        reply: Result<Frame, Error>,
        now: Instant,
    ) {
        let before = self.buffered_amount();
        self.in_flight = self.in_flight.saturating_sub(1);
        self.unacked = self.unacked.saturating_sub(len);
        match &reply {
            Ok(frame) => {
                if let Some(amount) = reported_amount(frame) {
                    self.sidecar_buffered = amount;
                }
            }
            Err(e) if self.ready != ReadyState::Closed && !self.send_failed => {
                self.send_failed = true;
                self.emit_error(ctx, out, format!("send failed: {e}"));
            }
            Err(_) => {}
        }
        let after = self.buffered_amount();
        if self.ready == ReadyState::Open && before > self.threshold && after <= self.threshold {
            out.events.push_low_if_still_low(self.id);
        }
        self.finish_drain(ctx, out, now);
    }

    /// Sends `dc.create` (after `pc.create` succeeded).
    pub fn create_on_sidecar(
        &self,
        ctx: &ChannelContext<'_>,
        out: &mut SessionOutput,
        now: Instant,
    ) {
        let payload = messages::encode(&DcCreate {
            label: self.label.clone(),
            ordered: self.ordered,
        });
        let request = Request::new("dc.create", ctx.pc_id, &self.label, &payload);
        out.outbox
            .send(request, RequestKind::ChannelCreate(self.id), now);
    }

    /// The answer to `dc.create`. Returns true when the connection should pump.
    pub fn on_create_reply(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        out: &mut SessionOutput,
        reply: Result<Frame, Error>,
        now: Instant,
    ) -> bool {
        let owed = std::mem::take(&mut self.close_after_create);
        match reply {
            Err(e) => {
                self.fail(ctx, out, e);
                false
            }
            Ok(_) if self.ready == ReadyState::Closed => {
                // Closed while the sidecar was creating it: now it knows it, tell it (unless
                // the connection is closing: pc.close takes the channel with it).
                if owed && !ctx.closing {
                    self.tell_closed(ctx, out, now);
                }
                false
            }
            Ok(_) => {
                self.created = true;
                if self.threshold != 0 {
                    self.send_threshold(ctx, out, now);
                }
                true
            }
        }
    }

    /// The channel could not be created: `error`, then close.
    pub fn fail(&mut self, ctx: &mut ChannelContext<'_>, out: &mut SessionOutput, err: Error) {
        if self.ready == ReadyState::Closed {
            return;
        }
        self.emit_error(ctx, out, err.to_string());
        self.force_close(ctx, out);
    }

    fn clear(&mut self) {
        self.ready = ReadyState::Closed;
        self.queue.clear();
        self.unacked = 0;
        self.sidecar_buffered = 0;
    }

    /// Closed at once: queue dropped, amounts zero, `close` emitted; no request. Only once.
    pub fn force_close(&mut self, ctx: &mut ChannelContext<'_>, out: &mut SessionOutput) -> bool {
        if self.ready == ReadyState::Closed {
            return false;
        }
        self.clear();
        self.finish_close(ctx, out);
        true
    }

    fn finish_close(&mut self, ctx: &mut ChannelContext<'_>, out: &mut SessionOutput) {
        ctx.registry.forget(&self.label, self.id);
        out.emit(Event::Channel(self.id, ChannelEvent::Close));
        out.emit(Event::Release(Object::Channel(self.id)));
        for token in self.close_waiters.drain(..) {
            out.emit(Event::Settle(token, Ok(Outcome::Unit)));
        }
    }

    /// The synchronous start of close(): readyState becomes 'closing'. False when closed.
    pub fn begin_close(&mut self) -> bool {
        match self.ready {
            ReadyState::Closed => false,
            ReadyState::Closing => true,
            _ => {
                self.ready = ReadyState::Closing;
                true
            }
        }
    }

    /// Graceful close: waits (at most [`CLOSE_DRAIN_LIMIT`]) until every queued message was
    /// acknowledged, then closes and tells the sidecar (once it knows the channel). `token` (if any) is settled once the
    /// channel is closed, however that comes about.
    pub fn close(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        out: &mut SessionOutput,
        token: Option<SettleToken>,
        now: Instant,
    ) {
        if !self.begin_close() {
            if let Some(token) = token {
                out.emit(Event::Settle(token, Ok(Outcome::Unit)));
            }
            return;
        }
        self.close_waiters.extend(token);
        if self.draining {
            return;
        }
        self.draining = true;
        if self.drained() {
            self.finish_graceful(ctx, out, now);
        } else {
            out.timers
                .set(now + CLOSE_DRAIN_LIMIT, Timer::CloseDrain(self.id));
        }
    }

    fn finish_drain(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        out: &mut SessionOutput,
        now: Instant,
    ) {
        if self.draining && self.ready == ReadyState::Closing && self.drained() {
            self.finish_graceful(ctx, out, now);
        }
    }

    /// The drain limit passed: the rest of the queue is dropped.
    pub fn on_drain_timer(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        out: &mut SessionOutput,
        now: Instant,
    ) {
        if self.ready != ReadyState::Closing || !self.draining {
            return;
        }
        let dropped = self.queue.len();
        if dropped > 0 {
            out.log(format!(
                "channel {:?}: {dropped} queued messages dropped after waiting {} s to close",
                self.label,
                CLOSE_DRAIN_LIMIT.as_secs()
            ));
        }
        self.finish_graceful(ctx, out, now);
    }

    fn finish_graceful(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        out: &mut SessionOutput,
        now: Instant,
    ) {
        self.clear();
        // Not known to the sidecar yet (its dc.create unanswered or not even sent): nothing
        // to close there now.
        if self.created {
            self.tell_closed(ctx, out, now);
        } else {
            self.close_after_create = true;
        }
        self.finish_close(ctx, out);
    }

    /// `dc.close` to the sidecar, whose own `dc.close` event for it is then expected.
    fn tell_closed(&self, ctx: &mut ChannelContext<'_>, out: &mut SessionOutput, now: Instant) {
        let request = Request::new("dc.close", ctx.pc_id, &self.label, &[]);
        out.outbox
            .send(request, RequestKind::ChannelClose(self.id), now);
        ctx.registry.expect_stale_close(&self.label, now);
    }

    /// A sidecar event for this channel. The sidecar's own `dc.bufferedamountlow` (while
    /// open) asks for its backlog; the answer decides whether `bufferedamountlow` fires.
    pub fn on_event(
        &mut self,
        ctx: &mut ChannelContext<'_>,
        out: &mut SessionOutput,
        event: &str,
        binary: bool,
        payload: &Bytes,
        now: Instant,
    ) {
        match event {
            "dc.open" if self.open_if_connecting() => {
                out.emit(Event::Channel(self.id, ChannelEvent::Open));
            }
            "dc.message" => {
                // Nothing is delivered once close() was called ('closing'), as in browsers.
                if matches!(self.ready, ReadyState::Closing | ReadyState::Closed) {
                    return;
                }
                // The sidecar can deliver a message before dc.open: open first.
                if self.open_if_connecting() {
                    out.emit(Event::Channel(self.id, ChannelEvent::Open));
                }
                self.counters.messages_received += 1;
                self.counters.bytes_received += payload.len() as u64;
                let data = payload.clone();
                out.emit(Event::Channel(
                    self.id,
                    ChannelEvent::Message { binary, data },
                ));
            }
            "dc.close" => {
                self.force_close(ctx, out);
            }
            "dc.error" if self.ready != ReadyState::Closed => {
                let text = String::from_utf8_lossy(payload);
                let text = if text.is_empty() {
                    "unknown error".to_owned()
                } else {
                    text.into_owned()
                };
                self.emit_error(ctx, out, text);
            }
            "dc.bufferedamountlow" if self.ready == ReadyState::Open => {
                let kind = RequestKind::GetBufferedAmount {
                    channel: self.id,
                    query: BufferedAmountQuery::SidecarLow,
                };
                let request = Request::new("dc.getBA", ctx.pc_id, &self.label, &[]);
                out.outbox.send(request, kind, now);
            }
            _ => {}
        }
    }

    fn open_if_connecting(&mut self) -> bool {
        if self.ready == ReadyState::Connecting {
            self.ready = ReadyState::Open;
            true
        } else {
            false
        }
    }

    /// Whether a `bufferedamountlow` queued after an acknowledgement still holds.
    pub fn still_low(&self) -> bool {
        self.is_low()
    }
}
