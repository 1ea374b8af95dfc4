//! Cost of the per-message protocol work, old way against new way, without Node or a sidecar:
//!
//! - `decode`: the header of a `dc.message` event and of a `dc.send` response, with the
//!   one-pass decoder (`Header::decode`) and the value-tree decoder it replaced
//!   (`Header::decode_tree`);
//! - `encode`: a `dc.send` request frame from borrowed strings (`RequestHeader`) and from an
//!   owned `Header` built per message, as before.
//!
//! ```text
//! cargo run --release --example hot_path            # ns per operation, all cases
//! valgrind --tool=callgrind target/release/examples/hot_path decode-tree 100000
//! ```
//!
//! With a case name (`decode-fast`, `decode-tree`, `encode-borrowed`, `encode-owned`) and a
//! count it runs only that case, for instruction counts under callgrind.

use pion_node_rs::protocol::{encode_frame, FrameType, Header, RequestHeader};
use std::hint::black_box;
use std::time::Instant;

const PC_ID: &str = "0b7c4f2e-8a51-4c3e-9d7a-2f6e1b9c5a30";

fn event_header() -> Vec<u8> {
    let mut bytes = Vec::new();
    Header {
        kind: FrameType::Event,
        event: "dc.message".into(),
        pc_id: PC_ID.into(),
        dc_label: "chat".into(),
        is_binary: true,
        ..Header::default()
    }
    .encode(&mut bytes);
    bytes
}

fn response_header() -> Vec<u8> {
    let mut bytes = Vec::new();
    Header {
        kind: FrameType::Response,
        id: 123_456,
        ok: Some(true),
        ..Header::default()
    }
    .encode(&mut bytes);
    bytes
}

fn run(case: &str, n: u64) -> u64 {
    let (event, response) = (event_header(), response_header());
    let payload = [7u8; 1024];
    let mut out = Vec::with_capacity(4096);
    let mut sum = 0u64;
    for i in 0..n {
        match case {
            "decode-fast" => {
                sum += u64::from(Header::decode(black_box(&event)).unwrap().is_binary);
                sum += u64::from(Header::decode(black_box(&response)).unwrap().id);
            }
            "decode-tree" => {
                sum += u64::from(Header::decode_tree(black_box(&event)).unwrap().is_binary);
                sum += u64::from(Header::decode_tree(black_box(&response)).unwrap().id);
            }
            "encode-borrowed" => {
                out.clear();
                let header = RequestHeader {
                    id: i as u32,
                    method: "dc.send",
                    pc_id: black_box(PC_ID),
                    dc_label: "chat",
                    is_binary: true,
                };
                encode_frame(&header, &payload, &mut out).unwrap();
                sum += out.len() as u64;
            }
            "encode-owned" => {
                out.clear();
                let header = Header {
                    kind: FrameType::Request,
                    id: i as u32,
                    method: "dc.send".into(),
                    pc_id: black_box(PC_ID).into(),
                    dc_label: "chat".into(),
                    is_binary: true,
                    ..Header::default()
                };
                encode_frame(&header, &payload, &mut out).unwrap();
                sum += out.len() as u64;
            }
            other => panic!("unknown case {other}"),
        }
    }
    sum
}

const CASES: [&str; 4] = [
    "decode-fast",
    "decode-tree",
    "encode-borrowed",
    "encode-owned",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(case) = args.first() {
        let n = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(100_000);
        black_box(run(case, n));
        return;
    }
    const N: u64 = 2_000_000;
    for case in CASES {
        black_box(run(case, N / 10)); // warm-up
        let t = Instant::now();
        black_box(run(case, N));
        let per = t.elapsed().as_nanos() as f64 / N as f64;
        let what = if case.starts_with("decode") {
            "per event + response header"
        } else {
            "per 1 KiB dc.send frame"
        };
        println!("{case:<16} {per:>7.1} ns {what}");
    }
}
