//! The state one sidecar's tasks share: its pid, stdin's buffer, the flags of its end, the
//! sink. Every task module uses it; none of them uses another.

use super::backlog::Backlog;
use super::sink::{Kill, NoticeSink};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Notify};

/// Stdin's buffer and who may write it.
#[derive(Default)]
pub(super) struct Outbox {
    pub(super) buf: Vec<u8>,
    pub(super) closing: bool,
    /// The writer task is writing a batch it took: nobody else may write now.
    pub(super) writing: bool,
    /// `stdin_fd` may be written to (false once the writer gave the pipe up).
    pub(super) fd_open: bool,
}

pub(super) struct Shared {
    pub(super) pid: u32,
    /// The sidecar's stdin when it is non-blocking: `Sidecar::flush` writes to it
    /// directly from the JavaScript thread while the writer task is idle, saving a thread
    /// wake-up per burst (and its latency). Always `None` off Unix.
    #[cfg_attr(not(unix_io), allow(dead_code))]
    pub(super) stdin_fd: Option<i32>,
    /// Windows: the exit waiter, which owns the child's handle, terminates it when told so
    /// here (a stored permit when it is not waiting yet).
    #[cfg(not(unix_io))]
    pub(super) terminate: Notify,
    pub(super) outbox: Mutex<Outbox>,
    pub(super) outbox_ready: Notify,
    pub(super) stopping: AtomicBool,
    pub(super) reaped: AtomicBool,
    pub(super) exited: watch::Sender<bool>,
    pub(super) sink: Arc<dyn NoticeSink>,
    pub(super) backlog: Option<Arc<Backlog>>,
    pub(super) runtime: tokio::runtime::Handle,
}

impl Shared {
    /// Undelivered frames pausing the reader are no reason to wait any more: stop() is under
    /// way, or the process is gone (at most a pipe's worth is left to read).
    pub(super) fn gone_or_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst) || self.reaped.load(Ordering::SeqCst)
    }

    /// Tells the process to go, unless it has been reaped already.
    #[cfg(unix_io)]
    pub(super) fn kill(&self, how: Kill) {
        let signal = match how {
            Kill::Term => libc::SIGTERM,
            Kill::Now => libc::SIGKILL,
        };
        if self.pid != 0 && !self.reaped.load(Ordering::SeqCst) {
            // SAFETY: kill(2) with a pid this process spawned and has not reaped yet.
            unsafe {
                libc::kill(self.pid as libc::pid_t, signal);
            }
        }
    }

    /// Tells the process to go, unless it has been reaped already: the exit waiter
    /// terminates it (see `process::wait_child`).
    #[cfg(not(unix_io))]
    pub(super) fn kill(&self, _how: Kill) {
        if !self.reaped.load(Ordering::SeqCst) {
            self.terminate.notify_one();
        }
    }

    /// Lets a reader paused by backpressure look at `stopping` / `reaped` again.
    pub(super) fn wake_reader(&self) {
        if let Some(backlog) = &self.backlog {
            backlog.wake();
        }
    }
}
