//! The driver of one PionIpc, owned by its JavaScript thread: it holds the sidecar's
//! [`Session`] (the sans-IO core) and the [`Supervisor`], feeds them what happened (commands
//! from the native classes, facts from the [`Inbox`], due deadlines) and carries out what
//! they return: bytes for stdin (one flush per tick), events for JavaScript (one at a time,
//! see `delivery.rs`), processes to spawn or end, the next deadline.
//!
//! A restarted sidecar gets a new session; objects of an earlier one keep theirs (failed,
//! readable) and its last events are still delivered.
//!
//! Here: the driver's state, the commands of the native classes, stdin and the timer;
//! `life.rs`: the sidecar's lives (start, stop, spawn, the supervisor's actions, the facts
//! of the inbox); `ticking.rs`: the tick, and delivery one event at a time.

mod life;
mod ticking;

use super::inbox::{Fact, Inbox};
use super::registry::Registry;
use crate::core::{
    ChannelId, ConnectionId, Life, Object, Outcome, Session, Supervisor, SupervisorConfig,
};
use crate::error::Error;
use crate::sidecar::{Backlog, Sidecar, Ticket};
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
    /// The stdouts read on the JavaScript thread's loop (`poll.rs`), by life: their frames
    /// are taken from the reader's own queue, in order, by every tick.
    #[cfg(unix_io)]
    loop_readers: Vec<(Life, std::sync::Arc<dyn crate::sidecar::LoopRead>)>,
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
    /// The bytes the sessions hold for paused channels, counted in the stdout backlog.
    held: RefCell<(usize, Option<Ticket>)>,
}

/// The tick runner of `tick.rs`: the driver `id` of this thread, if it still exists.
unsafe fn run_tick(env: sys::napi_env, id: u64) {
    let driver = DRIVERS.with(|d| d.borrow().get(&id).and_then(Weak::upgrade));
    if let Some(driver) = driver {
        driver.tick(env);
    }
}

/// A channel and the session and driver that hold it: what the native side hands to
/// JavaScript for a channel the remote opened (JavaScript passes it back to the
/// NativeDataChannel constructor, `channel.rs`), what a NativeDataChannel holds, and what
/// its hot-call slot names (`hot.rs`).
#[derive(Clone)]
pub struct ChannelHandle {
    pub(super) driver: Rc<Driver>,
    pub(super) session: Rc<SessionCell>,
    pub(super) id: ChannelId,
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
        super::tick::set_runner(run_tick);
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
                #[cfg(unix_io)]
                loop_readers: Vec::new(),
            }),
            config,
            registry: RefCell::new(Registry::default()),
            collected: RefCell::new(Vec::new()),
            unflushed: Cell::new(false),
            held: RefCell::new((0, None)),
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

    /// A sidecar of the current session runs (started, or starting: its ping is out).
    pub(super) fn has_live_run(&self) -> bool {
        let state = self.state.borrow();
        state
            .run
            .as_ref()
            .is_some_and(|r| Some(r.life) == state.session_life)
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
        self.queue(IpcEvent::Settle(token, result));
        self.after_command(env)
    }

    /// A line for the PionIpc's logger, at the next delivery.
    pub(super) fn log_later(&self, line: String) {
        self.queue(IpcEvent::Log(line));
    }

    /// Something of the PionIpc's own, delivered after what the sessions hold now.
    fn queue(&self, event: IpcEvent) {
        self.state.borrow_mut().queued.push_back(event);
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
