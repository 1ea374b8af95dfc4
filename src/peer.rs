//! RTCPeerConnection's state machine and the router that hands each sidecar event to its
//! connection and channel. No napi.

use crate::channel::{next_object_id, Channel, ReadyState};
use crate::error::Error;
use crate::events::{Emit, Output, PeerEvent};
use crate::protocol::messages::{
    self, CandidatePair, DataChannelAnnounce, IceCandidate, SctpStats, Sdp, SessionDescription,
    State, StateChange,
};
use crate::protocol::Frame;
use crate::sidecar::pending::Responder;
use crate::sidecar::{Notice, NoticeSink, Sidecar};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// `dc.send` requests one connection may have in flight. The sidecar blocks every
/// connection once one has more than 256 requests queued (PROTOCOL.md, trap 4).
pub const MAX_SENDS_IN_FLIGHT: usize = 128;

/// The longest data channel label, in UTF-8 bytes, that the remote side accepts. pion-ipc
/// 0.4.1 reads a channel's announcement (DCEP DATA_CHANNEL_OPEN: 12 bytes of header, the
/// label, an empty protocol) into 8192 bytes: with a longer label the remote logs `Failed to
/// accept data channel: short buffer` and never sees the channel, while it opens here.
/// Measured by bisection (ordered and unordered, offerer or answerer creating it, before or
/// after connecting, ASCII or 2-byte characters: 8180 accepted, 8181 refused every time).
pub const MAX_LABEL_BYTES: usize = 8180;

/// Routes sidecar events by pcId and label; one per PionIpc.
pub struct Router {
    sink: Arc<dyn NoticeSink>,
    peers: Mutex<HashMap<String, Arc<Peer>>>,
    /// Ids whose connection we closed on the sidecar, and when: its last events (a 'closed'
    /// state, PROTOCOL.md traps 5 and 12) may still come, and must not close a new
    /// connection that took the id meanwhile.
    closed_ids: Mutex<HashMap<String, Instant>>,
    /// Whether sidecar events are also re-emitted raw on the PionIpc (someone listens).
    pub raw_events: AtomicBool,
}

impl Router {
    pub fn new(sink: Arc<dyn NoticeSink>) -> Arc<Self> {
        Arc::new(Router {
            sink,
            peers: Mutex::new(HashMap::new()),
            closed_ids: Mutex::new(HashMap::new()),
            raw_events: AtomicBool::new(false),
        })
    }

    /// `pc_id`'s connection was closed on the sidecar just now.
    fn note_closed(&self, pc_id: &str) {
        let mut ids = self.closed_ids.lock().unwrap();
        ids.retain(|_, at| at.elapsed() < STALE_CLOSE_WINDOW);
        ids.insert(pc_id.to_owned(), Instant::now());
    }

    /// Whether a connection of this id was closed on the sidecar within the stale window.
    fn closed_lately(&self, pc_id: &str) -> bool {
        let ids = self.closed_ids.lock().unwrap();
        ids.get(pc_id)
            .is_some_and(|at| at.elapsed() < STALE_CLOSE_WINDOW)
    }

    pub fn sink(&self) -> &Arc<dyn NoticeSink> {
        &self.sink
    }

    /// Hands one sidecar event to its connection (and channel). Runs on the JavaScript
    /// thread, in order with everything else delivered there.
    pub fn route(&self, frame: &Frame) {
        if let Some(peer) = self.peer(&frame.header.pc_id) {
            peer.on_event(frame);
        }
    }

    fn peer(&self, pc_id: &str) -> Option<Arc<Peer>> {
        self.peers.lock().unwrap().get(pc_id).cloned()
    }

    /// Work an event starts on the stdout reader, before anything is routed on the JavaScript
    /// thread: a `dc.bufferedamountlow` asks the sidecar for the channel's buffered amount at
    /// once, so the answer (and with it `bufferedamountlow`) does not first wait for the
    /// JavaScript thread. Returns true when the event needs no routing of its own afterwards.
    ///
    /// Here, in stream order, an event for a connection whose `pc.create` is still unanswered
    /// is dropped: nothing is that connection's yet, so it is a closed namesake's last word
    /// (PROTOCOL.md, traps 5 and 12), and routed later it would look like the new one's.
    pub fn early(&self, frame: &Frame) -> bool {
        let header = &frame.header;
        let peer = self.peer(&header.pc_id);
        if peer.as_ref().is_some_and(|p| p.created.borrow().is_none()) {
            return true;
        }
        if header.event != "dc.bufferedamountlow" {
            return false;
        }
        if let Some(channel) = peer.and_then(|peer| peer.listening_channel(&header.dc_label)) {
            channel.on_event(&header.event, header.is_binary, &frame.payload);
        }
        true
    }

    /// [`fail_all`](Self::fail_all), run on the JavaScript thread in order.
    pub fn fail_all_later(router: &Arc<Router>) -> Notice {
        let router = router.clone();
        Notice::Run(Box::new(move || router.fail_all()))
    }

    /// The sidecar is gone: every connection that is not closed or failed fails.
    pub fn fail_all(&self) {
        let peers: Vec<_> = self.peers.lock().unwrap().values().cloned().collect();
        for peer in peers {
            peer.fail();
        }
        self.sink.flush();
    }

    /// Routes events for `peer.pc_id` to `peer`, unless another connection has that id:
    /// then false, and the live one keeps it.
    fn register(&self, peer: &Arc<Peer>) -> bool {
        match self.peers.lock().unwrap().entry(peer.pc_id.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(peer.clone());
                true
            }
        }
    }

    fn unregister(&self, peer: &Peer) {
        let mut peers = self.peers.lock().unwrap();
        if peers.get(&peer.pc_id).is_some_and(|p| p.id == peer.id) {
            peers.remove(&peer.pc_id);
        }
    }
}

/// Channels in the order they were created (ids grow), so that closing is predictable.
fn in_order(channels: &HashMap<String, Arc<Channel>>) -> Vec<Arc<Channel>> {
    let mut list: Vec<_> = channels.values().cloned().collect();
    list.sort_by_key(|c| c.id);
    list
}

struct PeerState {
    connection: String,
    ice_connection: String,
    ice_gathering: String,
    signaling: String,
    selected_pair: Option<CandidatePair>,
    /// Sidecar events are routed here (false once closed or failed).
    listening: bool,
    closing: bool,
    /// restartIce() was called and the connection has not been 'connected' since: going
    /// back to 'connecting'/'checking' is real then, not a late event.
    ice_restarting: bool,
    /// Channels that are not closed, by label.
    channels: HashMap<String, Arc<Channel>>,
    /// Local channels waiting for `pc.create` before their `dc.create` can go out.
    awaiting_create: Vec<Arc<Channel>>,
    /// Labels of channels we closed whose `dc.close` event has not come yet: that event
    /// must not close a new channel of the same label (the sidecar keys channels by label).
    stale_closes: HashMap<String, Vec<Instant>>,
}

/// How long the `dc.close` of a channel we closed is waited for.
const STALE_CLOSE_WINDOW: Duration = Duration::from_secs(10);

pub struct Peer {
    pub id: u64,
    pub pc_id: String,
    router: Arc<Router>,
    sidecar: Option<Sidecar>,
    created: watch::Sender<Option<Result<(), Error>>>,
    /// True once close() has done everything it does (a second close() waits for it).
    closed: watch::Sender<bool>,
    sends_in_flight: AtomicUsize,
    /// The connection's `_maxBufferedAmount`, u64::MAX when none was given.
    max_buffered: std::sync::atomic::AtomicU64,
    state: Mutex<PeerState>,
}

impl Peer {
    /// Creates the connection and sends `pc.create` at once. `sidecar` and `payload` carry
    /// the reason the connection fails instead (no sidecar, bad options).
    pub fn create(
        router: Arc<Router>,
        sidecar: Result<Sidecar, Error>,
        pc_id: String,
        payload: Result<Vec<u8>, Error>,
    ) -> Arc<Peer> {
        let peer = Arc::new(Peer {
            id: next_object_id(),
            pc_id,
            router,
            sidecar: sidecar.as_ref().ok().cloned(),
            created: watch::channel(None).0,
            closed: watch::channel(false).0,
            sends_in_flight: AtomicUsize::new(0),
            max_buffered: std::sync::atomic::AtomicU64::new(u64::MAX),
            state: Mutex::new(PeerState {
                connection: "new".into(),
                ice_connection: "new".into(),
                ice_gathering: "new".into(),
                signaling: "stable".into(),
                selected_pair: None,
                listening: false,
                closing: false,
                ice_restarting: false,
                channels: HashMap::new(),
                awaiting_create: Vec::new(),
                stale_closes: HashMap::new(),
            }),
        });
        match (sidecar, payload) {
            (Ok(sidecar), Ok(payload)) => {
                if !peer.router.register(&peer) {
                    // The sidecar would refuse it too, but by then the router's entry would
                    // be this one's: the live connection would hear nothing more.
                    let id = &peer.pc_id;
                    peer.on_created(Err(Error::Remote(format!("peer {id:?} already exists"))));
                    return peer;
                }
                peer.state.lock().unwrap().listening = true;
                let done = peer.clone();
                let sent = sidecar.request_with(
                    "pc.create",
                    &peer.pc_id,
                    "",
                    false,
                    &payload,
                    Responder::Callback(Box::new(move |reply| done.on_created(reply.map(|_| ())))),
                );
                if let Err((e, _)) = sent {
                    peer.on_created(Err(e));
                }
            }
            // A bad option says more than a missing `_ipc` (which may be why it is missing).
            (_, Err(e)) | (Err(e), _) => peer.on_created(Err(e)),
        }
        peer
    }

    /// True once the create failed for good (bad options, no sidecar, refused).
    pub fn creation_failed(&self) -> bool {
        matches!(&*self.created.borrow(), Some(Err(_)))
    }

    fn on_created(&self, result: Result<(), Error>) {
        let waiting = std::mem::take(&mut self.state.lock().unwrap().awaiting_create);
        match &result {
            // The sidecar is gone: the connection stays registered and listening, so that
            // the failing of its sidecar's connections (queued next) makes it 'failed' too.
            Err(Error::Exited { .. } | Error::Stopped) => {}
            Err(_) => {
                self.router.unregister(self);
                self.state.lock().unwrap().listening = false;
                // Nothing but close() will make it emit again.
                self.emit(Emit::Weaken(self.id));
            }
            Ok(()) => {}
        }
        // The waiting channels' dc.create go out before anything that waited for pc.create
        // is woken: an offer made after createDataChannel() must include the channel.
        for channel in waiting {
            match &result {
                // One closed meanwhile is never created.
                Ok(()) if channel.ready_state() == ReadyState::Closed => {}
                Ok(()) => channel.create_on_sidecar(),
                Err(e) => channel.fail(e.clone()),
            }
        }
        self.created.send_replace(Some(result));
        self.flush();
    }

    /// Runs `f` on the JavaScript thread, in order with the events queued before it.
    pub(crate) fn on_js(&self, f: impl FnOnce() + Send + 'static) {
        self.router.sink.notice(Notice::Run(Box::new(f)));
        self.router.sink.flush();
    }

    pub(crate) fn emit(&self, emit: Emit) {
        self.router.sink.notice(Notice::Emit(emit));
    }

    pub(crate) fn flush(&self) {
        self.router.sink.flush();
    }

    pub(crate) fn log(&self, line: String) {
        self.router.sink.notice(Notice::Log(line));
    }

    pub(crate) fn sidecar(&self) -> Option<Sidecar> {
        self.sidecar.clone()
    }

    pub(crate) fn sidecar_ref(&self) -> Option<&Sidecar> {
        self.sidecar.as_ref()
    }

    /// Opt-in: send() refuses a message that would take a channel's bufferedAmount above
    /// `limit` bytes (as browsers refuse one over their buffer). Unlimited by default.
    pub fn set_max_buffered_amount(&self, limit: u64) {
        self.max_buffered.store(limit, Ordering::Relaxed);
    }

    /// A 'closed' the sidecar reports now, while close() was not called here, is most likely
    /// the last word of a connection of the same id that we closed a moment ago: it is not
    /// taken (an empty state is never a change).
    fn namesake_closed(&self) -> bool {
        !self.is_closing() && self.router.closed_lately(&self.pc_id)
    }

    /// close() was called on the connection.
    pub(crate) fn is_closing(&self) -> bool {
        self.state.lock().unwrap().closing
    }

    pub(crate) fn max_buffered_amount(&self) -> u64 {
        self.max_buffered.load(Ordering::Relaxed)
    }

    pub(crate) fn try_acquire_send(&self) -> bool {
        self.sends_in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_SENDS_IN_FLIGHT).then_some(n + 1)
            })
            .is_ok()
    }

    pub(crate) fn release_send(&self) {
        let _ = self
            .sends_in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Moves queued messages of every channel to the sidecar while the budget allows.
    pub(crate) fn pump(&self) {
        let Some(sidecar) = &self.sidecar else { return };
        // Runs on every send and acknowledgement: no need for creation order here, and no
        // allocation for the usual single channel.
        let (first, rest) = {
            let state = self.state.lock().unwrap();
            let mut all = state.channels.values();
            let first = all.next().cloned();
            let rest: Vec<_> = all.cloned().collect();
            (first, rest)
        };
        for channel in first.into_iter().chain(rest) {
            if channel.pump(self, sidecar) {
                break;
            }
        }
    }

    /// We closed `label`'s channel without the sidecar's `dc.close`: expect it later.
    pub(crate) fn expect_stale_close(&self, label: &str) {
        let mut state = self.state.lock().unwrap();
        state
            .stale_closes
            .entry(label.to_owned())
            .or_default()
            .push(Instant::now());
    }

    /// Whether a `dc.close` for `label` is the late one of a channel we closed (consumed).
    fn consume_stale_close(&self, label: &str) -> bool {
        let mut state = self.state.lock().unwrap();
        let Some(pending) = state.stale_closes.get_mut(label) else {
            return false;
        };
        pending.retain(|at| at.elapsed() < STALE_CLOSE_WINDOW);
        let stale = !pending.is_empty();
        if stale {
            pending.remove(0);
        }
        if pending.is_empty() {
            state.stale_closes.remove(label);
        }
        stale
    }

    pub(crate) fn forget_channel(&self, channel: &Channel) {
        let mut state = self.state.lock().unwrap();
        if state
            .channels
            .get(&channel.label)
            .is_some_and(|c| c.id == channel.id)
        {
            state.channels.remove(&channel.label);
        }
    }

    pub fn connection_state(&self) -> String {
        self.state.lock().unwrap().connection.clone()
    }

    pub fn ice_connection_state(&self) -> String {
        self.state.lock().unwrap().ice_connection.clone()
    }

    pub fn ice_gathering_state(&self) -> String {
        self.state.lock().unwrap().ice_gathering.clone()
    }

    pub fn signaling_state(&self) -> String {
        self.state.lock().unwrap().signaling.clone()
    }

    pub fn selected_candidate_pair(&self) -> Option<CandidatePair> {
        self.state.lock().unwrap().selected_pair.clone()
    }

    /// Creates a local channel; `dc.create` goes out once `pc.create` succeeded.
    pub fn create_data_channel(
        self: &Arc<Self>,
        label: String,
        ordered: bool,
    ) -> Result<Arc<Channel>, Error> {
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
        let channel = {
            let mut state = self.state.lock().unwrap();
            if state.closing || state.connection == "closed" {
                return Err(Error::InvalidState(
                    "the RTCPeerConnection is closed".into(),
                ));
            }
            if state.channels.contains_key(&label) {
                return Err(Error::Operation(format!(
                    "a data channel labelled {label:?} is still in use on this connection"
                )));
            }
            let channel = Channel::new(self, label.clone(), ordered, false);
            state.channels.insert(label, channel.clone());
            channel
        };
        match &*self.created.borrow() {
            Some(Ok(())) => channel.create_on_sidecar(),
            Some(Err(e)) => channel.fail(e.clone()),
            None => {
                let mut state = self.state.lock().unwrap();
                state.awaiting_create.push(channel.clone());
            }
        }
        // pc.create may have finished between the check and the push.
        if self.created.borrow().is_some() {
            let waiting = std::mem::take(&mut self.state.lock().unwrap().awaiting_create);
            let result = self.created.borrow().clone().expect("checked");
            for c in waiting {
                match &result {
                    Ok(()) => c.create_on_sidecar(),
                    Err(e) => c.fail(e.clone()),
                }
            }
        }
        Ok(channel)
    }

    /// Waits for `pc.create`; its error, or the sidecar to talk to.
    async fn ready(&self) -> Result<Sidecar, Error> {
        let mut created = self.created.subscribe();
        let result = created
            .wait_for(Option::is_some)
            .await
            .map(|r| r.clone().expect("is some"))
            .unwrap_or(Err(Error::Stopped));
        result?;
        let state = self.state.lock().unwrap();
        if state.closing || state.connection == "closed" {
            return Err(Error::InvalidState(
                "the RTCPeerConnection is closed".into(),
            ));
        }
        drop(state);
        self.sidecar.clone().ok_or(Error::NotStarted)
    }

    async fn call(&self, method: &str, payload: &[u8]) -> Result<Frame, Error> {
        let sidecar = self.ready().await?;
        sidecar.call(method, &self.pc_id, "", false, payload).await
    }

    async fn sdp(&self, method: &str, kind: &'static str) -> Result<Output, Error> {
        let frame = self.call(method, &[]).await?;
        let Sdp { sdp } = messages::decode(&frame.payload)
            .map_err(|e| Error::Protocol(format!("{method} answer: {e}")))?;
        Ok(Output::Description { kind, sdp })
    }

    pub async fn create_offer(&self) -> Result<Output, Error> {
        self.sdp("pc.createOffer", "offer").await
    }

    pub async fn create_answer(&self) -> Result<Output, Error> {
        self.sdp("pc.createAnswer", "answer").await
    }

    pub async fn restart_ice(&self) -> Result<Output, Error> {
        self.state.lock().unwrap().ice_restarting = true;
        self.sdp("pc.restartIce", "offer").await
    }

    pub async fn set_local_description(
        &self,
        description: SessionDescription,
    ) -> Result<Output, Error> {
        self.call("pc.setLocalDescription", &messages::encode(&description))
            .await?;
        Ok(Output::Unit)
    }

    pub async fn set_remote_description(
        &self,
        description: SessionDescription,
    ) -> Result<Output, Error> {
        self.call("pc.setRemoteDescription", &messages::encode(&description))
            .await?;
        Ok(Output::Unit)
    }

    pub async fn add_ice_candidate(&self, candidate: IceCandidate) -> Result<Output, Error> {
        self.call("pc.addIceCandidate", &messages::encode(&candidate))
            .await?;
        Ok(Output::Unit)
    }

    pub async fn get_sctp_stats(&self) -> Result<Output, Error> {
        let frame = self.call("pc.getSctpStats", &[]).await?;
        let stats: Option<SctpStats> = messages::decode(&frame.payload)
            .map_err(|e| Error::Protocol(format!("pc.getSctpStats answer: {e}")))?;
        Ok(Output::SctpStats(stats))
    }

    /// Closes every channel gracefully (in parallel), stops listening, becomes 'closed', then
    /// sends `pc.close` unless the create failed or the sidecar is gone. At the call, the
    /// channels become 'closing' (no message is delivered to them from then on); the future
    /// does the rest. A second close() completes when the first has.
    pub fn close(self: &Arc<Self>) -> impl std::future::Future<Output = ()> + Send + 'static {
        let channels = {
            let mut state = self.state.lock().unwrap();
            if state.closing {
                None
            } else {
                state.closing = true;
                Some(in_order(&state.channels))
            }
        };
        for channel in channels.iter().flatten() {
            channel.begin_close();
        }
        let peer = self.clone();
        async move { peer.finish_close(channels).await }
    }

    async fn finish_close(self: Arc<Self>, channels: Option<Vec<Arc<Channel>>>) {
        let Some(channels) = channels else {
            // Another close() is under way: this one, too, resolves once it is done.
            let mut closed = self.closed.subscribe();
            let _ = closed.wait_for(|closed| *closed).await;
            return;
        };
        let mut closing = tokio::task::JoinSet::new();
        for channel in channels {
            closing.spawn(async move { channel.close().await });
        }
        while closing.join_next().await.is_some() {}
        let peer = self.clone();
        self.on_js(move || {
            let changed = {
                let mut state = peer.state.lock().unwrap();
                state.listening = false;
                let changed = state.connection != "closed";
                state.connection = "closed".into();
                changed
            };
            peer.router.unregister(&peer);
            if changed {
                peer.emit(Emit::Peer(peer.id, PeerEvent::ConnectionStateChange));
            }
        });
        // A close() before pc.create was answered waits for the answer (at most as long as
        // a drain): a peer the sidecar created must be closed there too.
        let mut answered = self.created.subscribe();
        let _ = tokio::time::timeout(
            crate::channel::CLOSE_DRAIN_LIMIT,
            answered.wait_for(Option::is_some),
        )
        .await;
        let created = matches!(*self.created.borrow(), Some(Ok(())));
        if let (true, Some(sidecar)) = (created, &self.sidecar) {
            if !sidecar.has_exited() {
                let _ = sidecar.call("pc.close", &self.pc_id, "", false, &[]).await;
                self.router.note_closed(&self.pc_id);
            }
        }
        self.emit(Emit::Release(self.id));
        self.flush();
        self.closed.send_replace(true);
    }

    /// The sidecar died: channels force-closed, states 'failed'. Not for closed or failed
    /// connections.
    fn fail(&self) {
        let channels: Vec<_> = {
            let mut state = self.state.lock().unwrap();
            if !state.listening || state.connection == "closed" || state.connection == "failed" {
                state.listening = false;
                return;
            }
            state.listening = false;
            in_order(&state.channels)
        };
        for channel in channels {
            channel.force_close();
        }
        {
            let mut state = self.state.lock().unwrap();
            state.connection = "failed".into();
            state.ice_connection = "failed".into();
        }
        self.router.unregister(self);
        self.emit(Emit::Peer(self.id, PeerEvent::ConnectionStateChange));
        self.emit(Emit::Peer(self.id, PeerEvent::IceConnectionStateChange));
        self.emit(Emit::Weaken(self.id));
    }

    /// The channel of this label, while the connection listens to sidecar events.
    fn listening_channel(&self, label: &str) -> Option<Arc<Channel>> {
        let state = self.state.lock().unwrap();
        if !state.listening {
            return None;
        }
        state.channels.get(label).cloned()
    }

    fn on_event(self: &Arc<Self>, frame: &Frame) {
        let header = &frame.header;
        let payload = &frame.payload;
        if !self.state.lock().unwrap().listening {
            return;
        }
        match header.event.as_str() {
            "pc.icecandidate" => match messages::decode::<IceCandidate>(payload) {
                Ok(candidate) => self.emit(Emit::Peer(self.id, PeerEvent::IceCandidate(candidate))),
                Err(e) => self.log(format!("bad pc.icecandidate payload: {e}")),
            },
            "pc.statechange" => {
                let mut change: StateChange = messages::decode(payload).unwrap_or_default();
                if self.namesake_closed() {
                    for state in [&mut change.conn_state, &mut change.ice_state] {
                        if state == "closed" {
                            state.clear();
                        }
                    }
                }
                self.on_state_change(change);
            }
            "pc.icegatheringstatechange" | "pc.signalingstatechange" => {
                let State { state: mut value } = messages::decode(payload).unwrap_or_default();
                if value == "closed" && self.namesake_closed() {
                    value.clear();
                }
                let gathering = header.event == "pc.icegatheringstatechange";
                let changed = {
                    let mut state = self.state.lock().unwrap();
                    let slot = if gathering {
                        &mut state.ice_gathering
                    } else {
                        &mut state.signaling
                    };
                    let changed = !value.is_empty() && *slot != value;
                    if changed {
                        *slot = value;
                    }
                    changed
                };
                if changed {
                    let event = if gathering {
                        PeerEvent::IceGatheringStateChange
                    } else {
                        PeerEvent::SignalingStateChange
                    };
                    self.emit(Emit::Peer(self.id, event));
                }
            }
            "pc.selectedcandidatepairchange" => match messages::decode::<CandidatePair>(payload) {
                Ok(pair) => {
                    self.state.lock().unwrap().selected_pair = Some(pair);
                    self.emit(Emit::Peer(self.id, PeerEvent::SelectedCandidatePairChange));
                }
                Err(e) => self.log(format!("bad pc.selectedcandidatepairchange payload: {e}")),
            },
            "pc.datachannel" => self.on_remote_channel(&header.dc_label, payload),
            "dc.close" if self.consume_stale_close(&header.dc_label) => {}
            event if event.starts_with("dc.") => {
                let channel = self
                    .state
                    .lock()
                    .unwrap()
                    .channels
                    .get(&header.dc_label)
                    .cloned();
                if let Some(channel) = channel {
                    channel.on_event(event, header.is_binary, payload);
                }
            }
            _ => {}
        }
    }

    fn on_state_change(&self, change: StateChange) {
        let mut events = Vec::new();
        let failed = {
            let mut state = self.state.lock().unwrap();
            // 'closed' is final, whatever the sidecar says later.
            if state.connection == "closed" {
                return;
            }
            // An empty state is the sidecar's "not yet known", never a change; a step back
            // from connected to where it came from is a late event (PROTOCOL.md, trap 5),
            // unless an ICE restart is under way.
            let restarting = state.ice_restarting;
            let late = |from: &str, to: &str, up: &[&str], down: &[&str]| {
                !restarting && up.contains(&from) && down.contains(&to)
            };
            let conn = change.conn_state;
            if !conn.is_empty()
                && conn != state.connection
                && !late(
                    &state.connection,
                    &conn,
                    &["connected"],
                    &["new", "connecting"],
                )
            {
                state.connection = conn;
                events.push(PeerEvent::ConnectionStateChange);
            }
            let ice = change.ice_state;
            if !ice.is_empty()
                && ice != state.ice_connection
                && !late(
                    &state.ice_connection,
                    &ice,
                    &["connected", "completed"],
                    &["new", "checking"],
                )
            {
                state.ice_connection = ice;
                events.push(PeerEvent::IceConnectionStateChange);
            }
            if state.connection == "connected" && !events.is_empty() {
                state.ice_restarting = false;
            }
            matches!(events.first(), Some(PeerEvent::ConnectionStateChange))
                && state.connection == "failed"
        };
        for event in events {
            self.emit(Emit::Peer(self.id, event));
        }
        if failed {
            // The sidecar never closes them and would keep acknowledging sends into the void.
            let channels: Vec<_> = in_order(&self.state.lock().unwrap().channels);
            for channel in channels {
                channel.force_close();
            }
        }
    }

    fn on_remote_channel(self: &Arc<Self>, label: &str, payload: &[u8]) {
        if label.is_empty() {
            return;
        }
        let announce: DataChannelAnnounce = messages::decode(payload).unwrap_or_default();
        let ordered = announce.ordered.unwrap_or(true);
        // The sidecar keys channels by label: one reused by the remote replaces ours.
        let replaced = self.state.lock().unwrap().channels.remove(label);
        if let Some(old) = replaced {
            old.force_close();
        }
        let channel = Channel::new(self, label.to_owned(), ordered, true);
        {
            let mut state = self.state.lock().unwrap();
            if state.closing {
                return;
            }
            state.channels.insert(label.to_owned(), channel.clone());
        }
        self.emit(Emit::Peer(self.id, PeerEvent::DataChannel(channel)));
    }
}
