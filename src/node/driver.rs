//! The driver of one PionIpc, owned by its JavaScript thread: it holds the sidecar's
//! [`Session`] (the sans-IO core) and the [`Supervisor`], feeds them what happened (commands
//! from the native classes, facts from the [`Inbox`], due deadlines) and carries out what
//! they return: bytes for stdin (one flush per tick), events for JavaScript (one at a time,
//! see `delivery.rs`), processes to spawn or end, the next deadline.
//!
//! A restarted sidecar gets a new session; objects of an earlier one keep theirs (failed,
//! readable) and its last events are still delivered.

use super::delivery::Js;
use super::inbox::{Fact, Inbox};
use super::registry::{Registry, IPC_TARGET};
use crate::core::{
    Action, ChannelId, ConnectionEvent, ConnectionId, Event, Life, Object, Outcome, Request,
    Session, SettleToken, Supervisor, SupervisorConfig,
};
use crate::error::Error;
use crate::sidecar::{Backlog, Kill, Notice, Sidecar};
use napi::bindgen_prelude::*;
use napi::sys;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One sidecar life's state machines; shared by the driver and the objects created on it.
pub(super) type SessionCell = RefCell<Session>;

#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// How long a request waits for its answer.
    pub timeout: Duration,
    pub supervisor: SupervisorConfig,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            timeout: Duration::from_millis(10_000),
            supervisor: SupervisorConfig::default(),
        }
    }
}

/// Something of the PionIpc's own for JavaScript, in order with the sessions' events.
enum IpcEvent {
    Log(String),
    Error(Error),
    Exit(Option<i32>, Option<String>),
    Restart,
    Settle(u64, std::result::Result<Outcome, Error>),
}

/// The process of the current life.
struct Run {
    life: Life,
    sidecar: Sidecar,
}

struct State {
    supervisor: Supervisor,
    /// The current session and the life it belongs to (`None`: no sidecar was started for
    /// it; it refuses everything).
    session: Rc<SessionCell>,
    session_life: Option<Life>,
    /// Sessions of earlier lives that objects still hold.
    older: Vec<Weak<SessionCell>>,
    run: Option<Run>,
    bin: Option<PathBuf>,
    /// start() promises by the life they started.
    start_waiters: HashMap<Life, u64>,
    /// stop() promises by the life they end.
    stop_waiters: Vec<(Life, u64)>,
    /// What waits for the end of a life's process (a failed start settles once it is gone).
    after_exit: Vec<(Life, IpcEvent)>,
    stop_timeout: Duration,
    /// The tokens of the start pings, by life.
    pings: HashMap<u64, Life>,
    raw_events: bool,
    queued: VecDeque<IpcEvent>,
    /// The deadline a timer task is sleeping until.
    armed: Option<Instant>,
}

static NEXT_DRIVER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The drivers of this JavaScript thread, for the wake-up calls (`Tick`).
    static DRIVERS: RefCell<HashMap<u64, Weak<Driver>>> = RefCell::new(HashMap::new());
    /// Drivers with bytes for stdin since the last `flushWrites()`.
    static UNFLUSHED: RefCell<Vec<Rc<Driver>>> = const { RefCell::new(Vec::new()) };
    /// The driver of connections made without `_ipc`: it refuses everything.
    static DETACHED: RefCell<Option<Rc<Driver>>> = const { RefCell::new(None) };
}

pub(super) struct Driver {
    id: u64,
    config: DriverConfig,
    inbox: Arc<Inbox>,
    state: RefCell<State>,
    registry: RefCell<Registry>,
    /// Objects JavaScript collected, to forget at the next chance (a finalizer may run
    /// while the driver is in the middle of something).
    collected: RefCell<Vec<Object>>,
    unflushed: Cell<bool>,
}

/// A wake-up call of the driver with this id on its JavaScript thread: converting it runs
/// the driver's tick (napi then calls index.js's dispatcher with `undefined`, a no-op).
pub struct Tick(pub u64);

impl ToNapiValue for Tick {
    unsafe fn to_napi_value(env: sys::napi_env, tick: Self) -> Result<sys::napi_value> {
        let driver = DRIVERS.with(|d| d.borrow().get(&tick.0).and_then(Weak::upgrade));
        if let Some(driver) = driver {
            driver.tick(env);
        }
        super::values::undefined(env)
    }
}

/// The bytes undelivered frames may hold before the stdout reader pauses:
/// `PION_NODE_RS_BACKLOG_BYTES` (for experiments and tests) or the default.
fn backlog_limit() -> usize {
    std::env::var("PION_NODE_RS_BACKLOG_BYTES")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(crate::sidecar::backlog::DEFAULT_LIMIT)
}

fn refusing_session(timeout: Duration, now: Instant) -> Session {
    let mut session = Session::new(timeout);
    session.sidecar_stopped(now);
    session
}

impl Driver {
    pub(super) fn new(config: DriverConfig) -> Rc<Driver> {
        let now = Instant::now();
        let driver = Rc::new(Driver {
            id: NEXT_DRIVER.fetch_add(1, Ordering::Relaxed),
            inbox: Inbox::new(Backlog::new(backlog_limit())),
            state: RefCell::new(State {
                supervisor: Supervisor::new(config.supervisor.clone()),
                session: Rc::new(RefCell::new(refusing_session(config.timeout, now))),
                session_life: None,
                older: Vec::new(),
                run: None,
                bin: None,
                start_waiters: HashMap::new(),
                stop_waiters: Vec::new(),
                after_exit: Vec::new(),
                stop_timeout: Duration::ZERO,
                pings: HashMap::new(),
                raw_events: false,
                queued: VecDeque::new(),
                armed: None,
            }),
            config,
            registry: RefCell::new(Registry::default()),
            collected: RefCell::new(Vec::new()),
            unflushed: Cell::new(false),
        });
        DRIVERS.with(|d| {
            let mut drivers = d.borrow_mut();
            drivers.retain(|_, w| w.strong_count() > 0);
            drivers.insert(driver.id, Rc::downgrade(&driver));
        });
        driver
    }

    /// The driver of connections made without `_ipc`.
    pub(super) fn detached() -> Rc<Driver> {
        DETACHED.with(|d| {
            d.borrow_mut()
                .get_or_insert_with(|| Driver::new(DriverConfig::default()))
                .clone()
        })
    }

    pub(super) fn is_started(&self) -> bool {
        self.state.borrow().supervisor.is_started()
    }

    pub(super) fn pid(&self) -> Option<u32> {
        self.state.borrow().run.as_ref().map(|r| r.sidecar.pid())
    }

    /// The session new objects are made on.
    pub(super) fn session(&self) -> Rc<SessionCell> {
        self.state.borrow().session.clone()
    }

    pub(super) fn set_raw_events(&self, on: bool) {
        let mut state = self.state.borrow_mut();
        state.raw_events = on;
        state.session.borrow_mut().set_raw_events(on);
    }

    /// Registers the JavaScript object events for `id` are emitted on.
    pub(super) fn set_target(
        &self,
        env: &Env,
        id: u64,
        target: &napi::bindgen_prelude::Object,
    ) -> Result<()> {
        // SAFETY: JavaScript thread, live object.
        unsafe {
            self.registry
                .borrow_mut()
                .set_target(env.raw(), id, target.raw())
        }
    }

    /// A new promise of this driver; the token settles it (through a session or the
    /// driver's own queue).
    pub(super) fn promise<'env>(&self, env: &'env Env) -> Result<(u64, Unknown<'env>)> {
        self.open(env)?;
        // SAFETY: JavaScript thread.
        unsafe {
            let (token, promise) = self.registry.borrow_mut().promise(env.raw())?;
            Ok((token, Unknown::from_raw_unchecked(env.raw(), promise)))
        }
    }

    /// Settles `token` at the next delivery, in order with everything else.
    pub(super) fn settle_later(
        &self,
        env: &Env,
        token: u64,
        result: std::result::Result<Outcome, Error>,
    ) -> Result<()> {
        self.state
            .borrow_mut()
            .queued
            .push_back(IpcEvent::Settle(token, result));
        self.after_command(env)
    }

    /// A line for the PionIpc's logger, at the next delivery.
    pub(super) fn log_later(&self, line: String) {
        self.state
            .borrow_mut()
            .queued
            .push_back(IpcEvent::Log(line));
    }

    /// The object `object` was collected by JavaScript.
    pub(super) fn collected(&self, object: Object) {
        self.collected.borrow_mut().push(object);
    }

    fn forget_collected(&self, env: sys::napi_env) {
        let collected = std::mem::take(&mut *self.collected.borrow_mut());
        if collected.is_empty() {
            return;
        }
        let sessions = self.sessions();
        for object in collected {
            let id = match object {
                Object::Connection(c) => c.0,
                Object::Channel(c) => c.0,
            };
            // SAFETY: JavaScript thread.
            unsafe { self.registry.borrow_mut().release(env, id) };
            for session in &sessions {
                session.borrow_mut().forget(object);
            }
        }
    }

    /// The current session and the earlier ones still held, current first.
    fn sessions(&self) -> Vec<Rc<SessionCell>> {
        let mut state = self.state.borrow_mut();
        state.older.retain(|s| s.strong_count() > 0);
        let mut all = vec![state.session.clone()];
        all.extend(state.older.iter().filter_map(Weak::upgrade));
        all
    }

    /// Makes sure the wake-up function exists (and the PionIpc is held). JavaScript thread.
    fn open(&self, env: &Env) -> Result<()> {
        if self.inbox.open(env, self.id)? {
            // SAFETY: JavaScript thread.
            unsafe { self.registry.borrow_mut().hold_ipc(env.raw(), true) };
        }
        Ok(())
    }

    /// After a command of JavaScript's: requests go out now (except `send()`'s, see
    /// [`Driver::send_done`]), events are delivered at the next tick, the timer is armed.
    pub(super) fn after_command(&self, env: &Env) -> Result<()> {
        self.forget_collected(env.raw());
        self.flush();
        self.schedule(env)?;
        self.arm();
        Ok(())
    }

    /// After `send()`: its frame goes out with the rest of the burst, when index.js calls
    /// `flushWrites()` from a microtask (or at the end of the tick it was sent in).
    pub(super) fn send_done(self: &Rc<Self>, env: &Env) -> Result<()> {
        if !self.unflushed.replace(true) {
            UNFLUSHED.with(|u| u.borrow_mut().push(self.clone()));
        }
        if self.state.borrow().session.borrow().has_events() {
            self.schedule(env)?;
        }
        self.arm();
        Ok(())
    }

    /// Wakes the JavaScript thread for what is waiting for delivery.
    fn schedule(&self, env: &Env) -> Result<()> {
        let waiting = !self.state.borrow().queued.is_empty()
            || self.sessions().iter().any(|s| s.borrow().has_events());
        if waiting {
            self.open(env)?;
            self.inbox.wake();
        }
        Ok(())
    }

    /// Writes what the current session encoded to its sidecar's stdin.
    fn flush(&self) {
        self.unflushed.set(false);
        let state = self.state.borrow();
        let Some(bytes) = state.session.borrow_mut().poll_transmit() else {
            return;
        };
        if let Some(run) = state
            .run
            .as_ref()
            .filter(|r| Some(r.life) == state.session_life)
        {
            if run.sidecar.write(&bytes) {
                run.sidecar.flush();
            }
        }
    }

    /// Arms one timer task for the earliest deadline, unless one sleeps until then already.
    fn arm(&self) {
        let mut state = self.state.borrow_mut();
        let next = match (
            state.session.borrow().poll_timeout(),
            state.supervisor.poll_timeout(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(at) = next else { return };
        if state.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        state.armed = Some(at);
        let inbox = self.inbox.clone();
        napi::bindgen_prelude::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            inbox.push(Fact::Timer);
            inbox.wake();
        });
    }

    /// start(): `locate` finds the binary once the start is claimed.
    pub(super) fn start<'env>(
        &self,
        env: &'env Env,
        locate: impl FnOnce() -> std::result::Result<PathBuf, Error>,
    ) -> Result<Unknown<'env>> {
        let (token, promise) = self.promise(env)?;
        let claimed = self.state.borrow_mut().supervisor.start();
        match claimed {
            Err(e) => {
                self.state
                    .borrow_mut()
                    .queued
                    .push_back(IpcEvent::Settle(token, Err(e)));
            }
            Ok(actions) => {
                let life = self.state.borrow().supervisor.life();
                self.state.borrow_mut().start_waiters.insert(life, token);
                match locate() {
                    Ok(bin) => {
                        self.state.borrow_mut().bin = Some(bin);
                        self.run(actions);
                    }
                    Err(e) => self.start_failed(life, false, e),
                }
            }
        }
        self.after_command(env)?;
        Ok(promise)
    }

    /// stop(timeout): the connections fail at the call; the promise settles once the
    /// process is gone.
    pub(super) fn stop<'env>(&self, env: &'env Env, timeout: Duration) -> Result<Unknown<'env>> {
        let (token, promise) = self.promise(env)?;
        let actions = {
            let mut state = self.state.borrow_mut();
            state.stop_timeout = timeout;
            state.supervisor.stop()
        };
        match actions.iter().find_map(|a| match a {
            Action::Stop(life) => Some(*life),
            _ => None,
        }) {
            Some(life) => self.state.borrow_mut().stop_waiters.push((life, token)),
            None => self
                .state
                .borrow_mut()
                .queued
                .push_back(IpcEvent::Settle(token, Ok(Outcome::Unit))),
        }
        self.run(actions);
        self.after_command(env)?;
        Ok(promise)
    }

    /// `ipc.request()`: refused unless a sidecar runs.
    pub(super) fn request<'env>(
        &self,
        env: &'env Env,
        request: Request<'_>,
    ) -> Result<Unknown<'env>> {
        let (token, promise) = self.promise(env)?;
        if self.is_started() {
            let now = Instant::now();
            self.session()
                .borrow_mut()
                .request(request, SettleToken(token), now);
        } else {
            self.state
                .borrow_mut()
                .queued
                .push_back(IpcEvent::Settle(token, Err(Error::NotStarted)));
        }
        self.after_command(env)?;
        Ok(promise)
    }

    /// The host environment is going away: the sidecar is killed at once.
    pub(super) fn kill_now(&self) {
        let actions = self.state.borrow_mut().supervisor.kill_now();
        for action in actions {
            if let Action::Kill(life) = action {
                self.kill(life);
            }
        }
    }

    fn kill(&self, life: Life) {
        let run = {
            let mut state = self.state.borrow_mut();
            match &state.run {
                Some(run) if run.life == life => state.run.take(),
                _ => None,
            }
        };
        if let Some(run) = run {
            run.sidecar.mark_stopping();
            run.sidecar.kill(Kill::Now);
        }
    }

    /// Carries out what the supervisor decided.
    fn run(&self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Spawn(life) => self.spawn(life),
                Action::Kill(life) => {
                    self.session_of(life, |s, now| s.sidecar_stopped(now));
                    let run = {
                        let mut state = self.state.borrow_mut();
                        match &state.run {
                            Some(run) if run.life == life => state.run.take(),
                            _ => None,
                        }
                    };
                    let inbox = self.inbox.clone();
                    match run {
                        Some(run) => {
                            run.sidecar.mark_stopping();
                            run.sidecar.kill(Kill::Now);
                            napi::bindgen_prelude::spawn(async move {
                                run.sidecar.wait_exit(Duration::from_secs(2)).await;
                                inbox.push(Fact::StopDone(life));
                                inbox.wake();
                            });
                        }
                        None => self.stop_done(life),
                    }
                }
                Action::Stop(life) => {
                    self.session_of(life, |s, now| s.sidecar_stopped(now));
                    let (run, timeout) = {
                        let mut state = self.state.borrow_mut();
                        let run = match &state.run {
                            Some(run) if run.life == life => state.run.take(),
                            _ => None,
                        };
                        (run, state.stop_timeout)
                    };
                    let inbox = self.inbox.clone();
                    match run {
                        Some(run) => {
                            napi::bindgen_prelude::spawn(async move {
                                run.sidecar.stop(timeout).await;
                                inbox.push(Fact::StopDone(life));
                                inbox.wake();
                            });
                        }
                        None => self.stop_done(life),
                    }
                }
                Action::RestartAfter(_) | Action::Idle => {}
                Action::Restarted => self.state.borrow_mut().queued.push_back(IpcEvent::Restart),
            }
        }
    }

    /// Runs `f` on the session of `life`, if it is the current one.
    fn session_of(&self, life: Life, f: impl FnOnce(&mut Session, Instant)) {
        let state = self.state.borrow();
        if state.session_life == Some(life) {
            f(&mut state.session.borrow_mut(), Instant::now());
        }
    }

    /// Spawns the sidecar of `life` with a new session, and pings it.
    fn spawn(&self, life: Life) {
        let Some(bin) = self.state.borrow().bin.clone() else {
            return;
        };
        let sink = self.inbox.sink(life);
        let spawned =
            napi::bindgen_prelude::within_runtime_if_available(|| Sidecar::spawn(&bin, sink));
        let sidecar = match spawned {
            Ok(sidecar) => sidecar,
            Err(e) => return self.start_failed(life, false, e),
        };
        let now = Instant::now();
        let token = self.registry.borrow_mut().internal_token();
        let mut state = self.state.borrow_mut();
        let mut session = Session::new(self.config.timeout);
        let last = state
            .older
            .iter()
            .filter_map(Weak::upgrade)
            .fold(state.session.borrow().last_object_id(), |last, s| {
                last.max(s.borrow().last_object_id())
            });
        session.continue_ids_after(last);
        session.set_raw_events(state.raw_events);
        session.request(Request::new("ping", "", "", &[]), SettleToken(token), now);
        let old = std::mem::replace(&mut state.session, Rc::new(RefCell::new(session)));
        state.older.push(Rc::downgrade(&old));
        state.session_life = Some(life);
        state.pings.insert(token, life);
        state.run = Some(Run { life, sidecar });
    }

    /// `life` did not come up.
    fn start_failed(&self, life: Life, spawned: bool, error: Error) {
        let actions =
            self.state
                .borrow_mut()
                .supervisor
                .start_failed(life, spawned, Instant::now());
        let waiter = self.state.borrow_mut().start_waiters.remove(&life);
        let mut events = Vec::new();
        match waiter {
            Some(token) => {
                if matches!(error, Error::Spawn(_)) {
                    events.push(IpcEvent::Error(error.clone()));
                }
                events.push(IpcEvent::Settle(token, Err(error)));
            }
            None => events.push(IpcEvent::Log(format!("restart failed: {error}"))),
        }
        {
            let mut state = self.state.borrow_mut();
            if spawned {
                // Told once the process is gone (the Kill below ends it).
                state
                    .after_exit
                    .extend(events.into_iter().map(|e| (life, e)));
            } else {
                state.queued.extend(events);
            }
        }
        self.run(actions);
    }

    /// The answer to the start ping of `life`.
    fn on_ping(&self, life: Life, result: std::result::Result<Outcome, Error>) {
        match result {
            Ok(_) => {
                let actions = self
                    .state
                    .borrow_mut()
                    .supervisor
                    .started(life, Instant::now());
                let waiter = self.state.borrow_mut().start_waiters.remove(&life);
                if let Some(token) = waiter {
                    self.state
                        .borrow_mut()
                        .queued
                        .push_back(IpcEvent::Settle(token, Ok(Outcome::Unit)));
                }
                self.run(actions);
            }
            Err(e) => self.start_failed(life, true, e),
        }
    }

    fn stop_done(&self, life: Life) {
        let mut state = self.state.borrow_mut();
        let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut state.after_exit)
            .into_iter()
            .partition(|(l, _)| *l == life);
        state.after_exit = rest;
        state.queued.extend(done.into_iter().map(|(_, e)| e));
        let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut state.stop_waiters)
            .into_iter()
            .partition(|(l, _)| *l == life);
        state.stop_waiters = rest;
        for (_, token) in done {
            state
                .queued
                .push_back(IpcEvent::Settle(token, Ok(Outcome::Unit)));
        }
    }

    /// One fact from another thread.
    fn apply(&self, fact: Fact) {
        let now = Instant::now();
        match fact {
            Fact::Sidecar(life, Notice::Frame(frame), ticket) => {
                self.session_of(life, |s, now| s.handle_frame(frame, now));
                drop(ticket);
            }
            Fact::Sidecar(_, Notice::Log(line), _) => self.log_later(line),
            Fact::Sidecar(_, Notice::Error(e), _) => {
                self.state.borrow_mut().queued.push_back(IpcEvent::Error(e));
            }
            Fact::Sidecar(
                life,
                Notice::Exited {
                    code,
                    signal,
                    intentional,
                },
                _,
            ) => {
                let current = self
                    .state
                    .borrow()
                    .run
                    .as_ref()
                    .is_some_and(|r| r.life == life);
                if current && !intentional {
                    let running = self.is_started();
                    self.session_of(life, |s, now| s.sidecar_exited(code, signal.clone(), now));
                    let mut state = self.state.borrow_mut();
                    state.run = None;
                    if running {
                        state.queued.push_back(IpcEvent::Exit(code, signal));
                    }
                }
                let actions = self.state.borrow_mut().supervisor.exited(life, now);
                self.run(actions);
            }
            Fact::StopDone(life) => self.stop_done(life),
            Fact::Timer => {}
        }
    }

    /// Deadlines that are due at `now` (when the inbox was last taken).
    fn on_due(&self, now: Instant) {
        let (session, restart) = {
            let mut state = self.state.borrow_mut();
            if state.armed.is_some_and(|at| at <= now) {
                state.armed = None;
            }
            let session = state
                .session
                .borrow()
                .poll_timeout()
                .is_some_and(|at| at <= now);
            let restart = state.supervisor.poll_timeout().is_some_and(|at| at <= now);
            (session, restart)
        };
        if session {
            self.session().borrow_mut().handle_timeout(now);
        }
        if restart {
            let actions = self.state.borrow_mut().supervisor.timer_fired(now);
            self.run(actions);
        }
    }

    /// Runs on the JavaScript thread for every wake-up and every read of the loop reader:
    /// what JavaScript's calls produced is delivered, then each fact is applied and what
    /// it produced delivered, then due deadlines; then stdin is written once and the timer
    /// armed.
    pub(super) fn tick(self: &Rc<Self>, env: sys::napi_env) {
        self.forget_collected(env);
        #[cfg(unix_io)]
        self.install_readers(env);
        // Deadlines are judged as of this moment: every frame that came before it is in the
        // batch taken now, so a request answered in time never times out because JavaScript
        // was busy (one whose deadline falls later is judged by the next tick, which the
        // timer brings).
        let taken_at = Instant::now();
        let (facts, dropped_logs) = self.inbox.take();
        if dropped_logs > 0 {
            self.state
                .borrow_mut()
                .queued
                .push_front(IpcEvent::Log(format!(
                    "{dropped_logs} log lines dropped: the logger could not keep up"
                )));
        }
        // SAFETY: JavaScript thread, inside the handle scope of the call that runs this.
        let mut js = unsafe { Js::new(env) };
        self.deliver(js.as_mut());
        for fact in facts {
            self.apply(fact);
            self.deliver(js.as_mut());
        }
        self.on_due(taken_at);
        self.deliver(js.as_mut());
        self.flush();
        self.arm();
        self.maybe_close(env);
    }

    /// Starts watching the stdouts handed over for the loop reader (see `poll.rs`).
    #[cfg(unix_io)]
    fn install_readers(self: &Rc<Self>, env: sys::napi_env) {
        for (life, reader) in self.inbox.take_readers() {
            // SAFETY: JavaScript thread.
            if let Err(reader) = unsafe { super::poll::install(env, self, reader) } {
                self.log_later(
                    "cannot watch the sidecar's stdout on the event loop; a thread reads it".into(),
                );
                let _ = life;
                drop(reader);
            }
        }
    }

    /// Hands everything waiting to JavaScript, one event at a time; nothing is borrowed
    /// while a listener runs (it may call back in).
    fn deliver(self: &Rc<Self>, mut js: Option<&mut Js>) {
        loop {
            let current = self.session();
            let event = current.borrow_mut().poll_event();
            let next = match event {
                Some(event) => Some((current, event)),
                None => self.sessions().into_iter().skip(1).find_map(|session| {
                    let event = session.borrow_mut().poll_event()?;
                    Some((session, event))
                }),
            };
            if let Some((session, event)) = next {
                self.emit(js.as_deref_mut(), &session, event);
                continue;
            }
            let queued = self.state.borrow_mut().queued.pop_front();
            match queued {
                Some(event) => self.emit_ipc(js.as_deref_mut(), event),
                None => return,
            }
        }
    }

    fn ipc_target(&self, env: sys::napi_env) -> Option<sys::napi_value> {
        // SAFETY: JavaScript thread.
        unsafe { self.registry.borrow().target(env, IPC_TARGET) }
    }

    fn target(&self, env: sys::napi_env, id: u64) -> Option<sys::napi_value> {
        // SAFETY: JavaScript thread.
        unsafe { self.registry.borrow().target(env, id) }
    }

    fn emit_ipc(&self, js: Option<&mut Js>, event: IpcEvent) {
        let Some(js) = js else { return };
        let env = js.env;
        if let IpcEvent::Settle(token, result) = event {
            let deferred = self.registry.borrow_mut().take_deferred(token);
            if let Some(deferred) = deferred {
                // SAFETY: JavaScript thread.
                let _ = unsafe { js.settle(deferred, result) };
            }
            return;
        }
        let Some(ipc) = self.ipc_target(env) else {
            return;
        };
        // SAFETY: JavaScript thread.
        let _ = unsafe {
            match event {
                IpcEvent::Log(line) => js.log(ipc, &line),
                IpcEvent::Error(e) => js.error(ipc, &e),
                IpcEvent::Exit(code, signal) => js.exit(ipc, code, signal.as_deref()),
                IpcEvent::Restart => js.emit(ipc, "restart", &[]),
                IpcEvent::Settle(..) => Ok(()),
            }
        };
    }

    fn emit(self: &Rc<Self>, js: Option<&mut Js>, session: &Rc<SessionCell>, event: Event) {
        // Promises settle and lifetimes change even without index.js's hooks.
        match event {
            Event::Settle(SettleToken(token), result) => {
                let ping = self.state.borrow_mut().pings.remove(&token);
                if let Some(life) = ping {
                    return self.on_ping(life, result);
                }
                self.emit_ipc(js, IpcEvent::Settle(token, result));
                return;
            }
            Event::Log(line) => return self.emit_ipc(js, IpcEvent::Log(line)),
            _ => {}
        }
        let Some(js) = js else { return };
        let env = js.env;
        // SAFETY: JavaScript thread.
        let _ = unsafe {
            match event {
                Event::Release(object) => {
                    self.registry.borrow_mut().release(env, object_id(object));
                    Ok(())
                }
                Event::Weaken(object) => {
                    self.registry.borrow_mut().weaken(env, object_id(object));
                    Ok(())
                }
                Event::SidecarEvent(frame) => match self.ipc_target(env) {
                    Some(ipc) => js.raw_event(ipc, &frame),
                    None => Ok(()),
                },
                Event::Connection(id, event) => self.connection_event(js, session, id, event),
                Event::Channel(id, event) => match self.target(env, id.0) {
                    Some(target) => js.channel_event(target, event),
                    None => Ok(()),
                },
                Event::Settle(..) | Event::Log(_) => Ok(()),
            }
        };
    }

    unsafe fn connection_event(
        self: &Rc<Self>,
        js: &mut Js,
        session: &Rc<SessionCell>,
        id: ConnectionId,
        event: ConnectionEvent,
    ) -> Result<()> {
        let env = js.env;
        let Some(target) = self.target(env, id.0) else {
            return Ok(());
        };
        match event {
            ConnectionEvent::IceCandidate(c) => js.ice_candidate(target, &c),
            ConnectionEvent::DataChannel(channel) => {
                let native = super::channel::NativeDataChannel::handle(
                    self.clone(),
                    session.clone(),
                    channel,
                );
                let native = ToNapiValue::to_napi_value(env, native)?;
                match js.wrap_channel(native)? {
                    Some(wrapper) => js.data_channel(target, wrapper),
                    None => Ok(()),
                }
            }
            other => js.emit(target, super::delivery::connection_event_name(&other), &[]),
        }
    }

    /// Drops the wake-up function once nothing runs, waits or is queued: Node may exit.
    fn maybe_close(&self, env: sys::napi_env) {
        {
            let state = self.state.borrow();
            if !state.supervisor.is_idle()
                || !state.queued.is_empty()
                || !state.stop_waiters.is_empty()
                || !state.after_exit.is_empty()
                || !state.pings.is_empty()
            {
                return;
            }
        }
        if self.registry.borrow().pending_promises() != 0 || !self.inbox.is_empty() {
            return;
        }
        if self.sessions().iter().any(|s| s.borrow().has_events()) {
            return;
        }
        if self.inbox.close() {
            // SAFETY: JavaScript thread.
            unsafe { self.registry.borrow_mut().hold_ipc(env, false) };
        }
    }
}

fn object_id(object: Object) -> u64 {
    match object {
        Object::Connection(ConnectionId(id)) | Object::Channel(ChannelId(id)) => id,
    }
}

/// `flushWrites()`: the stdin bytes of this thread's `send()` calls since the last flush go
/// out, one write per sidecar.
pub(super) fn flush_unflushed() {
    let drivers = UNFLUSHED.with(|u| std::mem::take(&mut *u.borrow_mut()));
    for driver in drivers {
        driver.flush();
    }
}
