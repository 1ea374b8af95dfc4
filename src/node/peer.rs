//! `RTCPeerConnection` as a native class; index.js wraps it into an EventEmitter. Its state
//! is the core's (`core::Connection`), read and changed through the driver's session;
//! `peer_options.rs` parses what JavaScript passes in.

use super::channel::NativeDataChannel;
use super::convert;
use super::driver::{ChannelHandle, Driver, SessionCell};
use super::errors;
use super::ipc::NativePionIpc;
use super::peer_options::{self, candidate_hold, create_payload, max_buffered_amount, Parsed};
use crate::core::{
    CandidateHold, ConnectionCall, ConnectionId, ConnectionOptions, Object as CoreObject,
    SettleToken, MAX_MESSAGE_SIZE,
};
use crate::error::Error;
use crate::protocol::messages::SessionDescription;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::rc::Rc;
use std::time::Instant;

#[napi(custom_finalize)]
pub struct NativePeerConnection {
    driver: Rc<Driver>,
    session: Rc<SessionCell>,
    id: ConnectionId,
    pc_id: String,
}

impl ObjectFinalize for NativePeerConnection {
    /// Collected (held weakly, see `core::Event::Weaken`, or released): its target entry
    /// and the core's state go at the driver's next chance.
    fn finalize(self, _env: Env) -> Result<()> {
        self.driver.collected(CoreObject::Connection(self.id));
        Ok(())
    }
}

/// `{ type, sdp }`, or null.
fn description_value<'env>(
    env: &'env Env,
    description: Option<&SessionDescription>,
) -> Result<Unknown<'env>> {
    // SAFETY: JavaScript thread.
    unsafe {
        let value = match description {
            Some(d) => super::values::description(env.raw(), &d.kind, &d.sdp)?,
            None => ToNapiValue::to_napi_value(env.raw(), Null)?,
        };
        Ok(Unknown::from_raw_unchecked(env.raw(), value))
    }
}

#[napi]
impl NativePeerConnection {
    /// `ipc` is the native PionIpc (or null); `options` as for RTCPeerConnection; `target`
    /// the JavaScript object events are emitted on. Never throws for bad options: they fail
    /// the connection instead.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        ipc: Option<&NativePionIpc>,
        options: Option<Unknown>,
        target: napi::bindgen_prelude::Object,
        unreadable: Option<String>,
        after_start: Option<bool>,
    ) -> Result<Self> {
        // `_ipc` could not be read (index.js says why): that is the connection's failure.
        let options = match unreadable {
            Some(why) => Err(Error::Type(why)),
            None => convert::options("options", options),
        };
        let given_id = match &options {
            Ok(Some(o)) => convert::field(o, "_pcId")
                .and_then(|v| v.map(|v| convert::string("_pcId", &v)).transpose()),
            _ => Ok(None),
        };
        let pc_id = match &given_id {
            Ok(Some(id)) if !id.is_empty() => id.clone(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        // The first bad option fails the connection: _pcId, then _maxBufferedAmount, then
        // candidateHold, then the rest (pc.create's payload).
        let parsed = given_id.and(options).and_then(|options| {
            let max_buffered = options.as_ref().map_or(Ok(None), max_buffered_amount)?;
            let candidate_hold = options
                .as_ref()
                .map_or(Ok(CandidateHold::default()), candidate_hold)?;
            let kept = ConnectionOptions {
                max_buffered,
                candidate_hold,
            };
            Ok((create_payload(&pc_id, options.as_ref())?, kept))
        });
        let (payload, options) = match parsed {
            Ok((payload, kept)) => (Ok(payload), kept),
            Err(e) => (Err(e), ConnectionOptions::default()),
        };
        let (driver, payload) = match ipc {
            Some(ipc) => {
                let driver = ipc.driver().clone();
                let payload = match payload {
                    // The standard API creates connections while its sidecar starts: pc.create
                    // then goes out behind the start ping (the old API's "not started" stays).
                    Ok(_) if after_start == Some(true) && driver.has_live_run() => payload,
                    Ok(_) if !driver.is_started() => Err(Error::NotStarted),
                    other => other,
                };
                (driver, payload)
            }
            None => (
                Driver::detached(),
                payload.and(Err(Error::Type("_ipc is required".into()))),
            ),
        };
        let session = driver.session();
        let id =
            session
                .borrow_mut()
                .create_connection(pc_id.clone(), payload, options, Instant::now());
        driver.set_target(&env, id.0, &target)?;
        driver.after_command(&env)?;
        Ok(NativePeerConnection {
            driver,
            session,
            id,
            pc_id,
        })
    }

    fn read<T>(&self, f: impl FnOnce(&crate::core::Connection) -> T, gone: T) -> T {
        self.session.borrow().connection(self.id).map_or(gone, f)
    }

    #[napi(getter)]
    pub fn connection_state(&self) -> String {
        self.read(|c| c.connection_state().to_owned(), "closed".into())
    }

    #[napi(getter)]
    pub fn ice_connection_state(&self) -> String {
        self.read(|c| c.ice_connection_state().to_owned(), "closed".into())
    }

    #[napi(getter)]
    pub fn ice_gathering_state(&self) -> String {
        self.read(|c| c.ice_gathering_state().to_owned(), "complete".into())
    }

    #[napi(getter)]
    pub fn signaling_state(&self) -> String {
        self.read(|c| c.signaling_state().to_owned(), "closed".into())
    }

    #[napi(getter)]
    pub fn selected_candidate_pair<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let pair = self.read(|c| c.selected_candidate_pair().cloned(), None);
        // SAFETY: JavaScript thread.
        unsafe {
            let value = match pair {
                Some(pair) => super::values::candidate_pair(env.raw(), &pair)?,
                None => ToNapiValue::to_napi_value(env.raw(), Null)?,
            };
            Ok(Unknown::from_raw_unchecked(env.raw(), value))
        }
    }

    /// The description set by setLocalDescription() with the candidates gathered since
    /// (and `a=end-of-candidates` once gathering is complete), or null before one was set.
    #[napi(getter)]
    pub fn local_description<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let d = self.read(|c| c.local_description(), None);
        description_value(env, d.as_ref())
    }

    #[napi(getter)]
    pub fn current_local_description<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let d = self.read(|c| c.current_local_description(), None);
        description_value(env, d.as_ref())
    }

    #[napi(getter)]
    pub fn pending_local_description<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let d = self.read(|c| c.pending_local_description(), None);
        description_value(env, d.as_ref())
    }

    #[napi(getter)]
    pub fn remote_description<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let d = self.read(|c| c.remote_description().cloned(), None);
        description_value(env, d.as_ref())
    }

    #[napi(getter)]
    pub fn current_remote_description<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let d = self.read(|c| c.current_remote_description().cloned(), None);
        description_value(env, d.as_ref())
    }

    #[napi(getter)]
    pub fn pending_remote_description<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let d = self.read(|c| c.pending_remote_description().cloned(), None);
        description_value(env, d.as_ref())
    }

    /// The signaling state the accepted descriptions imply, current when a
    /// setLocalDescription()/setRemoteDescription() resolves (the sidecar's own
    /// `signalingState` may lag it, PROTOCOL.md trap 5).
    #[napi(getter)]
    pub fn described_signaling_state(&self) -> String {
        self.read(|c| c.described_signaling_state(), "stable")
            .to_string()
    }

    #[napi(getter)]
    pub fn max_message_size(&self) -> u32 {
        MAX_MESSAGE_SIZE as u32
    }

    #[napi(getter)]
    pub fn pc_id(&self) -> String {
        self.pc_id.clone()
    }

    /// Returns the native channel; index.js wraps it and attaches the wrapper.
    #[napi]
    pub fn create_data_channel(
        &self,
        env: Env,
        label: Unknown,
        options: Option<Unknown>,
    ) -> Result<NativeDataChannel> {
        let parsed = (|| -> Parsed<(String, bool)> {
            let label = convert::string("label", &label)?;
            let ordered = match convert::options("options", options)? {
                Some(o) => match convert::field(&o, "ordered")? {
                    Some(v) => convert::boolean("options.ordered", &v)?,
                    None => true,
                },
                None => true,
            };
            Ok((label, ordered))
        })();
        let (label, ordered) = parsed.map_err(|e| errors::throw(&env, e))?;
        let created =
            self.session
                .borrow_mut()
                .create_channel(self.id, label, ordered, Instant::now());
        let channel = created.map_err(|e| errors::throw(&env, e))?;
        self.driver.after_command(&env)?;
        Ok(NativeDataChannel::new(ChannelHandle {
            driver: self.driver.clone(),
            session: self.session.clone(),
            id: channel,
        }))
    }

    /// A promise method: `call` goes to the core, or the parse error rejects.
    fn call<'env>(&self, env: &'env Env, call: Parsed<ConnectionCall>) -> Result<Unknown<'env>> {
        let (token, promise) = self.driver.promise(env)?;
        match call {
            Ok(call) => {
                self.session
                    .borrow_mut()
                    .call(self.id, call, SettleToken(token), Instant::now());
                self.driver.after_command(env)?;
            }
            Err(e) => self.driver.settle_later(env, token, Err(e))?,
        }
        Ok(promise)
    }

    #[napi]
    pub fn create_offer<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        self.call(env, Ok(ConnectionCall::CreateOffer))
    }

    #[napi]
    pub fn create_answer<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        self.call(env, Ok(ConnectionCall::CreateAnswer))
    }

    #[napi]
    pub fn restart_ice<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        self.call(env, Ok(ConnectionCall::RestartIce))
    }

    #[napi]
    pub fn get_sctp_stats<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        self.call(env, Ok(ConnectionCall::GetSctpStats))
    }

    #[napi]
    pub fn set_local_description<'env>(
        &self,
        env: &'env Env,
        description: Option<Unknown>,
    ) -> Result<Unknown<'env>> {
        let call = peer_options::description(description).map(ConnectionCall::SetLocalDescription);
        self.call(env, call)
    }

    #[napi]
    pub fn set_remote_description<'env>(
        &self,
        env: &'env Env,
        description: Option<Unknown>,
    ) -> Result<Unknown<'env>> {
        let call = peer_options::description(description).map(ConnectionCall::SetRemoteDescription);
        self.call(env, call)
    }

    #[napi]
    pub fn add_ice_candidate<'env>(
        &self,
        env: &'env Env,
        candidate: Option<Unknown>,
    ) -> Result<Unknown<'env>> {
        let call = peer_options::candidate(candidate).map(ConnectionCall::AddIceCandidate);
        self.call(env, call)
    }

    /// Its channels are 'closing' as soon as this returns; the promise settles once the
    /// connection is closed on the sidecar.
    #[napi]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let (token, promise) = self.driver.promise(env)?;
        self.session
            .borrow_mut()
            .close_connection(self.id, SettleToken(token), Instant::now());
        self.driver.after_command(env)?;
        Ok(promise)
    }
}
