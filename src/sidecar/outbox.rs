//! What goes to the sidecar's stdin: the buffer the owner's encoded requests are appended
//! to, its flush (straight from the owner's thread when the pipe takes it) and the writer
//! task that writes the rest.

use super::shared::Shared;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;

/// Buffered bytes beyond which the writer is woken at once, before the owner's flush.
pub(super) const WAKE_LIMIT: usize = 256 * 1024;

/// Writes what is buffered: right here when the writer task is idle and the pipe takes it
/// without blocking (Unix), else (and for whatever is left) by waking the writer.
pub(super) fn flush(shared: &Shared) {
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

/// The pipe size asked for stdin (Linux; the default is 64 KiB): a burst of sends is taken
/// by the direct write instead of waking the writer task for the rest.
#[cfg(all(unix_io, target_os = "linux"))]
const STDIN_PIPE_SIZE: i32 = 1024 * 1024;

#[cfg(unix_io)]
pub(super) fn nonblocking_fd(stdin: &ChildStdin) -> Option<i32> {
    use std::os::fd::AsRawFd;
    let fd = stdin.as_raw_fd();
    // Best effort: a smaller limit (fs.pipe-max-size) leaves the default size.
    // SAFETY: fcntl(F_SETPIPE_SZ) on a pipe we own.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, STDIN_PIPE_SIZE)
    };
    // SAFETY: fcntl(F_GETFL) on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    (flags >= 0 && flags & libc::O_NONBLOCK != 0).then_some(fd)
}

#[cfg(not(unix_io))]
pub(super) fn nonblocking_fd(_stdin: &ChildStdin) -> Option<i32> {
    None
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
