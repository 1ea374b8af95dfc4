//! What goes to the sidecar's stdin: the buffer requests are encoded into, the writer task
//! that empties it, and the deferral that lets a burst of `send()` calls go out in one write
//! (JavaScript flushes it from a microtask), written straight from the JavaScript thread when
//! the pipe takes it.

use super::process::{Shared, Sidecar};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;

#[derive(Default)]
pub(super) struct Outbox {
    pub(super) buf: Vec<u8>,
    pub(super) closing: bool,
    /// The writer task is writing a batch it took: nobody else may write now.
    pub(super) writing: bool,
    /// `stdin_fd` may be written to (false once the writer gave the pipe up).
    pub(super) fd_open: bool,
}

/// Outgoing bytes beyond which a deferred writer is woken at once anyway.
pub(super) const DEFER_LIMIT: usize = 256 * 1024;

thread_local! {
    /// Set while [`defer_writes`] runs on this thread.
    static DEFERRING: Cell<bool> = const { Cell::new(false) };
    /// Sidecars whose writer was not woken for requests made under [`defer_writes`].
    static DEFERRED: RefCell<Vec<Sidecar>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f`; requests it makes on this thread do not wake their sidecar's writer, which
/// [`flush_deferred_writes`] does later, once for a whole burst of requests (JavaScript calls
/// it from a microtask after `send()`). Only for callers that guarantee that flush.
pub fn defer_writes<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            DEFERRING.with(|d| d.set(self.0));
        }
    }
    let _reset = Reset(DEFERRING.with(|d| d.replace(true)));
    f()
}

/// Wakes the writers of everything deferred on this thread.
pub fn flush_deferred_writes() {
    let sidecars = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    for sidecar in sidecars {
        sidecar.write_now();
    }
}

impl Sidecar {
    /// Writes what is queued right here when the writer task is idle and the pipe takes it
    /// without blocking; wakes the writer for whatever is left.
    fn write_now(&self) {
        let shared = &self.shared;
        #[cfg_attr(not(unix_io), allow(unused_mut))]
        let mut outbox = shared.outbox.lock().unwrap();
        #[cfg(unix_io)]
        if let Some(fd) = shared.stdin_fd {
            if !outbox.writing && outbox.fd_open && !outbox.closing && !outbox.buf.is_empty() {
                // SAFETY: the pipe is open (fd_open, checked under the lock the writer takes
                // before closing it) and non-blocking; the writer is not writing.
                let n = unsafe { libc::write(fd, outbox.buf.as_ptr().cast(), outbox.buf.len()) };
                if n > 0 {
                    outbox.buf.drain(..n as usize);
                }
            }
        }
        let rest = !outbox.buf.is_empty();
        drop(outbox);
        if rest {
            shared.outbox_ready.notify_one();
        }
    }
}

#[cfg(unix_io)]
pub(super) fn nonblocking_fd(stdin: &ChildStdin) -> Option<i32> {
    use std::os::fd::AsRawFd;
    let fd = stdin.as_raw_fd();
    // SAFETY: fcntl(F_GETFL) on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    (flags >= 0 && flags & libc::O_NONBLOCK != 0).then_some(fd)
}

#[cfg(not(unix_io))]
pub(super) fn nonblocking_fd(_stdin: &ChildStdin) -> Option<i32> {
    None
}

/// Records `sidecar` for the next flush when deferring; false when the caller must wake.
pub(super) fn defer_wake(sidecar: &Sidecar) -> bool {
    if !DEFERRING.with(Cell::get) {
        return false;
    }
    DEFERRED.with(|d| {
        let mut list = d.borrow_mut();
        if !list.iter().any(|s| Arc::ptr_eq(&s.shared, &sidecar.shared)) {
            list.push(sidecar.clone());
        }
    });
    true
}

pub(super) async fn write_loop(shared: Arc<Shared>, mut stdin: ChildStdin) {
    let mut spare = Vec::new();
    loop {
        let (mut batch, closing) = {
            let mut outbox = shared.outbox.lock().unwrap();
            let batch = std::mem::replace(&mut outbox.buf, std::mem::take(&mut spare));
            outbox.writing = !batch.is_empty();
            (batch, outbox.closing)
        };
        if !batch.is_empty() {
            // Everything queued since the last write goes out in one write.
            let written = stdin.write_all(&batch).await;
            shared.outbox.lock().unwrap().writing = false;
            if written.is_err() {
                break;
            }
            batch.clear();
            spare = batch;
        } else if closing {
            break;
        } else {
            shared.outbox_ready.notified().await;
        }
    }
    // No direct writes from now on: the descriptor is about to be closed.
    shared.outbox.lock().unwrap().fd_open = false;
    let _ = stdin.shutdown().await;
    drop(stdin);
}
