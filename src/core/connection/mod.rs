//! RTCPeerConnection's state machine: its creation, the four states and their late events
//! (PROTOCOL.md, trap 5), its channels, the calls that wait for `pc.create`, failure and
//! close; the offerer's candidate hold (`hold.rs`, issue 15) and the local description
//! with its gathered candidates (`local_description.rs`, trap 16); the current and pending
//! descriptions (`descriptions.rs`). `hold.rs`, `local_description.rs` and
//! `descriptions.rs` hold plain state and import nothing of this module;
//! `signals.rs`, `calls.rs` and `closing.rs` add methods to [`Connection`].

mod calls;
mod closing;
mod descriptions;
pub mod hold;
mod local_description;
mod signals;

use crate::core::channel::{Channel, ChannelContext, ReadyState};
use crate::core::connection_call::ConnectionCall;
use crate::core::events::{ChannelId, ConnectionEvent, ConnectionId, Event, Object, SettleToken};
use crate::core::id_map::IdMap;
use crate::core::output::SessionOutput;
use crate::core::registry::{ChannelRegistry, SendBudget};
use crate::error::Error;
use crate::protocol::messages::{
    self, CandidatePair, DataChannelAnnounce, IceCandidate, State, StateChange,
};
use crate::protocol::Frame;
use descriptions::Descriptions;
use hold::{CandidateGate, ConnectionOptions};
use local_description::LocalDescription;
use std::collections::VecDeque;
use std::time::Instant;

/// The longest data channel label, in UTF-8 bytes, that the remote side accepts: pion-ipc
/// 0.4.1 reads a channel's announcement (12 bytes of header, the label) into 8192 bytes.
pub const MAX_LABEL_BYTES: usize = 8180;

/// Every channel of a session, by id.
pub type Channels = IdMap<ChannelId, Channel>;

/// Where close() is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseStage {
    NotClosing,
    /// Waiting for the channels to close.
    Draining,
    /// Closed, `pc.create` unanswered: waiting for its answer (at most the drain limit),
    /// since a peer the sidecar created must be closed there too.
    AwaitingCreate,
    /// `pc.close` sent; waiting for its answer.
    AwaitingPcClose,
    /// Done: released, every close() settled.
    Done,
}

#[derive(Debug)]
pub struct Connection {
    id: ConnectionId,
    pc_id: String,
    connection: String,
    ice_connection: String,
    ice_gathering: String,
    signaling: String,
    selected_pair: Option<CandidatePair>,
    /// Sidecar events are routed here (false once closed or failed); registered by pcId
    /// exactly while this holds.
    listening: bool,
    closing: bool,
    /// restartIce() was called and the connection has not been 'connected' since: going
    /// back to 'connecting'/'checking' is real then, not a late event.
    ice_restarting: bool,
    /// 'connected' came while 'new' (the sidecar's 'connecting' late or not at all, trap 5):
    /// the state is 'connecting' until that change was delivered, then 'connected', so the
    /// listeners see the two steps a browser shows.
    connected_next: bool,
    /// The outcome of `pc.create`, once known.
    created: Option<Result<(), Error>>,
    /// Local channels waiting for `pc.create` before their `dc.create` can go out.
    awaiting_channels: Vec<ChannelId>,
    /// Calls waiting for `pc.create`.
    awaiting_calls: VecDeque<(ConnectionCall, SettleToken)>,
    budget: SendBudget,
    max_buffered: u64,
    registry: ChannelRegistry,
    close_stage: CloseStage,
    close_waiters: Vec<SettleToken>,
    /// The offerer's candidate hold (issue 15).
    gate: CandidateGate,
    local: LocalDescription,
    /// Current and pending, local and remote (the standard API's four descriptions).
    descriptions: Descriptions,
}

/// The context a channel of `$conn` needs, borrowed from its fields.
macro_rules! context {
    ($conn:expr) => {
        ChannelContext {
            pc_id: &$conn.pc_id,
            closing: $conn.closing,
            budget: &mut $conn.budget,
            max_buffered: $conn.max_buffered,
            registry: &mut $conn.registry,
        }
    };
}

impl Connection {
    pub(crate) fn new(id: ConnectionId, pc_id: String, options: ConnectionOptions) -> Self {
        Connection {
            id,
            pc_id,
            connection: "new".into(),
            ice_connection: "new".into(),
            ice_gathering: "new".into(),
            signaling: "stable".into(),
            selected_pair: None,
            listening: false,
            closing: false,
            ice_restarting: false,
            connected_next: false,
            created: None,
            awaiting_channels: Vec::new(),
            awaiting_calls: VecDeque::new(),
            budget: SendBudget::default(),
            max_buffered: options.max_buffered.unwrap_or(u64::MAX),
            registry: ChannelRegistry::default(),
            close_stage: CloseStage::NotClosing,
            close_waiters: Vec::new(),
            gate: CandidateGate::new(options.candidate_hold),
            local: LocalDescription::default(),
            descriptions: Descriptions::default(),
        }
    }

    pub fn id(&self) -> ConnectionId {
        self.id
    }

    pub fn pc_id(&self) -> &str {
        &self.pc_id
    }

    pub fn connection_state(&self) -> &str {
        &self.connection
    }

    pub fn ice_connection_state(&self) -> &str {
        &self.ice_connection
    }

    pub fn ice_gathering_state(&self) -> &str {
        &self.ice_gathering
    }

    pub fn signaling_state(&self) -> &str {
        &self.signaling
    }

    pub fn selected_candidate_pair(&self) -> Option<&CandidatePair> {
        self.selected_pair.as_ref()
    }

    pub fn is_listening(&self) -> bool {
        self.listening
    }

    /// True once the create failed for good (bad options, no sidecar, refused).
    pub fn creation_failed(&self) -> bool {
        matches!(self.created, Some(Err(_)))
    }

    /// `dc.send` requests of this connection in flight.
    pub fn sends_in_flight(&self) -> usize {
        self.budget.in_flight()
    }

    pub(crate) fn close_stage(&self) -> CloseStage {
        self.close_stage
    }

    pub(crate) fn start_listening(&mut self) {
        self.listening = true;
    }

    pub(crate) fn release_send(&mut self) {
        self.budget.release();
    }

    /// The channel `id` with the context it needs of this connection.
    pub(crate) fn with_channel<R>(
        &mut self,
        channels: &mut Channels,
        id: ChannelId,
        f: impl FnOnce(&mut Channel, &mut ChannelContext<'_>) -> R,
    ) -> Option<R> {
        let channel = channels.get_mut(&id)?;
        Some(f(channel, &mut context!(self)))
    }

    /// Moves queued messages of every channel to the sidecar while the budget allows.
    pub(crate) fn pump(&mut self, channels: &mut Channels, out: &mut SessionOutput, now: Instant) {
        let mut cursor = None;
        while let Some(id) = self.registry.next_live(cursor) {
            cursor = Some(id);
            let waiting =
                self.with_channel(channels, id, |channel, ctx| channel.pump(ctx, out, now));
            if waiting == Some(true) {
                break;
            }
        }
    }

    /// Creates a local channel; `dc.create` goes out once `pc.create` succeeded.
    pub(crate) fn create_data_channel(
        &mut self,
        channels: &mut Channels,
        out: &mut SessionOutput,
        label: String,
        ordered: bool,
        now: Instant,
    ) -> Result<ChannelId, Error> {
        if label.is_empty() {
            return Err(Error::Type("a data channel label must not be empty".into()));
        }
        if label.len() > MAX_LABEL_BYTES {
            return Err(Error::Type(format!(
                "a data channel label must be at most {MAX_LABEL_BYTES} bytes of UTF-8 (the most \
                 the remote side accepts), got {} bytes",
                label.len()
            )));
        }
        if self.closing || self.connection == "closed" {
            return Err(Error::InvalidState(
                "the RTCPeerConnection is closed".into(),
            ));
        }
        if self.registry.by_label(&label).is_some() {
            return Err(Error::Operation(format!(
                "a data channel labelled {label:?} is still in use on this connection"
            )));
        }
        let id = ChannelId(out.next_object_id());
        self.registry.insert(&label, id);
        channels.insert(id, Channel::new(id, self.id, label, ordered, false));
        match &self.created {
            Some(Ok(())) => {
                self.with_channel(channels, id, |channel, ctx| {
                    channel.create_on_sidecar(ctx, out, now)
                });
            }
            Some(Err(e)) => {
                let e = e.clone();
                self.with_channel(channels, id, |channel, ctx| channel.fail(ctx, out, e));
            }
            None => self.awaiting_channels.push(id),
        }
        Ok(id)
    }

    /// The outcome of `pc.create`.
    pub(crate) fn on_created(
        &mut self,
        channels: &mut Channels,
        out: &mut SessionOutput,
        result: Result<(), Error>,
        now: Instant,
    ) {
        match &result {
            // The sidecar is gone: the connection stays listening, so that the failing of
            // its sidecar's connections makes it 'failed' too.
            Err(Error::Exited { .. } | Error::Stopped) | Ok(()) => {}
            Err(_) => {
                self.listening = false;
                // Nothing but close() will make it emit again.
                out.emit(Event::Weaken(Object::Connection(self.id)));
            }
        }
        // The waiting channels' dc.create go out before any call that waited: an offer made
        // after createDataChannel() must include the channel.
        for id in std::mem::take(&mut self.awaiting_channels) {
            self.with_channel(channels, id, |channel, ctx| match &result {
                // One closed meanwhile is never created.
                Ok(()) if channel.ready_state() == ReadyState::Closed => {}
                Ok(()) => channel.create_on_sidecar(ctx, out, now),
                Err(e) => channel.fail(ctx, out, e.clone()),
            });
        }
        self.created = Some(result);
        for (call, token) in std::mem::take(&mut self.awaiting_calls) {
            self.issue(out, call, token, now);
        }
        self.close_after_create(out, now);
    }

    /// The sidecar died: channels force-closed, states 'failed'. Not for closed or failed
    /// connections.
    pub(crate) fn fail(&mut self, channels: &mut Channels, out: &mut SessionOutput) {
        let was_listening = std::mem::replace(&mut self.listening, false);
        if !was_listening || self.connection == "closed" || self.connection == "failed" {
            return;
        }
        self.close_channels(channels, out);
        self.gate.drop_held();
        self.connection = "failed".into();
        self.ice_connection = "failed".into();
        let id = self.id;
        out.emit(Event::Connection(
            id,
            ConnectionEvent::ConnectionStateChange,
        ));
        out.emit(Event::Connection(
            id,
            ConnectionEvent::IceConnectionStateChange,
        ));
        out.emit(Event::Weaken(Object::Connection(id)));
    }

    /// Force-closes every live channel, in creation order.
    fn close_channels(&mut self, channels: &mut Channels, out: &mut SessionOutput) {
        for id in self.registry.live() {
            self.with_channel(channels, id, |channel, ctx| channel.force_close(ctx, out));
        }
    }

    /// A sidecar event for this connection or one of its channels. `namesake_closed`: a
    /// connection of this pcId was closed on the sidecar lately, so a 'closed' state now,
    /// unless this one is closing, is that one's last word and is not taken.
    pub(crate) fn on_event(
        &mut self,
        channels: &mut Channels,
        out: &mut SessionOutput,
        frame: &Frame,
        namesake_closed: bool,
        now: Instant,
    ) {
        let stale_closed = namesake_closed && !self.closing;
        // Nothing is this connection's before its pc.create is answered: an event for its
        // pcId then is a closed namesake's last word (PROTOCOL.md, traps 5 and 12).
        if !self.listening || self.created.is_none() {
            return;
        }
        let header = &frame.header;
        let payload = &frame.payload;
        let id = self.id;
        match header.event.as_str() {
            "pc.icecandidate" => match messages::decode::<IceCandidate>(payload) {
                Ok(candidate) => {
                    self.local.on_candidate(&candidate);
                    let event = ConnectionEvent::IceCandidate(candidate);
                    self.gate.candidate(id, out, event);
                }
                Err(e) => out.log(format!("bad pc.icecandidate payload: {e}")),
            },
            "pc.statechange" => {
                let mut change: StateChange = messages::decode(payload).unwrap_or_default();
                if stale_closed {
                    for state in [&mut change.conn_state, &mut change.ice_state] {
                        if state == "closed" {
                            state.clear();
                        }
                    }
                }
                self.on_state_change(channels, out, change);
            }
            "pc.icegatheringstatechange" | "pc.signalingstatechange" => {
                let State { state: mut value } = messages::decode(payload).unwrap_or_default();
                if stale_closed && value == "closed" {
                    value.clear();
                }
                let gathering = header.event == "pc.icegatheringstatechange";
                let slot = if gathering {
                    &mut self.ice_gathering
                } else {
                    &mut self.signaling
                };
                if !value.is_empty() && *slot != value {
                    *slot = value;
                    if gathering {
                        self.local.on_gathering(&self.ice_gathering);
                        self.gate.gathering(id, out);
                    } else {
                        out.emit(Event::Connection(id, ConnectionEvent::SignalingStateChange));
                    }
                }
            }
            "pc.selectedcandidatepairchange" => match messages::decode::<CandidatePair>(payload) {
                Ok(pair) => {
                    self.selected_pair = Some(pair);
                    out.emit(Event::Connection(
                        id,
                        ConnectionEvent::SelectedCandidatePairChange,
                    ));
                }
                Err(e) => out.log(format!("bad pc.selectedcandidatepairchange payload: {e}")),
            },
            "pc.datachannel" => self.on_remote_channel(channels, out, &header.dc_label, payload),
            "dc.close" if self.registry.consume_stale_close(&header.dc_label, now) => {}
            event if event.starts_with("dc.") => {
                if let Some(channel) = self.registry.by_label(&header.dc_label) {
                    self.with_channel(channels, channel, |channel, ctx| {
                        channel.on_event(ctx, out, event, header.is_binary, payload, now)
                    });
                }
            }
            _ => {}
        }
    }

    fn on_state_change(
        &mut self,
        channels: &mut Channels,
        out: &mut SessionOutput,
        change: StateChange,
    ) {
        // 'closed' is final, whatever the sidecar says later.
        if self.connection == "closed" {
            return;
        }
        // An empty state is the sidecar's "not yet known", never a change; a step back from
        // connected to where it came from is a late event (PROTOCOL.md, trap 5), unless an
        // ICE restart is under way.
        let restarting = self.ice_restarting;
        let late = |from: &str, to: &str, up: &[&str], down: &[&str]| {
            !restarting && up.contains(&from) && down.contains(&to)
        };
        let mut events = Vec::new();
        let conn = change.conn_state;
        if !conn.is_empty()
            && conn != self.connection
            && !late(
                &self.connection,
                &conn,
                &["connected"],
                &["new", "connecting"],
            )
        {
            if self.connection == "new" && conn == "connected" {
                self.connection = "connecting".into();
                self.connected_next = true;
            } else {
                self.connection = conn;
            }
            events.push(ConnectionEvent::ConnectionStateChange);
        }
        let ice = change.ice_state;
        if !ice.is_empty()
            && ice != self.ice_connection
            && !late(
                &self.ice_connection,
                &ice,
                &["connected", "completed"],
                &["new", "checking"],
            )
        {
            self.ice_connection = ice;
            events.push(ConnectionEvent::IceConnectionStateChange);
        }
        if self.connection == "connected" && !events.is_empty() {
            self.ice_restarting = false;
        }
        let failed = matches!(events.first(), Some(ConnectionEvent::ConnectionStateChange))
            && self.connection == "failed";
        for event in events {
            out.emit(Event::Connection(self.id, event));
        }
        if self.connected_next {
            out.events.push_connected(self.id);
        }
        if failed {
            // The sidecar never closes them and would keep acknowledging sends into the void.
            self.close_channels(channels, out);
        }
    }

    /// The 'connecting' of a connection that skipped it was delivered: it is 'connected' now,
    /// unless something else changed it meanwhile (a close() of a listener). True when it
    /// changed.
    pub(crate) fn finish_connecting(&mut self) -> bool {
        if !std::mem::take(&mut self.connected_next) || self.connection != "connecting" {
            return false;
        }
        self.connection = "connected".into();
        self.ice_restarting = false;
        true
    }

    fn on_remote_channel(
        &mut self,
        channels: &mut Channels,
        out: &mut SessionOutput,
        label: &str,
        payload: &[u8],
    ) {
        if label.is_empty() {
            return;
        }
        let announce: DataChannelAnnounce = messages::decode(payload).unwrap_or_default();
        let ordered = announce.ordered.unwrap_or(true);
        // The sidecar keys channels by label: one reused by the remote replaces ours.
        if let Some(old) = self.registry.by_label(label) {
            self.with_channel(channels, old, |channel, ctx| channel.force_close(ctx, out));
            // A channel already forgotten by the driver still holds its label here.
            self.registry.forget(label, old);
        }
        if self.closing {
            return;
        }
        let id = ChannelId(out.next_object_id());
        self.registry.insert(label, id);
        channels.insert(
            id,
            Channel::new(id, self.id, label.to_owned(), ordered, true),
        );
        out.emit(Event::Connection(self.id, ConnectionEvent::DataChannel(id)));
    }
}
