//! Closing before the sidecar answered: a connection's close() waits for `pc.create` (at
//! most the drain limit) and then sends `pc.close`; a channel the sidecar does not know yet
//! is never created there, or closed once its `dc.create` is answered; events for a
//! connection whose `pc.create` is unanswered are a closed namesake's and are dropped.

use super::sidecar::{create_payload, Sidecar};
use crate::core::{ConnectionEvent, ConnectionId, Event, Object, Outcome, CLOSE_DRAIN_LIMIT};
use std::time::Duration;

/// A connection whose `pc.create` is written and not answered.
fn unanswered(s: &mut Sidecar, pc_id: &str) -> ConnectionId {
    s.session
        .create_connection(pc_id.into(), Ok(create_payload(pc_id)), None, s.now)
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
