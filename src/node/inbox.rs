//! What other threads hand to the JavaScript thread, and the one wake-up that makes it
//! take them: the sidecar's facts (frames, log lines, its exit) tagged with the life they
//! belong to, the end of a stop, a due timer. Nothing here interprets them: the driver
//! (`driver.rs`) does, on the JavaScript thread.
//!
//! A wake-up is scheduled by the first fact after the driver took the last batch, so a
//! flood of frames costs one JavaScript call per batch. The ThreadsafeFunction behind it
//! exists while the driver has something running or waiting (see `Driver::maybe_close`),
//! so nothing of the addon keeps Node alive once every PionIpc is stopped.

use crate::core::Life;
use crate::sidecar::{Backlog, Notice, NoticeSink, Ticket, FRAME_OVERHEAD};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeCallContext, ThreadsafeFunctionCallMode};
use std::sync::{Arc, Mutex};

/// Log lines waiting for JavaScript beyond this many are counted and dropped, so a logger
/// that cannot keep up never makes us stop reading the sidecar's stderr.
const MAX_PENDING_LOG_LINES: usize = 10_000;

/// One thing that happened off the JavaScript thread.
// The large variant is the common one (a frame of the reader thread): boxing it would cost
// an allocation per frame.
#[allow(clippy::large_enum_variant)]
pub(super) enum Fact {
    /// From the sidecar of `life`; a frame holds its bytes in the backlog until handled.
    Sidecar(Life, Notice, Option<Ticket>),
    /// The stop() of `life` is done (the process is gone, or was given up on).
    StopDone(Life),
    /// A deadline of the driver may be due.
    Timer,
}

/// Calls the driver `id` on its JavaScript thread (see `driver::Tick`).
pub(super) type Wake = napi::threadsafe_function::ThreadsafeFunction<
    (),
    Unknown<'static>,
    super::tick::Tick,
    Status,
    false,
    false,
    0,
>;

#[derive(Default)]
struct Queue {
    facts: Vec<Fact>,
    log_lines: usize,
    dropped_logs: u64,
    wake_pending: bool,
}

pub(super) struct Inbox {
    queue: Mutex<Queue>,
    wake: Mutex<Option<Arc<Wake>>>,
    backlog: Arc<Backlog>,
    /// Sidecar stdouts waiting to be watched on the JavaScript thread's loop, with the life
    /// they belong to.
    #[cfg(unix_io)]
    readers: Mutex<Vec<(Life, Arc<dyn crate::sidecar::LoopRead>)>>,
}

impl Inbox {
    pub(super) fn new(backlog: Arc<Backlog>) -> Arc<Self> {
        Arc::new(Inbox {
            queue: Mutex::default(),
            wake: Mutex::new(None),
            backlog,
            #[cfg(unix_io)]
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Counts `bytes` (events held for paused channels) as undelivered until the ticket is
    /// dropped: the stdout reader pauses while too much is.
    pub(super) fn hold(&self, bytes: usize) -> Ticket {
        self.backlog.ticket(bytes)
    }

    pub(super) fn push(&self, fact: Fact) {
        let mut queue = self.queue.lock().unwrap();
        if let Fact::Sidecar(_, Notice::Log(_), _) = fact {
            if queue.log_lines >= MAX_PENDING_LOG_LINES {
                queue.dropped_logs += 1;
                return;
            }
            queue.log_lines += 1;
        }
        queue.facts.push(fact);
    }

    /// Schedules a call of the driver unless one is scheduled; with no wake-up function
    /// (nothing runs, nothing waits) there is nobody to deliver to and the facts go.
    pub(super) fn wake(&self) {
        {
            let mut queue = self.queue.lock().unwrap();
            if queue.wake_pending {
                return;
            }
            queue.wake_pending = true;
        }
        let wake = self.wake.lock().unwrap().clone();
        match wake {
            Some(wake) => {
                wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }
            None => *self.queue.lock().unwrap() = Queue::default(),
        }
    }

    /// Everything queued, and how many log lines were dropped; the next fact wakes again.
    pub(super) fn take(&self) -> (Vec<Fact>, u64) {
        let mut queue = self.queue.lock().unwrap();
        let taken = std::mem::take(&mut *queue);
        (taken.facts, taken.dropped_logs)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.lock().unwrap().facts.is_empty()
    }

    pub(super) fn is_open(&self) -> bool {
        self.wake.lock().unwrap().is_some()
    }

    /// Makes the wake-up function for the driver `driver` from index.js's dispatcher (which
    /// the call then runs with `undefined`). Only on the JavaScript thread. True when it
    /// was made now.
    pub(super) fn open(&self, env: &Env, driver: u64) -> Result<bool> {
        let mut slot = self.wake.lock().unwrap();
        if slot.is_some() {
            return Ok(false);
        }
        let wake = super::hooks::with_dispatch(env, |dispatch| {
            dispatch
                .build_threadsafe_function::<()>()
                .callee_handled::<false>()
                .weak::<false>()
                .build_callback(move |_ctx: ThreadsafeCallContext<()>| {
                    Ok(super::tick::Tick(driver))
                })
        })?;
        *slot = Some(Arc::new(wake));
        Ok(true)
    }

    /// Drops the wake-up function (Node may exit). True when there was one.
    pub(super) fn close(&self) -> bool {
        self.wake.lock().unwrap().take().is_some()
    }

    pub(super) fn sink(self: &Arc<Self>, life: Life) -> Arc<LifeSink> {
        Arc::new(LifeSink {
            inbox: self.clone(),
            life,
        })
    }

    /// The stdouts handed over for the loop reader since the last call.
    #[cfg(unix_io)]
    pub(super) fn take_readers(&self) -> Vec<(Life, Arc<dyn crate::sidecar::LoopRead>)> {
        std::mem::take(&mut *self.readers.lock().unwrap())
    }
}

/// The sink of one sidecar life: its notices become facts of that life.
pub(super) struct LifeSink {
    inbox: Arc<Inbox>,
    life: Life,
}

impl NoticeSink for LifeSink {
    fn notice(&self, notice: Notice) {
        let ticket = match &notice {
            Notice::Frame(frame) => Some(
                self.inbox
                    .backlog
                    .ticket(frame.payload.len() + FRAME_OVERHEAD),
            ),
            _ => None,
        };
        self.inbox.push(Fact::Sidecar(self.life, notice, ticket));
    }

    fn flush(&self) {
        self.inbox.wake();
    }

    fn backlog(&self) -> Option<Arc<Backlog>> {
        Some(self.inbox.backlog.clone())
    }

    /// The stdout is read on the JavaScript thread (see `poll.rs`) where the runtime allows
    /// it and something can deliver; otherwise by the reader thread.
    #[cfg(unix_io)]
    fn takes_reader(&self) -> bool {
        super::hooks::wants_loop_reader() && self.inbox.is_open()
    }

    #[cfg(unix_io)]
    fn adopt_reader(&self, reader: Arc<dyn crate::sidecar::LoopRead>) {
        self.inbox.readers.lock().unwrap().push((self.life, reader));
        // Wakes JavaScript, which starts watching the pipe.
        self.inbox.wake();
    }
}
