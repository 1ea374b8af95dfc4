//! Delivering a batch of notices on the JavaScript thread: each becomes a call of index.js's
//! dispatcher (or its `message` hook), in order, with its state change visible only from
//! then on.

#[cfg(unix_io)]
use super::bridge::install_readers;
use super::bridge::{capture, Batch, Bridge, HOOKS, IPC_TARGET};
use super::channel::ChannelHandle;
use super::errors;
use super::pool::{pooled, MAX_POOLED};
use super::values::*;
use crate::events::{ChannelEvent, Emit, PeerEvent};
use crate::log::escape_controls;
use crate::sidecar::Notice;
use napi::bindgen_prelude::*;
use napi::sys;
use std::ptr;
use std::sync::Arc;

pub(super) const LOG_PREFIX: &str = "[pion-ipc] ";

/// Hands each event to the JavaScript dispatcher the moment it is converted, so that the
/// state changes of later events in the batch are not yet visible to its listeners.
struct Entries {
    env: sys::napi_env,
    dispatch: sys::napi_value,
    message: sys::napi_value,
    /// The receive pool's ArrayBuffer, once this batch used it.
    pool: Option<sys::napi_value>,
}

impl Entries {
    unsafe fn push(
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

    /// Emits `message` with `{ data }` on `target`.
    unsafe fn message(&mut self, target: sys::napi_value, data: sys::napi_value) {
        self.call(self.message, &[target, data]);
    }

    /// Emits `message` with a binary `data`: small messages are copied into the receive
    /// pool and index.js makes the Buffer (a view of the pool) from (pool, offset, length).
    unsafe fn binary_message(&mut self, target: sys::napi_value, bytes: &[u8]) -> Result<()> {
        if bytes.len() > MAX_POOLED {
            let data = buffer(self.env, bytes)?;
            self.message(target, data);
            return Ok(());
        }
        let (pool, offset) = pooled(self.env, &mut self.pool, bytes)?;
        let offset = number(self.env, offset as f64)?;
        let length = number(self.env, bytes.len() as f64)?;
        self.call(self.message, &[target, pool, offset, length]);
        Ok(())
    }

    unsafe fn call(&mut self, function: sys::napi_value, argv: &[sys::napi_value]) {
        let mut this = ptr::null_mut();
        sys::napi_get_undefined(self.env, &mut this);
        let mut result = ptr::null_mut();
        // The JavaScript side catches what listeners throw; a failure here (an exception it
        // let through, a dying environment) must not stop the rest of the batch.
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
}

/// The most arguments an event hands to the dispatcher after target and name.
const MAX_EVENT_ARGS: usize = 4;

impl ToNapiValue for Batch {
    unsafe fn to_napi_value(env: sys::napi_env, batch: Self) -> Result<sys::napi_value> {
        let Some(bridge) = batch.bridge else {
            return undefined(env);
        };
        let env_ref = Env::from_raw(env);
        let functions = HOOKS.with(|hooks| {
            let hooks = hooks.borrow();
            let hooks = hooks.as_ref()?;
            let dispatch = hooks.dispatch.borrow_back(&env_ref).ok()?.raw();
            let message = hooks.message.borrow_back(&env_ref).ok()?.raw();
            Some((dispatch, message))
        });
        let Some((dispatch, message)) = functions else {
            return undefined(env);
        };
        let mut out = Entries {
            env,
            dispatch,
            message,
            pool: None,
        };
        #[cfg(unix_io)]
        install_readers(env, &bridge);
        let ipc = bridge.target(env, IPC_TARGET);
        if let (Some(ipc), true) = (ipc, batch.dropped_logs > 0) {
            let line = format!(
                "{LOG_PREFIX}{} log lines dropped: the logger could not keep up",
                batch.dropped_logs
            );
            out.push(ipc, "log", &[js_string(env, &line)?])?;
        }
        for notice in batch.notices {
            convert_notice(env, &bridge, ipc, &mut out, notice)?;
        }
        bridge.maybe_release(env);
        // The call napi makes with this value finds nothing left to do.
        undefined(env)
    }
}

unsafe fn convert_notice(
    env: sys::napi_env,
    bridge: &Arc<Bridge>,
    ipc: Option<sys::napi_value>,
    out: &mut Entries,
    notice: Notice,
) -> Result<()> {
    match notice {
        Notice::Run(work) => {
            for produced in capture(work) {
                convert_notice(env, bridge, ipc, out, produced)?;
            }
        }
        Notice::Settle { token, result } => {
            let Some(deferred) = bridge.take_deferred(token) else {
                return Ok(());
            };
            match result {
                Ok(value) => {
                    let value = output(env, value)?;
                    sys::napi_resolve_deferred(env, deferred, value);
                }
                Err(err) => {
                    sys::napi_reject_deferred(env, deferred, errors::create(env, &err));
                }
            }
        }
        Notice::Emit(Emit::Release(id)) => bridge.release_target(env, id),
        Notice::Emit(Emit::Weaken(id)) => bridge.weaken_target(env, id),
        Notice::Emit(Emit::Peer(id, event)) => {
            let Some(target) = bridge.target(env, id) else {
                return Ok(());
            };
            let name = event.name();
            match event {
                PeerEvent::IceCandidate(c) => {
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
                    out.push(target, name, &[event])?;
                }
                PeerEvent::DataChannel(channel) => {
                    let Some(wrapper) = wrap_channel(env, bridge, channel)? else {
                        return Ok(());
                    };
                    let event = object(env)?;
                    set(env, event, "channel", wrapper)?;
                    out.push(target, name, &[event])?;
                }
                _ => out.push(target, name, &[])?,
            }
        }
        Notice::Emit(Emit::Channel(id, event)) => {
            let Some(target) = bridge.target(env, id) else {
                return Ok(());
            };
            let name = event.name();
            match event {
                ChannelEvent::Message { binary: true, data } => {
                    out.binary_message(target, &data)?;
                }
                ChannelEvent::Message { data, .. } => {
                    let text = js_string(env, &String::from_utf8_lossy(&data))?;
                    out.message(target, text);
                }
                ChannelEvent::Error(text) => {
                    let err = errors::create(env, &crate::error::Error::Remote(text));
                    out.push(target, name, &[err])?;
                }
                _ => out.push(target, name, &[])?,
            }
        }
        other => {
            let Some(ipc) = ipc else { return Ok(()) };
            match other {
                Notice::Log(line) => out.push(
                    ipc,
                    "log",
                    &[js_string(
                        env,
                        &format!("{LOG_PREFIX}{}", escape_controls(&line)),
                    )?],
                )?,
                Notice::Error(err) => {
                    let line = format!("{LOG_PREFIX}error: {}", escape_controls(&err.to_string()));
                    out.push(ipc, "log", &[js_string(env, &line)?])?;
                    out.push(ipc, "error", &[errors::create(env, &err)])?;
                }
                Notice::Exited { code, signal, .. } => {
                    let code = match code {
                        Some(code) => number(env, f64::from(code))?,
                        None => null(env)?,
                    };
                    let signal = match signal {
                        Some(signal) => js_string(env, &signal)?,
                        None => null(env)?,
                    };
                    out.push(ipc, "exit", &[code, signal])?;
                }
                Notice::Restarted => out.push(ipc, "restart", &[])?,
                Notice::Event(frame) => {
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
                    out.push(ipc, &header.event, &[event])?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Hands a channel the remote opened to index.js, which makes its native object and wrapper;
/// the wrapper registers itself as the channel's target.
unsafe fn wrap_channel(
    env: sys::napi_env,
    bridge: &Arc<Bridge>,
    channel: Arc<crate::channel::Channel>,
) -> Result<Option<sys::napi_value>> {
    let env_ref = Env::from_raw(env);
    let handle = External::new(ChannelHandle {
        channel,
        bridge: bridge.clone(),
    });
    let native = ToNapiValue::to_napi_value(env, handle)?;
    HOOKS.with(|hooks| {
        let hooks = hooks.borrow();
        let Some(hooks) = hooks.as_ref() else {
            return Ok(None);
        };
        let wrap = hooks.wrap_channel.borrow_back(&env_ref)?;
        let wrapper = wrap.call(Unknown::from_raw_unchecked(env, native))?;
        Ok(Some(wrapper.raw()))
    })
}
