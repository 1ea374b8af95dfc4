//! The frame header: a msgpack map with the omit-empty rules of the sidecar.

use super::text::Text;
use super::value::{decode_value, ValueError};
use bytes::Bytes;
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
    pub method: Text,
    pub pc_id: Text,
    pub dc_label: Text,
    /// Present in every response; the sidecar also writes `ok: false` into events.
    pub ok: Option<bool>,
    pub error: Text,
    pub event: Text,
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
            method: method.into(),
            ..Header::default()
        }
    }

    /// Appends the msgpack encoding of this header. Integers are unsigned, booleans real
    /// booleans and empty strings left out, as the sidecar requires (PROTOCOL.md, trap 1).
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_parts(
            out,
            self.kind,
            self.id,
            [
                ("method", &self.method),
                ("pcId", &self.pc_id),
                ("dcLabel", &self.dc_label),
                ("error", &self.error),
                ("event", &self.event),
            ],
            self.ok,
            self.is_binary,
        );
    }

    /// Decodes a header as the sidecar writes it. Unknown keys are ignored; known keys of the
    /// wrong type are errors, since they mean the stream cannot be trusted.
    ///
    /// Headers as the sidecar writes them (a map of string keys and scalar values) are read
    /// in one pass without building a value tree; anything else, including every error, goes
    /// through [`Header::decode_tree`], so both give the same answer for any input (checked
    /// by property tests and the `header` fuzz target).
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        Self::decode_shared(&Bytes::copy_from_slice(bytes))
    }

    /// As [`decode`](Self::decode), with the strings slices of `bytes` (no copies).
    pub fn decode_shared(bytes: &Bytes) -> Result<Self, HeaderError> {
        match fast::decode(bytes) {
            Some(header) => Ok(header),
            None => Self::decode_tree(bytes),
        }
    }

    /// The reference decoder: the whole value tree first, then the keys.
    pub fn decode_tree(bytes: &[u8]) -> Result<Self, HeaderError> {
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
                "method" => header.method = string(value, "method")?.into(),
                "pcId" => header.pc_id = string(value, "pcId")?.into(),
                "dcLabel" => header.dc_label = string(value, "dcLabel")?.into(),
                "error" => header.error = string(value, "error")?.into(),
                "event" => header.event = string(value, "event")?.into(),
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

/// A request header over borrowed strings: what every request encodes, without copying the
/// connection id and label per message.
#[derive(Debug, Clone, Copy)]
pub struct RequestHeader<'a> {
    pub id: u32,
    pub method: &'a str,
    pub pc_id: &'a str,
    pub dc_label: &'a str,
    pub is_binary: bool,
}

/// Something that can be written as a frame header.
pub trait EncodeHeader {
    fn encode_header(&self, out: &mut Vec<u8>);
}

impl EncodeHeader for Header {
    fn encode_header(&self, out: &mut Vec<u8>) {
        self.encode(out);
    }
}

impl EncodeHeader for RequestHeader<'_> {
    fn encode_header(&self, out: &mut Vec<u8>) {
        encode_parts(
            out,
            FrameType::Request,
            self.id,
            [
                ("method", self.method),
                ("pcId", self.pc_id),
                ("dcLabel", self.dc_label),
                ("error", ""),
                ("event", ""),
            ],
            None,
            self.is_binary,
        );
    }
}

fn encode_parts(
    out: &mut Vec<u8>,
    kind: FrameType,
    id: u32,
    strings: [(&str, &str); 5],
    ok: Option<bool>,
    is_binary: bool,
) {
    let present = strings.iter().filter(|(_, v)| !v.is_empty()).count();
    let len = 2 + present + usize::from(ok.is_some()) + usize::from(is_binary);
    // Writes into a Vec cannot fail.
    let _ = rmp::encode::write_map_len(out, len as u32);
    write_str(out, "type");
    write_str(out, kind.as_str());
    write_str(out, "id");
    let _ = rmp::encode::write_uint(out, u64::from(id));
    for (key, value) in strings {
        if !value.is_empty() {
            write_str(out, key);
            write_str(out, value);
        }
    }
    if let Some(ok) = ok {
        write_str(out, "ok");
        let _ = rmp::encode::write_bool(out, ok);
    }
    if is_binary {
        write_str(out, "isBinary");
        let _ = rmp::encode::write_bool(out, true);
    }
}

/// The one-pass decoder of ordinary headers. `None` means "not ordinary": the caller falls
/// back to the tree decoder, which also produces the exact error.
mod fast {
    use super::Text;
    use super::{FrameType, Header};
    use bytes::Bytes;

    struct Cursor<'a>(&'a [u8]);

    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (head, tail) = self.0.split_at(n);
            self.0 = tail;
            Some(head)
        }

        fn byte(&mut self) -> Option<u8> {
            self.take(1).map(|b| b[0])
        }

        fn be(&mut self, n: usize) -> Option<u64> {
            Some(
                self.take(n)?
                    .iter()
                    .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
            )
        }

        /// A string's bytes after its marker, not yet checked to be UTF-8: a key that is
        /// one of the header's own is UTF-8, and so is a type that matches one.
        fn str_body(&mut self, marker: u8) -> Option<&'a [u8]> {
            let len = match marker {
                0xa0..=0xbf => usize::from(marker & 0x1f),
                0xd9..=0xdb => self.be(1 << (marker - 0xd9))? as usize,
                _ => return None,
            };
            self.take(len)
        }
    }

    enum Scalar<'a> {
        Nil,
        Bool(bool),
        Uint(u64),
        Str(&'a [u8]),
        /// Negative integers, floats, binaries: only ever skipped.
        Other,
    }

    fn scalar<'a>(c: &mut Cursor<'a>) -> Option<Scalar<'a>> {
        let marker = c.byte()?;
        Some(match marker {
            0x00..=0x7f => Scalar::Uint(u64::from(marker)),
            0xa0..=0xbf | 0xd9..=0xdb => Scalar::Str(c.str_body(marker)?),
            0xc0 => Scalar::Nil,
            0xc2 => Scalar::Bool(false),
            0xc3 => Scalar::Bool(true),
            0xcc..=0xcf => Scalar::Uint(c.be(1 << (marker - 0xcc))?),
            0xe0..=0xff => Scalar::Other,
            0xd0..=0xd3 => {
                c.take(1 << (marker - 0xd0))?;
                Scalar::Other
            }
            0xca => {
                c.take(4)?;
                Scalar::Other
            }
            0xcb => {
                c.take(8)?;
                Scalar::Other
            }
            0xc4..=0xc6 => {
                let len = c.be(1 << (marker - 0xc4))? as usize;
                c.take(len)?;
                Scalar::Other
            }
            // containers, extension types, unused markers
            _ => return None,
        })
    }

    fn text(value: Scalar<'_>, whole: &Bytes) -> Option<Text> {
        match value {
            // Invalid UTF-8 is not ordinary: the reference decoder says what is wrong.
            Scalar::Str(s) => Some(Text::shared(whole, std::str::from_utf8(s).ok()?)),
            Scalar::Nil => Some(Text::default()),
            _ => None,
        }
    }

    fn flag(value: Scalar<'_>) -> Option<Option<bool>> {
        match value {
            Scalar::Bool(b) => Some(Some(b)),
            Scalar::Nil => Some(None),
            _ => None,
        }
    }

    /// The strings of the header are slices of `bytes`.
    pub(super) fn decode(bytes: &Bytes) -> Option<Header> {
        let mut c = Cursor(bytes);
        let marker = c.byte()?;
        let len = match marker {
            0x80..=0x8f => usize::from(marker & 0x0f),
            0xde => c.be(2)? as usize,
            _ => return None,
        };
        let mut header = Header::default();
        let mut kind = None;
        for _ in 0..len {
            let key_marker = c.byte()?;
            let key = c.str_body(key_marker)?;
            let value = scalar(&mut c)?;
            match key {
                b"type" => {
                    kind = Some(match value {
                        Scalar::Str(b"req") => FrameType::Request,
                        Scalar::Str(b"res") => FrameType::Response,
                        Scalar::Str(b"evt") => FrameType::Event,
                        _ => return None,
                    })
                }
                b"id" => {
                    header.id = match value {
                        Scalar::Uint(id) => u32::try_from(id).ok()?,
                        Scalar::Nil => 0,
                        _ => return None,
                    }
                }
                b"method" => header.method = text(value, bytes)?,
                b"pcId" => header.pc_id = text(value, bytes)?,
                b"dcLabel" => header.dc_label = text(value, bytes)?,
                b"error" => header.error = text(value, bytes)?,
                b"event" => header.event = text(value, bytes)?,
                b"ok" => header.ok = flag(value)?,
                b"isBinary" => header.is_binary = flag(value)?.unwrap_or(false),
                // Never sent by the sidecar; invalid UTF-8 is the reference decoder's to
                // report, wherever it is.
                _ => {
                    std::str::from_utf8(key).ok()?;
                    if let Scalar::Str(s) = value {
                        std::str::from_utf8(s).ok()?;
                    }
                }
            }
        }
        if !c.0.is_empty() {
            return None;
        }
        header.kind = kind?;
        Some(header)
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
        // what the sidecar writes takes the one-pass path
        assert_eq!(fast::decode(&Bytes::from(bytes)), Some(header));
    }

    #[test]
    fn borrowed_request_header_encodes_like_the_owned_one() {
        for is_binary in [false, true] {
            let owned = Header {
                kind: FrameType::Request,
                id: 70_000,
                method: "dc.send".into(),
                pc_id: "pc-1".into(),
                dc_label: "chat".into(),
                is_binary,
                ..Header::default()
            };
            let borrowed = RequestHeader {
                id: 70_000,
                method: "dc.send",
                pc_id: "pc-1",
                dc_label: "chat",
                is_binary,
            };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            owned.encode(&mut a);
            borrowed.encode_header(&mut b);
            assert_eq!(a, b);
        }
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

    /// The one-pass decoder compares the known keys as bytes and checks UTF-8 where it
    /// reads a string; invalid UTF-8 anywhere else still makes it hand over to the tree
    /// decoder, so both agree.
    #[test]
    fn invalid_utf8_anywhere_is_an_error_of_both_decoders() {
        // {type: "evt", <a1 ff>: <a1 fe>, event: "dc.message"}
        let mut skipped = vec![0x83, 0xa4];
        skipped.extend_from_slice(b"type");
        skipped.extend_from_slice(&[0xa3]);
        skipped.extend_from_slice(b"evt");
        skipped.extend_from_slice(&[0xa1, 0xff, 0xa1, 0xfe, 0xa5]);
        skipped.extend_from_slice(b"event");
        skipped.extend_from_slice(&[0xaa]);
        skipped.extend_from_slice(b"dc.message");
        assert!(fast::decode(&Bytes::from(skipped.clone())).is_none());
        let invalid = Err(HeaderError::Msgpack(ValueError::InvalidUtf8));
        assert_eq!(Header::decode(&skipped), invalid);
        assert_eq!(Header::decode_tree(&skipped), invalid);
        // The same with a valid unknown key and value: the fast path takes it.
        let valid: Vec<u8> = skipped
            .iter()
            .map(|&b| if b >= 0xfe { b'x' } else { b })
            .collect();
        let decoded = fast::decode(&Bytes::from(valid.clone())).expect("the fast path");
        assert_eq!(decoded.event.as_str(), "dc.message");
        assert_eq!(Ok(decoded), Header::decode_tree(&valid));
        // {type: "evt", pcId: <a1 ff>}
        let mut read = vec![0x82, 0xa4];
        read.extend_from_slice(b"type");
        read.extend_from_slice(&[0xa3]);
        read.extend_from_slice(b"evt");
        read.extend_from_slice(&[0xa4]);
        read.extend_from_slice(b"pcId");
        read.extend_from_slice(&[0xa1, 0xff]);
        assert!(fast::decode(&Bytes::from(read.clone())).is_none());
        assert_eq!(Header::decode(&read), invalid);
        assert_eq!(Header::decode_tree(&read), invalid);
    }
}
