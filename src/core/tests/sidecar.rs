//! A scripted sidecar in memory, as quinn-proto's tests pair two engines: it decodes what
//! the session writes for stdin, lets a test answer each request and inject events, and
//! moves a clock of its own. No process, no thread, no real time.

use crate::core::{ChannelId, ConnectionId, Event, Session, SettleToken};
use crate::protocol::{encode_frame, Frame, FrameDecoder, FrameType, Header};
use bytes::Bytes;
use rmpv::Value;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One request the session wrote, decoded.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: u32,
    pub method: String,
    pub pc_id: String,
    pub dc_label: String,
    pub is_binary: bool,
    pub payload: Bytes,
}

pub struct Sidecar {
    pub session: Session,
    pub now: Instant,
    decoder: FrameDecoder,
    /// Requests written and not yet answered by the test, in order.
    pub requests: VecDeque<Sent>,
    /// Every request ever written, in order.
    pub log: Vec<Sent>,
    next_token: u64,
}

/// A msgpack map payload.
pub fn map(entries: &[(&str, Value)]) -> Vec<u8> {
    let value = Value::Map(
        entries
            .iter()
            .map(|(k, v)| (Value::from(*k), v.clone()))
            .collect(),
    );
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &value).unwrap();
    out
}

/// The `{bufferedAmount}` of a `dc.send` acknowledgement or a `dc.getBA` answer.
pub fn amount(n: u64) -> Vec<u8> {
    map(&[("bufferedAmount", Value::from(n))])
}

pub fn state_change(conn: &str, ice: &str) -> Vec<u8> {
    map(&[
        ("connState", Value::from(conn)),
        ("iceState", Value::from(ice)),
    ])
}

impl Default for Sidecar {
    fn default() -> Self {
        Self::new()
    }
}

impl Sidecar {
    pub fn new() -> Self {
        Sidecar {
            session: Session::new(TIMEOUT),
            now: Instant::now(),
            decoder: FrameDecoder::new(),
            requests: VecDeque::new(),
            log: Vec::new(),
            next_token: 0,
        }
    }

    pub fn token(&mut self) -> SettleToken {
        self.next_token += 1;
        SettleToken(self.next_token)
    }

    /// Decodes everything the session wrote since the last look.
    pub fn read_stdin(&mut self) {
        while let Some(bytes) = self.session.poll_transmit() {
            self.decoder.extend(&bytes);
        }
        while let Some(frame) = self
            .decoder
            .next_frame()
            .expect("the session writes frames")
        {
            let h = frame.header;
            assert_eq!(h.kind, FrameType::Request, "only requests go to stdin");
            assert_ne!(h.id, 0, "request id 0 is never used");
            let sent = Sent {
                id: h.id,
                method: h.method.to_string(),
                pc_id: h.pc_id.to_string(),
                dc_label: h.dc_label.to_string(),
                is_binary: h.is_binary,
                payload: frame.payload,
            };
            self.log.push(sent.clone());
            self.requests.push_back(sent);
        }
    }

    /// The methods of the requests waiting for an answer, in order.
    pub fn waiting(&mut self) -> Vec<String> {
        self.read_stdin();
        self.requests.iter().map(|r| r.method.clone()).collect()
    }

    /// Takes the first waiting request of `method` (panics when there is none).
    pub fn take(&mut self, method: &str) -> Sent {
        self.try_take(method)
            .unwrap_or_else(|| panic!("no {method} waiting; waiting: {:?}", self.waiting()))
    }

    pub fn try_take(&mut self, method: &str) -> Option<Sent> {
        self.read_stdin();
        let at = self.requests.iter().position(|r| r.method == method)?;
        self.requests.remove(at)
    }

    /// Answers `request` with `ok: true` and `payload`.
    pub fn answer(&mut self, request: &Sent, payload: &[u8]) {
        let header = Header {
            kind: FrameType::Response,
            id: request.id,
            method: request.method.as_str().into(),
            ok: Some(true),
            ..Header::default()
        };
        self.feed(header, payload);
    }

    /// Answers `request` with `ok: false` and `error`.
    pub fn refuse(&mut self, request: &Sent, error: &str) {
        let header = Header {
            kind: FrameType::Response,
            id: request.id,
            method: request.method.as_str().into(),
            ok: Some(false),
            error: error.into(),
            ..Header::default()
        };
        self.feed(header, &[]);
    }

    /// Takes the first waiting `method` and answers it with `payload`.
    pub fn answer_first(&mut self, method: &str, payload: &[u8]) -> Sent {
        let request = self.take(method);
        self.answer(&request, payload);
        request
    }

    /// The sidecar emits `event` for `pc_id` (and `label`).
    pub fn event(&mut self, pc_id: &str, label: &str, event: &str, payload: &[u8]) {
        self.event_with(pc_id, label, event, false, payload);
    }

    pub fn event_with(&mut self, pc_id: &str, label: &str, event: &str, binary: bool, data: &[u8]) {
        let header = Header {
            kind: FrameType::Event,
            pc_id: pc_id.into(),
            dc_label: label.into(),
            event: event.into(),
            is_binary: binary,
            ..Header::default()
        };
        self.feed(header, data);
    }

    /// Hands one frame to the session through the real codec.
    fn feed(&mut self, header: Header, payload: &[u8]) {
        let mut bytes = Vec::new();
        encode_frame(&header, payload, &mut bytes).unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.extend(&bytes);
        let frame: Frame = decoder.next_frame().unwrap().unwrap();
        self.session.handle_frame(frame, self.now);
    }

    /// Moves the clock on by `by`, firing every deadline on the way at its own time.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(at) = self.session.poll_timeout() {
            if at > end {
                break;
            }
            self.now = self.now.max(at);
            self.session.handle_timeout(self.now);
        }
        self.now = end;
    }

    /// Every event JavaScript would see now, in order.
    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    /// Events without the log lines.
    pub fn events_no_log(&mut self) -> Vec<Event> {
        let mut events = self.events();
        events.retain(|e| !matches!(e, Event::Log(_)));
        events
    }

    /// A connection whose `pc.create` is answered.
    pub fn connection(&mut self, pc_id: &str) -> ConnectionId {
        let id = self.session.create_connection(
            pc_id.into(),
            Ok(create_payload(pc_id)),
            Default::default(),
            self.now,
        );
        self.answer_first("pc.create", &[]);
        id
    }

    /// A local channel that the sidecar created and opened.
    pub fn open_channel(&mut self, connection: ConnectionId, label: &str) -> ChannelId {
        let pc_id = self.pc_id(connection);
        let id = self
            .session
            .create_channel(connection, label.into(), true, self.now)
            .unwrap();
        self.answer_first("dc.create", &[]);
        self.event(&pc_id, label, "dc.open", &[]);
        id
    }

    pub fn pc_id(&self, connection: ConnectionId) -> String {
        self.session
            .connection(connection)
            .expect("known connection")
            .pc_id()
            .to_owned()
    }

    /// `send()` of `len` bytes, which must be accepted.
    pub fn send(&mut self, channel: ChannelId, len: usize) {
        self.session
            .send(channel, &vec![7; len], true, self.now)
            .expect("send accepted");
    }

    pub fn buffered(&self, channel: ChannelId) -> u64 {
        self.session
            .channel(channel)
            .map_or(0, |c| c.buffered_amount())
    }
}

/// A `pc.create` payload as the napi layer builds it.
pub fn create_payload(pc_id: &str) -> Vec<u8> {
    crate::protocol::messages::encode(&crate::protocol::messages::PcCreate {
        pc_id: pc_id.into(),
        ice_servers: Vec::new(),
        settings: None,
    })
}
