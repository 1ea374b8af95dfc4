//! Closing before the sidecar answered: a connection's close() waits for `pc.create` (at
//! most the drain limit) and then sends `pc.close`; a channel the sidecar does not know yet
//! is never created there, or closed once its `dc.create` is answered; events for a
//! connection whose `pc.create` is unanswered are a closed namesake's and are dropped.

use super::sidecar::{create_payload, state_change, Sidecar};
use crate::core::{
    ConnectionEvent, ConnectionId, Event, Object, Outcome, ReadyState, CLOSE_DRAIN_LIMIT,
};
use std::time::Duration;

/// A connection whose `pc.create` is written and not answered.
fn unanswered(s: &mut Sidecar, pc_id: &str) -> ConnectionId {
    s.session.create_connection(
        pc_id.into(),
        Ok(create_payload(pc_id)),
        Default::default(),
        s.now,
    )
}

fn settled(events: &[Event]) -> Vec<crate::core::SettleToken> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Settle(token, Ok(Outcome::Unit)) => Some(*token),
            _ => None,
        })
        .collect()
}

#[test]
fn close_before_pc_create_is_answered_waits_for_it_then_sends_pc_close() {
    let mut s = Sidecar::new();
    let pc = unanswered(&mut s, "p");
    let (first, second) = (s.token(), s.token());
    s.session.close_connection(pc, first, s.now);
    assert_eq!(
        s.events(),
        [Event::Connection(
            pc,
            ConnectionEvent::ConnectionStateChange
        )],
        "'closed' at once, settled only once the sidecar closed it"
    );
    s.advance(Duration::from_secs(1));
    s.session.close_connection(pc, second, s.now);
    assert!(s.events().is_empty());
    assert_eq!(s.waiting(), ["pc.create"]);
    s.answer_first("pc.create", &[]);
    assert_eq!(s.waiting(), ["pc.close"]);
    assert!(s.events().is_empty(), "nothing settles before pc.close");
    s.answer_first("pc.close", &[]);
    assert_eq!(
        s.events(),
        [
            Event::Release(Object::Connection(pc)),
            Event::Settle(first, Ok(Outcome::Unit)),
            Event::Settle(second, Ok(Outcome::Unit)),
        ]
    );
}

#[test]
fn close_before_pc_create_waits_at_most_the_drain_limit() {
    let mut s = Sidecar::new();
    let pc = unanswered(&mut s, "p");
    let token = s.token();
    s.session.close_connection(pc, token, s.now);
    s.events();
    s.advance(CLOSE_DRAIN_LIMIT - Duration::from_millis(1));
    assert!(s.events().is_empty(), "still waiting for pc.create");
    s.advance(Duration::from_millis(1));
    assert_eq!(
        s.events(),
        [
            Event::Release(Object::Connection(pc)),
            Event::Settle(token, Ok(Outcome::Unit)),
        ]
    );
    s.answer_first("pc.create", &[]);
    assert!(s.waiting().is_empty(), "too late for pc.close");
    assert!(s.events().is_empty());
}

#[test]
fn close_before_a_refused_pc_create_settles_without_pc_close() {
    let mut s = Sidecar::new();
    let pc = unanswered(&mut s, "p");
    let token = s.token();
    s.session.close_connection(pc, token, s.now);
    s.events();
    let create = s.take("pc.create");
    s.refuse(&create, "bad settings");
    assert!(s.waiting().is_empty());
    let events = s.events_no_log();
    assert!(
        events.ends_with(&[
            Event::Release(Object::Connection(pc)),
            Event::Settle(token, Ok(Outcome::Unit)),
        ]),
        "{events:?}"
    );
}

#[test]
fn close_before_pc_create_never_creates_its_waiting_channel() {
    let mut s = Sidecar::new();
    let pc = unanswered(&mut s, "p");
    let ch = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    let token = s.token();
    s.session.close_connection(pc, token, s.now);
    assert_eq!(
        s.session.channel(ch).unwrap().ready_state(),
        ReadyState::Closed
    );
    assert!(!settled(&s.events()).contains(&token));
    assert_eq!(
        s.waiting(),
        ["pc.create"],
        "no dc.close for an unknown channel"
    );
    s.answer_first("pc.create", &[]);
    assert_eq!(
        s.waiting(),
        ["pc.close"],
        "no dc.create for a closed channel"
    );
    s.answer_first("pc.close", &[]);
    assert_eq!(settled(&s.events()), [token]);
}

#[test]
fn a_channel_closed_while_pc_create_is_unanswered_is_never_created() {
    let mut s = Sidecar::new();
    let pc = unanswered(&mut s, "p");
    let ch = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    let token = s.token();
    s.session.close_channel(ch, token, s.now);
    assert_eq!(settled(&s.events()), [token], "closed at once");
    assert_eq!(
        s.waiting(),
        ["pc.create"],
        "no dc.close for an unknown channel"
    );
    s.answer_first("pc.create", &[]);
    assert!(s.waiting().is_empty(), "no dc.create for a closed channel");
}

#[test]
fn a_channel_closed_while_dc_create_is_unanswered_is_closed_once_it_is_answered() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    let token = s.token();
    s.session.close_channel(ch, token, s.now);
    assert_eq!(settled(&s.events()), [token], "closed at once");
    // JavaScript may let go of it at once: the sidecar must still hear of it.
    s.session.forget(Object::Channel(ch));
    assert_eq!(
        s.waiting(),
        ["dc.create"],
        "no dc.close before dc.create is answered"
    );
    s.answer_first("dc.create", &[]);
    assert_eq!(s.waiting(), ["dc.close"]);
    assert!(s.events().is_empty());
    // the sidecar's own dc.close of it spares a new channel of that label
    let new = s.open_channel(pc, "a");
    s.event("p", "a", "dc.close", &[]);
    assert_eq!(
        s.session.channel(new).unwrap().ready_state(),
        ReadyState::Open
    );
    s.answer_first("dc.close", &[]);
    assert_eq!(s.log.iter().filter(|r| r.method == "dc.close").count(), 1);
}

#[test]
fn a_channel_whose_dc_create_fails_after_close_is_not_closed_on_the_sidecar() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    let token = s.token();
    s.session.close_channel(ch, token, s.now);
    s.events();
    let create = s.take("dc.create");
    s.refuse(&create, "no");
    assert!(s.waiting().is_empty());
    assert!(
        s.events_no_log().is_empty(),
        "no error for a closed channel"
    );
}

#[test]
fn a_closing_connection_sends_no_dc_close_for_a_channel_answered_late() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    let (first, second) = (s.token(), s.token());
    s.session.close_channel(ch, first, s.now);
    s.session.close_connection(pc, second, s.now);
    assert_eq!(s.waiting(), ["dc.create", "pc.close"]);
    s.answer_first("dc.create", &[]);
    assert_eq!(
        s.waiting(),
        ["pc.close"],
        "pc.close takes the channel with it"
    );
}

#[test]
fn events_before_pc_create_is_answered_are_dropped() {
    let mut s = Sidecar::new();
    let pc = unanswered(&mut s, "p");
    s.events();
    s.event("p", "", "pc.statechange", &state_change("closed", "closed"));
    s.event("p", "x", "pc.datachannel", &[]);
    s.event(
        "p",
        "",
        "pc.icegatheringstatechange",
        &super::sidecar::map(&[]),
    );
    assert!(s.events().is_empty());
    let conn = s.session.connection(pc).unwrap();
    assert_eq!(
        (conn.connection_state(), conn.ice_connection_state()),
        ("new", "new")
    );
    s.answer_first("pc.create", &[]);
    s.event("p", "", "pc.statechange", &state_change("connecting", ""));
    assert_eq!(
        s.events(),
        [Event::Connection(
            pc,
            ConnectionEvent::ConnectionStateChange
        )]
    );
}

#[test]
fn a_new_connection_does_not_get_the_last_events_of_its_closed_namesake() {
    let mut s = Sidecar::new();
    let old = s.connection("p");
    let token = s.token();
    s.session.close_connection(old, token, s.now);
    s.answer_first("pc.close", &[]);
    let new = unanswered(&mut s, "p");
    s.events();
    // the old peer's last word, after the new one's pc.create was written
    s.event("p", "", "pc.statechange", &state_change("closed", "closed"));
    assert!(s.events().is_empty());
    assert_eq!(s.session.connection(new).unwrap().connection_state(), "new");
    s.answer_first("pc.create", &[]);
    assert_eq!(s.session.connection(new).unwrap().connection_state(), "new");
}

#[test]
fn a_second_channel_close_during_a_drain_settles_with_the_first_at_the_limit() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    for _ in 0..130 {
        s.send(ch, 1);
    }
    let (first, second) = (s.token(), s.token());
    s.session.close_channel(ch, first, s.now);
    s.advance(Duration::from_secs(2));
    s.session.close_channel(ch, second, s.now);
    s.events();
    s.advance(CLOSE_DRAIN_LIMIT - Duration::from_secs(2));
    assert_eq!(settled(&s.events_no_log()), [first, second]);
}

/// Closes `pc_id`'s connection on the sidecar and opens a new one with the same id.
fn reused(s: &mut Sidecar, pc_id: &str) -> ConnectionId {
    let old = s.connection(pc_id);
    let token = s.token();
    s.session.close_connection(old, token, s.now);
    s.answer_first("pc.close", &[]);
    s.events();
    let new = s.connection(pc_id);
    s.events();
    new
}

#[test]
fn a_reused_id_takes_no_closed_from_the_closed_namesake() {
    let mut s = Sidecar::new();
    let pc = reused(&mut s, "p");
    // the old connection's last words, after the new one's pc.create was answered
    s.event("p", "", "pc.statechange", &state_change("closed", "closed"));
    s.event(
        "p",
        "",
        "pc.signalingstatechange",
        &super::sidecar::map(&[("state", "closed".into())]),
    );
    assert!(s.events_no_log().is_empty());
    let conn = s.session.connection(pc).unwrap();
    assert_ne!(conn.connection_state(), "closed");
    assert_ne!(conn.signaling_state(), "closed");
    // its own states still come through
    s.event(
        "p",
        "",
        "pc.statechange",
        &state_change("connecting", "checking"),
    );
    assert_eq!(
        s.session.connection(pc).unwrap().connection_state(),
        "connecting"
    );
}

#[test]
fn after_the_stale_window_a_reused_id_takes_a_closed_again() {
    let mut s = Sidecar::new();
    let pc = reused(&mut s, "p");
    s.advance(crate::core::registry::STALE_CLOSE_WINDOW);
    s.events();
    s.event("p", "", "pc.statechange", &state_change("closed", "closed"));
    assert_eq!(
        s.session.connection(pc).unwrap().connection_state(),
        "closed"
    );
}
