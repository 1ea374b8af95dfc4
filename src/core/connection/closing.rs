//! RTCPeerConnection.close(): every channel closes gracefully (in parallel), then the
//! connection becomes 'closed' and stops listening, then `pc.close` goes out (unless the
//! create failed or the sidecar is gone; an unanswered `pc.create` is waited for first, at
//! most [`CLOSE_DRAIN_LIMIT`]); a second close() settles when the first is done.

use super::{Channels, CloseStage, Connection};
use crate::core::channel::CLOSE_DRAIN_LIMIT;
use crate::core::events::{ConnectionEvent, Event, Object, Outcome, SettleToken};
use crate::core::outbox::Request;
use crate::core::output::{SessionOutput, Timer};
use crate::core::pending::RequestKind;
use std::time::Instant;

impl Connection {
    /// close(): at the call, the channels become 'closing' (no message is delivered to them
    /// from then on) and start draining. Returns true when this call began the close.
    pub(crate) fn close(
        &mut self,
        channels: &mut Channels,
        out: &mut SessionOutput,
        token: SettleToken,
        now: Instant,
    ) -> bool {
        match self.close_stage {
            CloseStage::Done => {
                out.emit(Event::Settle(token, Ok(Outcome::Unit)));
                return false;
            }
            CloseStage::Draining | CloseStage::AwaitingCreate | CloseStage::AwaitingPcClose => {
                self.close_waiters.push(token);
                return false;
            }
            CloseStage::NotClosing => {}
        }
        self.closing = true;
        self.gate.drop_held();
        self.close_stage = CloseStage::Draining;
        self.close_waiters.push(token);
        let live = self.registry.live();
        for id in &live {
            if let Some(channel) = channels.get_mut(id) {
                channel.begin_close();
            }
        }
        for id in live {
            self.with_channel(channels, id, |channel, ctx| {
                channel.close(ctx, out, None, now)
            });
        }
        true
    }

    /// Moves the close on once every channel is closed. Returns true when it moved.
    pub(crate) fn advance_close(&mut self, out: &mut SessionOutput, now: Instant) -> bool {
        if self.close_stage != CloseStage::Draining || !self.registry.is_empty() {
            return false;
        }
        self.listening = false;
        if self.connection != "closed" {
            self.connection = "closed".into();
            out.emit(Event::Connection(
                self.id,
                ConnectionEvent::ConnectionStateChange,
            ));
        }
        if self.created.is_none() && out.outbox.gone().is_none() {
            // A peer the sidecar created must be closed there too: its answer is waited for
            // (at most as long as a drain).
            self.close_stage = CloseStage::AwaitingCreate;
            out.timers
                .set(now + CLOSE_DRAIN_LIMIT, Timer::CreateWait(self.id));
        } else {
            self.close_on_sidecar(out, now);
        }
        true
    }

    /// `pc.create` was answered: a close waiting for it goes on.
    pub(super) fn close_after_create(&mut self, out: &mut SessionOutput, now: Instant) {
        if self.close_stage == CloseStage::AwaitingCreate {
            self.close_on_sidecar(out, now);
        }
    }

    /// The close waited [`CLOSE_DRAIN_LIMIT`] for `pc.create` in vain: done without
    /// `pc.close`.
    pub(crate) fn on_create_wait_timer(&mut self, out: &mut SessionOutput) {
        if self.close_stage == CloseStage::AwaitingCreate {
            self.release(out);
        }
    }

    /// `pc.close` when the sidecar created the peer and is still there; done otherwise.
    fn close_on_sidecar(&mut self, out: &mut SessionOutput, now: Instant) {
        let created = matches!(self.created, Some(Ok(())));
        if created && out.outbox.gone().is_none() {
            self.close_stage = CloseStage::AwaitingPcClose;
            let request = Request::new("pc.close", &self.pc_id, "", &[]);
            out.outbox
                .send(request, RequestKind::ConnectionClose(self.id), now);
        } else {
            self.release(out);
        }
    }

    /// `pc.close` was answered (or failed): the connection is done.
    pub(crate) fn on_pc_closed(&mut self, out: &mut SessionOutput) {
        if self.close_stage == CloseStage::AwaitingPcClose {
            self.release(out);
        }
    }

    fn release(&mut self, out: &mut SessionOutput) {
        self.close_stage = CloseStage::Done;
        out.emit(Event::Release(Object::Connection(self.id)));
        for token in self.close_waiters.drain(..) {
            out.emit(Event::Settle(token, Ok(Outcome::Unit)));
        }
    }
}
