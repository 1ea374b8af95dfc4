//! `RTCDataChannel` as a native class; index.js wraps it into an EventEmitter. Its state is
//! the core's (`core::Channel`), read and changed through the driver's session.

use super::convert;
use super::driver::ChannelHandle;
use super::errors;
use super::hot;
use crate::core::{Object, SettleToken};
use crate::error::Error;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::time::Instant;

#[napi(custom_finalize)]
pub struct NativeDataChannel {
    /// The channel, its session and driver (a clone of it is in its hot-call slot).
    channel: ChannelHandle,
    /// Its number for the hot calls (`hot.rs`).
    slot: u32,
}

impl ObjectFinalize for NativeDataChannel {
    /// Collected: its target entry and the core's state go at the driver's next chance.
    fn finalize(self, _env: Env) -> Result<()> {
        hot::release(self.slot);
        let channel = &self.channel;
        channel.driver.collected(Object::Channel(channel.id));
        Ok(())
    }
}

impl NativeDataChannel {
    pub(super) fn new(channel: ChannelHandle) -> Self {
        let slot = hot::register(channel.clone());
        NativeDataChannel { channel, slot }
    }

    fn read<T>(&self, f: impl FnOnce(&crate::core::Channel) -> T, gone: T) -> T {
        let ChannelHandle { session, id, .. } = &self.channel;
        session.borrow().channel(*id).map_or(gone, f)
    }
}

/// Writes the stdin bytes of the `send()` calls made since the last call (index.js calls it
/// from a microtask after a burst of sends).
#[napi]
#[allow(dead_code)] // called from JavaScript only
pub fn flush_writes() {
    super::driver::flush_unflushed();
}

#[napi]
impl NativeDataChannel {
    /// Only for handles made by the native side (channels the remote opened).
    #[napi(constructor)]
    pub fn from_handle(handle: &External<ChannelHandle>) -> Self {
        NativeDataChannel::new(ChannelHandle::clone(handle))
    }

    /// Registers the JavaScript object the channel's events are emitted on.
    #[napi]
    pub fn attach(&self, env: Env, target: napi::bindgen_prelude::Object) -> Result<()> {
        let ChannelHandle { driver, id, .. } = &self.channel;
        driver.set_target(&env, id.0, &target)
    }

    #[napi(getter)]
    pub fn label(&self) -> String {
        self.read(|c| c.label().to_owned(), String::new())
    }

    #[napi(getter)]
    pub fn ordered(&self) -> bool {
        self.read(|c| c.ordered(), true)
    }

    /// Its number for `hotCalls()`' `bufferedAmount`, `readyState` and `send` (index.js
    /// reads and sends through those).
    #[napi(getter)]
    pub fn slot(&self) -> u32 {
        self.slot
    }

    #[napi(getter)]
    pub fn buffered_amount_low_threshold(&self) -> f64 {
        self.read(|c| c.threshold(), 0) as f64
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
        let ChannelHandle {
            driver,
            session,
            id,
        } = &self.channel;
        session
            .borrow_mut()
            .set_threshold(*id, n as u64, Instant::now());
        driver.after_command(&env)
    }

    /// What the channel moved: `{ messagesSent, bytesSent, messagesReceived, bytesReceived }`.
    #[napi(getter)]
    pub fn counters<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let c = self.read(|c| c.counters(), Default::default());
        // SAFETY: JavaScript thread.
        unsafe {
            let raw = env.raw();
            let object = super::values::object(raw)?;
            for (key, n) in [
                ("messagesSent", c.messages_sent),
                ("bytesSent", c.bytes_sent),
                ("messagesReceived", c.messages_received),
                ("bytesReceived", c.bytes_received),
            ] {
                super::values::set(raw, object, key, ToNapiValue::to_napi_value(raw, n as f64)?)?;
            }
            Ok(Unknown::from_raw_unchecked(raw, object))
        }
    }

    /// Holds this channel's events (messages, close) until `resume()`, counting them as
    /// undelivered so that the sidecar's stdout is left unread once too much is held (the
    /// Duplex stream's backpressure, core `paused.rs`).
    #[napi]
    pub fn pause(&self) {
        let ChannelHandle { session, id, .. } = &self.channel;
        session.borrow_mut().pause_channel(*id);
    }

    /// The held events are delivered next, in order.
    #[napi]
    pub fn resume(&self, env: Env) -> Result<()> {
        let ChannelHandle {
            driver,
            session,
            id,
        } = &self.channel;
        session.borrow_mut().resume_channel(*id);
        driver.after_command(&env)
    }

    #[napi(getter)]
    pub fn paused(&self) -> bool {
        let ChannelHandle { session, id, .. } = &self.channel;
        session.borrow().is_channel_paused(*id)
    }

    /// readyState is 'closing' as soon as this returns; the promise settles once closed.
    #[napi]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let ChannelHandle {
            driver,
            session,
            id,
        } = &self.channel;
        let (token, promise) = driver.promise(env)?;
        session
            .borrow_mut()
            .close_channel(*id, SettleToken(token), Instant::now());
        driver.after_command(env)?;
        Ok(promise)
    }
}
