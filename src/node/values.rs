//! JavaScript values built from the crate's types, on the JavaScript thread (raw napi: these
//! run once per event).

use crate::core::Outcome;
use crate::protocol::messages::{CandidateInfo, SctpStats};
use crate::protocol::{Frame, FrameType};
use napi::bindgen_prelude::*;
use napi::sys;
use std::ptr;

pub(super) unsafe fn js_string(env: sys::napi_env, s: &str) -> Result<sys::napi_value> {
    ToNapiValue::to_napi_value(env, s)
}

pub(super) unsafe fn null(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    check_status!(sys::napi_get_null(env, &mut value))?;
    Ok(value)
}

pub(super) unsafe fn undefined(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    check_status!(sys::napi_get_undefined(env, &mut value))?;
    Ok(value)
}

pub(super) unsafe fn object(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    check_status!(sys::napi_create_object(env, &mut value))?;
    Ok(value)
}

pub(super) unsafe fn set(
    env: sys::napi_env,
    object: sys::napi_value,
    key: &str,
    value: sys::napi_value,
) -> Result<()> {
    // Keys are short literals: NUL-terminated on the stack, no allocation per property.
    let mut buf = [0u8; 32];
    assert!(
        key.len() < buf.len() && !key.contains('\0'),
        "short literal key"
    );
    buf[..key.len()].copy_from_slice(key.as_bytes());
    check_status!(sys::napi_set_named_property(
        env,
        object,
        buf.as_ptr().cast(),
        value
    ))
}

pub(super) unsafe fn set_str(
    env: sys::napi_env,
    object: sys::napi_value,
    key: &str,
    value: &str,
) -> Result<()> {
    set(env, object, key, js_string(env, value)?)
}

pub(super) unsafe fn number(env: sys::napi_env, n: f64) -> Result<sys::napi_value> {
    ToNapiValue::to_napi_value(env, n)
}

/// A Buffer with a copy of `bytes`.
pub(super) unsafe fn buffer(env: sys::napi_env, bytes: &[u8]) -> Result<sys::napi_value> {
    let mut data = ptr::null_mut();
    let mut value = ptr::null_mut();
    check_status!(sys::napi_create_buffer_copy(
        env,
        bytes.len(),
        bytes.as_ptr().cast(),
        &mut data,
        &mut value
    ))?;
    Ok(value)
}

/// `{ header, payload }` of a response.
pub(super) unsafe fn response(env: sys::napi_env, frame: &Frame) -> Result<sys::napi_value> {
    let h = &frame.header;
    let header = object(env)?;
    let kind = match h.kind {
        FrameType::Request => "req",
        FrameType::Response => "res",
        FrameType::Event => "evt",
    };
    set_str(env, header, "type", kind)?;
    set(env, header, "id", number(env, f64::from(h.id))?)?;
    for (key, value) in [
        ("method", &h.method),
        ("pcId", &h.pc_id),
        ("dcLabel", &h.dc_label),
        ("error", &h.error),
        ("event", &h.event),
    ] {
        if !value.is_empty() {
            set_str(env, header, key, value)?;
        }
    }
    if let Some(ok) = h.ok {
        set(env, header, "ok", ToNapiValue::to_napi_value(env, ok)?)?;
    }
    if h.is_binary {
        set(
            env,
            header,
            "isBinary",
            ToNapiValue::to_napi_value(env, true)?,
        )?;
    }
    let result = object(env)?;
    set(env, result, "header", header)?;
    set(env, result, "payload", buffer(env, &frame.payload)?)?;
    Ok(result)
}

pub(super) unsafe fn candidate_info(
    env: sys::napi_env,
    info: &CandidateInfo,
) -> Result<sys::napi_value> {
    let value = object(env)?;
    set_str(env, value, "type", &info.kind)?;
    set_str(env, value, "address", &info.address)?;
    set(env, value, "port", number(env, f64::from(info.port))?)?;
    set_str(env, value, "protocol", &info.protocol)?;
    if let Some(relay) = &info.relay_protocol {
        set_str(env, value, "relayProtocol", relay)?;
    }
    Ok(value)
}

/// The selected pair as the getter returns it.
pub(super) unsafe fn candidate_pair(
    env: sys::napi_env,
    pair: &crate::protocol::messages::CandidatePair,
) -> Result<sys::napi_value> {
    let value = object(env)?;
    set(env, value, "local", candidate_info(env, &pair.local)?)?;
    set(env, value, "remote", candidate_info(env, &pair.remote)?)?;
    Ok(value)
}

pub(super) unsafe fn sctp_stats(env: sys::napi_env, stats: &SctpStats) -> Result<sys::napi_value> {
    let value = object(env)?;
    set(
        env,
        value,
        "bytesSent",
        number(env, stats.bytes_sent as f64)?,
    )?;
    set(
        env,
        value,
        "bytesReceived",
        number(env, stats.bytes_received as f64)?,
    )?;
    set(env, value, "srttMs", number(env, stats.srtt_ms)?)?;
    set(
        env,
        value,
        "congestionWindow",
        number(env, stats.congestion_window as f64)?,
    )?;
    set(
        env,
        value,
        "receiverWindow",
        number(env, stats.receiver_window as f64)?,
    )?;
    set(env, value, "mtu", number(env, stats.mtu as f64)?)?;
    Ok(value)
}

/// `{ type, sdp }`.
pub(super) unsafe fn description(
    env: sys::napi_env,
    kind: &str,
    sdp: &str,
) -> Result<sys::napi_value> {
    let value = object(env)?;
    set_str(env, value, "type", kind)?;
    set_str(env, value, "sdp", sdp)?;
    Ok(value)
}

pub(super) unsafe fn outcome(env: sys::napi_env, outcome: Outcome) -> Result<sys::napi_value> {
    match outcome {
        Outcome::Unit => undefined(env),
        Outcome::Frame(frame) => response(env, &frame),
        Outcome::Description { kind, sdp } => description(env, kind, &sdp),
        Outcome::SctpStats(None) => null(env),
        Outcome::SctpStats(Some(stats)) => sctp_stats(env, &stats),
    }
}
