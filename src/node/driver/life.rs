//! The sidecar's lives: start(), stop(), `ipc.request()`, the supervisor's actions (spawn,
//! kill, stop), the start ping, and the facts the inbox brings (frames, logs, exits).

use super::{Driver, IpcEvent, Run};
use crate::core::{Action, Life, Outcome, Request, Session, SettleToken};
use crate::error::Error;
use crate::node::inbox::Fact;
use crate::sidecar::{Kill, Notice, Sidecar};
use napi::bindgen_prelude::*;
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

impl Driver {
    /// start(): `locate` finds the binary once the start is claimed.
    pub(in crate::node) fn start<'env>(
        &self,
        env: &'env Env,
        locate: impl FnOnce() -> std::result::Result<PathBuf, Error>,
    ) -> Result<Unknown<'env>> {
        let (token, promise) = self.promise(env)?;
        let claimed = self.state.borrow_mut().supervisor.start();
        match claimed {
            Err(e) => {
                self.queue(IpcEvent::Settle(token, Err(e)));
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
    pub(in crate::node) fn stop<'env>(
        &self,
        env: &'env Env,
        timeout: Duration,
    ) -> Result<Unknown<'env>> {
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
    pub(in crate::node) fn request<'env>(
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
            self.queue(IpcEvent::Settle(token, Err(Error::NotStarted)));
        }
        self.after_command(env)?;
        Ok(promise)
    }

    /// The host environment is going away: the sidecar is killed at once.
    pub(in crate::node) fn kill_now(&self) {
        let actions = self.state.borrow_mut().supervisor.kill_now();
        for action in actions {
            if let Action::Kill(life) = action {
                self.kill(life);
            }
        }
    }

    pub(super) fn kill(&self, life: Life) {
        if let Some(run) = self.take_run(life) {
            run.sidecar.mark_stopping();
            run.sidecar.kill(Kill::Now);
        }
    }

    /// The process of `life`, taken out of the driver (it is being ended).
    fn take_run(&self, life: Life) -> Option<Run> {
        let mut state = self.state.borrow_mut();
        match &state.run {
            Some(run) if run.life == life => state.run.take(),
            _ => None,
        }
    }

    /// Ends the process of `life` on a tokio task (`end` does it); `StopDone` follows.
    fn end_on_task<F>(&self, life: Life, end: impl FnOnce(Sidecar) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match self.take_run(life) {
            Some(run) => {
                let ending = end(run.sidecar);
                let inbox = self.inbox.clone();
                napi::bindgen_prelude::spawn(async move {
                    ending.await;
                    inbox.push(Fact::StopDone(life));
                    inbox.wake();
                });
            }
            None => self.stop_done(life),
        }
    }

    /// Carries out what the supervisor decided.
    pub(super) fn run(&self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Spawn(life) => self.spawn(life),
                Action::Kill(life) => {
                    self.session_of(life, Instant::now(), |s, now| s.sidecar_stopped(now));
                    self.end_on_task(life, |sidecar| {
                        sidecar.mark_stopping();
                        sidecar.kill(Kill::Now);
                        async move {
                            sidecar.wait_exit(Duration::from_secs(2)).await;
                        }
                    });
                }
                Action::Stop(life) => {
                    self.session_of(life, Instant::now(), |s, now| s.sidecar_stopped(now));
                    let timeout = self.state.borrow().stop_timeout;
                    self.end_on_task(life, move |sidecar| async move {
                        sidecar.stop(timeout).await;
                    });
                }
                Action::RestartAfter(_) | Action::Idle => {}
                Action::Restarted => self.queue(IpcEvent::Restart),
            }
        }
    }

    /// Runs `f` on the session of `life` as of `now`, if it is the current one.
    pub(super) fn session_of(
        &self,
        life: Life,
        now: Instant,
        f: impl FnOnce(&mut Session, Instant),
    ) {
        let state = self.state.borrow();
        if state.session_life == Some(life) {
            f(&mut state.session.borrow_mut(), now);
        }
    }

    /// Spawns the sidecar of `life` with a new session, and pings it.
    pub(super) fn spawn(&self, life: Life) {
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
    pub(super) fn start_failed(&self, life: Life, spawned: bool, error: Error) {
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
    pub(super) fn on_ping(&self, life: Life, result: std::result::Result<Outcome, Error>) {
        match result {
            Ok(_) => {
                let actions = self
                    .state
                    .borrow_mut()
                    .supervisor
                    .started(life, Instant::now());
                let waiter = self.state.borrow_mut().start_waiters.remove(&life);
                if let Some(token) = waiter {
                    self.queue(IpcEvent::Settle(token, Ok(Outcome::Unit)));
                }
                self.run(actions);
            }
            Err(e) => self.start_failed(life, true, e),
        }
    }

    pub(super) fn stop_done(&self, life: Life) {
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
    pub(super) fn apply(&self, fact: Fact) {
        match fact {
            Fact::Sidecar(life, Notice::Frame(frame), ticket) => {
                self.session_of(life, Instant::now(), |s, now| s.handle_frame(frame, now));
                drop(ticket);
            }
            Fact::Sidecar(_, Notice::Log(line), _) => self.log_later(line),
            Fact::Sidecar(_, Notice::Error(e), _) => {
                self.queue(IpcEvent::Error(e));
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
                    self.session_of(life, Instant::now(), |s, now| {
                        s.sidecar_exited(code, signal.clone(), now)
                    });
                    let mut state = self.state.borrow_mut();
                    state.run = None;
                    if running {
                        state.queued.push_back(IpcEvent::Exit(code, signal));
                    }
                }
                let now = Instant::now();
                let actions = self.state.borrow_mut().supervisor.exited(life, now);
                self.run(actions);
            }
            Fact::StopDone(life) => self.stop_done(life),
            Fact::Timer => {}
        }
    }
}
