//! The addon's own cost per message, without a process, a pipe or Node: the sans-IO core
//! (`core::Session`) and the codec (`protocol`) on the path of the Node benchmark's case
//! (a), measured on their own so that a change to them can be judged apart from the host's
//! wake-ups and the sidecar's CPU, which dominate `npm run bench`.
//!
//! ```text
//! cargo run --release --example core_path            # both cases
//! cargo run --release --example core_path -- 16      # the cases whose name has "16"
//! ```
//!
//! Two connections A and B with an open channel "bench" each. A round is 64 messages of
//! 1 KiB (the Node benchmark's window of 64 KiB): A's `send()`s and the one `poll_transmit`
//! of them (timed); then, untimed, a stand-in for the sidecar reads the requests and writes
//! for each one its acknowledgement and B's `dc.message`; then that stdout is decoded and
//! handled and its events taken (timed). What B receives is checked (count, length, order).
//! The figure is the median of `CORE_BENCH_ROUNDS` (7) runs of `CORE_BENCH_N` (200,000)
//! messages; the same for 16-byte text messages.

use bytes::Bytes;
use pion_node_rs::core::{ChannelEvent, ChannelId, Event, Session};
use pion_node_rs::protocol::messages::{self, PcCreate};
use pion_node_rs::protocol::{encode_frame, FrameDecoder, FrameType, Header};
use std::time::{Duration, Instant};

const WINDOW: usize = 64;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The sidecar's side: what the session wrote, read; what it should hear, written.
struct Stage {
    session: Session,
    now: Instant,
    /// Decodes the session's stdin.
    requests: FrameDecoder,
    /// Decodes the stand-in's stdout, as the reader does.
    stdout: FrameDecoder,
    a: ChannelId,
    b: ChannelId,
}

/// Everything the session has for stdin.
fn transmitted(session: &mut Session) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| session.poll_transmit()).collect()
}

/// A message's sequence number, as its first 8 bytes: hex digits, so a text message is text.
const SEQ_LEN: usize = 8;

/// Inside the timed part, so without an allocation.
fn put_seq(data: &mut [u8], seq: usize) {
    for (i, byte) in data[..SEQ_LEN].iter_mut().enumerate() {
        *byte = b"0123456789abcdef"[(seq >> (4 * (SEQ_LEN - 1 - i))) & 0xf];
    }
}

fn seq_of(data: &[u8]) -> usize {
    let digits = std::str::from_utf8(&data[..SEQ_LEN]).expect("hex digits");
    usize::from_str_radix(digits, 16).expect("hex digits")
}

fn frame(header: &Header, payload: &[u8], out: &mut Vec<u8>) {
    encode_frame(header, payload, out).expect("a frame within the limits");
}

impl Stage {
    fn new() -> Stage {
        let now = Instant::now();
        let mut stage = Stage {
            session: Session::new(Duration::from_secs(30)),
            now,
            requests: FrameDecoder::new(),
            stdout: FrameDecoder::new(),
            a: ChannelId(0),
            b: ChannelId(0),
        };
        stage.a = stage.open("bench-a");
        stage.b = stage.open("bench-b");
        stage
    }

    /// A connection `pc_id` whose channel "bench" is open.
    fn open(&mut self, pc_id: &str) -> ChannelId {
        let create = messages::encode(&PcCreate {
            pc_id: pc_id.into(),
            ice_servers: Vec::new(),
            settings: None,
        });
        let conn =
            self.session
                .create_connection(pc_id.into(), Ok(create), Default::default(), self.now);
        self.answer_all(&[]);
        let channel = self
            .session
            .create_channel(conn, "bench".into(), true, self.now)
            .expect("a channel of a live connection");
        self.answer_all(&[]);
        let mut bytes = Vec::new();
        frame(&event(pc_id, "dc.open", false), &[], &mut bytes);
        self.handle(&bytes);
        while self.session.poll_event().is_some() {}
        channel
    }

    /// The requests in `written` (what `poll_transmit` gave): their methods, ids and payloads.
    fn requests_in(&mut self, written: &[Vec<u8>]) -> Vec<(String, u32, Bytes)> {
        for bytes in written {
            self.requests.extend(bytes);
        }
        let mut requests = Vec::new();
        while let Some(f) = self
            .requests
            .next_frame()
            .expect("the session writes frames")
        {
            requests.push((f.header.method.to_string(), f.header.id, f.payload));
        }
        requests
    }

    /// Answers every waiting request with `ok: true` and `payload`.
    fn answer_all(&mut self, payload: &[u8]) {
        let written = transmitted(&mut self.session);
        let mut bytes = Vec::new();
        for (_, id, _) in self.requests_in(&written) {
            frame(&response(id), payload, &mut bytes);
        }
        self.handle(&bytes);
    }

    /// The reader's part and the session's: stdout bytes decoded and handled, in order.
    fn handle(&mut self, bytes: &[u8]) {
        self.stdout.extend(bytes);
        while let Some(f) = self.stdout.next_frame().expect("frames the stand-in wrote") {
            self.session.handle_frame(f, self.now);
        }
    }
}

fn response(id: u32) -> Header {
    Header {
        kind: FrameType::Response,
        id,
        method: "dc.send".into(),
        ok: Some(true),
        ..Header::default()
    }
}

fn event(pc_id: &str, name: &str, binary: bool) -> Header {
    Header {
        kind: FrameType::Event,
        pc_id: pc_id.into(),
        dc_label: "bench".into(),
        event: name.into(),
        is_binary: binary,
        ..Header::default()
    }
}

/// One run of `n` messages of `size` bytes; returns the timed part's duration.
fn run(n: usize, size: usize, binary: bool) -> Duration {
    let mut stage = Stage::new();
    let (a, b) = (stage.a, stage.b);
    // {bufferedAmount: 0}: the sidecar's own queue is empty.
    let mut ack = Vec::new();
    rmp::encode::write_map_len(&mut ack, 1).unwrap();
    rmp::encode::write_str(&mut ack, "bufferedAmount").unwrap();
    rmp::encode::write_uint(&mut ack, 0).unwrap();
    let message = event("bench-b", "dc.message", binary);
    assert!(size >= SEQ_LEN, "a message holds its sequence number");
    let mut data = vec![b'x'; size];
    let mut timed = Duration::ZERO;
    let mut stdout = Vec::new();
    let (mut sent, mut received) = (0usize, 0usize);
    while sent < n {
        let batch = WINDOW.min(n - sent);
        // A's sends and their one write.
        let started = Instant::now();
        for i in 0..batch {
            put_seq(&mut data, sent + i);
            stage
                .session
                .send(a, &data, binary, stage.now)
                .expect("the window fits the channel's budget");
        }
        let written = transmitted(&mut stage.session);
        timed += started.elapsed();
        sent += batch;
        // The stand-in sidecar: each dc.send acknowledged, its data delivered to B.
        let requests = stage.requests_in(&written);
        assert_eq!(requests.len(), batch, "one request per send()");
        stdout.clear();
        for (method, id, payload) in &requests {
            assert_eq!(method, "dc.send");
            frame(&response(*id), &ack, &mut stdout);
            frame(&message, payload, &mut stdout);
        }
        // Read, decoded, handled, and the events taken, as one tick does.
        let started = Instant::now();
        stage.handle(&stdout);
        let mut events = Vec::with_capacity(batch * 2);
        while let Some(e) = stage.session.poll_event() {
            events.push(e);
        }
        timed += started.elapsed();
        for e in events {
            match e {
                Event::Channel(id, ChannelEvent::Message { binary: b2, data }) => {
                    assert_eq!(id, b);
                    assert_eq!(b2, binary);
                    assert_eq!(data.len(), size);
                    assert_eq!(seq_of(&data), received);
                    received += 1;
                }
                Event::Channel(_, ChannelEvent::BufferedAmountLow) => {}
                other => panic!("unexpected event: {other:?}"),
            }
        }
        let left = stage.session.channel(a).map(|c| c.buffered_amount());
        assert_eq!(left, Some(0), "every send acknowledged");
    }
    assert_eq!(received, n, "every message delivered");
    timed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n = env_usize("CORE_BENCH_N", 200_000).max(1);
    let rounds = env_usize("CORE_BENCH_ROUNDS", 7).max(1);
    // An argument picks the cases whose name has it.
    let filter: Vec<String> = std::env::args().skip(1).collect();
    for (name, size, binary) in [("1 KiB binary", 1024, true), ("16 B text", 16, false)] {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        run(n.min(10_000), size, binary); // warm-up
        let per_msg: Vec<f64> = (0..rounds)
            .map(|_| run(n, size, binary).as_secs_f64() * 1e9 / n as f64)
            .collect();
        let (lo, hi) = per_msg
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        println!(
            "core, {name}: {:.0} ns per message (median of {rounds} x {n}; runs {lo:.0}-{hi:.0})",
            median(per_msg)
        );
    }
}
