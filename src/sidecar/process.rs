//! One running sidecar: the child process, and the tasks around it: its writer
//! (`outbox.rs`), its stdout reader (`stdout.rs`: the sink's own event loop when it takes it,
//! Node's, see `node/poll.rs`, watched by a thread that reads in its place while that loop
//! is held up; else a thread of its own), its stderr reader (`stderr.rs`) and the exit
//! waiter. Requests are encoded and correlated by the core (`core::Session`); here they
//! are bytes.

use super::outbox::{self, nonblocking_fd, write_loop, WAKE_LIMIT};
use super::shared::{Outbox, Shared};
use super::sink::{Kill, Notice, NoticeSink};
use super::stderr::stderr_loop;
use super::stdout::start_reader;
use crate::error::Error;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::{watch, Notify};

/// A handle to one running sidecar; cheap to clone.
#[derive(Clone)]
pub struct Sidecar {
    pub(super) shared: Arc<Shared>,
}

impl Sidecar {
    /// Spawns `bin` with piped stdio and starts its tasks. Must be called inside a tokio
    /// runtime.
    pub fn spawn(bin: &Path, sink: Arc<dyn NoticeSink>) -> Result<Sidecar, Error> {
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

    /// Appends encoded request frames to stdin's buffer; they go out at the next
    /// [`flush`](Self::flush) (or at once, past [`WAKE_LIMIT`] bytes). False when stdin is
    /// closed (the bytes are dropped: the sidecar is going away).
    pub fn write(&self, bytes: &[u8]) -> bool {
        let mut outbox = self.shared.outbox.lock().unwrap();
        if outbox.closing {
            return false;
        }
        outbox.buf.extend_from_slice(bytes);
        let large = outbox.buf.len() >= WAKE_LIMIT;
        drop(outbox);
        if large {
            self.shared.outbox_ready.notify_one();
        }
        true
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

    /// Writes what [`write`](Self::write) buffered (the owner calls it once per tick).
    pub fn flush(&self) {
        outbox::flush(&self.shared);
    }

    /// Marks the coming exit as intended: the exit notice says `intentional`.
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
    }
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
