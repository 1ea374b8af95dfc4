//! Property tests of the frame codec, the header encoding and the msgpack value codec.

use pion_node_rs::protocol::value::{decode_value, encode_value};
use pion_node_rs::protocol::{
    encode_frame, Frame, FrameDecoder, FrameError, FrameType, Header, MAX_FRAME_LEN,
};
use proptest::collection::vec;
use proptest::prelude::*;
use rmpv::Value;

// ---------------------------------------------------------------------------------------------
// Strategies

fn kind() -> impl Strategy<Value = FrameType> {
    prop_oneof![
        Just(FrameType::Request),
        Just(FrameType::Response),
        Just(FrameType::Event),
    ]
}

fn id() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        0u32..300,
        // the boundaries of fixint, uint8, uint16 and uint32
        prop::sample::select(vec![127u32, 128, 255, 256, 65_535, 65_536, u32::MAX]),
    ]
}

/// Empty (must be left out), short ASCII, unicode, control characters, and lengths around the
/// fixstr/str8/str16 boundaries.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        2 => "[a-z.]{1,12}",
        2 => "\\PC{1,16}",
        1 => "[\\x00-\\x7f]{1,8}",
        1 => "[a-z]{30,33}",
        1 => "[a-z]{254,257}",
    ]
}

prop_compose! {
    fn header()(
        kind in kind(),
        id in id(),
        method in text(),
        pc_id in text(),
        dc_label in text(),
        error in text(),
        event in text(),
        ok in proptest::option::of(any::<bool>()),
        is_binary in any::<bool>(),
    ) -> Header {
        Header {
            kind,
            id,
            method: method.into(),
            pc_id: pc_id.into(),
            dc_label: dc_label.into(),
            ok,
            error: error.into(),
            event: event.into(),
            is_binary,
        }
    }
}

fn payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn frames(max_payload: usize, max_frames: usize) -> impl Strategy<Value = Vec<(Header, Vec<u8>)>> {
    vec((header(), payload(max_payload)), 1..=max_frames)
}

/// A msgpack value of any kind the codec supports, nested a few levels.
/// Up to 10 entries of a header-like map: the header's own keys (and one other) with values
/// of every type, valid frame types among them.
fn header_entries() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
    vec(
        (
            prop::sample::select(vec![
                "type", "id", "method", "pcId", "dcLabel", "ok", "error", "event", "isBinary",
                "other",
            ]),
            prop_oneof![
                value(),
                prop::sample::select(vec!["req", "res", "evt"]).prop_map(Value::from),
            ],
        ),
        0..10,
    )
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-40i64..300).prop_map(Value::from),
        any::<f64>().prop_map(Value::F64),
        any::<f32>().prop_map(Value::F32),
        "\\PC{0,40}".prop_map(Value::from),
        vec(any::<u8>(), 0..40).prop_map(Value::Binary),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            vec((inner.clone(), inner), 0..8).prop_map(Value::Map),
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn encode_all(frames: &[(Header, Vec<u8>)]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for (header, payload) in frames {
        encode_frame(header, payload, &mut bytes).expect("small frames always encode");
        ends.push(bytes.len());
    }
    (bytes, ends)
}

/// Feeds `bytes` in chunks of the given sizes (cycled), taking frames out after every chunk and
/// checking that the decoder holds exactly what it was given minus what it handed back.
fn decode_in_chunks(bytes: &[u8], sizes: &[usize]) -> Result<Vec<Frame>, TestCaseError> {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    let mut consumed = 0;
    let mut sizes = sizes.iter().cycle();
    while fed < bytes.len() {
        let n = (*sizes.next().unwrap()).min(bytes.len() - fed);
        decoder.extend(&bytes[fed..fed + n]);
        fed += n;
        while let Some(frame) = decoder
            .next_frame()
            .map_err(|e| TestCaseError::fail(format!("valid stream rejected: {e}")))?
        {
            consumed += 4 + 2 + encoded_header_len(&frame.header) + frame.payload.len();
            frames.push(frame);
        }
        prop_assert_eq!(decoder.buffered(), fed - consumed);
    }
    Ok(frames)
}

fn encoded_header_len(header: &Header) -> usize {
    let mut out = Vec::new();
    header.encode(&mut out);
    out.len()
}

fn check_frames(got: &[Frame], want: &[(Header, Vec<u8>)]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (frame, (header, payload)) in got.iter().zip(want) {
        prop_assert_eq!(&frame.header, header);
        prop_assert_eq!(&frame.payload[..], &payload[..]);
    }
    Ok(())
}

/// Pulls frames until the decoder needs more or fails; returns how many frames came out.
fn drain(decoder: &mut FrameDecoder) -> Result<usize, FrameError> {
    let mut n = 0;
    while decoder.next_frame()?.is_some() {
        n += 1;
    }
    Ok(n)
}

fn map_keys(value: &Value) -> Vec<&str> {
    value
        .as_map()
        .expect("header is a map")
        .iter()
        .map(|(k, _)| k.as_str().expect("header keys are strings"))
        .collect()
}

fn map_get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value
        .as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn reencode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn header_round_trips(header in header()) {
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        prop_assert_eq!(Header::decode(&bytes).unwrap(), header);
    }

    #[test]
    fn frames_round_trip_in_random_chunks(
        frames in frames(4096, 4),
        sizes in vec(1usize..700, 1..40),
    ) {
        let (bytes, _) = encode_all(&frames);
        let got = decode_in_chunks(&bytes, &sizes)?;
        check_frames(&got, &frames)?;
    }

    #[test]
    fn frames_round_trip_byte_by_byte(frames in frames(512, 3)) {
        let (bytes, _) = encode_all(&frames);
        let got = decode_in_chunks(&bytes, &[1])?;
        check_frames(&got, &frames)?;
        // everything in one piece, too
        let got = decode_in_chunks(&bytes, &[bytes.len()])?;
        check_frames(&got, &frames)?;
    }

    #[test]
    fn frames_split_at_any_single_point(frames in frames(300, 2), cut in any::<prop::sample::Index>()) {
        let (bytes, _) = encode_all(&frames);
        let cut = cut.index(bytes.len() + 1);
        let got = decode_in_chunks(&bytes, &[cut.max(1), bytes.len()])?;
        check_frames(&got, &frames)?;
    }

    /// Feeding exactly `wanted()` bytes at a time never reads past the end of a frame.
    #[test]
    fn wanted_never_overshoots(frames in frames(2048, 3)) {
        let (bytes, ends) = encode_all(&frames);
        let mut decoder = FrameDecoder::new();
        let mut fed = 0;
        let mut got = Vec::new();
        while fed < bytes.len() {
            let n = decoder.wanted();
            prop_assert!(n >= 1);
            prop_assert!(fed + n <= bytes.len(), "wanted {} at {} of {}", n, fed, bytes.len());
            decoder.extend(&bytes[fed..fed + n]);
            fed += n;
            if let Some(frame) = decoder.next_frame().unwrap() {
                prop_assert!(ends.contains(&fed), "frame completed at {} not at a frame end", fed);
                prop_assert_eq!(decoder.buffered(), 0);
                got.push(frame);
            }
        }
        check_frames(&got, &frames)?;
    }

    /// Every strict prefix of a stream yields the complete frames in it, then `Ok(None)`.
    #[test]
    fn every_truncation_needs_more(frames in frames(200, 2)) {
        let (bytes, ends) = encode_all(&frames);
        for cut in 0..bytes.len() {
            let mut decoder = FrameDecoder::new();
            decoder.extend(&bytes[..cut]);
            let complete = ends.iter().filter(|&&end| end <= cut).count();
            let mut got = Vec::new();
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => got.push(frame),
                    Ok(None) => break,
                    Err(e) => return Err(TestCaseError::fail(format!("cut {cut}: {e}"))),
                }
            }
            check_frames(&got, &frames[..complete])?;
            let consumed = if complete == 0 { 0 } else { ends[complete - 1] };
            prop_assert_eq!(decoder.buffered(), cut - consumed);
            prop_assert!(decoder.wanted() >= 1);
            // asking again changes nothing
            prop_assert_eq!(decoder.next_frame(), Ok(None));
        }
    }

    #[test]
    fn garbage_never_panics_nor_overbuffers(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..600),
            // a plausible length and header length, so the header decoder sees garbage too
            (2u32..400, any::<u16>(), 0u16..64, vec(any::<u8>(), 0..600)).prop_map(
                |(len, hlen, small_hlen, rest)| {
                    let hlen = if hlen % 2 == 0 { hlen } else { small_hlen };
                    let mut b = len.to_le_bytes().to_vec();
                    b.extend_from_slice(&hlen.to_le_bytes());
                    b.extend(rest);
                    b
                }
            ),
        ],
        sizes in vec(1usize..100, 1..10),
    ) {
        let mut decoder = FrameDecoder::new();
        let mut fed = 0;
        let mut sizes = sizes.iter().cycle();
        while fed < bytes.len() {
            let n = (*sizes.next().unwrap()).min(bytes.len() - fed);
            decoder.extend(&bytes[fed..fed + n]);
            fed += n;
            let result = drain(&mut decoder);
            prop_assert!(decoder.buffered() <= fed);
            let _ = decoder.wanted();
            if result.is_err() {
                break;
            }
        }
    }

    #[test]
    fn decoders_never_panic_on_random_bytes(bytes in vec(any::<u8>(), 0..256)) {
        let _ = decode_value(&bytes);
        prop_assert_eq!(Header::decode(&bytes), Header::decode_tree(&bytes));
    }

    /// The one-pass header decoder and the tree decoder agree on every input: headers,
    /// headers cut short, and maps of header keys with values of every type.
    #[test]
    fn one_pass_and_tree_header_decoders_agree(
        header in header(),
        cut in any::<prop::sample::Index>(),
        entries in header_entries(),
    ) {
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        prop_assert_eq!(Header::decode(&bytes), Header::decode_tree(&bytes));
        let short = &bytes[..cut.index(bytes.len())];
        prop_assert_eq!(Header::decode(short), Header::decode_tree(short));
        let map = Value::Map(entries.iter().map(|(k, v)| (Value::from(*k), v.clone())).collect());
        let bytes = reencode(&map);
        prop_assert_eq!(Header::decode(&bytes), Header::decode_tree(&bytes));
    }

    /// Maps with the header's own keys and values of every type: errors are fine, panics not;
    /// what decodes has the values it was given.
    #[test]
    fn header_decode_never_panics_on_wrong_types(
        entries in header_entries(),
    ) {
        let map = Value::Map(entries.iter().map(|(k, v)| (Value::from(*k), v.clone())).collect());
        let bytes = reencode(&map);
        if let Ok(header) = Header::decode(&bytes) {
            // the last occurrence of a key wins
            let last = |key: &str| entries.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v);
            if let Some(Value::Integer(i)) = last("id") {
                prop_assert_eq!(Some(u64::from(header.id)), i.as_u64());
            }
            if let Some(Value::String(s)) = last("method") {
                prop_assert_eq!(Some(header.method.as_str()), s.as_str());
            }
            prop_assert!(matches!(last("type"), Some(Value::String(_))));
        }
    }

    #[test]
    fn values_round_trip(value in value()) {
        let bytes = reencode(&value);
        let decoded = decode_value(&bytes).unwrap();
        // compare encodings: NaN is not equal to itself
        prop_assert_eq!(reencode(&decoded), bytes);
    }

    #[test]
    fn every_truncated_value_is_truncated(value in value()) {
        let bytes = reencode(&value);
        for cut in 0..bytes.len() {
            prop_assert_eq!(
                decode_value(&bytes[..cut]),
                Err(pion_node_rs::protocol::value::ValueError::Truncated),
                "cut {}", cut
            );
        }
    }

    #[test]
    fn mutated_values_never_panic(value in value(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = reencode(&value);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = decode_value(&bytes);
        let _ = Header::decode(&bytes);
    }

    #[test]
    fn short_lengths_fail_once_four_bytes_are_in(len in 0u32..2, tail in vec(any::<u8>(), 0..16)) {
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.extend(tail);
        let mut decoder = FrameDecoder::new();
        decoder.extend(&bytes[..3]);
        prop_assert_eq!(decoder.next_frame(), Ok(None));
        decoder.extend(&bytes[3..4]);
        prop_assert_eq!(decoder.next_frame(), Err(FrameError::TooShort(len)));
        let mut decoder = FrameDecoder::new();
        decoder.extend(&bytes);
        prop_assert_eq!(decoder.next_frame(), Err(FrameError::TooShort(len)));
    }

    #[test]
    fn long_lengths_fail_once_four_bytes_are_in(
        len in prop_oneof![
            Just(MAX_FRAME_LEN as u32 + 1),
            Just(u32::MAX),
            (MAX_FRAME_LEN as u32 + 1)..=u32::MAX,
        ],
        tail in vec(any::<u8>(), 0..16),
    ) {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&len.to_le_bytes()[..3]);
        prop_assert_eq!(decoder.next_frame(), Ok(None));
        decoder.extend(&len.to_le_bytes()[3..]);
        prop_assert_eq!(decoder.next_frame(), Err(FrameError::TooLarge(u64::from(len))));
        decoder.extend(&tail);
        prop_assert_eq!(decoder.next_frame(), Err(FrameError::TooLarge(u64::from(len))));
        // nothing was reserved for the announced length
        prop_assert!(decoder.buffer_mut().capacity() < 1 << 20);
    }

    #[test]
    fn header_past_the_frame_fails_once_six_bytes_are_in(
        frame_len in 2u32..70_000,
        excess in 1u32..=u32::from(u16::MAX),
    ) {
        let room = frame_len - 2;
        prop_assume!(room < u32::from(u16::MAX));
        let header_len = (room + excess).min(u32::from(u16::MAX)) as u16;
        let mut bytes = frame_len.to_le_bytes().to_vec();
        bytes.extend_from_slice(&header_len.to_le_bytes());
        let mut decoder = FrameDecoder::new();
        decoder.extend(&bytes[..5]);
        prop_assert_eq!(decoder.next_frame(), Ok(None));
        decoder.extend(&bytes[5..]);
        prop_assert_eq!(
            decoder.next_frame(),
            Err(FrameError::HeaderOverrun { header_len, frame_len })
        );
    }

    /// The header the sidecar gets is strict (PROTOCOL.md, trap 1): `id` unsigned, `isBinary`
    /// only as `true`, `ok` a boolean, no empty strings, no nil.
    #[test]
    fn encoded_header_is_strict(header in header(), payload in payload(64)) {
        let mut frame = vec![0xee; 3];
        encode_frame(&header, &payload, &mut frame).unwrap();
        // appended after what was there
        prop_assert_eq!(&frame[..3], &[0xee; 3][..]);
        let frame = &frame[3..];
        let frame_len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
        let header_len = usize::from(u16::from_le_bytes(frame[4..6].try_into().unwrap()));
        prop_assert_eq!(frame_len, frame.len() - 4);
        prop_assert_eq!(frame_len, 2 + header_len + payload.len());
        prop_assert_eq!(&frame[6 + header_len..], &payload[..]);
        let bytes = &frame[6..6 + header_len];
        let map = decode_value(bytes).unwrap();
        let keys = map_keys(&map);

        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        prop_assert_eq!(unique.len(), keys.len(), "duplicate keys in {:?}", keys);
        prop_assert_eq!(&keys[..2], &["type", "id"][..]);
        prop_assert!(map.as_map().unwrap().iter().all(|(_, v)| !v.is_nil()));

        prop_assert_eq!(map_get(&map, "type").and_then(Value::as_str), Some(header.kind.as_str()));

        let id = map_get(&map, "id").unwrap();
        prop_assert!(id.is_u64(), "id is {:?}", id);
        prop_assert_eq!(id.as_u64(), Some(u64::from(header.id)));
        // the raw marker is a positive fixint or uint8/16/32, never a signed form
        // (map marker, "type", its value, "id" come first)
        let id_at = 1 + 5 + 4 + 3;
        prop_assert_eq!(&bytes[id_at - 3..id_at], &[0xa2, b'i', b'd'][..]);
        prop_assert!(matches!(bytes[id_at], 0x00..=0x7f | 0xcc..=0xce), "id marker {:#x}", bytes[id_at]);

        for (key, text) in [
            ("method", &header.method),
            ("pcId", &header.pc_id),
            ("dcLabel", &header.dc_label),
            ("error", &header.error),
            ("event", &header.event),
        ] {
            match map_get(&map, key) {
                None => prop_assert!(text.is_empty(), "{} missing", key),
                Some(v) => {
                    prop_assert!(!text.is_empty(), "empty {} written", key);
                    prop_assert_eq!(v.as_str(), Some(text.as_str()));
                }
            }
        }
        match map_get(&map, "isBinary") {
            None => prop_assert!(!header.is_binary),
            Some(v) => {
                prop_assert!(header.is_binary);
                prop_assert_eq!(v, &Value::Boolean(true));
            }
        }
        prop_assert_eq!(map_get(&map, "ok").cloned(), header.ok.map(Value::Boolean));
        let expected = 2
            + [&header.method, &header.pc_id, &header.dc_label, &header.error, &header.event]
                .iter()
                .filter(|s| !s.is_empty())
                .count()
            + usize::from(header.ok.is_some())
            + usize::from(header.is_binary);
        prop_assert_eq!(keys.len(), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed cases at the bounds

#[test]
fn a_frame_of_exactly_max_len_round_trips() {
    let header = Header::request(9, "dc.send");
    let header_len = encoded_header_len(&header);
    let payload = vec![0x5a; MAX_FRAME_LEN - 2 - header_len];
    let mut bytes = Vec::new();
    encode_frame(&header, &payload, &mut bytes).unwrap();
    assert_eq!(bytes.len(), 4 + MAX_FRAME_LEN);
    assert_eq!(&bytes[..4], &(MAX_FRAME_LEN as u32).to_le_bytes());
    let mut decoder = FrameDecoder::new();
    for chunk in bytes.chunks(1 << 20) {
        decoder.extend(chunk);
    }
    let frame = decoder.next_frame().unwrap().unwrap();
    assert_eq!(frame.header, header);
    assert_eq!(frame.payload.len(), payload.len());
    assert_eq!(decoder.buffered(), 0);

    // one byte more is refused, and nothing is written
    let mut out = vec![1, 2];
    let payload_too_big = MAX_FRAME_LEN - 2 - header_len + 1;
    assert_eq!(
        encode_frame(&header, &vec![0; payload_too_big], &mut out),
        Err(FrameError::TooLarge(MAX_FRAME_LEN as u64 + 1))
    );
    assert_eq!(out, [1, 2]);
}

#[test]
fn a_header_over_u16_is_refused_without_writing() {
    let header = Header {
        method: "m".repeat(70_000).into(),
        ..Header::request(1, "")
    };
    let mut out = vec![7];
    let err = encode_frame(&header, b"x", &mut out).unwrap_err();
    assert!(matches!(err, FrameError::HeaderOverrun { .. }), "{err:?}");
    assert_eq!(out, [7]);

    // the largest header that fits is accepted (a str16 method, like 1000 bytes)
    let base = encoded_header_len(&Header {
        method: "m".repeat(1000).into(),
        ..Header::request(1, "")
    }) - 1000;
    let fits = usize::from(u16::MAX) - base;
    let header = Header {
        method: "m".repeat(fits).into(),
        ..Header::request(1, "")
    };
    assert_eq!(encoded_header_len(&header), usize::from(u16::MAX));
    let mut out = Vec::new();
    encode_frame(&header, b"", &mut out).unwrap();
    let mut decoder = FrameDecoder::new();
    decoder.extend(&out);
    assert_eq!(decoder.next_frame().unwrap().unwrap().header, header);
}

#[test]
fn header_length_equal_to_the_room_is_not_an_overrun() {
    // length 2 + 3, header length 3: fits exactly; the header bytes decide the rest
    let mut bytes = 5u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&3u16.to_le_bytes());
    let mut decoder = FrameDecoder::new();
    decoder.extend(&bytes);
    assert_eq!(decoder.next_frame(), Ok(None));
    decoder.extend(&[0x81, 0xc0, 0xc0]);
    assert!(matches!(decoder.next_frame(), Err(FrameError::Header(_))));
}
