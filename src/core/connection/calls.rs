//! The connection's promise methods: each waits for `pc.create`, is refused once the
//! connection is closed, and settles its token with the answer.

use super::Connection;
use crate::core::connection_call::ConnectionCall;
use crate::core::events::{Event, SettleToken};
use crate::core::outbox::Request;
use crate::core::output::SessionOutput;
use crate::core::pending::RequestKind;
use crate::error::Error;
use std::time::Instant;

impl Connection {
    /// Sends `call` once `pc.create` is answered; `token` settles with the outcome.
    pub(crate) fn call(
        &mut self,
        out: &mut SessionOutput,
        call: ConnectionCall,
        token: SettleToken,
        now: Instant,
    ) {
        if call == ConnectionCall::RestartIce {
            self.ice_restarting = true;
        }
        if self.created.is_none() {
            self.awaiting_calls.push_back((call, token));
        } else {
            self.issue(out, call, token, now);
        }
    }

    /// Sends a call whose `pc.create` is answered.
    pub(super) fn issue(
        &mut self,
        out: &mut SessionOutput,
        call: ConnectionCall,
        token: SettleToken,
        now: Instant,
    ) {
        let refusal = match &self.created {
            Some(Err(e)) => Some(e.clone()),
            _ if self.closing || self.connection == "closed" => Some(Error::InvalidState(
                "the RTCPeerConnection is closed".into(),
            )),
            _ => None,
        };
        if let Some(e) = refusal {
            out.emit(Event::Settle(token, Err(e)));
            return;
        }
        let payload = call.payload();
        let kind = match self.signal_sent(&call, out, now) {
            Some(signal) => RequestKind::Signal {
                connection: self.id,
                token,
                signal,
            },
            None => RequestKind::Settle {
                token,
                answer: call.answer(),
            },
        };
        let request = Request::new(call.method(), &self.pc_id, "", &payload);
        out.outbox.send(request, kind, now);
    }
}
