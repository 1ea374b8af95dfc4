//! Graceful close: the drain of queued sends (at most 5 s), dc.close before pc.close, a
//! second close, and the late events of what was closed.

use super::sidecar::{state_change, Sidecar};
use crate::core::{
    ChannelEvent, ConnectionEvent, Event, Object, Outcome, ReadyState, CLOSE_DRAIN_LIMIT,
};
use std::time::Duration;

#[test]
fn close_drains_every_queued_send_before_dc_close() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    for i in 0..130u32 {
        s.session.send(ch, &i.to_le_bytes(), true, s.now).unwrap();
    }
    let token = s.token();
    s.session.close_channel(ch, token, s.now);
    assert_eq!(
        s.session.channel(ch).unwrap().queued(),
        2,
        "two wait for the budget"
    );
    assert_eq!(
        s.session.channel(ch).unwrap().ready_state(),
        ReadyState::Closing
    );
    while let Some(send) = s.try_take("dc.send") {
        s.answer(&send, &[]);
        s.advance(Duration::from_millis(10));
    }
    let sent: Vec<_> = s.log.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        sent.iter().filter(|m| **m == "dc.send").count(),
        130,
        "none lost"
    );
    assert_eq!(
        sent.last(),
        Some(&"dc.close"),
        "dc.close after the last dc.send"
    );
    let events = s.events();
    assert_eq!(
        events[events.len() - 3..],
        [
            Event::Channel(ch, ChannelEvent::Close),
            Event::Release(Object::Channel(ch)),
            Event::Settle(token, Ok(Outcome::Unit)),
        ]
    );
}

#[test]
fn after_5_s_the_rest_of_the_queue_is_dropped_and_logged() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    for _ in 0..131 {
        s.send(ch, 1);
    }
    let token = s.token();
    s.session.close_channel(ch, token, s.now);
    s.events();
    s.advance(CLOSE_DRAIN_LIMIT - Duration::from_millis(1));
    assert_eq!(
        s.session.channel(ch).unwrap().ready_state(),
        ReadyState::Closing
    );
    s.advance(Duration::from_millis(1));
    assert_eq!(
        s.session.channel(ch).unwrap().ready_state(),
        ReadyState::Closed
    );
    assert_eq!(s.buffered(ch), 0);
    assert_eq!(
        s.events(),
        [
            Event::Log(
                "channel \"a\": 3 queued messages dropped after waiting 5 s to close".into()
            ),
            Event::Channel(ch, ChannelEvent::Close),
            Event::Release(Object::Channel(ch)),
            Event::Settle(token, Ok(Outcome::Unit)),
        ]
    );
    assert!(s.try_take("dc.close").is_some());
}

#[test]
fn a_second_close_settles_when_the_first_is_done_and_a_closed_one_at_once() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    s.send(ch, 1);
    let (first, second, third) = (s.token(), s.token(), s.token());
    s.session.close_channel(ch, first, s.now);
    s.session.close_channel(ch, second, s.now);
    s.events();
    s.answer_first("dc.send", &[]);
    let settled: Vec<_> = s
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Settle(token, Ok(Outcome::Unit)) => Some(token),
            _ => None,
        })
        .collect();
    assert_eq!(settled, [first, second]);
    s.session.close_channel(ch, third, s.now);
    assert_eq!(s.events(), [Event::Settle(third, Ok(Outcome::Unit))]);
    s.read_stdin();
    assert_eq!(s.log.iter().filter(|r| r.method == "dc.close").count(), 1);
}

#[test]
fn connection_close_closes_its_channels_then_sends_pc_close() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let a = s.open_channel(pc, "a");
    let b = s.open_channel(pc, "b");
    s.send(a, 5);
    s.events();
    let (first, second) = (s.token(), s.token());
    s.session.close_connection(pc, first, s.now);
    let state = |s: &Sidecar, ch| s.session.channel(ch).unwrap().ready_state();
    assert_eq!(
        (state(&s, a), state(&s, b)),
        (ReadyState::Closing, ReadyState::Closed)
    );
    assert!(s
        .session
        .create_channel(pc, "c".into(), true, s.now)
        .is_err());
    s.session.close_connection(pc, second, s.now);
    s.answer_first("dc.send", &[]);
    assert_eq!(
        s.session.connection(pc).unwrap().connection_state(),
        "closed"
    );
    let order: Vec<_> = s.waiting();
    assert_eq!(order, ["dc.close", "dc.close", "pc.close"]);
    let events = s.events();
    assert_eq!(
        events,
        [
            Event::Channel(b, ChannelEvent::Close),
            Event::Release(Object::Channel(b)),
            Event::Channel(a, ChannelEvent::Close),
            Event::Release(Object::Channel(a)),
            Event::Connection(pc, ConnectionEvent::ConnectionStateChange),
        ]
    );
    // events for the closed connection are ignored from now on
    s.event(
        "p",
        "",
        "pc.statechange",
        &state_change("connected", "connected"),
    );
    s.event("p", "", "pc.datachannel", &[]);
    assert!(s.events().is_empty());
    s.answer_first("pc.close", &[]);
    assert_eq!(
        s.events(),
        [
            Event::Release(Object::Connection(pc)),
            Event::Settle(first, Ok(Outcome::Unit)),
            Event::Settle(second, Ok(Outcome::Unit)),
        ]
    );
    let third = s.token();
    s.session.close_connection(pc, third, s.now);
    assert_eq!(s.events(), [Event::Settle(third, Ok(Outcome::Unit))]);
}

#[test]
fn a_late_dc_close_of_a_channel_we_closed_spares_the_new_one_of_that_label() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let old = s.open_channel(pc, "a");
    let token = s.token();
    s.session.close_channel(old, token, s.now);
    let new = s.open_channel(pc, "a");
    s.events();
    s.event("p", "a", "dc.close", &[]);
    assert_eq!(
        s.session.channel(new).unwrap().ready_state(),
        ReadyState::Open
    );
    assert!(s.events().is_empty());
    s.event("p", "a", "dc.close", &[]);
    assert_eq!(
        s.session.channel(new).unwrap().ready_state(),
        ReadyState::Closed
    );
}

#[test]
fn the_stale_close_window_ends_after_10_s() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let old = s.open_channel(pc, "a");
    let token = s.token();
    s.session.close_channel(old, token, s.now);
    s.advance(Duration::from_secs(10));
    let new = s.open_channel(pc, "a");
    s.event("p", "a", "dc.close", &[]);
    assert_eq!(
        s.session.channel(new).unwrap().ready_state(),
        ReadyState::Closed
    );
}

#[test]
fn a_connection_whose_create_failed_closes_without_pc_close() {
    let mut s = Sidecar::new();
    let pc = s.session.create_connection(
        "p".into(),
        Ok(super::sidecar::create_payload("p")),
        Default::default(),
        s.now,
    );
    let create = s.take("pc.create");
    s.refuse(&create, "bad settings");
    s.events();
    let token = s.token();
    s.session.close_connection(pc, token, s.now);
    assert!(s.waiting().is_empty());
    assert_eq!(
        s.events(),
        [
            Event::Connection(pc, ConnectionEvent::ConnectionStateChange),
            Event::Release(Object::Connection(pc)),
            Event::Settle(token, Ok(Outcome::Unit)),
        ]
    );
}

#[test]
fn pc_close_that_times_out_still_settles_close() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let token = s.token();
    s.session.close_connection(pc, token, s.now);
    s.take("pc.close");
    s.events();
    s.advance(super::sidecar::TIMEOUT);
    assert_eq!(
        s.events(),
        [
            Event::Release(Object::Connection(pc)),
            Event::Settle(token, Ok(Outcome::Unit)),
        ]
    );
}
