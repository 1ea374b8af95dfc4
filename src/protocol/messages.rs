//! Typed msgpack payloads of the sidecar's methods and events.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Encodes a payload as a msgpack map with named fields.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("payload types always serialize")
}

/// Decodes a payload; an empty payload decodes as msgpack nil.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    if bytes.is_empty() {
        return rmp_serde::from_slice(&[0xc0]);
    }
    rmp_serde::from_slice(bytes)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub credential: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PcCreate {
    pub pc_id: String,
    pub ice_servers: Vec<IceServer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<rmpv::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub kind: String,
    pub sdp: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sdp {
    pub sdp: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    #[serde(default)]
    pub candidate: String,
    #[serde(default)]
    pub sdp_mid: Option<String>,
    #[serde(default)]
    pub sdp_m_line_index: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct SctpStats {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub srtt_ms: f64,
    pub congestion_window: u64,
    pub receiver_window: u64,
    pub mtu: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DcCreate {
    pub label: String,
    pub ordered: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetThreshold {
    pub threshold: u64,
}

/// The acknowledgement of `dc.send` and the answer of `dc.getBA`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct BufferedAmount {
    pub buffered_amount: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct StateChange {
    pub conn_state: String,
    pub ice_state: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct State {
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct CandidateInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub address: String,
    pub port: u32,
    pub protocol: String,
    pub relay_protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct CandidatePair {
    pub local: CandidateInfo,
    pub remote: CandidateInfo,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default)]
pub struct DataChannelAnnounce {
    pub ordered: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pc_create_has_camel_case_keys_and_omits_settings() {
        let bytes = encode(&PcCreate {
            pc_id: "a".into(),
            ice_servers: vec![IceServer {
                urls: vec!["stun:x".into()],
                ..IceServer::default()
            }],
            settings: None,
        });
        let value = crate::protocol::value::decode_value(&bytes).unwrap();
        let keys: Vec<_> = value
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap())
            .collect();
        assert_eq!(keys, ["pcId", "iceServers"]);
    }

    #[test]
    fn buffered_amount_accepts_any_integer_width_and_empty() {
        // {"bufferedAmount": uint64 5}
        let mut bytes = vec![0x81, 0xae];
        bytes.extend_from_slice(b"bufferedAmount");
        bytes.extend_from_slice(&[0xcf, 0, 0, 0, 0, 0, 0, 0, 5]);
        let ba: BufferedAmount = decode(&bytes).unwrap();
        assert_eq!(ba.buffered_amount, Some(5.0));
        let none: Option<SctpStats> = decode(&[]).unwrap();
        assert_eq!(none, None);
    }
}
