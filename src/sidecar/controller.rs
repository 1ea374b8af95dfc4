//! `PionIpc`'s behaviour without napi: start, stop, request, crash handling and the watchdog.

use super::backlog::Backlog;
use super::pending::Reply;
use super::process::{Kill, Notice, NoticeSink, Sidecar};
use crate::error::Error;
use crate::peer::Router;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct IpcConfig {
    pub timeout: Duration,
    pub auto_restart: bool,
    pub max_backoff: Duration,
    pub reset_window: Duration,
}

impl Default for IpcConfig {
    fn default() -> Self {
        IpcConfig {
            timeout: Duration::from_millis(10_000),
            auto_restart: false,
            max_backoff: Duration::from_millis(30_000),
            reset_window: Duration::from_millis(60_000),
        }
    }
}

/// The first restart waits this long; each further one twice as long, up to max_backoff.
const BASE_BACKOFF: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Stopped,
    Starting,
    Running,
    /// Crashed; the watchdog will start it again.
    Backoff,
}

struct State {
    phase: Phase,
    /// Bumped by every start() and stop(), so a task of an earlier life can tell it is stale.
    epoch: u64,
    sidecar: Option<Sidecar>,
    bin: Option<PathBuf>,
    attempt: u32,
    up_since: Instant,
    watchdog: bool,
    restart: Option<AbortHandle>,
}

struct Inner {
    config: IpcConfig,
    sink: Arc<dyn NoticeSink>,
    router: Arc<Router>,
    state: Mutex<State>,
}

/// Cheap to clone; all clones drive the same sidecar.
#[derive(Clone)]
pub struct Ipc {
    inner: Arc<Inner>,
}

/// Forwards one sidecar's notices, turning its unexpected exit into crash handling.
struct SessionSink {
    ipc: Weak<Inner>,
    epoch: u64,
    backlog: Option<Arc<Backlog>>,
}

impl NoticeSink for SessionSink {
    fn notice(&self, notice: Notice) {
        let Some(inner) = self.ipc.upgrade() else {
            return;
        };
        match notice {
            Notice::Exited {
                intentional: false,
                code,
                signal,
            } => Ipc { inner }.on_crash(self.epoch, code, signal),
            // An intended exit is stop()'s business, and stop() emits no exit event. Its
            // connections are dead all the same: stop() failed them already (the epoch moved
            // on), else (a start whose ping failed) they fail now.
            Notice::Exited { .. } => {
                if inner.state.lock().unwrap().epoch == self.epoch {
                    inner.sink.notice(Router::fail_all_later(&inner.router));
                }
            }
            Notice::Event(frame) => {
                let routed = !inner.router.early(&frame);
                let raw = (is_sidecar_event(&frame.header.event)
                    && inner
                        .router
                        .raw_events
                        .load(std::sync::atomic::Ordering::Relaxed))
                .then(|| frame.clone());
                if routed {
                    let router = inner.router.clone();
                    // Counted until routed (or thrown away): the reader pauses on a backlog.
                    let ticket = self
                        .backlog
                        .as_ref()
                        .map(|b| b.ticket(frame.payload.len() + FRAME_OVERHEAD));
                    inner.sink.notice(Notice::Run(Box::new(move || {
                        router.route(&frame);
                        drop(ticket);
                    })));
                }
                if let Some(frame) = raw {
                    inner.sink.notice(Notice::Event(frame));
                }
            }
            other => inner.sink.notice(other),
        }
    }

    fn flush(&self) {
        if let Some(inner) = self.ipc.upgrade() {
            inner.sink.flush();
        }
    }

    fn backlog(&self) -> Option<Arc<Backlog>> {
        self.backlog.clone()
    }

    #[cfg(unix_io)]
    fn adopt_reader(&self, reader: super::StdoutReader) -> Result<(), super::StdoutReader> {
        match self.ipc.upgrade() {
            Some(inner) => inner.sink.adopt_reader(reader),
            None => Err(reader),
        }
    }
}

/// Whether a sidecar event is re-emitted on the PionIpc under its own name: only the
/// sidecar's own namespaces, so that an event named `exit`, `error`, `log`, `restart` or
/// `newListener` can never pass for one of PionIpc's own events or reach the logger.
pub fn is_sidecar_event(name: &str) -> bool {
    name.starts_with("pc.") || name.starts_with("dc.")
}

/// What one queued event costs besides its payload (frame, header strings, closure).
const FRAME_OVERHEAD: usize = 256;

impl Ipc {
    pub fn new(config: IpcConfig, sink: Arc<dyn NoticeSink>) -> Self {
        Ipc {
            inner: Arc::new(Inner {
                config,
                router: Router::new(sink.clone()),
                sink,
                state: Mutex::new(State {
                    phase: Phase::Stopped,
                    epoch: 0,
                    sidecar: None,
                    bin: None,
                    attempt: 0,
                    up_since: Instant::now(),
                    watchdog: false,
                    restart: None,
                }),
            }),
        }
    }

    pub fn config(&self) -> &IpcConfig {
        &self.inner.config
    }

    /// Routes this controller's sidecar events to its connections.
    pub fn router(&self) -> &Arc<Router> {
        &self.inner.router
    }

    /// True while a sidecar runs and answers.
    pub fn started(&self) -> bool {
        self.inner.state.lock().unwrap().phase == Phase::Running
    }

    /// True when nothing runs and nothing will run without an explicit start().
    pub fn idle(&self) -> bool {
        self.inner.state.lock().unwrap().phase == Phase::Stopped
    }

    pub fn pid(&self) -> Option<u32> {
        let state = self.inner.state.lock().unwrap();
        state.sidecar.as_ref().map(Sidecar::pid)
    }

    /// Claims the start synchronously (so a second start() fails at once) and returns the
    /// future that spawns and pings. `locate` runs only when the claim succeeded.
    pub fn start(
        &self,
        locate: impl FnOnce() -> Result<PathBuf, Error>,
    ) -> Result<impl std::future::Future<Output = Result<(), Error>> + Send + 'static, Error> {
        let epoch = {
            let mut state = self.inner.state.lock().unwrap();
            if matches!(state.phase, Phase::Starting | Phase::Running) {
                return Err(Error::AlreadyStarted);
            }
            if let Some(timer) = state.restart.take() {
                timer.abort();
            }
            state.epoch += 1;
            state.phase = Phase::Starting;
            state.watchdog = self.inner.config.auto_restart;
            state.attempt = 0;
            state.epoch
        };
        let bin = locate();
        let ipc = self.clone();
        Ok(async move {
            let result = match bin {
                Ok(bin) => ipc.launch(epoch, bin).await,
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                ipc.give_up(epoch, e);
            }
            result
        })
    }

    /// After a failed start: back to Stopped (unless stop() or another start() took over).
    fn give_up(&self, epoch: u64, err: &Error) {
        let idle = {
            let mut state = self.inner.state.lock().unwrap();
            if state.epoch == epoch && state.phase == Phase::Starting {
                state.phase = Phase::Stopped;
                state.sidecar = None;
                true
            } else {
                false
            }
        };
        if matches!(err, Error::Spawn(_)) {
            self.inner.sink.notice(Notice::Error(err.clone()));
        }
        if idle {
            self.inner.sink.notice(Notice::Idle);
        }
        self.inner.sink.flush();
    }

    /// Spawns `bin`, pings it and, if this life is still current, marks it running.
    async fn launch(&self, epoch: u64, bin: PathBuf) -> Result<(), Error> {
        let sink = Arc::new(SessionSink {
            ipc: Arc::downgrade(&self.inner),
            epoch,
            backlog: self.inner.sink.backlog(),
        });
        let sidecar = Sidecar::spawn(&bin, self.inner.config.timeout, sink)?;
        let current = {
            let mut state = self.inner.state.lock().unwrap();
            let current = state.epoch == epoch;
            if current {
                state.sidecar = Some(sidecar.clone());
                state.bin = Some(bin);
            }
            current
        };
        if !current {
            sidecar.stop(Duration::ZERO).await;
            return Err(Error::Stopped);
        }
        if let Err(e) = sidecar.call("ping", "", "", false, &[]).await {
            sidecar.mark_stopping();
            sidecar.kill(Kill::Now);
            sidecar.wait_exit(Duration::from_secs(2)).await;
            return Err(e);
        }
        let mut state = self.inner.state.lock().unwrap();
        if state.epoch != epoch || state.phase != Phase::Starting {
            return Err(Error::Stopped);
        }
        state.phase = Phase::Running;
        state.up_since = Instant::now();
        Ok(())
    }

    /// Stops the sidecar and the watchdog. The state changes at the call (`started` is false
    /// and start() may be called again right away, for a new sidecar); the returned future
    /// ends the process and completes at once when nothing ran. The connections of the
    /// stopped sidecar fail, on the JavaScript thread, in order with everything else.
    pub fn stop(&self, timeout: Duration) -> impl std::future::Future<Output = ()> + Send {
        let stopping = {
            let mut state = self.inner.state.lock().unwrap();
            state.watchdog = false;
            if let Some(timer) = state.restart.take() {
                timer.abort();
            }
            if state.phase == Phase::Stopped {
                None
            } else {
                state.epoch += 1;
                state.phase = Phase::Stopped;
                Some(state.sidecar.take())
            }
        };
        if stopping.is_some() {
            // Here rather than at the exit: by then a new start() may have new connections.
            self.inner
                .sink
                .notice(Router::fail_all_later(&self.inner.router));
            self.inner.sink.flush();
        }
        let ipc = self.clone();
        async move {
            let Some(sidecar) = stopping else {
                return;
            };
            if let Some(sidecar) = sidecar {
                sidecar.stop(timeout).await;
            }
            if ipc.idle() {
                ipc.inner.sink.notice(Notice::Idle);
                ipc.inner.sink.flush();
            }
        }
    }

    /// Kills the sidecar at once and for good (the host environment is going away).
    pub fn kill_now(&self) {
        let mut state = self.inner.state.lock().unwrap();
        state.watchdog = false;
        state.epoch += 1;
        state.phase = Phase::Stopped;
        if let Some(timer) = state.restart.take() {
            timer.abort();
        }
        if let Some(sidecar) = state.sidecar.take() {
            sidecar.mark_stopping();
            sidecar.kill(Kill::Now);
        }
    }

    /// The running sidecar, or `not started`.
    pub fn sidecar(&self) -> Result<Sidecar, Error> {
        let state = self.inner.state.lock().unwrap();
        match (&state.phase, &state.sidecar) {
            (Phase::Running, Some(sidecar)) => Ok(sidecar.clone()),
            _ => Err(Error::NotStarted),
        }
    }

    pub async fn request(
        &self,
        method: &str,
        pc_id: &str,
        dc_label: &str,
        is_binary: bool,
        payload: &[u8],
    ) -> Reply {
        self.sidecar()?
            .call(method, pc_id, dc_label, is_binary, payload)
            .await
    }

    fn on_crash(&self, epoch: u64, code: Option<i32>, signal: Option<String>) {
        let restart_in = {
            let mut state = self.inner.state.lock().unwrap();
            if state.epoch != epoch || state.phase != Phase::Running {
                // A failed start or a stale life: start() or stop() handles it.
                return;
            }
            state.sidecar = None;
            if state.watchdog {
                if state.up_since.elapsed() >= self.inner.config.reset_window {
                    state.attempt = 0;
                }
                state.phase = Phase::Backoff;
                Some(self.backoff(&mut state))
            } else {
                state.phase = Phase::Stopped;
                None
            }
        };
        let sink = &self.inner.sink;
        sink.notice(Router::fail_all_later(&self.inner.router));
        sink.notice(Notice::Exited {
            code,
            signal,
            intentional: false,
        });
        match restart_in {
            Some(delay) => self.schedule_restart(epoch, delay),
            None => sink.notice(Notice::Idle),
        }
        sink.flush();
    }

    fn backoff(&self, state: &mut State) -> Duration {
        let factor = 1u32.checked_shl(state.attempt.min(31)).unwrap_or(u32::MAX);
        state.attempt = state.attempt.saturating_add(1);
        BASE_BACKOFF
            .saturating_mul(factor)
            .min(self.inner.config.max_backoff)
    }

    fn schedule_restart(&self, epoch: u64, delay: Duration) {
        tracing::debug!(?delay, "pion-ipc restart scheduled");
        let ipc = self.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            ipc.restart(epoch).await;
        });
        let mut state = self.inner.state.lock().unwrap();
        if state.epoch == epoch && state.phase == Phase::Backoff {
            state.restart = Some(task.abort_handle());
        } else {
            task.abort();
        }
    }

    async fn restart(&self, old_epoch: u64) {
        let (epoch, bin) = {
            let mut state = self.inner.state.lock().unwrap();
            if state.epoch != old_epoch || state.phase != Phase::Backoff {
                return;
            }
            state.restart = None;
            state.epoch += 1;
            state.phase = Phase::Starting;
            (state.epoch, state.bin.clone())
        };
        let Some(bin) = bin else { return };
        match self.launch(epoch, bin).await {
            Ok(()) => {
                self.inner.sink.notice(Notice::Restarted);
                self.inner.sink.flush();
            }
            Err(e) => {
                let delay = {
                    let mut state = self.inner.state.lock().unwrap();
                    if state.epoch != epoch || state.phase != Phase::Starting {
                        return;
                    }
                    state.sidecar = None;
                    state.phase = Phase::Backoff;
                    self.backoff(&mut state)
                };
                self.inner
                    .sink
                    .notice(Notice::Log(format!("restart failed: {e}")));
                self.inner.sink.flush();
                self.schedule_restart(epoch, delay);
            }
        }
    }
}
