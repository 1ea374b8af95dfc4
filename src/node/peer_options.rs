//! What JavaScript passes to RTCPeerConnection and its signalling methods, parsed: the
//! options (`pc.create`'s payload, `_maxBufferedAmount`, `candidateHold`), descriptions and
//! candidates. Each error names the field.

use super::convert;
use crate::core::CandidateHold;
use crate::error::Error;
use crate::protocol::messages::{self, IceCandidate, IceServer, PcCreate, SessionDescription};
use napi::bindgen_prelude::*;
use rmpv::Value;

pub(super) type Parsed<T> = std::result::Result<T, Error>;

fn ice_servers(value: Option<Unknown>) -> Parsed<Vec<IceServer>> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let list = convert::array_items("iceServers", &value)?;
    let mut servers = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let what = format!("iceServers[{i}]");
        let server = convert::options(&what, Some(*item))?
            .ok_or_else(|| Error::Type(format!("{what} must be an object")))?;
        let urls = match convert::field(&server, "urls")? {
            None => Vec::new(),
            Some(urls) if convert::kind(&urls) == ValueType::String => {
                vec![convert::string(&format!("{what}.urls"), &urls)?]
            }
            Some(urls) => convert::array_items(&format!("{what}.urls"), &urls)?
                .iter()
                .map(|u| convert::string(&format!("{what}.urls[]"), u))
                .collect::<Parsed<_>>()?,
        };
        let text = |key: &str| -> Parsed<Option<String>> {
            convert::field(&server, key)?
                .map(|v| convert::string(&format!("{what}.{key}"), &v))
                .transpose()
        };
        servers.push(IceServer {
            urls,
            username: text("username")?,
            credential: text("credential")?,
        });
    }
    Ok(servers)
}

/// The sidecar's whole-number settings (u32; see the README's table).
const NUMBER_SETTINGS: [&str; 6] = [
    "sctpRtoMax",
    "sctpMaxReceiveBufferSize",
    "iceDisconnectedTimeout",
    "iceFailedTimeout",
    "iceKeepAliveInterval",
    "stunGatherTimeout",
];
/// The sidecar's filter settings: objects of string lists.
const FILTER_SETTINGS: [(&str, [&str; 2]); 2] = [
    ("interfaceFilter", ["denyPrefixes", "allowPrefixes"]),
    ("ipFilter", ["denyCIDRs", "allowCIDRs"]),
];

/// Checks the settings the sidecar knows by type and range, naming the field, and drops
/// those given as null or undefined; -0 is 0. Keys it does not know pass through (the
/// sidecar ignores them), their numbers held to the same u32 range.
fn settings(value: Value) -> Parsed<Value> {
    let Value::Map(entries) = value else {
        return Err(Error::Type("settings must be a plain object".into()));
    };
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let name = key.as_str().unwrap_or("?").to_owned();
        if value.is_nil() {
            continue;
        }
        let value = if NUMBER_SETTINGS.contains(&name.as_str()) {
            whole_number(value, &name)?
        } else if let Some((_, lists)) = FILTER_SETTINGS.iter().find(|(n, _)| *n == name) {
            filter(value, &name, lists)?
        } else {
            check_settings(&value, &format!(".{name}"))?;
            value
        };
        out.push((key, value));
    }
    Ok(Value::Map(out))
}

/// The value of the whole-number setting `name`.
fn whole_number(value: Value, name: &str) -> Parsed<Value> {
    match value {
        // -0 arrives as a float; it is 0.
        Value::F64(0.0) => Ok(Value::from(0u32)),
        Value::F64(_) | Value::Integer(_) => {
            check_settings(&value, &format!(".{name}"))?;
            Ok(value)
        }
        other => Err(Error::Type(format!(
            "settings.{name} must be a whole number from 0 to 4294967295, got {}",
            value_kind(&other)
        ))),
    }
}

fn filter(value: Value, name: &str, lists: &[&str; 2]) -> Parsed<Value> {
    let Value::Map(entries) = value else {
        return Err(Error::Type(format!(
            "settings.{name} must be an object {{ {}?, {}? }}, got {}",
            lists[0],
            lists[1],
            value_kind(&value)
        )));
    };
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let field = key.as_str().unwrap_or("?").to_owned();
        if value.is_nil() {
            continue;
        }
        if lists.contains(&field.as_str()) {
            let strings = matches!(&value, Value::Array(items) if items.iter().all(Value::is_str));
            if !strings {
                return Err(Error::Type(format!(
                    "settings.{name}.{field} must be an array of strings, got {}",
                    value_kind(&value)
                )));
            }
        }
        out.push((key, value));
    }
    Ok(Value::Map(out))
}

/// What a settings value was, for messages.
fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Nil => "null",
        Value::Boolean(_) => "a boolean",
        Value::Integer(_) | Value::F64(_) | Value::F32(_) => "a number",
        Value::String(_) => "a string",
        Value::Binary(_) => "binary data",
        Value::Array(_) => "an array",
        Value::Map(_) => "an object",
        Value::Ext(..) => "an extension value",
    }
}

/// Every number in the settings must be a whole number from 0 to 2^32 − 1: the sidecar
/// would silently wrap anything else (PROTOCOL.md, trap 13).
fn check_settings(value: &Value, path: &str) -> Parsed<()> {
    match value {
        Value::F64(n) => Err(Error::Range(format!(
            "settings{path} must be a whole number from 0 to 4294967295, got {n}"
        ))),
        Value::Integer(i) if i.as_u64().is_none_or(|n| n > u64::from(u32::MAX)) => {
            Err(Error::Range(format!(
                "settings{path} must be a whole number from 0 to 4294967295, got {i}"
            )))
        }
        Value::Map(entries) => entries.iter().try_for_each(|(k, v)| {
            check_settings(v, &format!("{path}.{}", k.as_str().unwrap_or("?")))
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_settings(v, &format!("{path}[{i}]"))),
        _ => Ok(()),
    }
}

/// `_maxBufferedAmount`: a whole number of bytes, or absent.
pub(super) fn max_buffered_amount(options: &Object) -> Parsed<Option<u64>> {
    let Some(value) = convert::field(options, "_maxBufferedAmount")? else {
        return Ok(None);
    };
    let n = convert::number("_maxBufferedAmount", &value)?;
    if !(0.0..=9_007_199_254_740_991.0).contains(&n) || n.fract() != 0.0 {
        return Err(Error::Range(format!(
            "_maxBufferedAmount must be a whole number of bytes >= 0, got {n}"
        )));
    }
    Ok(Some(n as u64))
}

/// `candidateHold`: absent or `true` (the offerer holds its candidates, released at the
/// latest the default time after the answer is applied), `false` (no hold), or
/// `{ timeoutMs }` (held, released at the latest this long after the answer).
pub(super) fn candidate_hold(options: &Object) -> Parsed<CandidateHold> {
    let Some(value) = convert::field(options, "candidateHold")? else {
        return Ok(CandidateHold::default());
    };
    match convert::kind(&value) {
        ValueType::Boolean if convert::boolean("candidateHold", &value)? => {
            Ok(CandidateHold::default())
        }
        ValueType::Boolean => Ok(CandidateHold::Off),
        ValueType::Object => {
            let hold = convert::options("candidateHold", Some(value))?
                .ok_or_else(|| Error::Type("candidateHold must be an object".into()))?;
            match convert::field(&hold, "timeoutMs")? {
                Some(ms) => Ok(CandidateHold::After(convert::millis(
                    "candidateHold.timeoutMs",
                    &ms,
                )?)),
                None => Ok(CandidateHold::default()),
            }
        }
        _ => Err(Error::Type(format!(
            "candidateHold must be a boolean or {{ timeoutMs }}, got {}",
            convert::type_name(&value)
        ))),
    }
}

pub(super) fn create_payload(pc_id: &str, options: Option<&Object>) -> Parsed<Vec<u8>> {
    let (servers, settings) = match options {
        Some(options) => (
            ice_servers(convert::field(options, "iceServers")?)?,
            match convert::field(options, "settings")? {
                Some(settings) => {
                    if convert::kind(&settings) != ValueType::Object {
                        return Err(Error::Type("settings must be a plain object".into()));
                    }
                    Some(self::settings(convert::to_msgpack(&settings)?)?)
                }
                None => None,
            },
        ),
        None => (Vec::new(), None),
    };
    Ok(messages::encode(&PcCreate {
        pc_id: pc_id.to_owned(),
        ice_servers: servers,
        settings,
    }))
}

pub(super) fn description(value: Option<Unknown>) -> Parsed<SessionDescription> {
    let object = convert::options("description", value)?
        .ok_or_else(|| Error::Type("description must be an object { type, sdp }".into()))?;
    let field = |key: &str| -> Parsed<String> {
        let value = convert::field(&object, key)?
            .ok_or_else(|| Error::Type(format!("description.{key} is required")))?;
        convert::string(&format!("description.{key}"), &value)
    };
    Ok(SessionDescription {
        kind: field("type")?,
        sdp: field("sdp")?,
    })
}

pub(super) fn candidate(value: Option<Unknown>) -> Parsed<IceCandidate> {
    let object = convert::options("candidate", value)?
        .ok_or_else(|| Error::Type("candidate must be an object".into()))?;
    let candidate = match convert::field(&object, "candidate")? {
        Some(v) => convert::string("candidate.candidate", &v)?,
        None => String::new(),
    };
    let sdp_mid = convert::field(&object, "sdpMid")?
        .map(|v| convert::string("candidate.sdpMid", &v))
        .transpose()?;
    let sdp_m_line_index = match convert::field(&object, "sdpMLineIndex")? {
        Some(v) => {
            let n = convert::number("candidate.sdpMLineIndex", &v)?;
            if !(0.0..=65535.0).contains(&n) || n.fract() != 0.0 {
                return Err(Error::Range(format!(
                    "candidate.sdpMLineIndex must be a whole number from 0 to 65535, got {n}"
                )));
            }
            Some(n as u32)
        }
        None => None,
    };
    Ok(IceCandidate {
        candidate,
        sdp_mid,
        sdp_m_line_index,
    })
}
