//! `RTCDataChannel` as a native class; index.js wraps it into an EventEmitter.

use super::bridge::Bridge;
use super::convert;
use super::errors;
use crate::channel::Channel;
use crate::error::Error;
use crate::events::Output;
use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use std::borrow::Cow;
use std::ptr;
use std::sync::Arc;

#[napi]
pub struct NativeDataChannel {
    channel: Arc<Channel>,
    bridge: Arc<Bridge>,
}

impl NativeDataChannel {
    pub fn new(channel: Arc<Channel>, bridge: Arc<Bridge>) -> Self {
        NativeDataChannel { channel, bridge }
    }
}

/// What the native side hands to JavaScript for a channel the remote opened; JavaScript
/// passes it back to the NativeDataChannel constructor.
pub struct ChannelHandle {
    pub channel: Arc<Channel>,
    pub bridge: Arc<Bridge>,
}

/// The bytes of `data` and whether they are binary: Buffers, ArrayBuffers and every
/// ArrayBuffer view are binary (exactly the view's bytes); anything else is `String(data)`.
fn message_bytes<'a>(env: &Env, data: &'a Unknown) -> Result<(Cow<'a, [u8]>, bool)> {
    if let Some(bytes) = convert::binary(data).map_err(|e| errors::throw(env, e))? {
        return Ok((Cow::Borrowed(bytes), true));
    }
    let mut text = ptr::null_mut();
    // SAFETY: JavaScript thread, live value; String() semantics.
    check_status!(unsafe { sys::napi_coerce_to_string(env.raw(), data.raw(), &mut text) })?;
    // SAFETY: a string value of this env.
    let text = unsafe { Unknown::from_raw_unchecked(env.raw(), text) };
    let text = convert::string("data", &text).map_err(|e| errors::throw(env, e))?;
    Ok((Cow::Owned(text.into_bytes()), false))
}

/// Wakes the writers of the sidecars that `send()` queued frames for since the last call.
#[napi]
#[allow(dead_code)] // called from JavaScript only
pub fn flush_writes() {
    crate::sidecar::flush_deferred_writes();
}

#[napi]
impl NativeDataChannel {
    /// Only for handles made by the native side (channels the remote opened).
    #[napi(constructor)]
    pub fn from_handle(handle: &External<ChannelHandle>) -> Self {
        NativeDataChannel::new(handle.channel.clone(), handle.bridge.clone())
    }

    /// Registers the JavaScript object the channel's events are emitted on.
    #[napi]
    pub fn attach(&self, env: Env, target: Object) -> Result<()> {
        self.bridge.set_target(&env, self.channel.id, &target)
    }

    #[napi(getter)]
    pub fn label(&self) -> String {
        self.channel.label.clone()
    }

    #[napi(getter)]
    pub fn ordered(&self) -> bool {
        self.channel.ordered
    }

    #[napi(getter)]
    pub fn ready_state(&self) -> &'static str {
        self.channel.ready_state().as_str()
    }

    #[napi(getter)]
    pub fn buffered_amount(&self) -> f64 {
        self.channel.buffered_amount() as f64
    }

    #[napi(getter)]
    pub fn buffered_amount_low_threshold(&self) -> f64 {
        self.channel.threshold() as f64
    }

    #[napi(setter)]
    pub fn set_buffered_amount_low_threshold(&self, env: Env, value: Unknown) -> Result<()> {
        let n = convert::number("bufferedAmountLowThreshold", &value)
            .map_err(|e| errors::throw(&env, e))?;
        if !n.is_finite() || n < 0.0 || n.fract() != 0.0 || n > 9_007_199_254_740_991.0 {
            return Err(errors::throw(
                &env,
                Error::Range(format!(
                    "bufferedAmountLowThreshold must be a whole number of bytes >= 0, got {n}"
                )),
            ));
        }
        self.bridge.open(&env)?;
        self.channel.set_threshold(n as u64);
        Ok(())
    }

    /// Synchronous: queues the message or throws.
    #[napi]
    pub fn send(&self, env: Env, data: Unknown) -> Result<()> {
        let (bytes, binary) = message_bytes(&env, &data)?;
        // index.js flushes from a microtask after every send(): one writer wake-up per burst
        crate::sidecar::defer_writes(|| self.channel.send(&bytes, binary))
            .map_err(|e| errors::throw(&env, e))
    }

    #[napi]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let (settler, promise) = self.bridge.promise(env)?;
        // readyState is 'closing' as soon as close() returns
        self.channel.begin_close();
        let channel = self.channel.clone();
        napi::bindgen_prelude::spawn(async move {
            channel.close().await;
            settler.settle(Ok(Output::Unit));
        });
        Ok(promise)
    }
}
