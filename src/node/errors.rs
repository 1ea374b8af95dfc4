//! The one place where crate errors become JavaScript errors.

use crate::error::{Error, JsKind};
use napi::bindgen_prelude::ToNapiValue;
use napi::{sys, Env, JsError, JsRangeError, JsTypeError, Status};

fn code(kind: JsKind) -> &'static str {
    match kind {
        JsKind::Error => "ERR_PION_IPC",
        JsKind::TypeError => "ERR_INVALID_ARG_TYPE",
        JsKind::RangeError => "ERR_OUT_OF_RANGE",
        JsKind::Named(_) => "ERR_OPERATION",
    }
}

/// Throws `err` as the JavaScript class it maps to and returns the error to hand back to
/// napi, which then knows an exception is already pending.
pub fn throw(env: &Env, err: Error) -> napi::Error {
    let message = err.to_string();
    // SAFETY: called on the JavaScript thread with that thread's env.
    unsafe {
        let value = create(env.raw(), &err);
        if !value.is_null() {
            sys::napi_throw(env.raw(), value);
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
        JsKind::Named(name) => {
            let value = JsError::from(inner).into_value(env);
            if let Ok(name) = <&str as ToNapiValue>::to_napi_value(env, name) {
                sys::napi_set_named_property(env, value, c"name".as_ptr(), name);
            }
            value
        }
    }
}
