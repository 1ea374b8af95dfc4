//! bufferedAmount from both sources, the low-threshold edge, the sidecar's own
//! `dc.bufferedamountlow` and the idle polls of its backlog.

use super::sidecar::{amount, map, Sidecar};
use crate::core::{ChannelEvent, ChannelId, Event};
use rmpv::Value;
use std::time::Duration;

fn low(ch: ChannelId) -> Event {
    Event::Channel(ch, ChannelEvent::BufferedAmountLow)
}

fn open(s: &mut Sidecar) -> ChannelId {
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    s.events();
    ch
}

#[test]
fn buffered_amount_is_unacknowledged_bytes_plus_the_sidecars_last_valid_report() {
    let mut s = Sidecar::new();
    let ch = open(&mut s);
    s.send(ch, 100);
    s.send(ch, 20);
    assert_eq!(s.buffered(ch), 120);
    s.answer_first("dc.send", &amount(40));
    assert_eq!(s.buffered(ch), 20 + 40);
    s.send(ch, 10);
    // missing, negative, not finite: ignored, the last report stands
    s.answer_first("dc.send", &[]);
    assert_eq!(s.buffered(ch), 10 + 40);
    s.answer_first("dc.send", &map(&[("bufferedAmount", Value::from(-5))]));
    assert_eq!(s.buffered(ch), 40);
    for bad in [f64::NAN, f64::INFINITY, -1.5] {
        s.send(ch, 1);
        s.answer_first("dc.send", &map(&[("bufferedAmount", Value::F64(bad))]));
        assert_eq!(s.buffered(ch), 40, "{bad}");
    }
    // any integer width: uint64 from the sidecar
    s.send(ch, 1);
    s.answer_first(
        "dc.send",
        &map(&[("bufferedAmount", Value::from(u64::from(u32::MAX) + 1))]),
    );
    assert_eq!(s.buffered(ch), 1 << 32);
}

#[test]
fn buffered_amount_is_zero_while_connecting_and_once_closed() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    assert_eq!(s.buffered(ch), 0);
    s.answer_first("dc.create", &[]);
    s.event("p", "a", "dc.open", &[]);
    s.send(ch, 50);
    s.answer_first("dc.send", &amount(1000));
    s.send(ch, 5);
    assert_eq!(s.buffered(ch), 1005);
    s.event("p", "a", "dc.close", &[]);
    assert_eq!(s.buffered(ch), 0);
    s.answer_first("dc.send", &amount(7));
    assert_eq!(s.buffered(ch), 0, "a late acknowledgement changes nothing");
}

#[test]
fn bufferedamountlow_fires_on_the_downward_crossing_only() {
    let mut s = Sidecar::new();
    let ch = open(&mut s);
    s.session.set_threshold(ch, 50, s.now);
    assert_eq!(
        s.take("dc.setBALT").payload[..],
        map(&[("threshold", Value::from(50))])
    );
    s.send(ch, 100);
    s.answer_first("dc.send", &amount(30));
    assert_eq!(s.events(), [low(ch)], "100 -> 30 crosses 50");
    s.send(ch, 10);
    s.answer_first("dc.send", &amount(0));
    assert!(s.events().is_empty(), "40 -> 0 was never above 50");
    s.send(ch, 60);
    s.send(ch, 1);
    s.answer_first("dc.send", &amount(55));
    assert!(s.events().is_empty(), "61 -> 56 stays above");
    s.answer_first("dc.send", &amount(50));
    assert_eq!(s.events(), [low(ch)], "at the threshold is low");
}

#[test]
fn a_low_edge_is_checked_again_when_javascript_takes_it() {
    let mut s = Sidecar::new();
    let ch = open(&mut s);
    s.send(ch, 10);
    s.answer_first("dc.send", &[]);
    // JavaScript sends again before it sees the event: the amount is no longer low
    s.send(ch, 10);
    assert!(s.events().is_empty());
    s.answer_first("dc.send", &[]);
    assert_eq!(s.events(), [low(ch)]);
}

#[test]
fn the_sidecars_own_low_event_asks_and_fires_only_when_really_low() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    s.answer_first("dc.create", &[]);
    s.event("p", "a", "dc.bufferedamountlow", &[]);
    assert!(s.waiting().is_empty(), "not asked while connecting");
    s.event("p", "a", "dc.open", &[]);
    s.events();
    s.event("p", "a", "dc.bufferedamountlow", &[]);
    s.answer_first("dc.getBA", &amount(0));
    assert_eq!(s.events(), [low(ch)]);
    s.event("p", "a", "dc.bufferedamountlow", &[]);
    s.answer_first("dc.getBA", &amount(10));
    assert!(s.events().is_empty(), "10 is above the threshold 0");
    assert_eq!(s.buffered(ch), 10, "the refresh is a source too");
    s.event("p", "a", "dc.bufferedamountlow", &[]);
    let ask = s.take("dc.getBA");
    s.refuse(&ask, "boom");
    assert_eq!(
        s.events_no_log(),
        [low(ch)],
        "a failed refresh fires, as the old SDK did"
    );
    s.event("p", "a", "dc.bufferedamountlow", &[]);
    let ask = s.take("dc.getBA");
    s.event("p", "a", "dc.close", &[]);
    s.answer(&ask, &amount(0));
    assert!(!s.events().contains(&low(ch)), "nothing fires after close");
}

#[test]
fn an_idle_backlog_is_polled_from_10ms_doubling_to_250ms() {
    let mut s = Sidecar::new();
    let ch = open(&mut s);
    s.send(ch, 10);
    s.answer_first("dc.send", &amount(1000));
    let mut gaps = Vec::new();
    let mut last = s.now;
    for _ in 0..7 {
        let at = s.session.poll_timeout().expect("a poll is due");
        s.advance(at - s.now);
        let poll = s.take("dc.getBA");
        gaps.push((s.now - last).as_millis());
        last = s.now;
        s.answer(&poll, &amount(1000));
    }
    assert_eq!(gaps, [10, 20, 40, 80, 160, 250, 250]);
    // the backlog is gone: no more polls
    s.advance(Duration::from_millis(250));
    let poll = s.take("dc.getBA");
    s.answer(&poll, &amount(0));
    s.advance(Duration::from_secs(5));
    assert!(s.try_take("dc.getBA").is_none());
}

#[test]
fn no_poll_is_sent_for_a_channel_closed_meanwhile_and_a_failed_poll_stops_polling() {
    let mut s = Sidecar::new();
    let ch = open(&mut s);
    s.send(ch, 10);
    s.answer_first("dc.send", &amount(1000));
    s.event("p", "a", "dc.close", &[]);
    s.advance(Duration::from_secs(1));
    assert!(s.try_take("dc.getBA").is_none());

    let pc = s.session.channel(ch).unwrap().connection();
    let ch = s.open_channel(pc, "b");
    s.send(ch, 10);
    s.answer_first("dc.send", &amount(1000));
    s.advance(Duration::from_millis(10));
    let poll = s.take("dc.getBA");
    s.refuse(&poll, "boom");
    s.advance(Duration::from_secs(1));
    assert!(s.try_take("dc.getBA").is_none());
}

#[test]
fn the_threshold_reaches_the_sidecar_once_it_knows_the_channel() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    s.session.set_threshold(ch, 64, s.now);
    assert_eq!(s.waiting(), ["dc.create"]);
    assert_eq!(s.session.channel(ch).unwrap().threshold(), 64);
    s.answer_first("dc.create", &[]);
    let set = s.take("dc.setBALT");
    assert_eq!(set.payload[..], map(&[("threshold", Value::from(64))]));
    s.refuse(&set, "nope");
    let events = s.events_no_log();
    assert_eq!(
        events,
        [Event::Channel(
            ch,
            ChannelEvent::Error("setting bufferedAmountLowThreshold failed: nope".into())
        )]
    );
}
