//! RTCPeerConnection: creation, the states and their late events (trap 5), failure, and
//! the calls that wait for `pc.create`.

use super::sidecar::{create_payload, map, state_change, Sidecar};
use crate::core::{
    ChannelEvent, ConnectionCall, ConnectionEvent, ConnectionId, Event, Object, Outcome, ReadyState,
};
use crate::error::Error;
use rmpv::Value;

use ConnectionEvent::{ConnectionStateChange as Csc, IceConnectionStateChange as Icsc};

fn states(s: &Sidecar, pc: ConnectionId) -> (String, String) {
    let c = s.session.connection(pc).unwrap();
    (c.connection_state().into(), c.ice_connection_state().into())
}

fn change(s: &mut Sidecar, conn: &str, ice: &str) -> Vec<Event> {
    s.event("p", "", "pc.statechange", &state_change(conn, ice));
    s.events()
}

#[test]
fn states_start_new_and_change_only_when_they_do() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let c = s.session.connection(pc).unwrap();
    assert_eq!(
        (
            c.connection_state(),
            c.ice_connection_state(),
            c.ice_gathering_state(),
            c.signaling_state()
        ),
        ("new", "new", "new", "stable")
    );
    assert!(c.selected_candidate_pair().is_none());
    assert!(change(&mut s, "", "").is_empty(), "empty is not a state");
    assert_eq!(
        change(&mut s, "connecting", "checking"),
        [Event::Connection(pc, Csc), Event::Connection(pc, Icsc)]
    );
    assert!(change(&mut s, "connecting", "checking").is_empty());
    assert_eq!(
        change(&mut s, "", "connected"),
        [Event::Connection(pc, Icsc)]
    );
    assert_eq!(states(&s, pc), ("connecting".into(), "connected".into()));
}

#[test]
fn connected_straight_from_new_shows_connecting_first_as_a_browser_does() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    s.event(
        "p",
        "",
        "pc.statechange",
        &state_change("connected", "connected"),
    );
    let mut seen = Vec::new();
    while let Some(event) = s.session.poll_event() {
        seen.push((event, states(&s, pc).0));
    }
    assert_eq!(
        seen,
        [
            (Event::Connection(pc, Csc), "connecting".into()),
            (Event::Connection(pc, Icsc), "connecting".into()),
            (Event::Connection(pc, Csc), "connected".into()),
        ],
        "each listener reads the state of its own event"
    );
    assert!(
        change(&mut s, "connecting", "checking").is_empty(),
        "the sidecar's own 'connecting', late, is dropped"
    );
    assert_eq!(states(&s, pc), ("connected".into(), "connected".into()));

    // close() from the listener of 'connecting': the pending 'connected' never comes.
    let pc = s.connection("q");
    s.event("q", "", "pc.statechange", &state_change("connected", ""));
    assert_eq!(s.session.poll_event(), Some(Event::Connection(pc, Csc)));
    let close = s.token();
    s.session.close_connection(pc, close, s.now);
    let mut after = Vec::new();
    while s.session.poll_event().is_some() {
        after.push(states(&s, pc).0);
    }
    assert!(
        !after.is_empty() && after.iter().all(|state| state == "closed"),
        "never 'connected' after close(): {after:?}"
    );
}

#[test]
fn a_step_back_from_connected_is_a_late_event_unless_ice_restarts() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    change(&mut s, "connected", "connected");
    assert!(change(&mut s, "connecting", "checking").is_empty());
    assert!(change(&mut s, "new", "new").is_empty());
    assert_eq!(states(&s, pc), ("connected".into(), "connected".into()));
    assert_eq!(
        change(&mut s, "disconnected", "disconnected"),
        [Event::Connection(pc, Csc), Event::Connection(pc, Icsc)]
    );
    change(&mut s, "connected", "completed");
    assert!(
        change(&mut s, "", "checking").is_empty(),
        "completed -> checking is late"
    );

    let token = s.token();
    s.session.call(pc, ConnectionCall::RestartIce, token, s.now);
    assert_eq!(
        change(&mut s, "connecting", "checking"),
        [Event::Connection(pc, Csc), Event::Connection(pc, Icsc)],
        "real while ICE restarts"
    );
    change(&mut s, "connected", "connected");
    assert!(
        change(&mut s, "connecting", "").is_empty(),
        "the restart is over"
    );
}

#[test]
fn closed_is_final_whatever_the_sidecar_says_later() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    assert_eq!(change(&mut s, "closed", "closed").len(), 2);
    assert!(change(&mut s, "connected", "connected").is_empty());
    assert_eq!(states(&s, pc), ("closed".into(), "closed".into()));
}

#[test]
fn failed_closes_every_channel_once() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let a = s.open_channel(pc, "a");
    let b = s.open_channel(pc, "b");
    s.send(a, 3);
    s.events();
    let events = change(&mut s, "failed", "failed");
    assert_eq!(
        events,
        [
            Event::Connection(pc, Csc),
            Event::Connection(pc, Icsc),
            Event::Channel(a, ChannelEvent::Close),
            Event::Release(Object::Channel(a)),
            Event::Channel(b, ChannelEvent::Close),
            Event::Release(Object::Channel(b)),
        ]
    );
    assert_eq!(s.buffered(a), 0);
    s.event("p", "a", "dc.close", &[]);
    s.answer_first("dc.send", &[]);
    assert!(s.events().is_empty());
    assert!(s.session.send(b, b"x", true, s.now).is_err());
}

#[test]
fn a_duplicate_pc_id_is_refused_without_touching_the_live_one() {
    let mut s = Sidecar::new();
    let live = s.connection("x");
    let dup = s.session.create_connection(
        "x".into(),
        Ok(create_payload("x")),
        Default::default(),
        s.now,
    );
    assert!(s.waiting().is_empty(), "no second pc.create");
    assert!(s.session.connection(dup).unwrap().creation_failed());
    assert_eq!(s.events(), [Event::Weaken(Object::Connection(dup))]);
    let token = s.token();
    s.session
        .call(dup, ConnectionCall::CreateOffer, token, s.now);
    assert_eq!(
        s.events(),
        [Event::Settle(
            token,
            Err(Error::Remote("peer \"x\" already exists".into()))
        )]
    );
    let ch = s
        .session
        .create_channel(dup, "a".into(), true, s.now)
        .unwrap();
    assert_eq!(
        s.session.channel(ch).unwrap().ready_state(),
        ReadyState::Closed
    );
    s.events();
    s.event("x", "", "pc.statechange", &state_change("connecting", ""));
    assert_eq!(s.events(), [Event::Connection(live, Csc)]);
}

#[test]
fn calls_wait_for_pc_create_and_waiting_channels_are_created_first() {
    let mut s = Sidecar::new();
    let pc = s.session.create_connection(
        "p".into(),
        Ok(create_payload("p")),
        Default::default(),
        s.now,
    );
    let ch = s
        .session
        .create_channel(pc, "a".into(), false, s.now)
        .unwrap();
    let token = s.token();
    s.session
        .call(pc, ConnectionCall::CreateOffer, token, s.now);
    assert_eq!(s.waiting(), ["pc.create"]);
    s.answer_first("pc.create", &[]);
    assert_eq!(s.waiting(), ["dc.create", "pc.createOffer"]);
    let create = s.take("dc.create");
    assert_eq!(
        create.payload[..],
        map(&[("label", Value::from("a")), ("ordered", Value::from(false))])
    );
    s.answer_first("pc.createOffer", &map(&[("sdp", Value::from("v=0"))]));
    assert_eq!(
        s.events(),
        [Event::Settle(
            token,
            Ok(Outcome::Description {
                kind: "offer",
                sdp: "v=0".into()
            })
        )]
    );
    assert_eq!(
        s.session.channel(ch).unwrap().ready_state(),
        ReadyState::Connecting
    );
}

#[test]
fn a_refused_create_fails_its_channels_and_calls_and_weakens_it() {
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
    let token = s.token();
    s.session
        .call(pc, ConnectionCall::GetSctpStats, token, s.now);
    let create = s.take("pc.create");
    s.refuse(&create, "settings.sctpRtoMax=400000 exceeds max 300000 ms");
    let text = "settings.sctpRtoMax=400000 exceeds max 300000 ms";
    assert_eq!(
        s.events_no_log(),
        [
            Event::Weaken(Object::Connection(pc)),
            Event::Channel(ch, ChannelEvent::Error(text.into())),
            Event::Channel(ch, ChannelEvent::Close),
            Event::Release(Object::Channel(ch)),
            Event::Settle(token, Err(Error::Remote(text.into()))),
        ]
    );
    assert!(!s.session.connection(pc).unwrap().is_listening());
    // its pcId is free again
    let again = s.connection("p");
    assert!(!s.session.connection(again).unwrap().creation_failed());
}

#[test]
fn bad_options_fail_the_connection_before_anything_is_sent() {
    let mut s = Sidecar::new();
    let bad = Err(Error::Range(
        "settings.sctpRtoMax must be a whole number".into(),
    ));
    let pc = s
        .session
        .create_connection("p".into(), bad, Default::default(), s.now);
    assert!(s.waiting().is_empty());
    assert!(s.session.connection(pc).unwrap().creation_failed());
    let token = s.token();
    s.session
        .call(pc, ConnectionCall::CreateAnswer, token, s.now);
    let events = s.events();
    assert!(matches!(events[1], Event::Settle(t, Err(Error::Range(_))) if t == token));
}

#[test]
fn calls_after_close_reject_and_answers_are_decoded() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let (none, some) = (s.token(), s.token());
    s.session
        .call(pc, ConnectionCall::GetSctpStats, none, s.now);
    s.session
        .call(pc, ConnectionCall::GetSctpStats, some, s.now);
    s.answer_first("pc.getSctpStats", &[0xc0]);
    let stats = map(&[
        ("bytesSent", Value::from(5u64)),
        ("srttMs", Value::F64(1.5)),
    ]);
    s.answer_first("pc.getSctpStats", &stats);
    let events = s.events();
    assert_eq!(events[0], Event::Settle(none, Ok(Outcome::SctpStats(None))));
    let Event::Settle(_, Ok(Outcome::SctpStats(Some(stats)))) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!((stats.bytes_sent, stats.srtt_ms), (5, 1.5));
    let garbled = s.token();
    s.session
        .call(pc, ConnectionCall::CreateAnswer, garbled, s.now);
    s.answer_first("pc.createAnswer", &[0x01]);
    assert!(matches!(
        &s.events()[0],
        Event::Settle(_, Err(Error::Protocol(_)))
    ));

    let (close, late) = (s.token(), s.token());
    s.session.close_connection(pc, close, s.now);
    s.session.call(pc, ConnectionCall::RestartIce, late, s.now);
    let events = s.events();
    assert!(events.contains(&Event::Settle(
        late,
        Err(Error::InvalidState(
            "the RTCPeerConnection is closed".into()
        ))
    )));
}

#[test]
fn requests_time_out_with_their_method_and_id() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let token = s.token();
    s.session
        .call(pc, ConnectionCall::CreateOffer, token, s.now);
    let offer = s.take("pc.createOffer");
    assert_eq!(offer.id, 2, "ids start at 1: pc.create had it");
    s.advance(super::sidecar::TIMEOUT);
    assert_eq!(
        s.events(),
        [Event::Settle(
            token,
            Err(Error::Timeout {
                method: "pc.createOffer".into(),
                id: 2
            })
        )]
    );
    s.answer(&offer, &[]);
    assert_eq!(s.events(), [Event::Log("orphan response id=2".into())]);
}

#[test]
fn gathering_signaling_pair_and_candidates_reach_javascript() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let state = |v: &str| map(&[("state", Value::from(v))]);
    s.event("p", "", "pc.icegatheringstatechange", &state("gathering"));
    s.event("p", "", "pc.icegatheringstatechange", &state("gathering"));
    s.event(
        "p",
        "",
        "pc.signalingstatechange",
        &state("have-local-offer"),
    );
    s.event("p", "", "pc.signalingstatechange", &state(""));
    let candidate = map(&[
        ("candidate", Value::from("candidate:1")),
        ("sdpMid", Value::from("0")),
        ("sdpMLineIndex", Value::from(0)),
    ]);
    s.event("p", "", "pc.icecandidate", &candidate);
    s.event("p", "", "pc.icecandidate", &[0x01]);
    let side = |t: &str| {
        Value::Map(vec![
            (Value::from("type"), Value::from(t)),
            (Value::from("address"), Value::from("10.0.0.1")),
            (Value::from("port"), Value::from(9)),
            (Value::from("protocol"), Value::from("udp")),
        ])
    };
    let pair = map(&[("local", side("host")), ("remote", side("prflx"))]);
    s.event("p", "", "pc.selectedcandidatepairchange", &pair);
    let events = s.events();
    assert_eq!(events.len(), 5, "{events:?}");
    assert_eq!(
        events[0],
        Event::Connection(pc, ConnectionEvent::IceGatheringStateChange)
    );
    assert_eq!(
        events[1],
        Event::Connection(pc, ConnectionEvent::SignalingStateChange)
    );
    let Event::Connection(_, ConnectionEvent::IceCandidate(c)) = &events[2] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (c.sdp_mid.as_deref(), c.sdp_m_line_index),
        (Some("0"), Some(0))
    );
    assert!(matches!(&events[3], Event::Log(l) if l.starts_with("bad pc.icecandidate payload")));
    let c = s.session.connection(pc).unwrap();
    assert_eq!(
        (c.ice_gathering_state(), c.signaling_state()),
        ("gathering", "have-local-offer")
    );
    assert_eq!(c.selected_candidate_pair().unwrap().remote.kind, "prflx");
}

#[test]
fn raw_events_are_handed_out_only_when_asked_and_only_pc_and_dc_ones() {
    let mut s = Sidecar::new();
    s.connection("p");
    s.event(
        "p",
        "",
        "pc.icegatheringstatechange",
        &map(&[("state", Value::from("x"))]),
    );
    assert!(!s
        .events()
        .iter()
        .any(|e| matches!(e, Event::SidecarEvent(_))));
    s.session.set_raw_events(true);
    s.event("p", "", "exit", &[]);
    s.event("q", "", "pc.icecandidate", &[]);
    let events = s.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(&events[0], Event::SidecarEvent(f) if f.header.pc_id == "q"));
}

#[test]
fn every_call_sends_its_method_and_payload_and_settles_with_its_answer() {
    use crate::protocol::messages::{IceCandidate, SessionDescription};
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let description = SessionDescription {
        kind: "answer".into(),
        sdp: "v=0".into(),
    };
    let candidate = IceCandidate {
        candidate: "candidate:1".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
    };
    let sdp = map(&[("sdp", Value::from("v=1"))]);
    let description_payload = map(&[("type", Value::from("answer")), ("sdp", Value::from("v=0"))]);
    let candidate_payload = map(&[
        ("candidate", Value::from("candidate:1")),
        ("sdpMid", Value::from("0")),
        ("sdpMLineIndex", Value::from(0)),
    ]);
    let description_outcome = |kind| Outcome::Description {
        kind,
        sdp: "v=1".into(),
    };
    let cases = [
        (
            ConnectionCall::CreateOffer,
            "pc.createOffer",
            vec![],
            sdp.clone(),
            description_outcome("offer"),
        ),
        (
            ConnectionCall::CreateAnswer,
            "pc.createAnswer",
            vec![],
            sdp.clone(),
            description_outcome("answer"),
        ),
        (
            ConnectionCall::RestartIce,
            "pc.restartIce",
            vec![],
            sdp.clone(),
            description_outcome("offer"),
        ),
        (
            ConnectionCall::SetLocalDescription(description.clone()),
            "pc.setLocalDescription",
            description_payload.clone(),
            vec![],
            Outcome::Unit,
        ),
        (
            ConnectionCall::SetRemoteDescription(description),
            "pc.setRemoteDescription",
            description_payload,
            vec![],
            Outcome::Unit,
        ),
        (
            ConnectionCall::AddIceCandidate(candidate),
            "pc.addIceCandidate",
            candidate_payload,
            vec![],
            Outcome::Unit,
        ),
        (
            ConnectionCall::GetSctpStats,
            "pc.getSctpStats",
            vec![],
            vec![],
            Outcome::SctpStats(None),
        ),
    ];
    for (call, method, payload, answer, outcome) in cases {
        let token = s.token();
        s.session.call(pc, call, token, s.now);
        let sent = s.take(method);
        assert_eq!(
            (sent.pc_id.as_str(), sent.dc_label.as_str()),
            ("p", ""),
            "{method}"
        );
        assert_eq!(sent.payload[..], payload[..], "{method}");
        s.answer(&sent, &answer);
        assert_eq!(s.events(), [Event::Settle(token, Ok(outcome))], "{method}");
    }
}

#[test]
fn dc_error_and_dc_close_in_either_order() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let a = s.open_channel(pc, "a");
    let b = s.open_channel(pc, "b");
    s.events();
    s.event("p", "a", "dc.error", b"short buffer");
    s.event("p", "a", "dc.close", &[]);
    s.event("p", "b", "dc.close", &[]);
    s.event("p", "b", "dc.error", b"short buffer");
    let error = |ch| Event::Channel(ch, ChannelEvent::Error("short buffer".into()));
    assert_eq!(
        s.events_no_log(),
        [
            error(a),
            Event::Channel(a, ChannelEvent::Close),
            Event::Release(Object::Channel(a)),
            Event::Channel(b, ChannelEvent::Close),
            Event::Release(Object::Channel(b)),
        ],
        "an error after close is not delivered"
    );
}

#[test]
fn get_sctp_stats_after_close_rejects() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let (close, stats) = (s.token(), s.token());
    s.session.close_connection(pc, close, s.now);
    s.answer_first("pc.close", &[]);
    s.session
        .call(pc, ConnectionCall::GetSctpStats, stats, s.now);
    assert!(s.waiting().is_empty());
    assert_eq!(
        s.events().last(),
        Some(&Event::Settle(
            stats,
            Err(Error::InvalidState(
                "the RTCPeerConnection is closed".into()
            ))
        ))
    );
}
