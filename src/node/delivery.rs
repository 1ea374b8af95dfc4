//! Core events become calls of index.js's dispatcher (or its `message` hook), one at a time,
//! on the JavaScript thread: the driver takes one event out of its session, hands it here,
//! and takes the next only when the listeners of this one returned.

use super::errors;
use super::hooks::HOOKS;
use super::pool::{pooled, MAX_POOLED};
use super::values::*;
use crate::core::{ChannelEvent, ConnectionEvent, Outcome};
use crate::error::Error;
use crate::log::escape_controls;
use crate::protocol::messages::IceCandidate;
use crate::protocol::Frame;
use napi::bindgen_prelude::*;
use napi::sys;
use std::ptr;

pub(super) const LOG_PREFIX: &str = "[pion-ipc] ";

/// The most arguments an event hands to the dispatcher after target and name.
const MAX_EVENT_ARGS: usize = 4;

/// index.js's functions for one delivery, and the receive pool it used.
pub(super) struct Js {
    pub(super) env: sys::napi_env,
    dispatch: sys::napi_value,
    message: sys::napi_value,
    /// The receive pool's ArrayBuffer, once this delivery used it.
    pool: Option<sys::napi_value>,
}

pub(super) fn connection_event_name(event: &ConnectionEvent) -> &'static str {
    match event {
        ConnectionEvent::ConnectionStateChange => "connectionstatechange",
        ConnectionEvent::IceConnectionStateChange => "iceconnectionstatechange",
        ConnectionEvent::IceGatheringStateChange => "icegatheringstatechange",
        ConnectionEvent::SignalingStateChange => "signalingstatechange",
        ConnectionEvent::SelectedCandidatePairChange => "selectedcandidatepairchange",
        ConnectionEvent::IceCandidate(_) => "icecandidate",
        ConnectionEvent::DataChannel(_) => "datachannel",
    }
}

fn channel_event_name(event: &ChannelEvent) -> &'static str {
    match event {
        ChannelEvent::Open => "open",
        ChannelEvent::Message { .. } => "message",
        ChannelEvent::Error(_) => "error",
        ChannelEvent::BufferedAmountLow => "bufferedamountlow",
        ChannelEvent::Close => "close",
    }
}

impl Js {
    /// The hooks of this environment, or `None` before index.js's `init`.
    ///
    /// # Safety
    /// On the JavaScript thread of `env`, inside a handle scope.
    pub(super) unsafe fn new(env: sys::napi_env) -> Option<Js> {
        let env_ref = Env::from_raw(env);
        let (dispatch, message) = HOOKS.with(|hooks| {
            let hooks = hooks.borrow();
            let hooks = hooks.as_ref()?;
            let dispatch = hooks.dispatch.borrow_back(&env_ref).ok()?.raw();
            let message = hooks.message.borrow_back(&env_ref).ok()?.raw();
            Some((dispatch, message))
        })?;
        Some(Js {
            env,
            dispatch,
            message,
            pool: None,
        })
    }

    /// `dispatch(target, name, ...args)`.
    pub(super) unsafe fn emit(
        &mut self,
        target: sys::napi_value,
        name: &str,
        args: &[sys::napi_value],
    ) -> Result<()> {
        let mut argv = [ptr::null_mut(); 2 + MAX_EVENT_ARGS];
        debug_assert!(args.len() <= MAX_EVENT_ARGS);
        let n = 2 + args.len().min(MAX_EVENT_ARGS);
        argv[0] = target;
        argv[1] = js_string(self.env, name)?;
        argv[2..n].copy_from_slice(&args[..n - 2]);
        self.call(self.dispatch, &argv[..n]);
        Ok(())
    }

    unsafe fn call(&mut self, function: sys::napi_value, argv: &[sys::napi_value]) {
        let mut this = ptr::null_mut();
        sys::napi_get_undefined(self.env, &mut this);
        let mut result = ptr::null_mut();
        // The JavaScript side catches what listeners throw; a failure here (an exception it
        // let through, a dying environment) must not stop the rest of the delivery.
        let status = sys::napi_call_function(
            self.env,
            this,
            function,
            argv.len(),
            argv.as_ptr(),
            &mut result,
        );
        if status == sys::Status::napi_pending_exception {
            let mut exception = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(self.env, &mut exception);
        }
    }

    /// One event of a channel on its `target`.
    pub(super) unsafe fn channel_event(
        &mut self,
        target: sys::napi_value,
        event: ChannelEvent,
    ) -> Result<()> {
        let name = channel_event_name(&event);
        match event {
            ChannelEvent::Message { binary: true, data } => self.binary_message(target, &data),
            ChannelEvent::Message { data, .. } => {
                let text = js_string(self.env, &String::from_utf8_lossy(&data))?;
                self.call(self.message, &[target, text]);
                Ok(())
            }
            ChannelEvent::Error(text) => {
                let err = errors::create(self.env, &Error::Remote(text));
                self.emit(target, name, &[err])
            }
            _ => self.emit(target, name, &[]),
        }
    }

    /// Emits `message` with a binary `data`: small messages are copied into the receive
    /// pool and index.js makes the Buffer (a view of the pool) from (pool, offset, length).
    unsafe fn binary_message(&mut self, target: sys::napi_value, bytes: &[u8]) -> Result<()> {
        if bytes.len() > MAX_POOLED {
            let data = buffer(self.env, bytes)?;
            self.call(self.message, &[target, data]);
            return Ok(());
        }
        let (pool, offset) = pooled(self.env, &mut self.pool, bytes)?;
        let offset = number(self.env, offset as f64)?;
        let length = number(self.env, bytes.len() as f64)?;
        self.call(self.message, &[target, pool, offset, length]);
        Ok(())
    }

    /// `icecandidate` with `{ candidate: { candidate, sdpMid, sdpMLineIndex } }`.
    pub(super) unsafe fn ice_candidate(
        &mut self,
        target: sys::napi_value,
        c: &IceCandidate,
    ) -> Result<()> {
        let env = self.env;
        let candidate = object(env)?;
        set_str(env, candidate, "candidate", &c.candidate)?;
        let mid = match &c.sdp_mid {
            Some(mid) => js_string(env, mid)?,
            None => null(env)?,
        };
        set(env, candidate, "sdpMid", mid)?;
        let index = match c.sdp_m_line_index {
            Some(i) => number(env, f64::from(i))?,
            None => null(env)?,
        };
        set(env, candidate, "sdpMLineIndex", index)?;
        let event = object(env)?;
        set(env, event, "candidate", candidate)?;
        self.emit(target, "icecandidate", &[event])
    }

    /// `datachannel` with `{ channel }`.
    pub(super) unsafe fn data_channel(
        &mut self,
        target: sys::napi_value,
        wrapper: sys::napi_value,
    ) -> Result<()> {
        let event = object(self.env)?;
        set(self.env, event, "channel", wrapper)?;
        self.emit(target, "datachannel", &[event])
    }

    /// A line for the PionIpc's logger.
    pub(super) unsafe fn log(&mut self, ipc: sys::napi_value, line: &str) -> Result<()> {
        let line = format!("{LOG_PREFIX}{}", escape_controls(line));
        self.emit(ipc, "log", &[js_string(self.env, &line)?])
    }

    /// `error` on the PionIpc, logged first.
    pub(super) unsafe fn error(&mut self, ipc: sys::napi_value, err: &Error) -> Result<()> {
        self.log(ipc, &format!("error: {err}"))?;
        self.emit(ipc, "error", &[errors::create(self.env, err)])
    }

    /// `exit` on the PionIpc with (code, signal).
    pub(super) unsafe fn exit(
        &mut self,
        ipc: sys::napi_value,
        code: Option<i32>,
        signal: Option<&str>,
    ) -> Result<()> {
        let env = self.env;
        let code = match code {
            Some(code) => number(env, f64::from(code))?,
            None => null(env)?,
        };
        let signal = match signal {
            Some(signal) => js_string(env, signal)?,
            None => null(env)?,
        };
        self.emit(ipc, "exit", &[code, signal])
    }

    /// A sidecar event re-emitted raw on the PionIpc under its own name.
    pub(super) unsafe fn raw_event(&mut self, ipc: sys::napi_value, frame: &Frame) -> Result<()> {
        let env = self.env;
        let header = &frame.header;
        let event = object(env)?;
        set_str(env, event, "pcId", &header.pc_id)?;
        set_str(env, event, "dcLabel", &header.dc_label)?;
        set(
            env,
            event,
            "isBinary",
            ToNapiValue::to_napi_value(env, header.is_binary)?,
        )?;
        set(env, event, "payload", buffer(env, &frame.payload)?)?;
        self.emit(ipc, &header.event, &[event])
    }

    /// Settles one deferred with `result`.
    pub(super) unsafe fn settle(
        &mut self,
        deferred: sys::napi_deferred,
        result: std::result::Result<Outcome, Error>,
    ) -> Result<()> {
        match result {
            Ok(value) => {
                let value = outcome(self.env, value)?;
                sys::napi_resolve_deferred(self.env, deferred, value);
            }
            Err(err) => {
                sys::napi_reject_deferred(self.env, deferred, errors::create(self.env, &err));
            }
        }
        Ok(())
    }

    /// Hands a native channel the remote opened to index.js, which wraps it; the wrapper
    /// registers itself as the channel's target.
    pub(super) unsafe fn wrap_channel(
        &mut self,
        native: sys::napi_value,
    ) -> Result<Option<sys::napi_value>> {
        let env_ref = Env::from_raw(self.env);
        HOOKS.with(|hooks| {
            let hooks = hooks.borrow();
            let Some(hooks) = hooks.as_ref() else {
                return Ok(None);
            };
            let wrap = hooks.wrap_channel.borrow_back(&env_ref)?;
            let wrapper = wrap.call(Unknown::from_raw_unchecked(self.env, native))?;
            Ok(Some(wrapper.raw()))
        })
    }
}
