//! One sidecar's connections and channels as a sans-IO state machine: commands and the
//! sidecar's frames go in; request frames, events and the next deadline come out. The driver
//! owns it on one thread, writes [`Session::poll_transmit`] to stdin, hands
//! [`Session::poll_event`] to JavaScript and calls [`Session::handle_timeout`] when
//! [`Session::poll_timeout`] is due.

mod replies;

use super::channel::{Channel, ReadyState};
use super::connection::hold::ConnectionOptions;
use super::connection::{Channels, CloseStage, Connection};
use super::connection_call::ConnectionCall;
use super::events::{ChannelId, ConnectionEvent, ConnectionId, Event, Object, Queued, SettleToken};
use super::outbox::Request;
use super::output::SessionOutput;
use super::paused::Paused;
use super::pending::{Answer, RequestKind};
use crate::error::Error;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Session {
    connections: BTreeMap<ConnectionId, Connection>,
    channels: Channels,
    /// The listening connections by pcId: sidecar events are routed by it.
    by_pc_id: HashMap<String, ConnectionId>,
    /// Connections whose close() waits for their channels.
    draining: BTreeSet<ConnectionId>,
    /// Channels JavaScript let go of that still owe the sidecar their `dc.close`: kept until
    /// their `dc.create` is answered.
    forgotten: BTreeSet<ChannelId>,
    /// pcIds whose connection was closed on the sidecar, and when: its last 'closed' states
    /// may still come (PROTOCOL.md, traps 5 and 12) and must not close a new connection that
    /// took the id meanwhile.
    pub(super) closed_ids: HashMap<String, Instant>,
    out: SessionOutput,
    /// Whether sidecar events are also handed out raw (someone listens on the PionIpc).
    raw_events: bool,
    /// Channels whose events wait until their reader resumes them.
    paused: Paused,
}

impl Session {
    /// A session for a running sidecar whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Session {
            connections: BTreeMap::new(),
            channels: Channels::default(),
            by_pc_id: HashMap::new(),
            draining: BTreeSet::new(),
            forgotten: BTreeSet::new(),
            closed_ids: HashMap::new(),
            out: SessionOutput::new(timeout),
            raw_events: false,
            paused: Paused::default(),
        }
    }

    /// The last object id this session handed out: a session that follows it (the next life
    /// of the sidecar) continues after it, so one table of JavaScript objects can hold both.
    pub fn last_object_id(&self) -> u64 {
        self.out.last_object_id()
    }

    /// Object ids of this session come after `last` (see [`last_object_id`](Self::last_object_id)).
    pub fn continue_ids_after(&mut self, last: u64) {
        self.out.continue_ids_after(last);
    }

    pub fn set_raw_events(&mut self, on: bool) {
        self.raw_events = on;
    }

    pub fn connection(&self, id: ConnectionId) -> Option<&Connection> {
        self.connections.get(&id)
    }

    pub fn channel(&self, id: ChannelId) -> Option<&Channel> {
        self.channels.get(&id)
    }

    /// Requests sent and not yet answered.
    pub fn pending_requests(&self) -> usize {
        self.out.outbox.pending_len()
    }

    /// Whether the sidecar is gone (exited or stopped): nothing more goes out.
    pub fn is_gone(&self) -> bool {
        self.out.outbox.gone().is_some()
    }

    /// Whether [`poll_event`](Self::poll_event) has something (or a low edge to check).
    pub fn has_events(&self) -> bool {
        !self.out.events.is_empty() || self.paused.has_released()
    }

    /// The channel's events wait (in order, see `paused.rs`) until
    /// [`resume_channel`](Self::resume_channel); its state moves on meanwhile.
    pub fn pause_channel(&mut self, id: ChannelId) {
        if self.channels.contains_key(&id) {
            self.paused.pause(id);
        }
    }

    /// The channel's held events come out next.
    pub fn resume_channel(&mut self, id: ChannelId) {
        self.paused.resume(id);
    }

    pub fn is_channel_paused(&self, id: ChannelId) -> bool {
        self.paused.is_paused(id)
    }

    /// Message bytes held for paused channels and not yet handed out: the driver counts
    /// them as undelivered.
    pub fn held_bytes(&self) -> usize {
        self.paused.bytes()
    }

    /// The request frames written since the last call, in order, for the sidecar's stdin.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.outbox.take_bytes()
    }

    /// The next thing JavaScript must see.
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            let event = match self.paused.next_released() {
                Some(event) => event,
                None => match self.out.events.pop()? {
                    Queued::Ready(event) => event,
                    Queued::LowIfStillLow(id) => {
                        if !self.channels.get(&id).is_some_and(Channel::still_low) {
                            continue;
                        }
                        Event::Channel(id, super::events::ChannelEvent::BufferedAmountLow)
                    }
                    Queued::Connected(id) => {
                        let connection = self.connections.get_mut(&id);
                        if !connection.is_some_and(Connection::finish_connecting) {
                            continue;
                        }
                        Event::Connection(id, ConnectionEvent::ConnectionStateChange)
                    }
                },
            };
            if let Some(event) = self.paused.pass(event) {
                return Some(event);
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (
            self.out.outbox.next_deadline(),
            self.out.timers.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `new RTCPeerConnection()`: `pc.create` goes out at once with `create` (its encoded
    /// payload, or the reason the connection fails instead: bad options, no `_ipc`) and
    /// the `options` the core keeps.
    pub fn create_connection(
        &mut self,
        pc_id: String,
        create: Result<Vec<u8>, Error>,
        options: ConnectionOptions,
        now: Instant,
    ) -> ConnectionId {
        let id = ConnectionId(self.out.next_object_id());
        let mut connection = Connection::new(id, pc_id.clone(), options);
        let refusal = match create {
            Err(e) => Err(e),
            Ok(_) if self.is_gone() => Err(Error::NotStarted),
            // The sidecar would refuse it too, but the live connection would hear nothing
            // more once its pcId were routed here.
            Ok(_) if self.by_pc_id.contains_key(&pc_id) => {
                Err(Error::Remote(format!("peer {pc_id:?} already exists")))
            }
            Ok(payload) => Ok(payload),
        };
        match refusal {
            Ok(payload) => {
                connection.start_listening();
                self.by_pc_id.insert(pc_id.clone(), id);
                let request = Request::new("pc.create", &pc_id, "", &payload);
                self.out
                    .outbox
                    .send(request, RequestKind::ConnectionCreate(id), now);
                self.connections.insert(id, connection);
            }
            Err(e) => {
                connection.on_created(&mut self.channels, &mut self.out, Err(e), now);
                self.connections.insert(id, connection);
            }
        }
        self.finish_input(now);
        id
    }

    /// `createDataChannel(label, { ordered })`.
    pub fn create_channel(
        &mut self,
        connection: ConnectionId,
        label: String,
        ordered: bool,
        now: Instant,
    ) -> Result<ChannelId, Error> {
        let Some(conn) = self.connections.get_mut(&connection) else {
            return Err(Error::InvalidState(
                "the RTCPeerConnection is closed".into(),
            ));
        };
        let id = conn.create_data_channel(&mut self.channels, &mut self.out, label, ordered, now);
        self.finish_input(now);
        id
    }

    /// `send(data)`: synchronous, throws (returns the error) unless the channel is open.
    pub fn send(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        binary: bool,
        now: Instant,
    ) -> Result<(), Error> {
        let not_open = || {
            Error::InvalidState(format!(
                "RTCDataChannel.readyState is '{}', not 'open'",
                ReadyState::Closed.as_str()
            ))
        };
        let Some(owner) = self.channels.get(&channel).map(Channel::connection) else {
            return Err(not_open());
        };
        let Some(conn) = self.connections.get_mut(&owner) else {
            return Err(not_open());
        };
        let queued = conn
            .with_channel(&mut self.channels, channel, |ch, ctx| {
                ch.send(ctx, &mut self.out, data, binary, now)
            })
            .unwrap_or_else(|| Err(not_open()))?;
        if queued {
            conn.pump(&mut self.channels, &mut self.out, now);
        }
        self.finish_input(now);
        Ok(())
    }

    /// `bufferedAmountLowThreshold = threshold`.
    pub fn set_threshold(&mut self, channel: ChannelId, threshold: u64, now: Instant) {
        self.with_channel(channel, |ch, ctx, out| {
            ch.set_threshold(ctx, out, threshold, now)
        });
        self.finish_input(now);
    }

    /// RTCDataChannel.close(); `token` settles once the channel is closed.
    pub fn close_channel(&mut self, channel: ChannelId, token: SettleToken, now: Instant) {
        let done = self.with_channel(channel, |ch, ctx, out| ch.close(ctx, out, Some(token), now));
        if done.is_none() {
            self.out
                .emit(Event::Settle(token, Ok(super::events::Outcome::Unit)));
        }
        self.finish_input(now);
    }

    /// RTCPeerConnection.close(); `token` settles once the connection is done.
    pub fn close_connection(&mut self, connection: ConnectionId, token: SettleToken, now: Instant) {
        let Some(conn) = self.connections.get_mut(&connection) else {
            self.out
                .emit(Event::Settle(token, Ok(super::events::Outcome::Unit)));
            return;
        };
        if conn.close(&mut self.channels, &mut self.out, token, now) {
            self.draining.insert(connection);
        }
        self.finish_input(now);
    }

    /// createOffer() and the other promise methods of a connection.
    pub fn call(
        &mut self,
        connection: ConnectionId,
        call: ConnectionCall,
        token: SettleToken,
        now: Instant,
    ) {
        match self.connections.get_mut(&connection) {
            Some(conn) => conn.call(&mut self.out, call, token, now),
            None => self.out.emit(Event::Settle(
                token,
                Err(Error::InvalidState(
                    "the RTCPeerConnection is closed".into(),
                )),
            )),
        }
        self.finish_input(now);
    }

    /// `ipc.request()`: `token` settles with the raw response.
    pub fn request(&mut self, request: Request<'_>, token: SettleToken, now: Instant) {
        if self.is_gone() {
            self.out.emit(Event::Settle(token, Err(Error::NotStarted)));
            return;
        }
        let kind = RequestKind::Settle {
            token,
            answer: Answer::Frame,
        };
        self.out.outbox.send(request, kind, now);
        self.finish_input(now);
    }

    /// JavaScript let go of `object`: its state is no longer kept (a channel that still owes
    /// the sidecar its `dc.close` is kept until its `dc.create` is answered).
    pub fn forget(&mut self, object: Object) {
        match object {
            Object::Channel(id) => {
                if self.channels.get(&id).is_some_and(Channel::owes_close) {
                    self.forgotten.insert(id);
                } else {
                    self.channels.remove(&id);
                }
            }
            Object::Connection(id) => {
                if self
                    .connections
                    .get(&id)
                    .is_some_and(|c| c.close_stage() == CloseStage::Done || !c.is_listening())
                {
                    self.connections.remove(&id);
                    self.draining.remove(&id);
                }
            }
        }
    }

    /// Runs `f` on the channel `id` with its connection's context.
    fn with_channel<R>(
        &mut self,
        id: ChannelId,
        f: impl FnOnce(&mut Channel, &mut super::channel::ChannelContext<'_>, &mut SessionOutput) -> R,
    ) -> Option<R> {
        let owner = self.channels.get(&id)?.connection();
        let conn = self.connections.get_mut(&owner)?;
        let out = &mut self.out;
        conn.with_channel(&mut self.channels, id, |ch, ctx| f(ch, ctx, out))
    }

    /// After every input: refused requests are answered with their error, and closes whose
    /// channels are all closed move on, until nothing changes.
    fn finish_input(&mut self, now: Instant) {
        loop {
            if let Some((kind, error)) = self.out.outbox.take_refused() {
                self.on_reply("", kind, Err(error), now);
                continue;
            }
            let mut moved = false;
            for id in self.draining.clone() {
                let Some(conn) = self.connections.get_mut(&id) else {
                    self.draining.remove(&id);
                    continue;
                };
                if conn.advance_close(&mut self.out, now) {
                    moved = true;
                    self.draining.remove(&id);
                    self.unregister_if_deaf(id);
                }
            }
            if !moved && self.out.outbox.has_no_refusals() {
                return;
            }
        }
    }

    /// A connection that no longer listens loses its pcId (a new one may take it).
    fn unregister_if_deaf(&mut self, id: ConnectionId) {
        let Some(conn) = self.connections.get(&id) else {
            return;
        };
        if !conn.is_listening() && self.by_pc_id.get(conn.pc_id()) == Some(&id) {
            self.by_pc_id.remove(conn.pc_id());
        }
    }
}
