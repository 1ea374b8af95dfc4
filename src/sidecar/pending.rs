//! Request correlation: ids, the table of requests waiting for an answer, and their timeouts.
//!
//! Every request of one sidecar has the same timeout, so deadlines come in order and one
//! queue swept by one timer task serves all of them: no timer per request.

use crate::error::Error;
use crate::protocol::Frame;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

pub type Reply = Result<Frame, Error>;

/// Where a request's reply goes: a channel for async callers, or a callback run on the
/// thread that got the reply (the stdout reader, the timeout sweeper, or whoever stopped).
pub enum Responder {
    Channel(oneshot::Sender<Reply>),
    Callback(Box<dyn FnOnce(Reply) + Send>),
}

impl Responder {
    pub fn respond(self, reply: Reply) {
        match self {
            Responder::Channel(tx) => {
                let _ = tx.send(reply);
            }
            Responder::Callback(f) => f(reply),
        }
    }
}

/// The methods this crate sends itself, kept as static strings so that registering one of
/// them allocates nothing (every `dc.send` is registered).
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

/// Hashes the table's keys, ids this crate hands out itself (no untrusted input), with one
/// multiplication instead of SipHash: the table is touched twice for every `dc.send`.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        // Fibonacci hashing: consecutive ids spread over the high bits hashbrown uses too.
        self.0 = u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

struct Entry {
    method: Cow<'static, str>,
    seq: u64,
    reply: Responder,
}

#[derive(Default)]
struct Table {
    next_id: u32,
    seq: u64,
    entries: HashMap<u32, Entry, BuildHasherDefault<IdHasher>>,
    deadlines: VecDeque<(Instant, u32, u64)>,
    /// Set once the sidecar is gone: new requests fail at once with this error.
    closed: Option<Error>,
}

pub struct PendingRequests {
    timeout: Duration,
    table: Mutex<Table>,
    wake: Notify,
}

impl PendingRequests {
    pub fn new(timeout: Duration) -> Self {
        PendingRequests {
            timeout,
            table: Mutex::new(Table::default()),
            wake: Notify::new(),
        }
    }

    /// Registers a request and returns its id (u32, starting at 1, wrapping, skipping 0 and
    /// ids still waiting) and the receiver of its reply.
    pub fn register(&self, method: &str) -> Result<(u32, oneshot::Receiver<Reply>), Error> {
        let (tx, rx) = oneshot::channel();
        let id = self
            .register_with(method, Responder::Channel(tx))
            .map_err(|(e, _)| e)?;
        Ok((id, rx))
    }

    /// Registers a request whose reply goes to `reply`; on error `reply` comes back unused.
    pub fn register_with(&self, method: &str, reply: Responder) -> Result<u32, (Error, Responder)> {
        let mut table = self.table.lock().unwrap();
        if let Some(err) = &table.closed {
            return Err((err.clone(), reply));
        }
        let id = loop {
            table.next_id = table.next_id.wrapping_add(1);
            if table.next_id != 0 && !table.entries.contains_key(&table.next_id) {
                break table.next_id;
            }
        };
        table.seq += 1;
        let seq = table.seq;
        let was_idle = table.deadlines.is_empty();
        table
            .deadlines
            .push_back((Instant::now() + self.timeout, id, seq));
        table.entries.insert(
            id,
            Entry {
                method: method_name(method),
                seq,
                reply,
            },
        );
        drop(table);
        if was_idle {
            self.wake.notify_one();
        }
        Ok(id)
    }

    /// Takes the waiting request `id`, returning its method and reply sender.
    pub fn take(&self, id: u32) -> Option<(Cow<'static, str>, Responder)> {
        let entry = self.table.lock().unwrap().entries.remove(&id)?;
        Some((entry.method, entry.reply))
    }

    /// Forgets a request whose frame could not be written, handing back its responder.
    pub fn cancel(&self, id: u32) -> Option<Responder> {
        self.table
            .lock()
            .unwrap()
            .entries
            .remove(&id)
            .map(|e| e.reply)
    }

    /// Fails every waiting request, and every later one, with `err`.
    pub fn close(&self, err: Error) {
        let entries = {
            let mut table = self.table.lock().unwrap();
            table.closed.get_or_insert(err.clone());
            table.deadlines.clear();
            std::mem::take(&mut table.entries)
        };
        for (_, entry) in entries {
            entry.reply.respond(Err(err.clone()));
        }
        self.wake.notify_one();
    }

    pub fn len(&self) -> usize {
        self.table.lock().unwrap().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs until [`close`](Self::close): fails each request whose deadline has passed,
    /// then calls `after_expiry`.
    pub async fn run_timeouts(&self, after_expiry: impl Fn()) {
        loop {
            let next = {
                let mut table = self.table.lock().unwrap();
                if table.closed.is_some() {
                    return;
                }
                let now = Instant::now();
                let mut expired = Vec::new();
                while let Some(&(deadline, id, seq)) = table.deadlines.front() {
                    if deadline > now {
                        break;
                    }
                    table.deadlines.pop_front();
                    if table.entries.get(&id).is_some_and(|e| e.seq == seq) {
                        expired.push((id, table.entries.remove(&id).unwrap()));
                    }
                }
                let next = table.deadlines.front().map(|d| d.0);
                drop(table);
                let any = !expired.is_empty();
                for (id, entry) in expired {
                    entry.reply.respond(Err(Error::Timeout {
                        method: entry.method.into_owned(),
                        id,
                    }));
                }
                if any {
                    after_expiry();
                }
                next
            };
            match next {
                Some(deadline) => tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = self.wake.notified() => {}
                },
                None => self.wake.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn ids_start_at_one_wrap_and_skip_zero_and_busy_ids() {
        let pending = PendingRequests::new(Duration::from_secs(10));
        assert_eq!(pending.register("a").unwrap().0, 1);
        pending.table.lock().unwrap().next_id = u32::MAX - 1;
        assert_eq!(pending.register("b").unwrap().0, u32::MAX);
        // 0 is skipped and 1 is still waiting
        assert_eq!(pending.register("c").unwrap().0, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_time_out_with_their_method_and_id() {
        let pending = Arc::new(PendingRequests::new(Duration::from_millis(100)));
        let sweeper = tokio::spawn({
            let pending = pending.clone();
            async move { pending.run_timeouts(|| {}).await }
        });
        let (id, rx) = pending.register("ping").unwrap();
        let (id2, rx2) = pending.register("pc.create").unwrap();
        // answering one removes it from the sweep
        let (_, tx) = pending.take(id2).unwrap();
        tx.respond(Err(Error::Remote("x".into())));
        assert_eq!(
            rx.await.unwrap(),
            Err(Error::Timeout {
                method: "ping".into(),
                id
            })
        );
        assert_eq!(rx2.await.unwrap(), Err(Error::Remote("x".into())));
        pending.close(Error::Stopped);
        sweeper.await.unwrap();
        assert_eq!(pending.register("late").unwrap_err(), Error::Stopped);
        let (err, unused) = pending
            .register_with(
                "late",
                Responder::Callback(Box::new(|_| panic!("not called"))),
            )
            .err()
            .unwrap();
        assert_eq!(err, Error::Stopped);
        drop(unused);
    }

    #[tokio::test]
    async fn close_fails_everything_waiting() {
        let pending = PendingRequests::new(Duration::from_secs(10));
        let (_, rx) = pending.register("ping").unwrap();
        pending.close(Error::Exited {
            code: Some(1),
            signal: None,
        });
        assert!(matches!(rx.await.unwrap(), Err(Error::Exited { .. })));
        assert!(pending.is_empty());
    }
}
