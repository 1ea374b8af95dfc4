//! The frame header: a msgpack map with the omit-empty rules of the sidecar.

use super::value::{decode_value, ValueError};
use rmpv::Value;
use thiserror::Error;

/// The `type` key of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameType {
    #[default]
    Request,
    Response,
    Event,
}

impl FrameType {
    pub fn as_str(self) -> &'static str {
        match self {
            FrameType::Request => "req",
            FrameType::Response => "res",
            FrameType::Event => "evt",
        }
    }
}

/// A decoded or to-be-encoded header. Empty strings mean "absent" and are never written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub kind: FrameType,
    pub id: u32,
    pub method: String,
    pub pc_id: String,
    pub dc_label: String,
    /// Present in every response; the sidecar also writes `ok: false` into events.
    pub ok: Option<bool>,
    pub error: String,
    pub event: String,
    pub is_binary: bool,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HeaderError {
    #[error("header is not valid msgpack: {0}")]
    Msgpack(#[from] ValueError),
    #[error("header is not a msgpack map")]
    NotAMap,
    #[error("header key {0:?} has the wrong type")]
    WrongType(&'static str),
    #[error("header has no valid type (got {0:?})")]
    BadType(String),
    #[error("header id {0} does not fit in u32")]
    IdOutOfRange(u64),
}

impl Header {
    pub fn request(id: u32, method: &str) -> Self {
        Header {
            kind: FrameType::Request,
            id,
            method: method.to_owned(),
            ..Header::default()
        }
    }

    /// Appends the msgpack encoding of this header. Integers are unsigned, booleans real
    /// booleans and empty strings left out, as the sidecar requires (PROTOCOL.md, trap 1).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let strings: [(&str, &str); 5] = [
            ("method", &self.method),
            ("pcId", &self.pc_id),
            ("dcLabel", &self.dc_label),
            ("error", &self.error),
            ("event", &self.event),
        ];
        let present = strings.iter().filter(|(_, v)| !v.is_empty()).count();
        let len = 2 + present + usize::from(self.ok.is_some()) + usize::from(self.is_binary);
        // Writes into a Vec cannot fail.
        let _ = rmp::encode::write_map_len(out, len as u32);
        write_str(out, "type");
        write_str(out, self.kind.as_str());
        write_str(out, "id");
        let _ = rmp::encode::write_uint(out, u64::from(self.id));
        for (key, value) in strings {
            if !value.is_empty() {
                write_str(out, key);
                write_str(out, value);
            }
        }
        if let Some(ok) = self.ok {
            write_str(out, "ok");
            let _ = rmp::encode::write_bool(out, ok);
        }
        if self.is_binary {
            write_str(out, "isBinary");
            let _ = rmp::encode::write_bool(out, true);
        }
    }

    /// Decodes a header as the sidecar writes it. Unknown keys are ignored; known keys of the
    /// wrong type are errors, since they mean the stream cannot be trusted.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        let Value::Map(entries) = decode_value(bytes)? else {
            return Err(HeaderError::NotAMap);
        };
        let mut header = Header::default();
        let mut kind = None;
        for (key, value) in entries {
            let Value::String(key) = key else { continue };
            let Some(key) = key.as_str() else { continue };
            match key {
                "type" => kind = Some(string(value, "type")?),
                "id" => {
                    let id = match value {
                        Value::Integer(i) => i.as_u64().ok_or(HeaderError::WrongType("id"))?,
                        Value::Nil => 0,
                        _ => return Err(HeaderError::WrongType("id")),
                    };
                    header.id = u32::try_from(id).map_err(|_| HeaderError::IdOutOfRange(id))?;
                }
                "method" => header.method = string(value, "method")?,
                "pcId" => header.pc_id = string(value, "pcId")?,
                "dcLabel" => header.dc_label = string(value, "dcLabel")?,
                "error" => header.error = string(value, "error")?,
                "event" => header.event = string(value, "event")?,
                "ok" => header.ok = boolean(value, "ok")?,
                "isBinary" => header.is_binary = boolean(value, "isBinary")?.unwrap_or(false),
                _ => {}
            }
        }
        header.kind = match kind.as_deref() {
            Some("req") => FrameType::Request,
            Some("res") => FrameType::Response,
            Some("evt") => FrameType::Event,
            other => return Err(HeaderError::BadType(other.unwrap_or("").to_owned())),
        };
        Ok(header)
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let _ = rmp::encode::write_str(out, s);
}

fn string(value: Value, key: &'static str) -> Result<String, HeaderError> {
    match value {
        Value::String(s) => s.into_str().ok_or(HeaderError::WrongType(key)),
        Value::Nil => Ok(String::new()),
        _ => Err(HeaderError::WrongType(key)),
    }
}

fn boolean(value: Value, key: &'static str) -> Result<Option<bool>, HeaderError> {
    match value {
        Value::Boolean(b) => Ok(Some(b)),
        Value::Nil => Ok(None),
        _ => Err(HeaderError::WrongType(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_omits_empty_fields() {
        let mut bytes = Vec::new();
        Header::request(7, "ping").encode(&mut bytes);
        let Value::Map(entries) = decode_value(&bytes).unwrap() else {
            panic!("not a map")
        };
        let keys: Vec<_> = entries
            .iter()
            .map(|(k, _)| k.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(keys, ["type", "id", "method"]);
    }

    #[test]
    fn full_header_round_trips() {
        let header = Header {
            kind: FrameType::Response,
            id: u32::MAX,
            method: "dc.send".into(),
            pc_id: "pc".into(),
            dc_label: "chat".into(),
            ok: Some(false),
            error: "boom".into(),
            event: "x".into(),
            is_binary: true,
        };
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        assert_eq!(Header::decode(&bytes).unwrap(), header);
    }

    #[test]
    fn wrong_types_are_errors() {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(
            &mut bytes,
            &Value::Map(vec![
                (Value::from("type"), Value::from("res")),
                (Value::from("id"), Value::from(-1)),
            ]),
        )
        .unwrap();
        assert_eq!(Header::decode(&bytes), Err(HeaderError::WrongType("id")));
        assert_eq!(Header::decode(&[0x90]), Err(HeaderError::NotAMap));
    }
}
