//! The requests for the sidecar's stdin: encoded frames waiting to be written, and the table
//! of those waiting for an answer. Once the sidecar is gone every request is refused with
//! the reason, and the refusal comes back to the session as the request's answer.

use super::pending::{PendingRequests, RequestKind};
use crate::error::Error;
use crate::protocol::{encode_frame, RequestHeader};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One request to write.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub pc_id: &'a str,
    pub dc_label: &'a str,
    pub is_binary: bool,
    pub payload: &'a [u8],
}

impl<'a> Request<'a> {
    /// A request about a connection (`dc_label` empty) or one of its channels.
    pub fn new(method: &'a str, pc_id: &'a str, dc_label: &'a str, payload: &'a [u8]) -> Self {
        Request {
            method,
            pc_id,
            dc_label,
            is_binary: false,
            payload,
        }
    }
}

/// The methods the core sends itself, kept as static strings so that registering one of them
/// allocates nothing (every `dc.send` is registered).
const KNOWN_METHODS: &[&str] = &[
    "dc.send",
    "dc.getBA",
    "dc.setBALT",
    "dc.create",
    "dc.close",
    "ping",
    "pc.create",
    "pc.close",
    "pc.createOffer",
    "pc.createAnswer",
    "pc.setLocalDescription",
    "pc.setRemoteDescription",
    "pc.addIceCandidate",
    "pc.restartIce",
    "pc.getSctpStats",
];

fn method_name(method: &str) -> Cow<'static, str> {
    match KNOWN_METHODS.iter().find(|m| **m == method) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(method.to_owned()),
    }
}

/// The room a new burst starts with (see [`Outbox::take_bytes`]).
const MIN_ROOM: usize = 64 * 1024;
const MAX_ROOM: usize = 256 * 1024;

#[derive(Debug)]
pub struct Outbox {
    pending: PendingRequests,
    bytes: Vec<u8>,
    /// Set once the sidecar is gone: every later request is refused with it.
    gone: Option<Error>,
    /// Requests refused at the call, to be answered with their error by the session.
    refused: VecDeque<(RequestKind, Error)>,
}

impl Outbox {
    pub fn new(timeout: Duration) -> Self {
        Outbox {
            pending: PendingRequests::new(timeout),
            bytes: Vec::new(),
            gone: None,
            refused: VecDeque::new(),
        }
    }

    /// Encodes `request` and registers it under `kind`; the refusal when it cannot go out.
    pub fn try_send(
        &mut self,
        request: Request<'_>,
        kind: RequestKind,
        now: Instant,
    ) -> Result<u32, (Error, RequestKind)> {
        if let Some(gone) = &self.gone {
            return Err((gone.clone(), kind));
        }
        // Registered first so that the frame carries its id; taken back if it cannot be
        // encoded (a payload over the frame bound).
        let id = self
            .pending
            .register(method_name(request.method), kind, now);
        let header = RequestHeader {
            id,
            method: request.method,
            pc_id: request.pc_id,
            dc_label: request.dc_label,
            is_binary: request.is_binary,
        };
        match encode_frame(&header, request.payload, &mut self.bytes) {
            Ok(()) => Ok(id),
            Err(e) => {
                let (_, kind) = self.pending.take(id).expect("registered above");
                Err((Error::Range(format!("{}: {e}", request.method)), kind))
            }
        }
    }

    /// As [`try_send`](Self::try_send); a refusal is answered later, as the request's reply.
    pub fn send(&mut self, request: Request<'_>, kind: RequestKind, now: Instant) {
        if let Err((error, kind)) = self.try_send(request, kind, now) {
            self.refused.push_back((kind, error));
        }
    }

    pub fn take_refused(&mut self) -> Option<(RequestKind, Error)> {
        self.refused.pop_front()
    }

    /// Everything encoded since the last call, in order. The next burst starts with room
    /// for at least [`MIN_ROOM`] bytes, or as much as this one took (up to [`MAX_ROOM`]), so
    /// that it is not grown by doubling (and copying) again.
    pub fn take_bytes(&mut self) -> Option<Vec<u8>> {
        if self.bytes.is_empty() {
            return None;
        }
        let room = Vec::with_capacity(self.bytes.len().clamp(MIN_ROOM, MAX_ROOM));
        Some(std::mem::replace(&mut self.bytes, room))
    }

    pub fn pending(&mut self) -> &mut PendingRequests {
        &mut self.pending
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn has_no_refusals(&self) -> bool {
        self.refused.is_empty()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.next_deadline()
    }

    pub fn gone(&self) -> Option<&Error> {
        self.gone.as_ref()
    }

    /// The sidecar is gone: frames not yet written are dropped, later requests refused.
    pub fn close(&mut self, error: Error) {
        self.gone.get_or_insert(error);
        self.bytes.clear();
    }
}
