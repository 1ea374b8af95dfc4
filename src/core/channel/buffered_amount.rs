//! The channel's view of the sidecar's own backlog: idle polls, the refresh after the
//! sidecar's `dc.bufferedamountlow`, and the low-water mark it is told about.

use super::ChannelContext;
use super::{reported_amount, Channel, ReadyState, MAX_POLL};
use crate::core::events::{ChannelEvent, Event};
use crate::core::outbox::Request;
use crate::core::output::{SessionOutput, Timer};
use crate::core::pending::{BufferedAmountQuery, RequestKind};
use crate::error::Error;
use crate::protocol::messages::{self, SetThreshold};
use crate::protocol::Frame;
use std::time::{Duration, Instant};

impl Channel {
    /// With nothing in flight there are no acknowledgements to report the sidecar's
    /// backlog, and the sidecar's own `dc.bufferedamountlow` only fires when its amount
    /// crosses its threshold from above. So while idle with a backlog left, ask for it now
    /// and then, or a sender waiting for `bufferedamountlow` would wait forever.
    pub fn poll_when_idle(&mut self, out: &mut SessionOutput, delay: Duration, now: Instant) {
        if self.polling
            || !self.drained()
            || self.sidecar_buffered == 0
            || self.ready != ReadyState::Open
        {
            return;
        }
        self.polling = true;
        out.timers.set(
            now + delay,
            Timer::BacklogPoll {
                channel: self.id,
                delay,
            },
        );
    }

    /// A backlog poll's timer fired.
    pub fn on_backlog_timer(
        &mut self,
        ctx: &ChannelContext<'_>,
        out: &mut SessionOutput,
        delay: Duration,
        now: Instant,
    ) {
        if self.ready != ReadyState::Open {
            // Closed meanwhile: the sidecar no longer knows the channel.
            self.polling = false;
            return;
        }
        let kind = RequestKind::GetBufferedAmount {
            channel: self.id,
            query: BufferedAmountQuery::IdlePoll { delay },
        };
        let request = Request::new("dc.getBA", ctx.pc_id, &self.label, &[]);
        out.outbox.send(request, kind, now);
    }

    /// The answer to a `dc.getBA`.
    pub fn on_buffered_amount(
        &mut self,
        out: &mut SessionOutput,
        query: BufferedAmountQuery,
        reply: Result<Frame, Error>,
        now: Instant,
    ) {
        let amount = reply.as_ref().ok().and_then(reported_amount);
        match query {
            BufferedAmountQuery::IdlePoll { delay } => {
                self.polling = false;
                let before = self.buffered_amount();
                if let Some(amount) = amount {
                    self.sidecar_buffered = amount;
                }
                let after = self.buffered_amount();
                if self.ready == ReadyState::Open
                    && before > self.threshold
                    && after <= self.threshold
                {
                    out.events.push_low_if_still_low(self.id);
                }
                if reply.is_ok() {
                    self.poll_when_idle(out, (delay * 2).min(MAX_POLL), now);
                }
            }
            BufferedAmountQuery::SidecarLow => {
                if let Some(amount) = amount {
                    self.sidecar_buffered = amount;
                }
                // Only when really low; when the question failed, as the old SDK did.
                let fire = match reply {
                    Ok(_) => self.is_low(),
                    Err(_) => self.ready == ReadyState::Open,
                };
                if fire {
                    out.emit(Event::Channel(self.id, ChannelEvent::BufferedAmountLow));
                }
            }
        }
    }

    /// Sets the low-water mark; the sidecar is told once it knows the channel.
    pub fn set_threshold(
        &mut self,
        ctx: &ChannelContext<'_>,
        out: &mut SessionOutput,
        threshold: u64,
        now: Instant,
    ) {
        self.threshold = threshold;
        if self.created && self.ready != ReadyState::Closed {
            self.send_threshold(ctx, out, now);
        }
    }

    pub(super) fn send_threshold(
        &self,
        ctx: &ChannelContext<'_>,
        out: &mut SessionOutput,
        now: Instant,
    ) {
        let payload = messages::encode(&SetThreshold {
            threshold: self.threshold,
        });
        let request = Request::new("dc.setBALT", ctx.pc_id, &self.label, &payload);
        out.outbox
            .send(request, RequestKind::SetThreshold(self.id), now);
    }

    pub fn on_threshold_reply(
        &mut self,
        ctx: &ChannelContext<'_>,
        out: &mut SessionOutput,
        reply: Result<Frame, Error>,
    ) {
        if let Err(e) = reply {
            if self.ready != ReadyState::Closed {
                let text = format!("setting bufferedAmountLowThreshold failed: {e}");
                self.emit_error(ctx, out, text);
            }
        }
    }
}
