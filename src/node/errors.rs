//! The one place where crate errors become JavaScript errors.

use crate::error::{Error, JsKind};
use napi::{sys, Env, JsError, JsRangeError, JsTypeError, Status};

fn code(kind: JsKind) -> &'static str {
    match kind {
        JsKind::Error => "ERR_PION_IPC",
        JsKind::TypeError => "ERR_INVALID_ARG_TYPE",
        JsKind::RangeError => "ERR_OUT_OF_RANGE",
    }
}

/// Throws `err` as the JavaScript class it maps to and returns the error to hand back to
/// napi, which then knows an exception is already pending.
pub fn throw(env: &Env, err: Error) -> napi::Error {
    let message = err.to_string();
    let kind = err.js_kind();
    let inner = napi::Error::new(code(kind).to_owned(), message.clone());
    // SAFETY: called on the JavaScript thread with that thread's env.
    unsafe {
        match kind {
            JsKind::Error => JsError::from(inner).throw_into(env.raw()),
            JsKind::TypeError => JsTypeError::from(inner).throw_into(env.raw()),
            JsKind::RangeError => JsRangeError::from(inner).throw_into(env.raw()),
        }
    }
    napi::Error::new(Status::PendingException, message)
}

/// Builds a JavaScript error value for `err` (for events and rejections).
///
/// # Safety
/// `env` must be the current JavaScript thread's env.
pub unsafe fn create(env: sys::napi_env, err: &Error) -> sys::napi_value {
    let inner = napi::Error::new(code(err.js_kind()).to_owned(), err.to_string());
    match err.js_kind() {
        JsKind::Error => JsError::from(inner).into_value(env),
        JsKind::TypeError => JsTypeError::from(inner).into_value(env),
        JsKind::RangeError => JsRangeError::from(inner).into_value(env),
    }
}

/// For futures: the message survives, the class is `Error`.
pub fn reject(err: Error) -> napi::Error {
    napi::Error::new(Status::GenericFailure, err.to_string())
}
