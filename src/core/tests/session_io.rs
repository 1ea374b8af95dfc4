//! The session's own input and output: raw requests, request ids, orphan and refused
//! answers, and forgetting what JavaScript let go of.

use super::sidecar::{Sidecar, TIMEOUT};
use crate::core::{Event, Object, Outcome, Request};
use crate::error::Error;

#[test]
fn a_raw_request_settles_with_the_whole_response() {
    let mut s = Sidecar::new();
    let token = s.token();
    let request = Request {
        is_binary: true,
        ..Request::new("custom.method", "pc", "label", b"\x01\x02")
    };
    s.session.request(request, token, s.now);
    let sent = s.take("custom.method");
    assert_eq!(
        (sent.id, sent.pc_id.as_str(), sent.dc_label.as_str()),
        (1, "pc", "label")
    );
    assert!(sent.is_binary);
    assert_eq!(&sent.payload[..], b"\x01\x02");
    s.answer(&sent, b"\xc0");
    let events = s.events();
    let [Event::Settle(t, Ok(Outcome::Frame(frame)))] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (*t, frame.header.id, &frame.payload[..]),
        (token, 1, &b"\xc0"[..])
    );
}

#[test]
fn a_refusal_without_text_is_request_failed_and_is_logged() {
    let mut s = Sidecar::new();
    let token = s.token();
    s.session
        .request(Request::new("ping", "", "", &[]), token, s.now);
    let ping = s.take("ping");
    s.refuse(&ping, "");
    assert_eq!(
        s.events(),
        [
            Event::Log("request error id=1 method=ping err=request failed".into()),
            Event::Settle(token, Err(Error::Remote("request failed".into()))),
        ]
    );
}

#[test]
fn request_ids_count_from_1_and_frames_go_out_in_order() {
    let mut s = Sidecar::new();
    for n in 0..5 {
        let token = s.token();
        s.session
            .request(Request::new(&format!("m{n}"), "", "", &[]), token, s.now);
    }
    let ids: Vec<_> = (0..5).map(|n| s.take(&format!("m{n}")).id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    assert_eq!(s.session.pending_requests(), 5);
    assert_eq!(s.session.poll_timeout(), Some(s.now + TIMEOUT));
}

#[test]
fn a_request_frame_from_the_sidecar_is_ignored_and_logged() {
    let mut s = Sidecar::new();
    let frame = crate::protocol::Frame {
        header: crate::protocol::Header::request(9, "evil"),
        payload: bytes::Bytes::new(),
    };
    s.session.handle_frame(frame, s.now);
    assert_eq!(
        s.events(),
        [Event::Log(
            "ignored request frame from pion-ipc (method=evil)".into()
        )]
    );
}

#[test]
fn after_the_sidecar_is_gone_a_raw_request_is_not_started() {
    let mut s = Sidecar::new();
    s.session.sidecar_stopped(s.now);
    let token = s.token();
    s.session
        .request(Request::new("ping", "", "", &[]), token, s.now);
    assert_eq!(s.events(), [Event::Settle(token, Err(Error::NotStarted))]);
    assert!(s.session.poll_transmit().is_none());
}

#[test]
fn forgetting_drops_what_javascript_let_go_of_but_not_a_live_connection() {
    let mut s = Sidecar::new();
    let live = s.connection("p");
    let ch = s.open_channel(live, "a");
    s.event("p", "a", "dc.close", &[]);
    s.session.forget(Object::Channel(ch));
    assert!(s.session.channel(ch).is_none());
    s.session.forget(Object::Connection(live));
    assert!(
        s.session.connection(live).is_some(),
        "a listening connection can still emit"
    );
    let token = s.token();
    s.session.close_connection(live, token, s.now);
    s.answer_first("pc.close", &[]);
    s.session.forget(Object::Connection(live));
    assert!(s.session.connection(live).is_none());
    let again = s.connection("p");
    assert!(s.session.connection(again).unwrap().is_listening());
}
