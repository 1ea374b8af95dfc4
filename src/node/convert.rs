//! Conversions between JavaScript values and the crate's types, with validation that names
//! what is wrong.

use crate::error::Error;
use napi::bindgen_prelude::{BigInt, JsObjectValue, JsValue, Object, Unknown, ValueType};
use napi::sys;
use rmpv::Value;
use std::ptr;

/// How deeply a payload object may nest (also stops cyclic objects).
const MAX_PAYLOAD_DEPTH: usize = 64;

/// The value's type; `Unknown` when it cannot be read.
pub fn kind(value: &Unknown) -> ValueType {
    value.get_type().unwrap_or(ValueType::Unknown)
}

pub fn type_name(value: &Unknown) -> &'static str {
    match value.get_type() {
        Ok(ValueType::Undefined) => "undefined",
        Ok(ValueType::Null) => "null",
        Ok(ValueType::Boolean) => "boolean",
        Ok(ValueType::Number) => "number",
        Ok(ValueType::String) => "string",
        Ok(ValueType::Symbol) => "symbol",
        Ok(ValueType::Object) => "object",
        Ok(ValueType::Function) => "function",
        Ok(ValueType::External) => "external",
        Ok(ValueType::BigInt) => "bigint",
        _ => "unknown",
    }
}

pub fn is_nullish(value: &Unknown) -> bool {
    matches!(
        value.get_type(),
        Ok(ValueType::Undefined) | Ok(ValueType::Null)
    )
}

/// For a failed read of a user's object (a getter or a Proxy trap that threw): takes the
/// pending JavaScript exception, so that it does not escape past our own error handling (a
/// constructor that promises not to throw), and names it in a TypeError.
pub fn thrown(env: sys::napi_env, what: &str) -> impl Fn(napi::Error) -> Error + '_ {
    move |e| {
        let message = take_exception(env).unwrap_or_else(|| e.reason.clone());
        Error::Type(format!("cannot read {what}: {message}"))
    }
}

/// Clears the pending exception, if any, and returns its message (or what it was).
fn take_exception(env: sys::napi_env) -> Option<String> {
    // SAFETY: napi calls on the current env, on its JavaScript thread.
    unsafe {
        let mut pending = false;
        if sys::napi_is_exception_pending(env, &mut pending) != sys::Status::napi_ok || !pending {
            return None;
        }
        let mut exception = ptr::null_mut();
        if sys::napi_get_and_clear_last_exception(env, &mut exception) != sys::Status::napi_ok {
            return Some("an exception".into());
        }
        let exception = Unknown::from_raw_unchecked(env, exception);
        let text = |value: &Unknown| string("", value).ok();
        if let Some(text) = text(&exception) {
            return Some(text);
        }
        if kind(&exception) == ValueType::Object {
            let object = exception.cast::<Object>().ok()?;
            // `message` may be a getter that throws in turn: that one is cleared too.
            match object.get_named_property::<Unknown>("message") {
                Ok(message) => {
                    if let Some(text) = text(&message) {
                        return Some(text);
                    }
                }
                Err(_) => {
                    let mut again = ptr::null_mut();
                    sys::napi_get_and_clear_last_exception(env, &mut again);
                }
            }
        }
        Some(format!("a thrown {}", type_name(&exception)))
    }
}

fn wrong_type(what: &str, expected: &str, value: &Unknown) -> Error {
    Error::Type(format!(
        "{what} must be {expected}, got {}",
        type_name(value)
    ))
}

pub fn string(what: &str, value: &Unknown) -> Result<String, Error> {
    if kind(value) != ValueType::String {
        return Err(wrong_type(what, "a string", value));
    }
    // SAFETY: checked to be a string.
    unsafe { value.cast::<String>() }.map_err(|e| Error::Type(e.reason.clone()))
}

pub fn number(what: &str, value: &Unknown) -> Result<f64, Error> {
    if kind(value) != ValueType::Number {
        return Err(wrong_type(what, "a number", value));
    }
    // SAFETY: checked to be a number.
    unsafe { value.cast::<f64>() }.map_err(|e| Error::Type(e.reason.clone()))
}

pub fn boolean(what: &str, value: &Unknown) -> Result<bool, Error> {
    if kind(value) != ValueType::Boolean {
        return Err(wrong_type(what, "a boolean", value));
    }
    // SAFETY: checked to be a boolean.
    unsafe { value.cast::<bool>() }.map_err(|e| Error::Type(e.reason.clone()))
}

/// The longest duration accepted, in milliseconds: `setTimeout`'s own limit (2^31 - 1, about
/// 24.8 days). Anything longer is refused rather than clamped: added to the clock, a much
/// larger one would overflow (a panic, which cannot cross into JavaScript).
pub const MAX_MILLIS: f64 = 2_147_483_647.0;

/// A duration in milliseconds: a finite number from 0 to [`MAX_MILLIS`].
pub fn millis(what: &str, value: &Unknown) -> Result<std::time::Duration, Error> {
    let n = number(what, value)?;
    if !(0.0..=MAX_MILLIS).contains(&n) {
        return Err(Error::Range(format!(
            "{what} must be a number of milliseconds from 0 to {MAX_MILLIS}, got {n}"
        )));
    }
    Ok(std::time::Duration::from_secs_f64(n / 1000.0))
}

/// Reads `key` of an options object; `None` when absent, undefined or null.
pub fn field<'env>(object: &Object<'env>, key: &str) -> Result<Option<Unknown<'env>>, Error> {
    let value: Unknown = object
        .get_named_property(key)
        .map_err(|e| thrown(object.value().env, &format!("option {key}"))(e))?;
    Ok((!is_nullish(&value)).then_some(value))
}

/// The elements of a JavaScript array.
pub fn array_items<'env>(what: &str, value: &Unknown<'env>) -> Result<Vec<Unknown<'env>>, Error> {
    if kind(value) != ValueType::Object {
        return Err(wrong_type(what, "an array", value));
    }
    // SAFETY: checked to be an object.
    let object = unsafe { value.cast::<Object>() }.map_err(|e| Error::Type(e.reason.clone()))?;
    if !object.is_array().unwrap_or(false) {
        return Err(wrong_type(what, "an array", value));
    }
    let env = value.value().env;
    let len = object.get_array_length().map_err(thrown(env, what))?;
    (0..len)
        .map(|i| object.get_element::<Unknown>(i).map_err(thrown(env, what)))
        .collect()
}

/// Accepts undefined/null (no options) or a plain object.
pub fn options<'env>(
    what: &str,
    value: Option<Unknown<'env>>,
) -> Result<Option<Object<'env>>, Error> {
    let Some(value) = value.filter(|v| !is_nullish(v)) else {
        return Ok(None);
    };
    if kind(&value) != ValueType::Object {
        return Err(wrong_type(what, "an object", &value));
    }
    // SAFETY: checked to be an object.
    Ok(Some(
        unsafe { value.cast::<Object>() }.map_err(|e| Error::Type(e.reason.clone()))?,
    ))
}

/// The bytes of a Buffer, any ArrayBuffer view (typed array, DataView), an ArrayBuffer or a
/// SharedArrayBuffer; `None` for anything else, an error for a typed array whose byte length
/// cannot be known. The slice borrows JavaScript memory: copy it before returning to
/// JavaScript. Shared memory may be written by another thread meanwhile: the copy holds
/// whatever the bytes were while copied, as `Buffer.from` would.
pub fn binary<'a>(value: &'a Unknown) -> Result<Option<&'a [u8]>, Error> {
    let env = value.value().env;
    let raw = value.value().value;
    let mut data: *mut std::ffi::c_void = ptr::null_mut();
    let mut len: usize = 0;
    let mut flag = false;
    // SAFETY: plain napi queries on a live value of the current env.
    unsafe {
        if sys::napi_is_typedarray(env, raw, &mut flag) == sys::Status::napi_ok && flag {
            (data, len) = typed_array_bytes(env, raw)?;
        } else if sys::napi_is_dataview(env, raw, &mut flag) == sys::Status::napi_ok && flag {
            let mut buffer = ptr::null_mut();
            let mut offset = 0;
            sys::napi_get_dataview_info(env, raw, &mut len, &mut data, &mut buffer, &mut offset);
        } else if sys::napi_is_arraybuffer(env, raw, &mut flag) == sys::Status::napi_ok && flag {
            sys::napi_get_arraybuffer_info(env, raw, &mut data, &mut len);
        } else if kind(value) == ValueType::Object {
            // a SharedArrayBuffer: read through a Uint8Array over all of it. Its memory lives
            // as long as the buffer (`value`), which cannot be detached.
            let Some(view) = super::hooks::shared_view(env, raw) else {
                return Ok(None);
            };
            (data, len) = typed_array_bytes(env, view)?;
        } else {
            return Ok(None);
        }
        if data.is_null() || len == 0 {
            return Ok(Some(&[]));
        }
        Ok(Some(std::slice::from_raw_parts(data as *const u8, len)))
    }
}

/// Where a typed array's bytes start and how many there are: its byteLength, whatever its
/// kind. `napi_get_typedarray_info` counts elements and names the kind, but only of the kinds
/// its Node-API version knows: a newer one (Float16Array) comes back as some other kind or
/// none. The runtime's own byte length of the view (`napi_get_buffer_info`, which Node, Bun
/// and Deno answer for every ArrayBuffer view) is used whenever it describes the same memory;
/// elements × the kind's size only where it does not answer. A `TypeError` when neither is
/// known, rather than a wrong length.
///
/// # Safety
/// `raw` is a live typed array of `env`, on the JavaScript thread.
unsafe fn typed_array_bytes(
    env: sys::napi_env,
    raw: sys::napi_value,
) -> Result<(*mut std::ffi::c_void, usize), Error> {
    let unreadable = || Error::Type("cannot read the bytes of this typed array".into());
    let mut kind = UNSET_KIND;
    let mut length = 0;
    let mut data = ptr::null_mut();
    let mut buffer = ptr::null_mut();
    let mut offset = 0;
    if sys::napi_get_typedarray_info(
        env,
        raw,
        &mut kind,
        &mut length,
        &mut data,
        &mut buffer,
        &mut offset,
    ) != sys::Status::napi_ok
    {
        return Err(unreadable());
    }
    let mut view_data = ptr::null_mut();
    let mut view_len = 0;
    if sys::napi_get_buffer_info(env, raw, &mut view_data, &mut view_len) == sys::Status::napi_ok
        && (view_data == data || view_len == 0)
    {
        return Ok((data, view_len));
    }
    element_size(kind)
        .and_then(|size| length.checked_mul(size))
        .map(|len| (data, len))
        .ok_or_else(unreadable)
}

/// Never a kind number: tells a kind left unset by `napi_get_typedarray_info`.
const UNSET_KIND: sys::napi_typedarray_type = -1;

/// The element size of the kinds Node-API names; `None` for any other.
fn element_size(kind: sys::napi_typedarray_type) -> Option<usize> {
    use sys::TypedarrayType as T;
    match kind {
        T::int8_array | T::uint8_array | T::uint8_clamped_array => Some(1),
        T::int16_array | T::uint16_array => Some(2),
        T::int32_array | T::uint32_array | T::float32_array => Some(4),
        T::float64_array | T::bigint64_array | T::biguint64_array => Some(8),
        _ => None,
    }
}

/// Converts a JavaScript value to msgpack the way a JavaScript msgpack encoder would:
/// whole numbers as integers, other numbers as float64, binary as bin, arrays, plain objects
/// as maps, undefined and null as nil.
pub fn to_msgpack(value: &Unknown) -> Result<Value, Error> {
    to_msgpack_at(value, 0)
}

fn to_msgpack_at(value: &Unknown, depth: usize) -> Result<Value, Error> {
    if depth > MAX_PAYLOAD_DEPTH {
        return Err(Error::Range(format!(
            "payload nests deeper than {MAX_PAYLOAD_DEPTH} levels (is it cyclic?)"
        )));
    }
    let kind = value
        .get_type()
        .map_err(|e| Error::Type(e.reason.clone()))?;
    Ok(match kind {
        ValueType::Undefined | ValueType::Null => Value::Nil,
        ValueType::Boolean => Value::Boolean(boolean("payload value", value)?),
        ValueType::Number => number_value(number("payload value", value)?),
        ValueType::String => Value::from(string("payload value", value)?),
        ValueType::BigInt => {
            // SAFETY: checked to be a bigint.
            let big =
                unsafe { value.cast::<BigInt>() }.map_err(|e| Error::Type(e.reason.clone()))?;
            let (signed, lossless) = big.get_i64();
            if lossless {
                Value::from(signed)
            } else {
                let (_, unsigned, lossless) = big.get_u64();
                if !lossless {
                    return Err(Error::Range(
                        "payload bigint does not fit in 64 bits".into(),
                    ));
                }
                Value::from(unsigned)
            }
        }
        ValueType::Object => {
            if let Some(bytes) = binary(value)? {
                return Ok(Value::Binary(bytes.to_vec()));
            }
            // SAFETY: checked to be an object.
            let object =
                unsafe { value.cast::<Object>() }.map_err(|e| Error::Type(e.reason.clone()))?;
            let read = thrown(value.value().env, "payload");
            if object.is_array().unwrap_or(false) {
                let len = object.get_array_length().map_err(&read)?;
                let mut items = Vec::with_capacity(len as usize);
                for i in 0..len {
                    let item: Unknown = object.get_element(i).map_err(&read)?;
                    items.push(to_msgpack_at(&item, depth + 1)?);
                }
                Value::Array(items)
            } else {
                let keys = object.get_property_names().map_err(&read)?;
                let len = keys.get_array_length().map_err(&read)?;
                let mut entries = Vec::with_capacity(len as usize);
                for i in 0..len {
                    let key: String = keys.get_element(i).map_err(&read)?;
                    let item: Unknown = object.get_named_property(&key).map_err(&read)?;
                    entries.push((Value::from(key), to_msgpack_at(&item, depth + 1)?));
                }
                Value::Map(entries)
            }
        }
        _ => {
            return Err(Error::Type(format!(
                "payload cannot contain a {}",
                type_name(value)
            )))
        }
    })
}

fn number_value(n: f64) -> Value {
    const SAFE: f64 = 9_007_199_254_740_991.0;
    if n.fract() == 0.0 && n.abs() <= SAFE && !(n == 0.0 && n.is_sign_negative()) {
        if n >= 0.0 {
            Value::from(n as u64)
        } else {
            Value::from(n as i64)
        }
    } else {
        Value::F64(n)
    }
}
