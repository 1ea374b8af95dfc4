//! The tick (every wake-up, every read of the loop reader) and delivery: one event at a
//! time, nothing borrowed while a listener runs.

use super::{ChannelHandle, Driver, IpcEvent, SessionCell};
use crate::core::{ConnectionEvent, ConnectionId, Event, SettleToken};
use crate::node::delivery::{connection_event_name, Js};
use crate::node::registry::IPC_TARGET;
use napi::bindgen_prelude::*;
use napi::sys;
use std::rc::{Rc, Weak};
use std::time::Instant;

impl Driver {
    /// Deadlines that are due at `now` (when the inbox was last taken).
    pub(super) fn on_due(&self, now: Instant) {
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
    pub(in crate::node) fn tick(self: &Rc<Self>, env: sys::napi_env) {
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
        // Frames before the facts taken above: a stdout's exit and stream error come after
        // its last frame, which is queued by then.
        #[cfg(unix_io)]
        self.handle_loop_frames(js.as_mut());
        for fact in facts {
            self.apply(fact);
            self.deliver(js.as_mut());
        }
        self.on_due(taken_at);
        self.deliver(js.as_mut());
        self.flush();
        self.arm();
        self.maybe_close(env);
        // A loop reader the backlog bound paused reads again once there is room.
        #[cfg(unix_io)]
        // SAFETY: JavaScript thread.
        unsafe {
            crate::node::poll::resume_paused()
        };
    }

    /// Handles the frames the loop readers (or their watchdogs) queued, one at a time, each
    /// delivered before the next; forgets the readers that are done.
    #[cfg(unix_io)]
    fn handle_loop_frames(self: &Rc<Self>, mut js: Option<&mut Js>) {
        let mut frames = Vec::new();
        // By index: listeners run in between, and nothing is copied per tick.
        for next in 0.. {
            // A statement of its own: the borrow ends here, before the listeners run.
            let entry = self.state.borrow().loop_readers.get(next).cloned();
            let Some((life, reader)) = entry else { break };
            reader.take_frames(&mut frames);
            if frames.is_empty() {
                continue;
            }
            let now = Instant::now();
            for frame in frames.drain(..) {
                self.session_of(life, now, |s, now| s.handle_frame(frame, now));
                self.deliver(js.as_deref_mut());
            }
        }
        self.state
            .borrow_mut()
            .loop_readers
            .retain(|(_, reader)| !reader.finished());
    }

    /// Starts watching the stdouts handed over for the loop reader (see `poll.rs`).
    #[cfg(unix_io)]
    pub(super) fn install_readers(self: &Rc<Self>, env: sys::napi_env) {
        for (life, reader) in self.inbox.take_readers() {
            // The tick takes its frames, whoever read them (the watchdog too).
            self.state
                .borrow_mut()
                .loop_readers
                .push((life, reader.clone()));
            let driver = Rc::downgrade(self);
            // Each read is handled and delivered by a tick, in the same callback.
            let on_read = Box::new(move |env| match driver.upgrade() {
                Some(driver) => {
                    driver.tick(env);
                    true
                }
                None => false,
            });
            // SAFETY: JavaScript thread.
            if unsafe { crate::node::poll::install(env, on_read, reader) }.is_err() {
                // Its watchdog reads it then, as soon as data waits.
                self.log_later(
                    "cannot watch the sidecar's stdout on the event loop; a thread reads it".into(),
                );
            }
        }
    }

    /// Hands everything waiting to JavaScript, one event at a time; nothing is borrowed
    /// while a listener runs (it may call back in).
    pub(super) fn deliver(self: &Rc<Self>, mut js: Option<&mut Js>) {
        loop {
            let current = self.session();
            let event = current.borrow_mut().poll_event();
            let next = match event {
                Some(event) => Some((current, event)),
                None if self.state.borrow().older.is_empty() => None,
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
                None => break,
            }
        }
        self.count_held();
    }

    /// Counts what the sessions hold for paused channels as undelivered (`paused.rs`).
    fn count_held(&self) {
        let bytes = {
            let state = self.state.borrow();
            let older = state.older.iter().filter_map(Weak::upgrade);
            let older: usize = older.map(|s| s.borrow().held_bytes()).sum();
            let current = state.session.borrow().held_bytes();
            current + older
        };
        let mut held = self.held.borrow_mut();
        if held.0 != bytes {
            let ticket = (bytes > 0).then(|| self.inbox.hold(bytes));
            *held = (bytes, ticket);
        }
    }

    pub(super) fn ipc_target(&self, env: sys::napi_env) -> Option<sys::napi_value> {
        // SAFETY: JavaScript thread.
        unsafe { self.registry.borrow().target(env, IPC_TARGET) }
    }

    pub(super) fn target(&self, env: sys::napi_env, id: u64) -> Option<sys::napi_value> {
        // SAFETY: JavaScript thread.
        unsafe { self.registry.borrow().target(env, id) }
    }

    pub(super) fn emit_ipc(&self, js: Option<&mut Js>, event: IpcEvent) {
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

    pub(super) fn emit(
        self: &Rc<Self>,
        js: Option<&mut Js>,
        session: &Rc<SessionCell>,
        event: Event,
    ) {
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
                    self.registry
                        .borrow_mut()
                        .release(env, super::object_id(object));
                    Ok(())
                }
                Event::Weaken(object) => {
                    self.registry
                        .borrow_mut()
                        .weaken(env, super::object_id(object));
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

    pub(super) unsafe fn connection_event(
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
                let native = External::new(ChannelHandle {
                    driver: self.clone(),
                    session: session.clone(),
                    id: channel,
                });
                let native = ToNapiValue::to_napi_value(env, native)?;
                match js.wrap_channel(native)? {
                    Some(wrapper) => js.data_channel(target, wrapper),
                    None => Ok(()),
                }
            }
            other => js.emit(target, connection_event_name(&other), &[]),
        }
    }

    /// Drops the wake-up function once nothing runs, waits or is queued: Node may exit.
    pub(super) fn maybe_close(&self, env: sys::napi_env) {
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
