//! What the state machines produce while they handle an input: requests (the outbox),
//! events for JavaScript, and timers. One value of it is lent to every connection and
//! channel, so that none of them holds a reference to the session.

use super::events::{ChannelId, ConnectionId, Event, EventQueue};
use super::outbox::Outbox;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Something the core waits for, besides the answers to its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Ask an idle channel's sidecar backlog (`dc.getBA`); `delay` is how long was waited.
    BacklogPoll { channel: ChannelId, delay: Duration },
    /// A closing channel has waited `CLOSE_DRAIN_LIMIT` (the channel's)
    /// for its queued messages.
    CloseDrain(ChannelId),
    /// A closed connection has waited
    /// `CLOSE_DRAIN_LIMIT` (the channel's) for its `pc.create` answer.
    CreateWait(ConnectionId),
    /// An offerer's candidate hold has waited its timeout since the answer was applied.
    CandidateHold {
        connection: ConnectionId,
        generation: u64,
    },
}

/// Timers by deadline. A timer is never cancelled: when it fires, its channel or connection checks
/// whether it still applies.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    seq: u64,
}

impl Timers {
    pub fn set(&mut self, at: Instant, timer: Timer) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, timer)));
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, ..))| *at)
    }

    /// The earliest timer due at `now`, taken out.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse((at, ..))) if *at <= now => self.heap.pop().map(|Reverse((.., t))| t),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct SessionOutput {
    pub outbox: Outbox,
    pub events: EventQueue,
    pub timers: Timers,
    next_object: u64,
}

impl SessionOutput {
    pub fn new(timeout: Duration) -> Self {
        SessionOutput {
            outbox: Outbox::new(timeout),
            events: EventQueue::default(),
            timers: Timers::default(),
            next_object: 0,
        }
    }

    /// The last id handed out (0 before the first).
    pub fn last_object_id(&self) -> u64 {
        self.next_object
    }

    /// Ids from now on come after `last`.
    pub fn continue_ids_after(&mut self, last: u64) {
        self.next_object = self.next_object.max(last);
    }

    /// A new id for a connection or a channel.
    pub fn next_object_id(&mut self) -> u64 {
        self.next_object += 1;
        self.next_object
    }

    pub fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    pub fn log(&mut self, line: String) {
        self.events.push(Event::Log(line));
    }
}
