//! The calls made for every message, `send()`, `bufferedAmount` and `readyState`, as plain
//! Node-API callbacks on a channel's slot number.
//!
//! A `#[napi]` class method first unwraps `this` (type tag check) and opens a native-borrow
//! scope; for these calls that costs several times their own work (a sender pacing on
//! `bufferedAmount` makes two of them per message, the standard API's `send()` checks
//! `readyState` first). Here the argument is a number, the index of the channel in a slab
//! of this thread, and the callback does nothing else.

use super::driver::ChannelHandle;
use super::{convert, errors, values};
use crate::core::{Channel, ReadyState};
use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use std::borrow::Cow;
use std::cell::RefCell;
use std::ptr;
use std::time::Instant;

#[derive(Default)]
struct Slab {
    entries: Vec<Option<ChannelHandle>>,
    free: Vec<u32>,
}

thread_local! {
    /// The channels of this JavaScript thread that have a native object.
    static SLOTS: RefCell<Slab> = RefCell::default();
}

/// Gives the channel a slot; it is the native object's until [`release`].
pub(super) fn register(slot: ChannelHandle) -> u32 {
    SLOTS.with(|slots| {
        let mut slab = slots.borrow_mut();
        match slab.free.pop() {
            Some(n) => {
                slab.entries[n as usize] = Some(slot);
                n
            }
            None => {
                slab.entries.push(Some(slot));
                (slab.entries.len() - 1) as u32
            }
        }
    })
}

/// The native object was collected: its slot may be given again.
pub(super) fn release(n: u32) {
    SLOTS.with(|slots| {
        let mut slab = slots.borrow_mut();
        if let Some(entry) = slab.entries.get_mut(n as usize) {
            if entry.take().is_some() {
                slab.free.push(n);
            }
        }
    })
}

/// The slot `n` names (cloned: nothing stays borrowed while the call runs).
fn slot(n: u32) -> Option<ChannelHandle> {
    SLOTS.with(|slots| slots.borrow().entries.get(n as usize).cloned().flatten())
}

/// The callbacks, as `{ bufferedAmount(slot), readyState(slot), send(slot, data) }`, for
/// index.js to keep.
#[napi]
#[allow(dead_code)] // called from JavaScript only
pub fn hot_calls(env: &Env) -> Result<Unknown<'_>> {
    let raw = env.raw();
    // SAFETY: JavaScript thread.
    unsafe {
        let object = values::object(raw)?;
        let calls: [(&str, sys::napi_callback); 3] = [
            ("bufferedAmount", Some(buffered_amount)),
            ("readyState", Some(ready_state)),
            ("send", Some(send)),
        ];
        for (name, callback) in calls {
            let mut function = ptr::null_mut();
            check_status!(sys::napi_create_function(
                raw,
                name.as_ptr().cast(),
                name.len() as isize,
                callback,
                ptr::null_mut(),
                &mut function,
            ))?;
            values::set(raw, object, name, function)?;
        }
        Ok(Unknown::from_raw_unchecked(raw, object))
    }
}

/// The first `N` arguments (undefined where fewer were passed) and the slot the first one
/// names, if it names one.
unsafe fn args<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> ([sys::napi_value; N], Option<ChannelHandle>) {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    sys::napi_get_cb_info(
        env,
        info,
        &mut argc,
        argv.as_mut_ptr(),
        ptr::null_mut(),
        ptr::null_mut(),
    );
    // Exactly a slot number: NaN, fractions and negatives name no slot (ToUint32 would make
    // them one).
    let mut n = f64::NAN;
    let named = argc >= 1
        && sys::napi_get_value_double(env, argv[0], &mut n) == sys::Status::napi_ok
        && n >= 0.0
        && n <= f64::from(u32::MAX)
        && n.fract() == 0.0;
    if argc < N {
        argv[argc..].fill(undefined(env));
    }
    (argv, if named { slot(n as u32) } else { None })
}

unsafe fn undefined(env: sys::napi_env) -> sys::napi_value {
    values::undefined(env).unwrap_or(ptr::null_mut())
}

/// What `read` gives for the channel the first argument names, `gone` when there is none
/// (or its state is gone).
unsafe fn read_channel<T>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    gone: T,
    read: impl FnOnce(&Channel) -> T,
) -> T {
    let (_, slot) = args::<1>(env, info);
    let Some(slot) = slot else { return gone };
    let session = slot.session.borrow();
    session.channel(slot.id).map_or(gone, read)
}

/// `bufferedAmount(slot)`: the channel's `bufferedAmount` (0 once its state is gone).
unsafe extern "C" fn buffered_amount(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let amount = read_channel(env, info, 0, Channel::buffered_amount);
    let mut value = ptr::null_mut();
    sys::napi_create_double(env, amount as f64, &mut value);
    value
}

/// `readyState(slot)`: the channel's readyState as its index in
/// `['connecting', 'open', 'closing', 'closed']` ('closed' once its state is gone).
unsafe extern "C" fn ready_state(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let index = match read_channel(env, info, ReadyState::Closed, Channel::ready_state) {
        ReadyState::Connecting => 0,
        ReadyState::Open => 1,
        ReadyState::Closing => 2,
        ReadyState::Closed => 3,
    };
    let mut value = ptr::null_mut();
    sys::napi_create_uint32(env, index, &mut value);
    value
}

/// `send(slot, data)`: queues the message or throws, as `RTCDataChannel.send()`.
unsafe extern "C" fn send(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let ([_, data], slot) = args::<2>(env, info);
    let Some(slot) = slot else {
        // Only index.js calls this, with the slot of a live native object.
        let message = c"pion-node-rs: send() on an unknown channel slot";
        sys::napi_throw_error(env, ptr::null(), message.as_ptr());
        return ptr::null_mut();
    };
    let env_ref = Env::from_raw(env);
    let data = Unknown::from_raw_unchecked(env, data);
    match send_message(&env_ref, &slot, data) {
        Ok(()) => undefined(env),
        Err(e) => {
            if e.status != Status::PendingException {
                napi::JsError::from(e).throw_into(env);
            }
            ptr::null_mut()
        }
    }
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

/// `send()`: queues the message or throws.
fn send_message(env: &Env, channel: &ChannelHandle, data: Unknown) -> Result<()> {
    let (bytes, binary) = message_bytes(env, &data)?;
    let sent = channel
        .session
        .borrow_mut()
        .send(channel.id, &bytes, binary, Instant::now());
    sent.map_err(|e| errors::throw(env, e))?;
    channel.driver.send_done(env)
}
