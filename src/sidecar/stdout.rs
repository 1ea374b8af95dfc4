//! The sidecar's stdout: read (on the sink's event loop, by a thread of its own, or by a
//! tokio task off Unix), framed, and handed to the sink frame by frame.

use super::shared::Shared;
use super::sink::{Kill, Notice};
#[cfg(unix_io)]
use super::{backlog::FRAME_OVERHEAD, Ticket};
use crate::error::Error;
use crate::protocol::{Frame, FrameDecoder};
use std::sync::Arc;
#[cfg(unix_io)]
use std::sync::{atomic::Ordering, Mutex};
#[cfg(unix_io)]
use std::time::Duration;
#[cfg(not(unix_io))]
use tokio::io::{AsyncRead, AsyncReadExt};
#[cfg(unix_io)]
use tokio::sync::oneshot;

const READ_CHUNK: usize = 64 * 1024;

/// Starts reading the sidecar's stdout; the returned future completes when the reader ended.
///
/// On Unix the sink may read the pipe on its own event loop (the Node layer does, on the
/// JavaScript thread: frames are then delivered without a hand-over between threads); a
/// watchdog thread reads in its place while that loop leaves data unread for
/// [`LOOP_STALL`]. Otherwise a thread of its own reads the pipe with blocking reads: a frame
/// that arrives costs the one wake-up of that thread, where the runtime's reader costs an
/// epoll round, a task wake-up and a second read that finds the pipe empty.
#[cfg(unix_io)]
pub(super) fn start_reader(
    shared: &Arc<Shared>,
    stdout: tokio::process::ChildStdout,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let file = std::fs::File::from(stdout.into_owned_fd()?);
    let (done, ended) = oneshot::channel::<()>();
    let reader = StdoutReader {
        inner: Arc::new(ReaderInner {
            shared: shared.clone(),
            file,
            state: Mutex::new(ReadState {
                decoder: FrameDecoder::new(),
                discard: false,
                done: Some(done),
                frames: Vec::new(),
                tickets: Vec::new(),
            }),
            started: std::time::Instant::now(),
            loop_read_at: std::sync::atomic::AtomicU64::new(0),
        }),
    };
    if shared.sink.takes_reader() && reader.set_nonblocking(true).is_ok() {
        shared.sink.adopt_reader(Arc::new(reader.clone()));
        reader.spawn_watchdog()?;
    } else {
        reader.spawn_thread()?;
    }
    Ok(async move {
        let _ = ended.await;
    })
}

/// How long the event loop that took the stdout (see [`NoticeSink::adopt_reader`](super::sink::NoticeSink::adopt_reader)) may
/// leave it unread before a thread reads in its place.
#[cfg(unix_io)]
const LOOP_STALL: Duration = Duration::from_millis(20);
/// How long data may wait in the pipe, once the loop was quiet that long, before the
/// watchdog takes it.
#[cfg(unix_io)]
const LOOP_GRACE: Duration = Duration::from_millis(2);

/// The sidecar's stdout, for an event loop that is not ours (see
/// [`NoticeSink::adopt_reader`](super::sink::NoticeSink::adopt_reader)). A watchdog thread reads in the loop's place while the
/// loop is held up (JavaScript busy or blocked), as a reader thread of our own would: so
/// requests are answered, a paused reader still respects the backlog bound, and stop()
/// still ends a sidecar whose stdout is full.
#[cfg(unix_io)]
#[derive(Clone)]
pub(super) struct StdoutReader {
    inner: Arc<ReaderInner>,
}

#[cfg(unix_io)]
struct ReaderInner {
    shared: Arc<Shared>,
    file: std::fs::File,
    state: Mutex<ReadState>,
    started: std::time::Instant,
    /// When the loop last called `LoopRead::read_ready`, in µs since `started`.
    loop_read_at: std::sync::atomic::AtomicU64,
}

#[cfg(unix_io)]
struct ReadState {
    decoder: FrameDecoder,
    /// The stream was corrupt: the sidecar was killed, the rest is read and thrown away.
    discard: bool,
    /// Dropped when stdout ended: the exit waiter goes on then.
    done: Option<oneshot::Sender<()>>,
    /// The frames read and not yet taken (`LoopRead::take_frames`), in order: the one queue
    /// both the loop's reads and the watchdog's fill.
    frames: Vec<crate::protocol::Frame>,
    /// Their bytes, counted as undelivered (one ticket per read).
    tickets: Vec<Ticket>,
}

#[cfg(unix_io)]
impl StdoutReader {
    pub fn fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.inner.file.as_raw_fd()
    }

    /// Makes reads return at once when the pipe is empty (for `LoopRead::read_ready`), or
    /// wait for data again.
    pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
        // SAFETY: fcntl(2) on the descriptor this reader owns.
        let flags = unsafe { libc::fcntl(self.fd(), libc::F_GETFL) };
        let flags = if nonblocking {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(self.fd(), libc::F_SETFL, flags) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads on a thread of its own, with blocking reads, until stdout ends. Only for a
    /// reader nothing has read from yet.
    pub fn spawn_thread(self) -> std::io::Result<()> {
        self.set_nonblocking(false)?;
        std::thread::Builder::new()
            .name("pion-ipc-reader".into())
            .spawn(move || {
                let inner = &self.inner;
                // Callbacks run here may spawn tasks.
                let _runtime = inner.shared.runtime.enter();
                read_blocking(&inner.shared, &inner.file);
                inner.state.lock().unwrap().done = None;
            })?;
        Ok(())
    }

    /// True once stdout ended.
    pub fn ended(&self) -> bool {
        self.inner.state.lock().unwrap().done.is_none()
    }

    /// (still open, bytes read)
    fn read_some(&self, budget: usize) -> (bool, usize) {
        let inner = &*self.inner;
        let fd = self.fd();
        let mut state = inner.state.lock().unwrap();
        if state.done.is_none() {
            return (false, 0);
        }
        let state = &mut *state;
        let mut queued = 0;
        let mut queue = |frame: Frame| {
            queued += frame.payload.len() + FRAME_OVERHEAD;
            state.frames.push(frame);
        };
        let mut total = 0;
        let open = loop {
            if total >= budget {
                break true;
            }
            let drained = match read_into(fd, &mut state.decoder) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                Ok(Read { n: 0, .. }) | Err(_) => break false,
                Ok(Read { n, filled }) => {
                    total += n;
                    !filled
                }
            };
            if state.discard {
                state.decoder.buffer_mut().clear();
            } else if !dispatch_frames(&inner.shared, &mut state.decoder, &mut queue) {
                state.discard = true;
            }
            // A read that left room took all the pipe held: asking again would only be told
            // so (EAGAIN). What comes later makes the pipe readable again.
            if drained {
                break true;
            }
        };
        if queued > 0 {
            if let Some(backlog) = &inner.shared.backlog {
                state.tickets.push(backlog.ticket(queued));
            }
        }
        if !open {
            if !state.discard {
                report_partial_frame(&inner.shared, &state.decoder);
            }
            state.done = None;
        }
        (open, total)
    }

    /// Reads in the loop's place whenever the loop has left the pipe alone for
    /// [`LOOP_STALL`] while data waited in it, until stdout ends.
    fn spawn_watchdog(self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("pion-ipc-watchdog".into())
            .spawn(move || {
                let _runtime = self.inner.shared.runtime.enter();
                self.watch();
            })?;
        Ok(())
    }

    fn watch(&self) {
        let shared = &self.inner.shared;
        let since_loop = || {
            let now = self.inner.started.elapsed().as_micros() as u64;
            Duration::from_micros(
                now.saturating_sub(self.inner.loop_read_at.load(Ordering::Relaxed)),
            )
        };
        let mut reading = false;
        while !self.ended() {
            let quiet = since_loop();
            if quiet < LOOP_STALL {
                reading = false;
                std::thread::sleep(LOOP_STALL - quiet);
                continue;
            }
            if !self.wait_readable(LOOP_STALL) {
                continue;
            }
            if !reading {
                // Data is there; the loop normally takes it at once.
                std::thread::sleep(LOOP_GRACE);
                if since_loop() < LOOP_STALL {
                    continue;
                }
                reading = true;
            }
            // Undelivered frames over the limit: leave them in the pipe until there is room,
            // as the reader thread does (never while stopping or after the exit).
            if let Some(backlog) = shared.backlog.as_ref().filter(|b| b.over_limit()) {
                shared
                    .runtime
                    .block_on(backlog.wait_for_room(|| shared.gone_or_stopping()));
            }
            self.read_some(READ_CHUNK);
            shared.sink.flush();
        }
    }

    /// Waits at most `limit` for the pipe to hold data (or to end).
    fn wait_readable(&self, limit: Duration) -> bool {
        let mut poll = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one descriptor this reader owns.
        let n = unsafe { libc::poll(&mut poll, 1, limit.as_millis() as i32) };
        n > 0
    }
}

#[cfg(unix_io)]
impl super::sink::LoopRead for StdoutReader {
    fn fd(&self) -> i32 {
        StdoutReader::fd(self)
    }

    /// For the event loop (the pipe is non-blocking); the watchdog reads in its place only
    /// while this has not been called for [`LOOP_STALL`].
    fn read_ready(&self, budget: usize) -> bool {
        let elapsed = self.inner.started.elapsed().as_micros() as u64;
        self.inner.loop_read_at.store(elapsed, Ordering::Relaxed);
        self.read_some(budget).0
    }

    /// Their bytes are given back to the backlog.
    fn take_frames(&self, into: &mut Vec<Frame>) {
        let mut state = self.inner.state.lock().unwrap();
        into.append(&mut state.frames);
        state.tickets.clear();
    }

    fn finished(&self) -> bool {
        let state = self.inner.state.lock().unwrap();
        state.done.is_none() && state.frames.is_empty()
    }

    fn backlogged(&self) -> bool {
        let backlog = self.inner.shared.backlog.as_ref();
        backlog.is_some_and(|b| b.over_limit())
    }

    fn has_room(&self) -> bool {
        let backlog = self.inner.shared.backlog.as_ref();
        backlog.is_none_or(|b| b.has_room())
    }
}

#[cfg(not(unix_io))]
pub(super) fn start_reader(
    shared: &Arc<Shared>,
    stdout: tokio::process::ChildStdout,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let reader = tokio::spawn(read_loop(shared.clone(), stdout));
    Ok(async move {
        let _ = reader.await;
    })
}

/// What one read(2) did.
#[cfg(unix_io)]
struct Read {
    /// Bytes read; 0 at the end of the stream.
    n: usize,
    /// The read filled all the room it had: the pipe may hold more.
    filled: bool,
}

/// One read(2) of the sidecar's stdout into `decoder`'s spare capacity, again after EINTR.
#[cfg(unix_io)]
fn read_into(fd: i32, decoder: &mut FrameDecoder) -> std::io::Result<Read> {
    loop {
        decoder.reserve_for_read(READ_CHUNK);
        let buf = decoder.buffer_mut();
        let spare = buf.spare_capacity_mut();
        let room = spare.len();
        // SAFETY: read(2) on the stdout descriptor, into the buffer's spare capacity.
        let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), room) };
        if n >= 0 {
            // SAFETY: read(2) initialised these n bytes.
            unsafe { buf.set_len(buf.len() + n as usize) };
            let n = n as usize;
            return Ok(Read {
                n,
                filled: n == room,
            });
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(unix_io)]
fn read_blocking(shared: &Shared, stdout: &std::fs::File) {
    use std::os::fd::AsRawFd;
    let fd = stdout.as_raw_fd();
    let mut decoder = FrameDecoder::new();
    loop {
        if matches!(read_into(fd, &mut decoder), Ok(Read { n: 0, .. }) | Err(_)) {
            break;
        }
        if !dispatch_frames(shared, &mut decoder, &mut to_sink(shared)) {
            let _ = std::io::copy(&mut &*stdout, &mut std::io::sink());
            return;
        }
        shared.sink.flush();
        // Undelivered frames over the limit: stop reading, so that the pipe fills and pion
        // stops taking data off SCTP. Never while stopping or after the exit.
        if let Some(backlog) = shared.backlog.as_ref().filter(|b| b.over_limit()) {
            shared
                .runtime
                .block_on(backlog.wait_for_room(|| shared.gone_or_stopping()));
        }
    }
    report_partial_frame(shared, &decoder);
}

#[cfg(not(unix_io))]
async fn read_loop(shared: Arc<Shared>, mut stdout: impl AsyncRead + Unpin) {
    let mut decoder = FrameDecoder::new();
    loop {
        decoder.reserve_for_read(READ_CHUNK);
        match stdout.read_buf(decoder.buffer_mut()).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if !dispatch_frames(&shared, &mut decoder, &mut to_sink(&shared)) {
            let _ = tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await;
            return;
        }
        shared.sink.flush();
        if let Some(backlog) = &shared.backlog {
            backlog.wait_for_room(|| shared.gone_or_stopping()).await;
        }
    }
    report_partial_frame(&shared, &decoder);
}

/// Hands every complete frame read so far to `to`. False when the stream cannot be trusted
/// any more: that is reported and handled as a crash, and the caller only drains the pipe
/// from then on, so the process cannot stall on a full pipe while dying.
fn dispatch_frames(
    shared: &Shared,
    decoder: &mut FrameDecoder,
    to: &mut impl FnMut(Frame),
) -> bool {
    loop {
        match decoder.next_frame() {
            Ok(Some(frame)) => to(frame),
            Ok(None) => return true,
            Err(e) => {
                shared
                    .sink
                    .notice(Notice::Error(Error::Protocol(e.to_string())));
                shared.sink.flush();
                shared.kill(Kill::Now);
                return false;
            }
        }
    }
}

fn report_partial_frame(shared: &Shared, decoder: &FrameDecoder) {
    if decoder.buffered() > 0 {
        shared.sink.notice(Notice::Log(format!(
            "stdout ended inside a frame ({} bytes dropped)",
            decoder.buffered()
        )));
        shared.sink.flush();
    }
}

/// A frame for the sink (the readers of a sink that does not read stdout itself): the core
/// answers responses and routes events.
fn to_sink(shared: &Shared) -> impl FnMut(Frame) + '_ {
    move |frame| shared.sink.notice(Notice::Frame(frame))
}
