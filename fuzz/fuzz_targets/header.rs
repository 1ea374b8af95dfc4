//! `Header::decode` on arbitrary bytes: it agrees with the tree decoder; whatever decodes
//! must survive encode → decode unchanged, and encoding must then be stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pion_node_rs::protocol::Header;

fuzz_target!(|data: &[u8]| {
    let decoded = Header::decode(data);
    assert_eq!(decoded, Header::decode_tree(data), "one-pass and tree decoders differ");
    let Ok(header) = decoded else {
        return;
    };
    let mut bytes = Vec::new();
    header.encode(&mut bytes);
    let again = Header::decode(&bytes).expect("a re-encoded header must decode");
    assert_eq!(again, header);
    let mut bytes2 = Vec::new();
    again.encode(&mut bytes2);
    assert_eq!(bytes2, bytes, "header encoding is not stable");
});
