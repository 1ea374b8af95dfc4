//! The sidecar's end: a crash fails every request and then every connection (after its
//! channels closed); stop() fails the connections first.

use super::sidecar::{create_payload, Sidecar};
use crate::core::{
    ChannelEvent, ConnectionCall, ConnectionEvent, Event, Object, Outcome, ReadyState,
};
use crate::error::Error;

fn exited() -> Error {
    Error::Exited {
        code: None,
        signal: Some("SIGKILL".into()),
    }
}

#[test]
fn a_crash_fails_every_connection_after_its_channels_closed() {
    let mut s = Sidecar::new();
    let one = s.connection("one");
    let a = s.open_channel(one, "a");
    let two = s.connection("two");
    let b = s.open_channel(two, "b");
    let closed = s.connection("closed");
    for _ in 0..3 {
        s.send(a, 10);
    }
    let token = s.token();
    s.session
        .call(two, ConnectionCall::CreateOffer, token, s.now);
    let close = s.token();
    s.session.close_connection(closed, close, s.now);
    s.answer_first("pc.close", &[]);
    s.events();
    s.read_stdin();
    s.session
        .sidecar_exited(None, Some("SIGKILL".into()), s.now);
    let text = "send failed: process exited (code=null, signal=SIGKILL)".to_owned();
    use ConnectionEvent::{ConnectionStateChange as Csc, IceConnectionStateChange as Icsc};
    assert_eq!(
        s.events_no_log(),
        [
            Event::Channel(a, ChannelEvent::Error(text)),
            Event::Settle(token, Err(exited())),
            Event::Channel(a, ChannelEvent::Close),
            Event::Release(Object::Channel(a)),
            Event::Connection(one, Csc),
            Event::Connection(one, Icsc),
            Event::Weaken(Object::Connection(one)),
            Event::Channel(b, ChannelEvent::Close),
            Event::Release(Object::Channel(b)),
            Event::Connection(two, Csc),
            Event::Connection(two, Icsc),
            Event::Weaken(Object::Connection(two)),
        ],
        "one error for three failed sends; the closed connection stays closed"
    );
    for pc in [one, two] {
        let c = s.session.connection(pc).unwrap();
        assert_eq!(
            (c.connection_state(), c.ice_connection_state()),
            ("failed", "failed")
        );
    }
    assert_eq!(
        s.session.connection(closed).unwrap().connection_state(),
        "closed"
    );
    assert_eq!(s.buffered(a), 0);
    assert_eq!(
        s.session.channel(b).unwrap().ready_state(),
        ReadyState::Closed
    );
    assert!(s.session.send(a, b"x", true, s.now).is_err());
    assert_eq!(s.session.pending_requests(), 0);
    assert!(
        s.session.poll_transmit().is_none(),
        "nothing goes out after the crash"
    );
    assert_eq!(s.session.poll_timeout(), None);
}

#[test]
fn a_connection_whose_create_is_pending_fails_with_the_sidecar() {
    let mut s = Sidecar::new();
    let pc = s.session.create_connection(
        "p".into(),
        Ok(create_payload("p")),
        Default::default(),
        s.now,
    );
    let ch = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    s.session.sidecar_exited(Some(2), None, s.now);
    let text = "process exited (code=2, signal=null)".to_owned();
    use ConnectionEvent::{ConnectionStateChange as Csc, IceConnectionStateChange as Icsc};
    assert_eq!(
        s.events_no_log(),
        [
            Event::Channel(ch, ChannelEvent::Error(text)),
            Event::Channel(ch, ChannelEvent::Close),
            Event::Release(Object::Channel(ch)),
            Event::Connection(pc, Csc),
            Event::Connection(pc, Icsc),
            Event::Weaken(Object::Connection(pc)),
        ]
    );
    assert_eq!(
        s.session.connection(pc).unwrap().connection_state(),
        "failed"
    );
}

#[test]
fn a_close_under_way_completes_after_a_crash_without_pc_close() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    s.send(ch, 1);
    let token = s.token();
    s.session.close_connection(pc, token, s.now);
    s.events();
    s.read_stdin();
    s.session.sidecar_exited(Some(1), None, s.now);
    let events = s.events_no_log();
    assert_eq!(
        events[events.len() - 3..],
        [
            Event::Connection(pc, ConnectionEvent::ConnectionStateChange),
            Event::Release(Object::Connection(pc)),
            Event::Settle(token, Ok(Outcome::Unit)),
        ]
    );
    assert_eq!(
        s.session.connection(pc).unwrap().connection_state(),
        "closed"
    );
    assert!(s.session.poll_transmit().is_none());
}

#[test]
fn stop_closes_channels_first_so_failing_sends_raise_no_error() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    s.send(ch, 1);
    let token = s.token();
    s.session
        .call(pc, ConnectionCall::CreateAnswer, token, s.now);
    s.events();
    s.session.sidecar_stopped(s.now);
    let events = s.events_no_log();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Channel(_, ChannelEvent::Error(_)))),
        "{events:?}"
    );
    assert_eq!(
        events.last(),
        Some(&Event::Settle(token, Err(Error::Stopped)))
    );
    assert_eq!(events[0], Event::Channel(ch, ChannelEvent::Close));
}

#[test]
fn after_the_crash_new_connections_and_requests_fail_at_once() {
    let mut s = Sidecar::new();
    let old = s.connection("p");
    s.session.sidecar_exited(Some(1), None, s.now);
    s.events();
    let pc = s.session.create_connection(
        "q".into(),
        Ok(create_payload("q")),
        Default::default(),
        s.now,
    );
    assert!(s.session.connection(pc).unwrap().creation_failed());
    let token = s.token();
    s.session
        .call(old, ConnectionCall::CreateOffer, token, s.now);
    let events = s.events();
    assert!(events.contains(&Event::Settle(
        token,
        Err(Error::Exited {
            code: Some(1),
            signal: None
        })
    )));
    let ch = s
        .session
        .create_channel(old, "a".into(), true, s.now)
        .unwrap();
    assert_eq!(
        s.session.channel(ch).unwrap().ready_state(),
        ReadyState::Closed
    );
    s.event(
        "p",
        "",
        "pc.statechange",
        &super::sidecar::state_change("connected", ""),
    );
    assert_eq!(
        s.session.connection(old).unwrap().connection_state(),
        "failed"
    );
    assert!(s.session.poll_transmit().is_none());
}

#[test]
fn todays_gap_a_connection_the_sidecar_reported_closed_keeps_its_channels_through_a_crash() {
    // Kept as the old code does it (src/peer.rs: `fail` skips 'closed' and 'failed'
    // connections, and a sidecar 'closed' state closes no channel); reported, not fixed.
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    s.event(
        "p",
        "",
        "pc.statechange",
        &super::sidecar::state_change("closed", ""),
    );
    assert_eq!(
        s.session.channel(ch).unwrap().ready_state(),
        ReadyState::Open
    );
    s.events();
    s.session.sidecar_exited(Some(1), None, s.now);
    assert!(s.events().is_empty());
    assert_eq!(
        s.session.channel(ch).unwrap().ready_state(),
        ReadyState::Open
    );
}
