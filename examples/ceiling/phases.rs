//! The ceiling's cases on top of its driver: connecting A and B, the paced bulk sends and
//! the echo, and the receiver's checks.

use crate::driver::{Driver, A, B, LABEL, LIMIT, PCS};
use crate::env_u64;
use pion_node_rs::core::{ConnectionCall, ConnectionOptions, Outcome};
use pion_node_rs::protocol::messages::{self, PcCreate, SessionDescription};
use std::time::{Duration, Instant};

/// How long one measured phase may take at most.
const PHASE_LIMIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// A sends, B counts and checks.
    Bulk,
    /// A sends, B echoes, A counts and checks.
    Echo,
}

/// The receiving side of a phase: every message checked for shape and order, and counted.
pub struct Rx {
    pub phase: Phase,
    binary: bool,
    len: usize,
    target: u64,
    pub count: u64,
    next_seq: u32,
    errors: u64,
    first_error: Option<String>,
    /// When the last message of the phase was handed out by the core.
    pub finished: Option<Instant>,
    /// When the latest message was handed out by the core, and when the reader thread had
    /// read it from stdout.
    pub last_at: Option<(Instant, Instant)>,
}

impl Rx {
    pub fn new(phase: Phase, binary: bool, len: usize, target: u64) -> Rx {
        Rx {
            phase,
            binary,
            len,
            target,
            count: 0,
            next_seq: 0,
            errors: 0,
            first_error: None,
            finished: None,
            last_at: None,
        }
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    fn problems(&self) -> String {
        let first = self.first_error.as_deref().unwrap_or_default();
        format!("{} wrong, first: {first}", self.errors)
    }

    /// Checks one message against the phase's shape and order; counts it.
    pub fn accept(&mut self, is_binary: bool, payload: &[u8], now: Instant, read_at: Instant) {
        let want = if self.binary { "binary" } else { "text" };
        let seq = if is_binary != self.binary || payload.len() != self.len || payload.len() < 4 {
            self.error(format!(
                "message {}: binary={is_binary} len={} (want {want}, {})",
                self.count,
                payload.len(),
                self.len
            ));
            None
        } else if self.binary {
            Some(u32::from_le_bytes(payload[..4].try_into().unwrap()))
        } else {
            parse_decimal(payload)
        };
        match seq {
            Some(seq) if seq == self.next_seq => {}
            Some(seq) => self.error(format!(
                "message {}: sequence {seq}, want {}",
                self.count, self.next_seq
            )),
            None => {}
        }
        if let Some(seq) = seq {
            self.next_seq = seq.wrapping_add(1);
        }
        self.count += 1;
        self.last_at = Some((now, read_at));
        if self.count == self.target {
            self.finished = Some(now);
        }
    }
}

fn parse_decimal(text: &[u8]) -> Option<u32> {
    let mut n: u32 = 0;
    for &c in text {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u32::from(c - b'0'))?;
    }
    Some(n)
}

/// Writes `n` as zero-padded decimal filling all of `out`.
fn write_decimal(out: &mut [u8], mut n: u32) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Creates A and B (with `CEILING_RTO_MAX` as `settings.sctpRtoMax` when set) and the
/// channel on A, signals as the Node benchmark's connectPair does, and waits until both
/// channel ends are open.
pub async fn connect(d: &mut Driver) -> Result<(), String> {
    let rto_max = env_u64("CEILING_RTO_MAX", 0);
    let now = Instant::now();
    for pc in [A, B] {
        let create = PcCreate {
            pc_id: PCS[pc].to_owned(),
            ice_servers: Vec::new(),
            settings: (rto_max > 0).then(|| {
                rmpv::Value::Map(vec![(
                    rmpv::Value::from("sctpRtoMax"),
                    rmpv::Value::from(rto_max),
                )])
            }),
        };
        let payload = Ok(messages::encode(&create));
        let options = ConnectionOptions::default();
        let id = d
            .session
            .create_connection(PCS[pc].to_owned(), payload, options, now);
        d.pcs[pc] = Some(id);
    }
    let a = d.pcs[A].expect("A was created");
    let channel = d.session.create_channel(a, LABEL.to_owned(), true, now);
    d.a_channel = Some(channel.map_err(|e| format!("createDataChannel: {e}"))?);

    describe(d, ConnectionCall::CreateOffer, A, B).await?;
    d.remote_set(B);
    describe(d, ConnectionCall::CreateAnswer, B, A).await?;
    d.remote_set(A);

    d.wait_until("both channel ends open", LIMIT, |d| {
        (d.setup.a_open && d.b_channel.is_some() && d.setup.b_open).then_some(())
    })
    .await
}

/// `from` creates an offer or answer and sets it as its local description, `to` as its
/// remote one.
async fn describe(
    d: &mut Driver,
    create: ConnectionCall,
    from: usize,
    to: usize,
) -> Result<(), String> {
    let what = create.method();
    let Outcome::Description { kind, sdp } = d.call(from, create).await? else {
        return Err(format!("{what}: not a description"));
    };
    let description = SessionDescription {
        kind: kind.into(),
        sdp,
    };
    let local = ConnectionCall::SetLocalDescription(description.clone());
    d.call(from, local).await?;
    d.call(to, ConnectionCall::SetRemoteDescription(description))
        .await?;
    Ok(())
}

pub struct BulkResult {
    pub elapsed: Duration,
    pub low_events: u64,
    pub fallbacks: u64,
    pub idle: Duration,
}

/// Sends `n` messages of `size` bytes from A, paced within `limit` bytes of A's
/// bufferedAmount, and waits until B has received and checked all of them. The time runs
/// from the first send to the last receipt.
///
/// The sender's rule is the Node benchmark's: a message goes out while bufferedAmount plus
/// its size stays within `limit`; then it waits for `bufferedamountlow` (the threshold as
/// `CEILING_LOW` says), or at most `CEILING_POLL_US`, and looks again. The core does the
/// rest: at most `MAX_SENDS_IN_FLIGHT` (128) `dc.send` in flight per connection (the rest
/// queued, counted in bufferedAmount), the sidecar's backlog from every acknowledgement, its
/// polls of that backlog while nothing is in flight, the low-threshold edge.
pub async fn bulk(
    d: &mut Driver,
    binary: bool,
    size: usize,
    n: u32,
    limit: usize,
) -> Result<BulkResult, String> {
    let channel = d.a_channel.ok_or("no channel on A")?;
    let a = d.pcs[A].ok_or("no connection A")?;
    let (size64, limit64) = (size as u64, limit as u64);
    // At the threshold one more message must fit, or the sender would wait for nothing.
    let threshold = match env_u64("CEILING_LOW", 1) {
        0 => limit64 / 2,
        1 => limit64 - size64,
        n => n,
    }
    .min(limit64 - size64);
    d.session.set_threshold(channel, threshold, Instant::now());
    // The clock starts once the sidecar has the threshold (a refusal is an `error` event).
    d.wait_until("dc.setBALT answered", LIMIT, |d| {
        (d.session.pending_requests() == 0).then_some(())
    })
    .await?;
    let fallback = Duration::from_micros(env_u64("CEILING_POLL_US", 100_000));
    d.flow = Default::default();
    d.rx = Some(Rx::new(Phase::Bulk, binary, size, u64::from(n)));
    let buffered = |d: &Driver| {
        d.session
            .channel(channel)
            .map_or(u64::MAX, |c| c.buffered_amount())
    };
    let mut payload = vec![b'x'; size];
    let start = Instant::now();
    let end = start + PHASE_LIMIT;
    let mut seq: u32 = 0;
    let mut waiting_since: Option<Instant> = None;
    let finished = loop {
        if d.failed() {
            return Err(format!("message {seq}: {}", d.failure_text()));
        }
        let now = Instant::now();
        if let Some(since) = waiting_since {
            if d.flow.low_seen || now - since >= fallback {
                if !d.flow.low_seen {
                    d.flow.fallbacks += 1;
                }
                d.flow.idle += now - since;
                waiting_since = None;
            }
        }
        if waiting_since.is_none() && seq < n {
            while seq < n && buffered(d).saturating_add(size64) <= limit64 {
                if binary {
                    payload[..4].copy_from_slice(&seq.to_le_bytes());
                } else {
                    write_decimal(&mut payload, seq);
                }
                d.session
                    .send(channel, &payload, binary, now)
                    .map_err(|e| format!("send {seq}: {e}"))?;
                seq += 1;
            }
            if seq < n {
                waiting_since = Some(now);
                d.flow.low_seen = false;
            }
        }
        if let Some(finished) = d.rx.as_ref().and_then(|rx| rx.finished) {
            break finished;
        }
        if now >= end {
            let received = d.rx.as_ref().map_or(0, |rx| rx.count);
            return Err(format!(
                "timed out after {PHASE_LIMIT:?}: {seq} of {n} sent, {received} received"
            ));
        }
        let until = waiting_since.map_or(end, |since| (since + fallback).min(end));
        d.step(until).await;
    };
    let rx = d.rx.take().expect("phase state");
    if rx.errors > 0 {
        return Err(format!("{n} messages: {}", rx.problems()));
    }
    d.wait_until("every send acknowledged", LIMIT, |d| {
        let idle = d
            .session
            .connection(a)
            .is_some_and(|c| c.sends_in_flight() == 0);
        let queued = d.session.channel(channel).map_or(0, |c| c.queued());
        (idle && queued == 0).then_some(())
    })
    .await?;
    Ok(BulkResult {
        elapsed: finished - start,
        low_events: d.flow.low_events,
        fallbacks: d.flow.fallbacks,
        idle: d.flow.idle,
    })
}

pub struct EchoResult {
    /// Send call to the echo handed out by the core on A.
    pub rtts: Vec<Duration>,
    /// Send call to the echo read from stdout by the reader thread.
    pub rtts_read: Vec<Duration>,
}

/// `n` sequential 64-byte messages from A, each echoed by B, each waited for.
pub async fn echo(d: &mut Driver, n: u32) -> Result<EchoResult, String> {
    let channel = d.a_channel.ok_or("no channel on A")?;
    d.rx = Some(Rx::new(Phase::Echo, true, 64, u64::from(n)));
    let mut payload = vec![b'e'; 64];
    let mut rtts = Vec::with_capacity(n as usize);
    let mut rtts_read = Vec::with_capacity(n as usize);
    for seq in 0..n {
        payload[..4].copy_from_slice(&seq.to_le_bytes());
        let sent_at = Instant::now();
        d.session
            .send(channel, &payload, true, sent_at)
            .map_err(|e| format!("send {seq}: {e}"))?;
        let (handed_out, read) = d
            .wait_until("the echo", LIMIT, |d| {
                let rx = d.rx.as_ref()?;
                (rx.count > u64::from(seq)).then_some(rx.last_at)?
            })
            .await?;
        rtts.push(handed_out - sent_at);
        rtts_read.push(read.saturating_duration_since(sent_at));
    }
    let rx = d.rx.take().expect("phase state");
    if rx.errors > 0 || rx.count != u64::from(n) {
        return Err(format!("echo: {} received, {}", rx.count, rx.problems()));
    }
    Ok(EchoResult { rtts, rtts_read })
}
