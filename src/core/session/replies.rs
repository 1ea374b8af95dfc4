//! What comes back to a session: the sidecar's frames (answers matched by id, events routed
//! by pcId and label), timeouts and timers, and the sidecar's end.

use super::Session;
use crate::core::channel::FIRST_POLL;
use crate::core::events::{Event, Outcome};
use crate::core::output::Timer;
use crate::core::pending::RequestKind;
use crate::core::registry::STALE_CLOSE_WINDOW;
use crate::error::Error;
use crate::protocol::{Frame, FrameType};
use std::time::Instant;

/// Whether a sidecar event is re-emitted on the PionIpc under its own name: only the
/// sidecar's own namespaces, so that one named `exit` or `error` never passes for ours.
pub fn is_sidecar_event(name: &str) -> bool {
    name.starts_with("pc.") || name.starts_with("dc.")
}

impl Session {
    /// One frame from the sidecar's stdout, decoded.
    pub fn handle_frame(&mut self, frame: Frame, now: Instant) {
        if self.is_gone() {
            return;
        }
        match frame.header.kind {
            FrameType::Response => self.on_response(frame, now),
            FrameType::Event => {
                let raw = (self.raw_events && is_sidecar_event(&frame.header.event))
                    .then(|| Box::new(frame.clone()));
                let pc_id = frame.header.pc_id.as_str();
                // Only pc.* state events read it: no look-up for the dc.message path.
                let namesake_closed = !frame.header.event.starts_with("dc.")
                    && self
                        .closed_ids
                        .get(pc_id)
                        .is_some_and(|at| now.saturating_duration_since(*at) < STALE_CLOSE_WINDOW);
                if let Some(&id) = self.by_pc_id.get(pc_id) {
                    if let Some(conn) = self.connections.get_mut(&id) {
                        conn.on_event(
                            &mut self.channels,
                            &mut self.out,
                            &frame,
                            namesake_closed,
                            now,
                        );
                    }
                }
                if let Some(frame) = raw {
                    self.out.emit(Event::SidecarEvent(frame));
                }
            }
            FrameType::Request => self.out.log(format!(
                "ignored request frame from pion-ipc (method={})",
                frame.header.method
            )),
        }
        self.finish_input(now);
    }

    fn on_response(&mut self, frame: Frame, now: Instant) {
        let id = frame.header.id;
        let Some((method, kind)) = self.out.outbox.pending().take(id) else {
            self.out.log(format!("orphan response id={id}"));
            return;
        };
        let reply = if frame.header.ok == Some(false) {
            let error = if frame.header.error.is_empty() {
                "request failed".to_owned()
            } else {
                frame.header.error.to_string()
            };
            self.out
                .log(format!("request error id={id} method={method} err={error}"));
            Err(Error::Remote(error))
        } else {
            Ok(frame)
        };
        self.on_reply(&method, kind, reply, now);
    }

    /// Requests whose time is up fail; timers that are due fire.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (id, method, kind) in self.out.outbox.pending().expire(now) {
            let error = Error::Timeout {
                method: method.clone().into_owned(),
                id,
            };
            self.on_reply(&method, kind, Err(error), now);
        }
        while let Some(timer) = self.out.timers.pop_due(now) {
            match timer {
                Timer::BacklogPoll { channel, delay } => {
                    self.with_channel(channel, |ch, ctx, out| {
                        ch.on_backlog_timer(ctx, out, delay, now)
                    });
                }
                Timer::CloseDrain(channel) => {
                    self.with_channel(channel, |ch, ctx, out| ch.on_drain_timer(ctx, out, now));
                }
                Timer::CreateWait(connection) => {
                    if let Some(conn) = self.connections.get_mut(&connection) {
                        conn.on_create_wait_timer(&mut self.out);
                    }
                }
                Timer::CandidateHold {
                    connection,
                    generation,
                } => {
                    if let Some(conn) = self.connections.get_mut(&connection) {
                        conn.on_hold_timer(&mut self.out, generation);
                    }
                }
            }
        }
        self.finish_input(now);
    }

    /// The sidecar exited without being asked to (crash, kill): every waiting request
    /// fails with the exit first, then every connection that is not closed or failed fails.
    pub fn sidecar_exited(&mut self, code: Option<i32>, signal: Option<String>, now: Instant) {
        if self.is_gone() {
            return;
        }
        let error = Error::Exited { code, signal };
        self.out.outbox.close(error.clone());
        self.fail_pending(&error, now);
        self.fail_connections();
        self.finish_input(now);
    }

    /// stop(): the connections fail at the call; the requests still waiting then fail with
    /// `ipc stopped`.
    pub fn sidecar_stopped(&mut self, now: Instant) {
        if self.is_gone() {
            return;
        }
        self.out.outbox.close(Error::Stopped);
        self.fail_connections();
        self.fail_pending(&Error::Stopped, now);
        self.finish_input(now);
    }

    fn fail_pending(&mut self, error: &Error, now: Instant) {
        for (_, method, kind) in self.out.outbox.pending().take_all() {
            self.on_reply(&method, kind, Err(error.clone()), now);
        }
    }

    fn fail_connections(&mut self) {
        let ids: Vec<_> = self.connections.keys().copied().collect();
        for id in ids {
            if let Some(conn) = self.connections.get_mut(&id) {
                conn.fail(&mut self.channels, &mut self.out);
            }
            self.unregister_if_deaf(id);
        }
    }

    /// What an answer (or its failure) means, by what the request was for.
    pub(super) fn on_reply(
        &mut self,
        method: &str,
        kind: RequestKind,
        reply: Result<Frame, Error>,
        now: Instant,
    ) {
        match kind {
            RequestKind::ConnectionCreate(id) => {
                if let Some(conn) = self.connections.get_mut(&id) {
                    let result = reply.map(|_| ());
                    conn.on_created(&mut self.channels, &mut self.out, result, now);
                }
                self.unregister_if_deaf(id);
            }
            RequestKind::ConnectionClose(id) => {
                if let Some(conn) = self.connections.get_mut(&id) {
                    conn.on_pc_closed(&mut self.out);
                    self.closed_ids
                        .retain(|_, at| now.saturating_duration_since(*at) < STALE_CLOSE_WINDOW);
                    self.closed_ids.insert(conn.pc_id().to_owned(), now);
                }
            }
            RequestKind::ChannelCreate(channel) => {
                let pump = self.with_channel(channel, |ch, ctx, out| {
                    ch.on_create_reply(ctx, out, reply, now)
                });
                if pump == Some(true) {
                    self.pump_owner(channel, now);
                }
                if self.forgotten.remove(&channel) {
                    self.channels.remove(&channel);
                }
            }
            RequestKind::ChannelClose(_) => {}
            RequestKind::Ack {
                connection,
                channel,
                len,
            } => {
                let Some(conn) = self.connections.get_mut(&connection) else {
                    return;
                };
                conn.release_send();
                let out = &mut self.out;
                conn.with_channel(&mut self.channels, channel, |ch, ctx| {
                    ch.on_ack(ctx, out, len, reply, now)
                });
                conn.pump(&mut self.channels, &mut self.out, now);
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.poll_when_idle(&mut self.out, FIRST_POLL, now);
                }
            }
            RequestKind::GetBufferedAmount { channel, query } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.on_buffered_amount(&mut self.out, query, reply, now);
                }
            }
            RequestKind::SetThreshold(channel) => {
                self.with_channel(channel, |ch, ctx, out| {
                    ch.on_threshold_reply(ctx, out, reply)
                });
            }
            RequestKind::Signal {
                connection,
                token,
                signal,
            } => {
                let ok = reply.is_ok();
                self.out
                    .emit(Event::Settle(token, reply.map(|_| Outcome::Unit)));
                if let Some(conn) = self.connections.get_mut(&connection) {
                    conn.on_signal_reply(&mut self.out, signal, ok, now);
                }
            }
            RequestKind::Settle { token, answer } => {
                let outcome = reply.and_then(|frame| answer.read(method, frame));
                self.out.emit(Event::Settle(token, outcome));
            }
        }
    }

    fn pump_owner(&mut self, channel: crate::core::events::ChannelId, now: Instant) {
        let Some(owner) = self.channels.get(&channel).map(|c| c.connection()) else {
            return;
        };
        if let Some(conn) = self.connections.get_mut(&owner) {
            conn.pump(&mut self.channels, &mut self.out, now);
        }
    }
}
