//! Request correlation as data: request ids, what each waiting request is for, and its
//! deadline. An answer (or its failure) is handed back as the [`RequestKind`] it was sent
//! with; the session decides what it means.

use super::events::{ChannelId, ConnectionId, Outcome, SettleToken};
use super::id_map::IdMap;
use crate::error::Error;
use crate::protocol::messages::{self, SctpStats, Sdp};
use crate::protocol::Frame;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a settled call's response payload is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Unit,
    /// `{sdp}`, given back as a description of this type ("offer", "answer").
    Description(&'static str),
    /// A stats map, or nil before the association is up.
    SctpStats,
    /// The whole response (`ipc.request()`).
    Frame,
}

impl Answer {
    /// The outcome of a call of `method` answered with `frame`.
    pub fn read(self, method: &str, frame: Frame) -> Result<Outcome, Error> {
        let malformed = |e| malformed(method, e);
        match self {
            Answer::Unit => Ok(Outcome::Unit),
            Answer::Frame => Ok(Outcome::Frame(Box::new(frame))),
            Answer::Description(kind) => {
                let Sdp { sdp } = messages::decode(&frame.payload).map_err(malformed)?;
                Ok(Outcome::Description { kind, sdp })
            }
            Answer::SctpStats => {
                let stats: Option<SctpStats> =
                    messages::decode(&frame.payload).map_err(malformed)?;
                Ok(Outcome::SctpStats(stats))
            }
        }
    }
}

fn malformed(method: &str, e: impl std::fmt::Display) -> Error {
    Error::Protocol(format!("{method} answer: {e}"))
}

/// Why the sidecar is asked for a channel's buffered amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferedAmountQuery {
    /// An idle channel with a backlog left polls it; the next poll waits twice as long.
    IdlePoll { delay: Duration },
    /// The sidecar fired its own `dc.bufferedamountlow`.
    SidecarLow,
}

/// What a waiting request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    ConnectionCreate(ConnectionId),
    ConnectionClose(ConnectionId),
    ChannelCreate(ChannelId),
    /// Its answer changes nothing.
    ChannelClose(ChannelId),
    /// A `dc.send` of `len` bytes, holding one slot of its connection's send budget.
    Ack {
        connection: ConnectionId,
        channel: ChannelId,
        len: u64,
    },
    GetBufferedAmount {
        channel: ChannelId,
        query: BufferedAmountQuery,
    },
    SetThreshold(ChannelId),
    /// A promise waits for the answer.
    Settle {
        token: SettleToken,
        answer: Answer,
    },
    /// A signalling call whose answer also moves its connection's candidate hold and local
    /// description; its promise settles with nothing.
    Signal {
        connection: ConnectionId,
        token: SettleToken,
        signal: Signal,
    },
}

/// What a signalling call was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// `setLocalDescription({ type: kind, sdp })`.
    Local { kind: String, sdp: String },
    /// `setRemoteDescription({ type: kind, sdp })`; `candidates`: its SDP has
    /// `a=candidate` lines.
    Remote {
        kind: String,
        sdp: String,
        candidates: bool,
    },
    /// `addIceCandidate` of a UDP candidate that is not an mDNS name.
    RemoteCandidate,
}

#[derive(Debug)]
struct Entry {
    method: Cow<'static, str>,
    deadline: Instant,
    /// Tells this registration from an earlier one of the same id (ids wrap around).
    seq: u64,
    kind: RequestKind,
}

/// Requests sent and not yet answered. Ids are u32, start at 1, wrap around and skip 0 and
/// ids still waiting.
///
/// Every request has the same timeout, so deadlines come in sending order: they are kept
/// in a queue, and an answered request's place in it is dropped once it reaches the front
/// (or the queue is compacted), so an answer costs no search.
#[derive(Debug)]
pub struct PendingRequests {
    timeout: Duration,
    next_id: u32,
    seq: u64,
    entries: IdMap<u32, Entry>,
    /// (deadline, seq, id), in deadline order; the front is always a waiting request.
    deadlines: VecDeque<(Instant, u64, u32)>,
}

impl PendingRequests {
    pub fn new(timeout: Duration) -> Self {
        PendingRequests {
            timeout,
            next_id: 0,
            seq: 0,
            entries: IdMap::default(),
            deadlines: VecDeque::new(),
        }
    }

    /// Registers a request sent at `now` and returns its id.
    pub fn register(&mut self, method: Cow<'static, str>, kind: RequestKind, now: Instant) -> u32 {
        let id = loop {
            self.next_id = self.next_id.wrapping_add(1);
            if self.next_id != 0 && !self.entries.contains_key(&self.next_id) {
                break self.next_id;
            }
        };
        let deadline = now + self.timeout;
        self.seq += 1;
        let place = (deadline, self.seq, id);
        // In order unless a caller's clock went back: then sorted in.
        if self.deadlines.back().is_none_or(|last| *last <= place) {
            self.deadlines.push_back(place);
        } else {
            let at = self.deadlines.partition_point(|d| *d < place);
            self.deadlines.insert(at, place);
        }
        self.entries.insert(
            id,
            Entry {
                method,
                deadline,
                seq: self.seq,
                kind,
            },
        );
        id
    }

    fn is_waiting(&self, (_, seq, id): &(Instant, u64, u32)) -> bool {
        self.entries.get(id).is_some_and(|e| e.seq == *seq)
    }

    /// Drops answered requests from the front of the queue, and compacts it once mostly
    /// answered ones remain (one early request that waits long keeps the rest behind it).
    fn tidy(&mut self) {
        while let Some(front) = self.deadlines.front() {
            if self.is_waiting(front) {
                break;
            }
            self.deadlines.pop_front();
        }
        if self.deadlines.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.deadlines
                .retain(|(_, seq, id)| entries.get(id).is_some_and(|e| e.seq == *seq));
        }
    }

    /// Takes the waiting request `id`: its method and kind.
    pub fn take(&mut self, id: u32) -> Option<(Cow<'static, str>, RequestKind)> {
        let entry = self.entries.remove(&id)?;
        self.tidy();
        Some((entry.method, entry.kind))
    }

    /// The earliest deadline of a waiting request.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|(at, ..)| *at)
    }

    /// Takes the requests whose deadline is `now` or earlier, earliest first.
    pub fn expire(&mut self, now: Instant) -> Vec<(u32, Cow<'static, str>, RequestKind)> {
        let mut expired = Vec::new();
        while let Some(&(deadline, _, id)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(entry) = self.entries.remove(&id) {
                expired.push((id, entry.method, entry.kind));
            }
            self.tidy();
        }
        expired
    }

    /// Takes every waiting request, in the order they were sent.
    pub fn take_all(&mut self) -> Vec<(u32, Cow<'static, str>, RequestKind)> {
        let mut all: Vec<_> = self
            .entries
            .drain()
            .map(|(id, e)| (e.deadline, e.seq, id, e.method, e.kind))
            .collect();
        self.deadlines.clear();
        all.sort_by_key(|(deadline, seq, ..)| (*deadline, *seq));
        all.into_iter()
            .map(|(_, _, id, method, kind)| (id, method, kind))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn set_next_id(&mut self, id: u32) {
        self.next_id = id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(n: u64) -> RequestKind {
        RequestKind::Settle {
            token: SettleToken(n),
            answer: Answer::Unit,
        }
    }

    #[test]
    fn ids_start_at_one_wrap_and_skip_zero_and_busy_ids() {
        let now = Instant::now();
        let mut pending = PendingRequests::new(Duration::from_secs(10));
        assert_eq!(pending.register("a".into(), kind(1), now), 1);
        pending.set_next_id(u32::MAX - 1);
        assert_eq!(pending.register("b".into(), kind(2), now), u32::MAX);
        // 0 is skipped and 1 is still waiting
        assert_eq!(pending.register("c".into(), kind(3), now), 2);
        assert_eq!(pending.len(), 3);
    }

    #[test]
    fn expiry_takes_only_what_is_due_in_deadline_order() {
        let t0 = Instant::now();
        let mut pending = PendingRequests::new(Duration::from_millis(100));
        let a = pending.register("a".into(), kind(1), t0);
        let b = pending.register("b".into(), kind(2), t0 + Duration::from_millis(50));
        let c = pending.register("c".into(), kind(3), t0 + Duration::from_millis(10));
        assert_eq!(
            pending.next_deadline(),
            Some(t0 + Duration::from_millis(100))
        );
        assert!(pending.take(c).is_some(), "answered before its deadline");
        assert!(pending.expire(t0 + Duration::from_millis(99)).is_empty());
        let due: Vec<_> = pending
            .expire(t0 + Duration::from_millis(150))
            .into_iter()
            .map(|(id, ..)| id)
            .collect();
        assert_eq!(due, [a, b]);
        assert!(pending.is_empty());
        assert_eq!(pending.next_deadline(), None);
    }

    #[test]
    fn an_id_reused_after_its_answer_keeps_its_own_deadline() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut pending = PendingRequests::new(ms(100));
        let a = pending.register("a".into(), kind(1), t0);
        let b = pending.register("b".into(), kind(2), t0 + ms(1));
        assert!(pending.take(b).is_some());
        // the next id is b's again, registered much later
        pending.set_next_id(b - 1);
        let c = pending.register("c".into(), kind(3), t0 + ms(50));
        assert_eq!(c, b);
        assert!(pending.take(a).is_some());
        assert_eq!(pending.next_deadline(), Some(t0 + ms(150)));
        assert!(
            pending.expire(t0 + ms(105)).is_empty(),
            "c expired on b's deadline"
        );
        assert_eq!(pending.expire(t0 + ms(150)).len(), 1);
    }

    #[test]
    fn answered_requests_behind_a_waiting_one_do_not_pile_up() {
        let t0 = Instant::now();
        let mut pending = PendingRequests::new(Duration::from_secs(10));
        let first = pending.register("slow".into(), kind(0), t0);
        for n in 1..10_000u64 {
            let id = pending.register("x".into(), kind(n), t0 + Duration::from_micros(n));
            assert!(pending.take(id).is_some());
        }
        assert!(
            pending.deadlines.len() <= 2 * pending.len() + 65,
            "{}",
            pending.deadlines.len()
        );
        assert_eq!(pending.next_deadline(), Some(t0 + Duration::from_secs(10)));
        assert!(pending.take(first).is_some());
        assert_eq!(pending.next_deadline(), None);
    }

    #[test]
    fn a_clock_going_back_still_expires_in_deadline_order() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let ms = Duration::from_millis;
        let mut pending = PendingRequests::new(ms(100));
        let late = pending.register("late".into(), kind(1), t0 + ms(30));
        let early = pending.register("early".into(), kind(2), t0);
        assert_eq!(pending.next_deadline(), Some(t0 + ms(100)));
        let order: Vec<_> = pending
            .expire(t0 + ms(200))
            .into_iter()
            .map(|(id, ..)| id)
            .collect();
        assert_eq!(order, [early, late]);
    }

    #[test]
    fn take_all_is_in_sending_order() {
        let t0 = Instant::now();
        let mut pending = PendingRequests::new(Duration::from_secs(1));
        let ids: Vec<_> = (0..20)
            .map(|n| pending.register("x".into(), kind(n), t0 + Duration::from_millis(n)))
            .collect();
        let taken: Vec<_> = pending.take_all().into_iter().map(|(id, ..)| id).collect();
        assert_eq!(taken, ids);
        assert!(pending.take(ids[0]).is_none());
    }
}
