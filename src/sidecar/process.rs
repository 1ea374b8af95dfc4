//! One running sidecar: the child process, its writer, stdout reader, stderr reader, timeout
//! sweeper and exit waiter, each a tokio task, except the stdout reader on Unix: the sink's
//! own event loop when it takes it (Node's, see `node/poll.rs`), watched by a thread that
//! reads in its place while that loop is held up, else a thread of its own (see
//! `start_reader`).

use super::backlog::Backlog;
use super::pending::{PendingRequests, Reply, Responder};
use crate::error::Error;
use crate::protocol::{encode_frame, Frame, FrameDecoder, FrameType, RequestHeader};
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, Command};
use tokio::sync::{oneshot, watch, Notify};

/// What a sidecar tells its owner, in the order it happened.
pub enum Notice {
    /// An `evt` frame.
    Event(Frame),
    /// A line for the logger, without the `[pion-ipc] ` prefix.
    Log(String),
    /// Something for the `error` event (also logged).
    Error(Error),
    /// The process is gone. `intentional` when stop() asked for it.
    Exited {
        code: Option<i32>,
        signal: Option<String>,
        intentional: bool,
    },
    /// The watchdog brought a new sidecar up.
    Restarted,
    /// No sidecar runs and none will be started without an explicit start().
    Idle,
    /// Something for a connection or channel object.
    Emit(crate::events::Emit),
    /// Settles the promise registered under `token` (by the napi layer).
    Settle {
        token: u64,
        result: Result<crate::events::Output, Error>,
    },
    /// Work to do on the JavaScript thread, in order with everything else: state changes
    /// that JavaScript can observe happen there, together with their events.
    Run(Box<dyn FnOnce() + Send>),
}

impl std::fmt::Debug for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Event(frame) => write!(f, "Event({})", frame.header.event),
            Notice::Log(line) => write!(f, "Log({line})"),
            Notice::Error(e) => write!(f, "Error({e})"),
            Notice::Exited {
                code,
                signal,
                intentional,
            } => write!(f, "Exited({code:?}, {signal:?}, {intentional})"),
            Notice::Restarted => write!(f, "Restarted"),
            Notice::Idle => write!(f, "Idle"),
            Notice::Emit(e) => write!(f, "Emit({e:?})"),
            Notice::Settle { token, result } => write!(f, "Settle({token}, {})", result.is_ok()),
            Notice::Run(_) => write!(f, "Run"),
        }
    }
}

/// Receives notices. `flush` marks the end of a batch: everything pushed since the last
/// flush came out of one read and may be delivered in one go.
pub trait NoticeSink: Send + Sync + 'static {
    fn notice(&self, notice: Notice);
    fn flush(&self) {}
    /// Where event frames handed on are counted until their consumer is done with them;
    /// the stdout reader pauses while it is over its limit. `None`: no backpressure.
    fn backlog(&self) -> Option<Arc<Backlog>> {
        None
    }
    /// Offered the sidecar's stdout, to read it on the sink's own event loop instead of a
    /// thread of its own; `Err` hands it back. Whoever takes it calls
    /// [`StdoutReader::read_ready`] when the pipe is readable and delivers what that queued
    /// (the flush is theirs), until it reports the end. A watchdog thread reads in the
    /// loop's place while the loop leaves data unread.
    #[cfg(unix_io)]
    fn adopt_reader(&self, reader: StdoutReader) -> Result<(), StdoutReader> {
        Err(reader)
    }
}

/// Stderr lines longer than this are cut into pieces, so a line without end cannot grow
/// without bound.
const MAX_STDERR_LINE: usize = 64 * 1024;
const READ_CHUNK: usize = 64 * 1024;

#[derive(Default)]
struct Outbox {
    buf: Vec<u8>,
    closing: bool,
    /// The writer task is writing a batch it took: nobody else may write now.
    writing: bool,
    /// `stdin_fd` may be written to (false once the writer gave the pipe up).
    fd_open: bool,
}

/// How the sidecar is told to go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    /// Asks it to end: SIGTERM on Unix. Windows has no such request: the process is
    /// terminated, as with [`Kill::Now`].
    Term,
    /// Ends it at once: SIGKILL on Unix, TerminateProcess on Windows.
    Now,
}

struct Shared {
    pid: u32,
    /// The sidecar's stdin when it is non-blocking: [`flush_deferred_writes`] writes to it
    /// directly from the JavaScript thread while the writer task is idle, saving a thread
    /// wake-up per burst (and its latency). Always `None` off Unix.
    #[cfg_attr(not(unix_io), allow(dead_code))]
    stdin_fd: Option<i32>,
    /// Windows: the exit waiter, which owns the child's handle, terminates it when told so
    /// here (a stored permit when it is not waiting yet).
    #[cfg(not(unix_io))]
    terminate: Notify,
    pending: PendingRequests,
    outbox: Mutex<Outbox>,
    outbox_ready: Notify,
    stopping: AtomicBool,
    reaped: AtomicBool,
    exited: watch::Sender<bool>,
    sink: Arc<dyn NoticeSink>,
    backlog: Option<Arc<Backlog>>,
    runtime: tokio::runtime::Handle,
}

impl Shared {
    /// Undelivered frames pausing the reader are no reason to wait any more: stop() is under
    /// way, or the process is gone (at most a pipe's worth is left to read).
    fn gone_or_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst) || self.reaped.load(Ordering::SeqCst)
    }

    /// Tells the process to go, unless it has been reaped already.
    #[cfg(unix_io)]
    fn kill(&self, how: Kill) {
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
    /// terminates it (see [`wait_child`]).
    #[cfg(not(unix_io))]
    fn kill(&self, _how: Kill) {
        if !self.reaped.load(Ordering::SeqCst) {
            self.terminate.notify_one();
        }
    }

    /// Lets a reader paused by backpressure look at `stopping` / `reaped` again.
    fn wake_reader(&self) {
        if let Some(backlog) = &self.backlog {
            backlog.wake();
        }
    }
}

/// A handle to one running sidecar; cheap to clone.
#[derive(Clone)]
pub struct Sidecar {
    shared: Arc<Shared>,
}

impl Sidecar {
    /// Spawns `bin` with piped stdio and starts its tasks. Must be called inside a tokio
    /// runtime.
    pub fn spawn(
        bin: &Path,
        timeout: Duration,
        sink: Arc<dyn NoticeSink>,
    ) -> Result<Sidecar, Error> {
        let mut command = Command::new(bin);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        set_parent_death_signal(&mut command);
        let mut child = command
            .spawn()
            .map_err(|e| Error::Spawn(format!("spawn {} {}", bin.display(), errno_name(&e))))?;
        let pid = child.id().unwrap_or(0);
        tracing::debug!(pid, bin = %bin.display(), "pion-ipc spawned");
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdin_fd = nonblocking_fd(&stdin);
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let shared = Arc::new(Shared {
            pid,
            stdin_fd,
            #[cfg(not(unix_io))]
            terminate: Notify::new(),
            pending: PendingRequests::new(timeout),
            outbox: Mutex::new(Outbox {
                fd_open: true,
                ..Outbox::default()
            }),
            outbox_ready: Notify::new(),
            stopping: AtomicBool::new(false),
            reaped: AtomicBool::new(false),
            exited: watch::channel(false).0,
            backlog: sink.backlog(),
            sink,
            runtime: tokio::runtime::Handle::current(),
        });
        let reader = match start_reader(&shared, stdout) {
            Ok(reader) => reader,
            Err(e) => {
                // Nobody would read its stdout: end it (and reap it; the exit waiter below
                // is not running).
                let _ = child.start_kill();
                shared.runtime.spawn(async move {
                    let _ = child.wait().await;
                });
                return Err(Error::Spawn(format!("cannot start the stdout reader: {e}")));
            }
        };
        tokio::spawn(write_loop(shared.clone(), stdin));
        tokio::spawn({
            let shared = shared.clone();
            async move {
                let sink = shared.sink.clone();
                shared.pending.run_timeouts(|| sink.flush()).await
            }
        });
        let stderr_reader = tokio::spawn(stderr_loop(shared.clone(), stderr));
        tokio::spawn({
            let shared = shared.clone();
            async move {
                let status = wait_child(&shared, &mut child).await;
                shared.reaped.store(true, Ordering::SeqCst);
                // At most a pipe's worth is left to read: no more backpressure.
                shared.wake_reader();
                // Everything the process wrote before it died is delivered before its exit.
                let drain = Duration::from_secs(1);
                let _ = tokio::time::timeout(drain, reader).await;
                let _ = tokio::time::timeout(drain, stderr_reader).await;
                let (code, signal) = match status {
                    Ok(status) => exit_parts(status),
                    Err(_) => (None, None),
                };
                let intentional = shared.stopping.load(Ordering::SeqCst);
                tracing::debug!(
                    pid = shared.pid,
                    ?code,
                    ?signal,
                    intentional,
                    "pion-ipc exited"
                );
                shared.pending.close(if intentional {
                    Error::Stopped
                } else {
                    Error::Exited {
                        code,
                        signal: signal.clone(),
                    }
                });
                shared.exited.send_replace(true);
                shared.sink.notice(Notice::Exited {
                    code,
                    signal,
                    intentional,
                });
                shared.sink.flush();
            }
        });
        Ok(Sidecar { shared })
    }

    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// Runs `task` on the runtime that drives this sidecar (callable from any thread).
    pub fn run_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.shared.runtime.spawn(task);
    }

    /// Queues a request frame; the receiver gets the response, or the error that ended it.
    pub fn request(
        &self,
        method: &str,
        pc_id: &str,
        dc_label: &str,
        is_binary: bool,
        payload: &[u8],
    ) -> Result<oneshot::Receiver<Reply>, Error> {
        let (tx, rx) = oneshot::channel();
        self.request_with(
            method,
            pc_id,
            dc_label,
            is_binary,
            payload,
            Responder::Channel(tx),
        )
        .map_err(|(e, _)| e)?;
        Ok(rx)
    }

    /// Queues a request frame whose reply goes to `reply`. When this fails the request was
    /// not sent and `reply` comes back uncalled.
    pub fn request_with(
        &self,
        method: &str,
        pc_id: &str,
        dc_label: &str,
        is_binary: bool,
        payload: &[u8],
        reply: Responder,
    ) -> Result<(), (Error, Responder)> {
        let pending = &self.shared.pending;
        let id = pending.register_with(method, reply)?;
        let header = RequestHeader {
            id,
            method,
            pc_id,
            dc_label,
            is_binary,
        };
        let mut outbox = self.shared.outbox.lock().unwrap();
        let was_empty = outbox.buf.is_empty();
        let refused = if outbox.closing {
            Some(Error::Stopped)
        } else {
            encode_frame(&header, payload, &mut outbox.buf)
                .err()
                .map(|e| Error::Range(format!("{method}: {e}")))
        };
        if let Some(err) = refused {
            drop(outbox);
            // Gone already means a stop or timeout answered it with an error in between.
            return match pending.cancel(id) {
                Some(reply) => Err((err, reply)),
                None => Ok(()),
            };
        }
        let large = outbox.buf.len() >= DEFER_LIMIT;
        drop(outbox);
        if (was_empty && !defer_wake(self)) || large {
            self.shared.outbox_ready.notify_one();
        }
        Ok(())
    }

    /// Sends a request and waits for its response.
    pub async fn call(
        &self,
        method: &str,
        pc_id: &str,
        dc_label: &str,
        is_binary: bool,
        payload: &[u8],
    ) -> Reply {
        let rx = self.request(method, pc_id, dc_label, is_binary, payload)?;
        rx.await.unwrap_or(Err(Error::Stopped))
    }

    pub fn has_exited(&self) -> bool {
        *self.shared.exited.borrow()
    }

    /// Waits until the process is gone (its exit notice sent), or `limit` passes.
    pub async fn wait_exit(&self, limit: Duration) -> bool {
        let mut rx = self.shared.exited.subscribe();
        let gone = matches!(
            tokio::time::timeout(limit, rx.wait_for(|gone| *gone)).await,
            Ok(Ok(_))
        );
        gone
    }

    /// Tells the process to go, unless it has been reaped already.
    pub fn kill(&self, how: Kill) {
        self.shared.kill(how);
    }

    /// Marks the coming exit as intended: pending requests then fail with `ipc stopped` and
    /// the exit notice says `intentional`.
    pub fn mark_stopping(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // A sidecar whose stdout is not read may never exit (PROTOCOL.md trap 3).
        self.shared.wake_reader();
    }

    /// Closes stdin (the sidecar's signal to exit) and waits `timeout`; then SIGTERM and one
    /// more second; then SIGKILL, so that nothing is left behind. Stdout and stderr are read
    /// all along.
    pub async fn stop(&self, timeout: Duration) {
        self.mark_stopping();
        self.shared.outbox.lock().unwrap().closing = true;
        self.shared.outbox_ready.notify_one();
        if !self.wait_exit(timeout).await {
            self.kill(Kill::Term);
            if !self.wait_exit(Duration::from_secs(1)).await {
                self.kill(Kill::Now);
                self.wait_exit(Duration::from_secs(2)).await;
            }
        }
        self.shared.pending.close(Error::Stopped);
    }
}

/// Outgoing bytes beyond which a deferred writer is woken at once anyway.
const DEFER_LIMIT: usize = 256 * 1024;

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
fn nonblocking_fd(stdin: &ChildStdin) -> Option<i32> {
    use std::os::fd::AsRawFd;
    let fd = stdin.as_raw_fd();
    // SAFETY: fcntl(F_GETFL) on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    (flags >= 0 && flags & libc::O_NONBLOCK != 0).then_some(fd)
}

#[cfg(not(unix_io))]
fn nonblocking_fd(_stdin: &ChildStdin) -> Option<i32> {
    None
}

/// Records `sidecar` for the next flush when deferring; false when the caller must wake.
fn defer_wake(sidecar: &Sidecar) -> bool {
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

async fn write_loop(shared: Arc<Shared>, mut stdin: ChildStdin) {
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

/// Starts reading the sidecar's stdout; the returned future completes when the reader ended.
///
/// On Unix the sink may read the pipe on its own event loop (the Node layer does, on the
/// JavaScript thread: frames are then delivered without a hand-over between threads); a
/// watchdog thread reads in its place while that loop leaves data unread for
/// [`LOOP_STALL`]. Otherwise a thread of its own reads the pipe with blocking reads: a frame
/// that arrives costs the one wake-up of that thread, where the runtime's reader costs an
/// epoll round, a task wake-up and a second read that finds the pipe empty.
#[cfg(unix_io)]
fn start_reader(
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
            }),
            started: std::time::Instant::now(),
            loop_read_at: std::sync::atomic::AtomicU64::new(0),
        }),
    };
    match shared.sink.adopt_reader(reader.clone()) {
        Ok(()) => reader.spawn_watchdog()?,
        Err(reader) => reader.spawn_thread()?,
    }
    Ok(async move {
        let _ = ended.await;
    })
}

/// How long the event loop that took the stdout (see [`NoticeSink::adopt_reader`]) may
/// leave it unread before a thread reads in its place.
#[cfg(unix_io)]
const LOOP_STALL: Duration = Duration::from_millis(20);
/// How long data may wait in the pipe, once the loop was quiet that long, before the
/// watchdog takes it.
#[cfg(unix_io)]
const LOOP_GRACE: Duration = Duration::from_millis(2);

/// The sidecar's stdout, for an event loop that is not ours (see
/// [`NoticeSink::adopt_reader`]). A watchdog thread reads in the loop's place while the
/// loop is held up (JavaScript busy or blocked), as a reader thread of our own would: so
/// requests are answered, a paused reader still respects the backlog bound, and stop()
/// still ends a sidecar whose stdout is full.
#[cfg(unix_io)]
#[derive(Clone)]
pub struct StdoutReader {
    inner: Arc<ReaderInner>,
}

#[cfg(unix_io)]
struct ReaderInner {
    shared: Arc<Shared>,
    file: std::fs::File,
    state: Mutex<ReadState>,
    started: std::time::Instant,
    /// When the loop last called [`StdoutReader::read_ready`], in µs since `started`.
    loop_read_at: std::sync::atomic::AtomicU64,
}

#[cfg(unix_io)]
struct ReadState {
    decoder: FrameDecoder,
    /// The stream was corrupt: the sidecar was killed, the rest is read and thrown away.
    discard: bool,
    /// Dropped when stdout ended: the exit waiter goes on then.
    done: Option<oneshot::Sender<()>>,
}

#[cfg(unix_io)]
impl StdoutReader {
    pub fn fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.inner.file.as_raw_fd()
    }

    /// Makes reads return at once when the pipe is empty (for [`Self::read_ready`]), or
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

    /// For the event loop: reads what the (non-blocking) pipe holds, up to about `budget`
    /// bytes, and dispatches every whole frame in it (responses are answered here, events
    /// queued on the sink; the flush is the caller's). False once stdout ended.
    pub fn read_ready(&self, budget: usize) -> bool {
        let elapsed = self.inner.started.elapsed().as_micros() as u64;
        self.inner.loop_read_at.store(elapsed, Ordering::Relaxed);
        self.read_some(budget).0
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
        let mut total = 0;
        while total < budget {
            match read_into(fd, &mut state.decoder) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (true, total),
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
            if state.discard {
                state.decoder.buffer_mut().clear();
            } else if !dispatch_frames(&inner.shared, &mut state.decoder) {
                state.discard = true;
            }
        }
        if total >= budget {
            return (true, total);
        }
        if !state.discard {
            report_partial_frame(&inner.shared, &state.decoder);
        }
        state.done = None;
        (false, total)
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

#[cfg(not(unix_io))]
fn start_reader(
    shared: &Arc<Shared>,
    stdout: tokio::process::ChildStdout,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let reader = tokio::spawn(read_loop(shared.clone(), stdout));
    Ok(async move {
        let _ = reader.await;
    })
}

/// One read(2) of the sidecar's stdout into `decoder`'s spare capacity, again after EINTR:
/// the number of bytes read, 0 at the end of the stream.
#[cfg(unix_io)]
fn read_into(fd: i32, decoder: &mut FrameDecoder) -> std::io::Result<usize> {
    loop {
        decoder.reserve_for_read(READ_CHUNK);
        let buf = decoder.buffer_mut();
        let spare = buf.spare_capacity_mut();
        // SAFETY: read(2) on the stdout descriptor, into the buffer's spare capacity.
        let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) };
        if n >= 0 {
            // SAFETY: read(2) initialised these n bytes.
            unsafe { buf.set_len(buf.len() + n as usize) };
            return Ok(n as usize);
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
        if matches!(read_into(fd, &mut decoder), Ok(0) | Err(_)) {
            break;
        }
        if !dispatch_frames(shared, &mut decoder) {
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
        if !dispatch_frames(&shared, &mut decoder) {
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

/// Dispatches every complete frame read so far. False when the stream cannot be trusted any
/// more: that is reported and handled as a crash, and the caller only drains the pipe from
/// then on, so the process cannot stall on a full pipe while dying.
fn dispatch_frames(shared: &Shared, decoder: &mut FrameDecoder) -> bool {
    loop {
        match decoder.next_frame() {
            Ok(Some(frame)) => dispatch(shared, frame),
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

fn dispatch(shared: &Shared, frame: Frame) {
    match frame.header.kind {
        FrameType::Response => {
            let id = frame.header.id;
            let Some((method, reply)) = shared.pending.take(id) else {
                shared
                    .sink
                    .notice(Notice::Log(format!("orphan response id={id}")));
                return;
            };
            if frame.header.ok == Some(false) {
                let error = if frame.header.error.is_empty() {
                    "request failed".to_owned()
                } else {
                    frame.header.error.clone()
                };
                shared.sink.notice(Notice::Log(format!(
                    "request error id={id} method={method} err={error}"
                )));
                reply.respond(Err(Error::Remote(error)));
            } else {
                reply.respond(Ok(frame));
            }
        }
        FrameType::Event => shared.sink.notice(Notice::Event(frame)),
        FrameType::Request => shared.sink.notice(Notice::Log(format!(
            "ignored request frame from pion-ipc (method={})",
            frame.header.method
        ))),
    }
}

async fn stderr_loop(shared: Arc<Shared>, mut stderr: impl AsyncRead + Unpin) {
    let mut line = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut any = false;
        for &byte in &chunk[..n] {
            if byte == b'\n' || line.len() >= MAX_STDERR_LINE {
                emit_stderr_line(&shared, &line);
                line.clear();
                any = true;
                if byte == b'\n' {
                    continue;
                }
            }
            line.push(byte);
        }
        if any {
            shared.sink.flush();
        }
    }
    if !line.is_empty() {
        emit_stderr_line(&shared, &line);
        shared.sink.flush();
    }
}

fn emit_stderr_line(shared: &Shared, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    shared.sink.notice(Notice::Log(format!(
        "[stderr] {}",
        String::from_utf8_lossy(line)
    )));
}

#[cfg(target_os = "linux")]
fn set_parent_death_signal(command: &mut Command) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    let parent = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            // The sidecar dies with the thread that spawned it (a tokio worker, which lives
            // as long as the process), so a parent killed by SIGKILL leaves nothing behind.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_command: &mut Command) {}

/// Waits for the child to end (Unix: signals reach it by pid, see [`Shared::kill`]).
#[cfg(unix_io)]
async fn wait_child(
    _shared: &Shared,
    child: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    child.wait().await
}

/// Waits for the child to end, terminating it when [`Shared::kill`] asks: on Windows only
/// the owner of the process handle can.
#[cfg(not(unix_io))]
async fn wait_child(
    shared: &Shared,
    child: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    loop {
        tokio::select! {
            status = child.wait() => return status,
            _ = shared.terminate.notified() => {
                let _ = child.start_kill();
            }
        }
    }
}

#[cfg(unix)]
fn errno_name(e: &std::io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EACCES) => "EACCES",
        Some(libc::ENOEXEC) => "ENOEXEC",
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOTDIR) => "ENOTDIR",
        Some(libc::EISDIR) => "EISDIR",
        _ => return e.to_string(),
    };
    format!("{name} ({e})")
}

/// Windows reports its own error codes: the names JavaScript expects, by kind.
#[cfg(not(unix))]
fn errno_name(e: &std::io::Error) -> String {
    let name = match e.kind() {
        std::io::ErrorKind::NotFound => "ENOENT",
        std::io::ErrorKind::PermissionDenied => "EACCES",
        _ => return e.to_string(),
    };
    format!("{name} ({e})")
}

#[cfg(unix)]
fn exit_parts(status: std::process::ExitStatus) -> (Option<i32>, Option<String>) {
    use std::os::unix::process::ExitStatusExt;
    (status.code(), status.signal().map(signal_name))
}

#[cfg(not(unix))]
fn exit_parts(status: std::process::ExitStatus) -> (Option<i32>, Option<String>) {
    (status.code(), None)
}

#[cfg(unix)]
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGSYS => "SIGSYS",
        other => return format!("SIG{other}"),
    };
    name.to_owned()
}
