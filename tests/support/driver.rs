//! A test driver: one tokio task owns a [`Sidecar`], the sans-IO [`Session`] of its life and
//! the [`Supervisor`], the way `src/node/driver/` owns them on the JavaScript thread. It
//! carries out the supervisor's actions, feeds the sidecar's frames and exit into the
//! session, writes [`Session::poll_transmit`] once per batch and honours both
//! `poll_timeout`s. Handles talk to it over a channel; everything it saw or did goes to a
//! [`Recorder`] (`recorder.rs`).

use super::recorder::{Record, Recorder};
use pion_node_rs::core::{
    Action, Event, Life, Outcome, Request, Session, SettleToken, Supervisor, SupervisorConfig,
};
use pion_node_rs::error::Error;
use pion_node_rs::protocol::Frame;
use pion_node_rs::sidecar::{Kill, Notice, NoticeSink, Sidecar};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

/// Messages handled in one go before stdin is written.
const BATCH: usize = 512;

#[derive(Debug, Clone)]
pub struct Config {
    /// How long a request waits for its answer.
    pub timeout: Duration,
    pub supervisor: SupervisorConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Duration::from_secs(10),
            supervisor: SupervisorConfig::default(),
        }
    }
}

/// What the driver's state looks like from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub started: bool,
    pub idle: bool,
    pub pid: Option<u32>,
}

type Locate = Box<dyn FnOnce() -> Result<PathBuf, Error> + Send>;

enum Command {
    Start(Locate, oneshot::Sender<Result<(), Error>>),
    Stop(Duration, oneshot::Sender<()>),
    Request {
        method: String,
        pc_id: String,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<Frame, Error>>,
    },
    Status(oneshot::Sender<Status>),
}

/// What the sidecars and their stop tasks report.
enum Fact {
    Notice(Life, Notice),
    /// `Sidecar::stop` of `life` returned; `exited`: the process is gone (else it gave up).
    StopDone {
        life: Life,
        exited: bool,
    },
}

/// The sink of one life: its notices go to the driver tagged with the life.
struct Sink {
    life: Life,
    facts: UnboundedSender<Fact>,
}

impl NoticeSink for Sink {
    fn notice(&self, notice: Notice) {
        let _ = self.facts.send(Fact::Notice(self.life, notice));
    }
}

/// A handle to the driver task; the task ends (killing its sidecar) when every handle is
/// dropped.
#[derive(Clone)]
pub struct Driver {
    commands: UnboundedSender<Command>,
    pub recorder: Arc<Recorder>,
}

const GONE: &str = "the driver task is gone";

impl Driver {
    /// Spawns the driver task on the current tokio runtime.
    pub fn new(config: Config) -> Driver {
        let (commands, command_rx) = unbounded_channel();
        let (facts, fact_rx) = unbounded_channel();
        let recorder = Arc::new(Recorder::default());
        let now = Instant::now();
        let mut refusing = Session::new(config.timeout);
        refusing.sidecar_stopped(now);
        let task = Task {
            supervisor: Supervisor::new(config.supervisor.clone()),
            config,
            session: refusing,
            session_life: None,
            run: None,
            bin: None,
            stop_timeout: Duration::ZERO,
            start_waiters: HashMap::new(),
            stop_waiters: Vec::new(),
            exits_seen: HashSet::new(),
            stops_awaiting_exit: HashSet::new(),
            pings: HashMap::new(),
            requests: HashMap::new(),
            next_token: 0,
            facts,
            recorder: recorder.clone(),
        };
        tokio::spawn(task.main(command_rx, fact_rx));
        Driver { commands, recorder }
    }

    /// start(): `locate` finds the binary once the supervisor accepted the start.
    pub async fn start(
        &self,
        locate: impl FnOnce() -> Result<PathBuf, Error> + Send + 'static,
    ) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Start(Box::new(locate), reply))
            .expect(GONE);
        rx.await.expect(GONE)
    }

    /// stop(timeout): returns once the process is gone (and its exit was handled), or at
    /// once when nothing runs.
    pub async fn stop(&self, timeout: Duration) {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Stop(timeout, reply))
            .expect(GONE);
        rx.await.expect(GONE)
    }

    /// `ipc.request()`: sent when called (so that calls pipeline), answered when awaited.
    pub fn request(
        &self,
        method: &str,
        pc_id: &str,
        payload: &[u8],
    ) -> impl Future<Output = Result<Frame, Error>> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Request {
                method: method.to_owned(),
                pc_id: pc_id.to_owned(),
                payload: payload.to_vec(),
                reply,
            })
            .expect(GONE);
        async move { rx.await.expect(GONE) }
    }

    pub async fn status(&self) -> Status {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Status(reply)).expect(GONE);
        rx.await.expect(GONE)
    }
}

/// The process of the current life.
struct Run {
    life: Life,
    sidecar: Sidecar,
}

struct Task {
    config: Config,
    supervisor: Supervisor,
    /// The session of `session_life` (before the first spawn: one that refuses everything).
    session: Session,
    session_life: Option<Life>,
    run: Option<Run>,
    bin: Option<PathBuf>,
    stop_timeout: Duration,
    start_waiters: HashMap<Life, oneshot::Sender<Result<(), Error>>>,
    stop_waiters: Vec<(Life, oneshot::Sender<()>)>,
    /// Lives whose exit notice was handled.
    exits_seen: HashSet<Life>,
    /// Lives whose stop returned before their exit notice was handled.
    stops_awaiting_exit: HashSet<Life>,
    /// The start pings, by token.
    pings: HashMap<SettleToken, Life>,
    requests: HashMap<SettleToken, oneshot::Sender<Result<Frame, Error>>>,
    next_token: u64,
    facts: UnboundedSender<Fact>,
    recorder: Arc<Recorder>,
}

impl Drop for Task {
    /// A test that failed midway leaves nothing running.
    fn drop(&mut self) {
        if let Some(run) = &self.run {
            run.sidecar.mark_stopping();
            run.sidecar.kill(Kill::Now);
        }
    }
}

impl Task {
    async fn main(
        mut self,
        mut commands: UnboundedReceiver<Command>,
        mut facts: UnboundedReceiver<Fact>,
    ) {
        loop {
            let deadline = self.deadline();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                Some(fact) = facts.recv() => self.fact(fact),
                () = sleep => {}
            }
            // The rest of what is waiting, as one batch.
            for _ in 0..BATCH {
                if let Ok(fact) = facts.try_recv() {
                    self.fact(fact);
                } else if let Ok(command) = commands.try_recv() {
                    self.command(command);
                } else {
                    break;
                }
            }
            self.on_due(Instant::now());
            self.flush();
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match (self.session.poll_timeout(), self.supervisor.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn token(&mut self) -> SettleToken {
        self.next_token += 1;
        SettleToken(self.next_token)
    }

    /// Writes what the session encoded to its sidecar's stdin.
    fn flush(&mut self) {
        let Some(bytes) = self.session.poll_transmit() else {
            return;
        };
        if let Some(run) = self
            .run
            .as_ref()
            .filter(|r| Some(r.life) == self.session_life)
        {
            if run.sidecar.write(&bytes) {
                run.sidecar.flush();
            }
        }
    }

    fn on_due(&mut self, now: Instant) {
        if self.session.poll_timeout().is_some_and(|at| at <= now) {
            self.session.handle_timeout(now);
            self.deliver();
        }
        if self.supervisor.poll_timeout().is_some_and(|at| at <= now) {
            let actions = self.supervisor.timer_fired(now);
            self.run(actions);
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Start(locate, reply) => match self.supervisor.start() {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(actions) => {
                    let life = self.supervisor.life();
                    self.start_waiters.insert(life, reply);
                    match locate() {
                        Ok(bin) => {
                            self.bin = Some(bin);
                            self.run(actions);
                        }
                        Err(e) => self.start_failed(life, false, e),
                    }
                }
            },
            Command::Stop(timeout, reply) => {
                self.stop_timeout = timeout;
                let actions = self.supervisor.stop();
                let ending = actions.iter().find_map(|a| match a {
                    Action::Stop(life) => Some(*life),
                    _ => None,
                });
                match ending {
                    Some(life) => self.stop_waiters.push((life, reply)),
                    None => {
                        let _ = reply.send(());
                    }
                }
                self.run(actions);
            }
            Command::Request {
                method,
                pc_id,
                payload,
                reply,
            } => {
                if !self.supervisor.is_started() {
                    let _ = reply.send(Err(Error::NotStarted));
                    return;
                }
                let token = self.token();
                self.requests.insert(token, reply);
                let request = Request::new(&method, &pc_id, "", &payload);
                self.session.request(request, token, Instant::now());
                self.deliver();
            }
            Command::Status(reply) => {
                let _ = reply.send(Status {
                    started: self.supervisor.is_started(),
                    idle: self.supervisor.is_idle(),
                    pid: self.run.as_ref().map(|r| r.sidecar.pid()),
                });
            }
        }
    }

    fn fact(&mut self, fact: Fact) {
        let now = Instant::now();
        match fact {
            Fact::Notice(life, Notice::Frame(frame)) => {
                if self.session_life == Some(life) {
                    self.session.handle_frame(frame, now);
                    self.deliver();
                }
            }
            Fact::Notice(_, Notice::Log(line)) => self.recorder.push(Record::Log(line)),
            Fact::Notice(_, Notice::Error(e)) => self.recorder.push(Record::Error(e.to_string())),
            Fact::Notice(
                life,
                Notice::Exited {
                    code,
                    signal,
                    intentional,
                },
            ) => {
                self.recorder.push(Record::Exited {
                    life,
                    code,
                    signal: signal.clone(),
                    intentional,
                });
                self.exits_seen.insert(life);
                let current = self.run.as_ref().is_some_and(|r| r.life == life);
                if current && !intentional {
                    if self.session_life == Some(life) {
                        self.session.sidecar_exited(code, signal, now);
                        self.deliver();
                    }
                    self.run = None;
                }
                let actions = self.supervisor.exited(life, now);
                self.run(actions);
                if self.stops_awaiting_exit.remove(&life) {
                    self.stop_done(life);
                }
            }
            Fact::StopDone { life, exited } => {
                if exited && !self.exits_seen.contains(&life) {
                    // Its exit notice is on its way: stop() returns once that is handled.
                    self.stops_awaiting_exit.insert(life);
                } else {
                    self.stop_done(life);
                }
            }
        }
    }

    /// Carries out what the supervisor decided.
    fn run(&mut self, actions: Vec<Action>) {
        for action in actions {
            self.recorder.push(Record::Action(action.clone()));
            match action {
                Action::Spawn(life) => self.spawn(life),
                Action::Kill(life) => {
                    self.session_stopped(life);
                    if let Some(run) = self.take_run(life) {
                        run.sidecar.mark_stopping();
                        run.sidecar.kill(Kill::Now);
                    }
                }
                Action::Stop(life) => {
                    self.session_stopped(life);
                    match self.take_run(life) {
                        Some(run) => {
                            let timeout = self.stop_timeout;
                            let facts = self.facts.clone();
                            tokio::spawn(async move {
                                run.sidecar.stop(timeout).await;
                                let exited = run.sidecar.has_exited();
                                let _ = facts.send(Fact::StopDone { life, exited });
                            });
                        }
                        None => self.stop_done(life),
                    }
                }
                Action::RestartAfter(_) | Action::Restarted | Action::Idle => {}
            }
        }
    }

    fn take_run(&mut self, life: Life) -> Option<Run> {
        match &self.run {
            Some(run) if run.life == life => self.run.take(),
            _ => None,
        }
    }

    fn session_stopped(&mut self, life: Life) {
        if self.session_life == Some(life) {
            self.session.sidecar_stopped(Instant::now());
            self.deliver();
        }
    }

    /// Spawns the sidecar of `life` with a new session, and pings it.
    fn spawn(&mut self, life: Life) {
        let Some(bin) = self.bin.clone() else {
            return;
        };
        let sink = Arc::new(Sink {
            life,
            facts: self.facts.clone(),
        });
        let sidecar = match Sidecar::spawn(&bin, sink) {
            Ok(sidecar) => sidecar,
            Err(e) => return self.start_failed(life, false, e),
        };
        // What the old session still holds is handed out before it goes.
        self.deliver();
        let token = self.token();
        let mut session = Session::new(self.config.timeout);
        session.request(Request::new("ping", "", "", &[]), token, Instant::now());
        self.session = session;
        self.session_life = Some(life);
        self.pings.insert(token, life);
        self.run = Some(Run { life, sidecar });
    }

    /// `life` did not come up.
    fn start_failed(&mut self, life: Life, spawned: bool, error: Error) {
        let actions = self.supervisor.start_failed(life, spawned, Instant::now());
        match self.start_waiters.remove(&life) {
            Some(reply) => {
                if matches!(error, Error::Spawn(_)) {
                    self.recorder.push(Record::Error(error.to_string()));
                }
                let _ = reply.send(Err(error));
            }
            None => self
                .recorder
                .push(Record::Log(format!("restart failed: {error}"))),
        }
        self.run(actions);
    }

    fn on_ping(&mut self, life: Life, result: Result<Outcome, Error>) {
        match result {
            Ok(_) => {
                let actions = self.supervisor.started(life, Instant::now());
                if let Some(reply) = self.start_waiters.remove(&life) {
                    let _ = reply.send(Ok(()));
                }
                self.run(actions);
            }
            Err(e) => self.start_failed(life, true, e),
        }
    }

    fn stop_done(&mut self, life: Life) {
        let (done, rest) = std::mem::take(&mut self.stop_waiters)
            .into_iter()
            .partition(|(l, _)| *l == life);
        self.stop_waiters = rest;
        for (_, reply) in done {
            let _ = reply.send(());
        }
    }

    /// Hands out what the session emitted: settled requests and log lines (no connections or
    /// channels are made here, so nothing else is expected).
    fn deliver(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Settle(token, result) => {
                    if let Some(life) = self.pings.remove(&token) {
                        self.on_ping(life, result);
                    } else if let Some(reply) = self.requests.remove(&token) {
                        let _ = reply.send(result.and_then(|outcome| match outcome {
                            Outcome::Frame(frame) => Ok(*frame),
                            other => Err(Error::Protocol(format!("not a frame: {other:?}"))),
                        }));
                    } else {
                        panic!("settle of an unknown token {token:?}");
                    }
                }
                Event::Log(line) => self.recorder.push(Record::Log(line)),
                other => panic!("unexpected session event {other:?}"),
            }
        }
    }
}
