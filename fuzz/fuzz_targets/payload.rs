//! The msgpack value decoder and every typed payload decoder on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pion_node_rs::protocol::messages::{
    self, BufferedAmount, CandidatePair, DataChannelAnnounce, IceCandidate, Sdp, SctpStats,
    SessionDescription, State, StateChange,
};
use pion_node_rs::protocol::value::{decode_value, encode_value};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

/// Decodes; no assertion beyond "does not panic or over-allocate".
fn decode_only<T: DeserializeOwned>(data: &[u8]) {
    let _ = messages::decode::<T>(data);
    // peer.rs also decodes some payloads as optional (an empty or nil payload is None).
    let _ = messages::decode::<Option<T>>(data);
}

/// Decodes, and for the types the addon also sends, checks encode → decode gives it back.
fn round_trip<T: DeserializeOwned + Serialize + PartialEq + Debug>(data: &[u8]) {
    let _ = messages::decode::<Option<T>>(data);
    if let Ok(value) = messages::decode::<T>(data) {
        let bytes = messages::encode(&value);
        let again: T = messages::decode(&bytes).expect("a re-encoded payload must decode");
        assert_eq!(again, value);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = decode_value(data) {
        // Compare encodings, not values: NaN floats are never equal to themselves.
        let mut bytes = Vec::new();
        encode_value(&value, &mut bytes);
        let again = decode_value(&bytes).expect("a re-encoded value must decode");
        let mut bytes2 = Vec::new();
        encode_value(&again, &mut bytes2);
        assert_eq!(bytes2, bytes, "value encoding is not stable");
    }

    decode_only::<SctpStats>(data);
    decode_only::<BufferedAmount>(data);
    decode_only::<StateChange>(data);
    decode_only::<State>(data);
    decode_only::<CandidatePair>(data);
    decode_only::<DataChannelAnnounce>(data);
    round_trip::<IceCandidate>(data);
    round_trip::<Sdp>(data);
    round_trip::<SessionDescription>(data);
});
