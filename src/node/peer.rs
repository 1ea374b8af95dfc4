//! `RTCPeerConnection` as a native class; index.js wraps it into an EventEmitter. Its state
//! is the core's (`core::Connection`), read and changed through the driver's session; this
//! file parses what JavaScript passes in.

use super::channel::NativeDataChannel;
use super::convert;
use super::driver::{Driver, SessionCell};
use super::errors;
use super::ipc::NativePionIpc;
use crate::core::{
    CandidateHold, ConnectionCall, ConnectionId, ConnectionOptions, Object as CoreObject,
    SettleToken, MAX_MESSAGE_SIZE,
};
use crate::error::Error;
use crate::protocol::messages::{self, IceCandidate, IceServer, PcCreate, SessionDescription};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use rmpv::Value;
use std::rc::Rc;
use std::time::Instant;

#[napi(custom_finalize)]
pub struct NativePeerConnection {
    driver: Rc<Driver>,
    session: Rc<SessionCell>,
    id: ConnectionId,
    pc_id: String,
}

impl ObjectFinalize for NativePeerConnection {
    /// Collected (held weakly, see `core::Event::Weaken`, or released): its target entry
    /// and the core's state go at the driver's next chance.
    fn finalize(self, _env: Env) -> Result<()> {
        self.driver.collected(CoreObject::Connection(self.id));
        Ok(())
    }
}

type Parsed<T> = std::result::Result<T, Error>;

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
fn max_buffered_amount(options: &Object) -> Parsed<Option<u64>> {
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
fn candidate_hold(options: &Object) -> Parsed<CandidateHold> {
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

fn create_payload(pc_id: &str, options: Option<&Object>) -> Parsed<Vec<u8>> {
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

fn description(value: Option<Unknown>) -> Parsed<SessionDescription> {
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

fn candidate(value: Option<Unknown>) -> Parsed<IceCandidate> {
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

#[napi]
impl NativePeerConnection {
    /// `ipc` is the native PionIpc (or null); `options` as for RTCPeerConnection; `target`
    /// the JavaScript object events are emitted on. Never throws for bad options: they fail
    /// the connection instead.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        ipc: Option<&NativePionIpc>,
        options: Option<Unknown>,
        target: napi::bindgen_prelude::Object,
        unreadable: Option<String>,
    ) -> Result<Self> {
        // `_ipc` could not be read (index.js says why): that is the connection's failure.
        let options = match unreadable {
            Some(why) => Err(Error::Type(why)),
            None => convert::options("options", options),
        };
        let given_id = match &options {
            Ok(Some(o)) => convert::field(o, "_pcId")
                .and_then(|v| v.map(|v| convert::string("_pcId", &v)).transpose()),
            _ => Ok(None),
        };
        let pc_id = match &given_id {
            Ok(Some(id)) if !id.is_empty() => id.clone(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        // The first bad option fails the connection: _pcId, then _maxBufferedAmount, then
        // candidateHold, then the rest (pc.create's payload).
        let parsed = given_id.and(options).and_then(|options| {
            let max_buffered = options.as_ref().map_or(Ok(None), max_buffered_amount)?;
            let candidate_hold = options
                .as_ref()
                .map_or(Ok(CandidateHold::default()), candidate_hold)?;
            let kept = ConnectionOptions {
                max_buffered,
                candidate_hold,
            };
            Ok((create_payload(&pc_id, options.as_ref())?, kept))
        });
        let (payload, options) = match parsed {
            Ok((payload, kept)) => (Ok(payload), kept),
            Err(e) => (Err(e), ConnectionOptions::default()),
        };
        let (driver, payload) = match ipc {
            Some(ipc) => {
                let driver = ipc.driver().clone();
                let payload = match payload {
                    Ok(_) if !driver.is_started() => Err(Error::NotStarted),
                    other => other,
                };
                (driver, payload)
            }
            None => (
                Driver::detached(),
                payload.and(Err(Error::Type("_ipc is required".into()))),
            ),
        };
        let session = driver.session();
        let id =
            session
                .borrow_mut()
                .create_connection(pc_id.clone(), payload, options, Instant::now());
        driver.set_target(&env, id.0, &target)?;
        driver.after_command(&env)?;
        Ok(NativePeerConnection {
            driver,
            session,
            id,
            pc_id,
        })
    }

    fn read<T>(&self, f: impl FnOnce(&crate::core::Connection) -> T, gone: T) -> T {
        self.session.borrow().connection(self.id).map_or(gone, f)
    }

    #[napi(getter)]
    pub fn connection_state(&self) -> String {
        self.read(|c| c.connection_state().to_owned(), "closed".into())
    }

    #[napi(getter)]
    pub fn ice_connection_state(&self) -> String {
        self.read(|c| c.ice_connection_state().to_owned(), "closed".into())
    }

    #[napi(getter)]
    pub fn ice_gathering_state(&self) -> String {
        self.read(|c| c.ice_gathering_state().to_owned(), "complete".into())
    }

    #[napi(getter)]
    pub fn signaling_state(&self) -> String {
        self.read(|c| c.signaling_state().to_owned(), "closed".into())
    }

    #[napi(getter)]
    pub fn selected_candidate_pair<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let pair = self.read(|c| c.selected_candidate_pair().cloned(), None);
        // SAFETY: JavaScript thread.
        unsafe {
            let value = match pair {
                Some(pair) => super::values::candidate_pair(env.raw(), &pair)?,
                None => ToNapiValue::to_napi_value(env.raw(), Null)?,
            };
            Ok(Unknown::from_raw_unchecked(env.raw(), value))
        }
    }

    /// The description set by setLocalDescription() with the candidates gathered since
    /// (and `a=end-of-candidates` once gathering is complete), or null before one was set.
    #[napi(getter)]
    pub fn local_description<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let description = self.read(|c| c.local_description(), None);
        // SAFETY: JavaScript thread.
        unsafe {
            let value = match description {
                Some(d) => super::values::description(env.raw(), &d.kind, &d.sdp)?,
                None => ToNapiValue::to_napi_value(env.raw(), Null)?,
            };
            Ok(Unknown::from_raw_unchecked(env.raw(), value))
        }
    }

    #[napi(getter)]
    pub fn max_message_size(&self) -> u32 {
        MAX_MESSAGE_SIZE as u32
    }

    #[napi(getter)]
    pub fn pc_id(&self) -> String {
        self.pc_id.clone()
    }

    /// Returns the native channel; index.js wraps it and attaches the wrapper.
    #[napi]
    pub fn create_data_channel(
        &self,
        env: Env,
        label: Unknown,
        options: Option<Unknown>,
    ) -> Result<NativeDataChannel> {
        let parsed = (|| -> Parsed<(String, bool)> {
            let label = convert::string("label", &label)?;
            let ordered = match convert::options("options", options)? {
                Some(o) => match convert::field(&o, "ordered")? {
                    Some(v) => convert::boolean("options.ordered", &v)?,
                    None => true,
                },
                None => true,
            };
            Ok((label, ordered))
        })();
        let (label, ordered) = parsed.map_err(|e| errors::throw(&env, e))?;
        let created =
            self.session
                .borrow_mut()
                .create_channel(self.id, label, ordered, Instant::now());
        let channel = created.map_err(|e| errors::throw(&env, e))?;
        self.driver.after_command(&env)?;
        Ok(NativeDataChannel::new(
            self.driver.clone(),
            self.session.clone(),
            channel,
        ))
    }

    /// A promise method: `call` goes to the core, or the parse error rejects.
    fn call<'env>(&self, env: &'env Env, call: Parsed<ConnectionCall>) -> Result<Unknown<'env>> {
        let (token, promise) = self.driver.promise(env)?;
        match call {
            Ok(call) => {
                self.session
                    .borrow_mut()
                    .call(self.id, call, SettleToken(token), Instant::now());
                self.driver.after_command(env)?;
            }
            Err(e) => self.driver.settle_later(env, token, Err(e))?,
        }
        Ok(promise)
    }

    #[napi]
    pub fn create_offer<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        self.call(env, Ok(ConnectionCall::CreateOffer))
    }

    #[napi]
    pub fn create_answer<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        self.call(env, Ok(ConnectionCall::CreateAnswer))
    }

    #[napi]
    pub fn restart_ice<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        self.call(env, Ok(ConnectionCall::RestartIce))
    }

    #[napi]
    pub fn get_sctp_stats<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        self.call(env, Ok(ConnectionCall::GetSctpStats))
    }

    #[napi]
    pub fn set_local_description<'env>(
        &self,
        env: &'env Env,
        description: Option<Unknown>,
    ) -> Result<Unknown<'env>> {
        let call = self::description(description).map(ConnectionCall::SetLocalDescription);
        self.call(env, call)
    }

    #[napi]
    pub fn set_remote_description<'env>(
        &self,
        env: &'env Env,
        description: Option<Unknown>,
    ) -> Result<Unknown<'env>> {
        let call = self::description(description).map(ConnectionCall::SetRemoteDescription);
        self.call(env, call)
    }

    #[napi]
    pub fn add_ice_candidate<'env>(
        &self,
        env: &'env Env,
        candidate: Option<Unknown>,
    ) -> Result<Unknown<'env>> {
        let call = self::candidate(candidate).map(ConnectionCall::AddIceCandidate);
        self.call(env, call)
    }

    /// Its channels are 'closing' as soon as this returns; the promise settles once the
    /// connection is closed on the sidecar.
    #[napi]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let (token, promise) = self.driver.promise(env)?;
        self.session
            .borrow_mut()
            .close_connection(self.id, SettleToken(token), Instant::now());
        self.driver.after_command(env)?;
        Ok(promise)
    }
}
