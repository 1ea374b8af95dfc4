//! readyState, messages, errors, the send queue and the limits of RTCDataChannel.

use super::sidecar::{create_payload, map, Sidecar};
use crate::core::{
    ChannelEvent, ConnectionEvent, Event, Object, Outcome, ReadyState, MAX_SENDS_IN_FLIGHT,
};
use crate::error::Error;
use bytes::Bytes;
use rmpv::Value;

fn message(data: &[u8]) -> ChannelEvent {
    ChannelEvent::Message {
        binary: true,
        data: Bytes::copy_from_slice(data),
    }
}

#[test]
fn ready_state_goes_connecting_open_closing_closed() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    let state = |s: &Sidecar| s.session.channel(ch).unwrap().ready_state();
    assert_eq!(state(&s), ReadyState::Connecting);
    let refused = s.session.send(ch, b"x", false, s.now).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "InvalidStateError: RTCDataChannel.readyState is 'connecting', not 'open'"
    );
    let create = s.take("dc.create");
    assert_eq!(
        (create.pc_id.as_str(), create.dc_label.as_str()),
        ("p", "a")
    );
    s.answer(&create, &[]);
    assert_eq!(
        state(&s),
        ReadyState::Connecting,
        "dc.create's answer is not dc.open"
    );
    s.event("p", "a", "dc.open", &[]);
    assert_eq!(state(&s), ReadyState::Open);
    assert_eq!(s.events(), [Event::Channel(ch, ChannelEvent::Open)]);
    s.event("p", "a", "dc.open", &[]);
    assert!(
        s.events().is_empty(),
        "a second dc.open is not a second open"
    );

    s.send(ch, 10);
    let token = s.token();
    s.session.close_channel(ch, token, s.now);
    assert_eq!(state(&s), ReadyState::Closing);
    assert!(
        s.try_take("dc.close").is_none(),
        "a send is still in flight"
    );
    s.answer_first("dc.send", &[]);
    assert_eq!(state(&s), ReadyState::Closed);
    assert_eq!(s.waiting(), ["dc.close"]);
    assert_eq!(
        s.events(),
        [
            Event::Channel(ch, ChannelEvent::Close),
            Event::Release(Object::Channel(ch)),
            Event::Settle(token, Ok(Outcome::Unit)),
        ]
    );
    let after = s.session.send(ch, b"x", false, s.now).unwrap_err();
    assert!(after.to_string().contains("'closed'"), "{after}");
}

#[test]
fn a_message_before_dc_open_opens_the_channel_first() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    s.event_with("p", "a", "dc.message", true, b"early");
    s.answer_first("dc.create", &[]);
    s.event("p", "a", "dc.open", &[]);
    s.event_with("p", "a", "dc.message", false, b"text");
    assert_eq!(
        s.events(),
        [
            Event::Channel(ch, ChannelEvent::Open),
            Event::Channel(ch, message(b"early")),
            Event::Channel(
                ch,
                ChannelEvent::Message {
                    binary: false,
                    data: Bytes::from_static(b"text")
                }
            ),
        ]
    );
}

#[test]
fn sends_on_a_channel_opened_before_its_create_answer_wait_for_it() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    s.event("p", "a", "dc.open", &[]);
    s.send(ch, 3);
    s.send(ch, 4);
    assert_eq!(
        s.waiting(),
        ["dc.create"],
        "the sidecar does not know the channel yet"
    );
    assert_eq!(s.buffered(ch), 7);
    s.answer_first("dc.create", &[]);
    let lens: Vec<_> = (0..2).map(|_| s.take("dc.send").payload.len()).collect();
    assert_eq!(lens, [3, 4]);
}

#[test]
fn no_message_is_delivered_once_closing() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    s.events();
    s.send(ch, 1);
    let token = s.token();
    s.session.close_channel(ch, token, s.now);
    s.event_with("p", "a", "dc.message", true, b"late");
    assert!(s.events().is_empty());
    s.answer_first("dc.send", &[]);
    s.event_with("p", "a", "dc.message", true, b"later");
    let events = s.events();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Channel(_, ChannelEvent::Message { .. }))),
        "{events:?}"
    );
}

#[test]
fn the_sidecars_dc_close_closes_once_and_nothing_follows() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    s.send(ch, 5);
    s.events();
    s.event("p", "a", "dc.close", &[]);
    assert_eq!(
        s.session.channel(ch).unwrap().ready_state(),
        ReadyState::Closed
    );
    assert_eq!(s.buffered(ch), 0);
    assert_eq!(
        s.events(),
        [
            Event::Channel(ch, ChannelEvent::Close),
            Event::Release(Object::Channel(ch))
        ]
    );
    s.event("p", "a", "dc.close", &[]);
    s.event("p", "a", "dc.error", b"late");
    s.event_with("p", "a", "dc.message", true, b"x");
    s.answer_first("dc.send", &[]);
    assert!(s.events_no_log().is_empty());
    assert!(
        s.try_take("dc.close").is_none(),
        "the sidecar closed it: no dc.close"
    );
}

#[test]
fn dc_error_carries_its_text_or_unknown_error_and_is_logged() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    s.events();
    s.event("p", "a", "dc.error", "short buffer".as_bytes());
    s.event("p", "a", "dc.error", &[]);
    assert_eq!(
        s.events(),
        [
            Event::Log("data channel \"a\" of p: error: short buffer".into()),
            Event::Channel(ch, ChannelEvent::Error("short buffer".into())),
            Event::Log("data channel \"a\" of p: error: unknown error".into()),
            Event::Channel(ch, ChannelEvent::Error("unknown error".into())),
        ]
    );
}

#[test]
fn labels_must_be_1_to_8180_bytes_of_utf8() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let empty = s.session.create_channel(pc, String::new(), true, s.now);
    assert!(matches!(empty, Err(Error::Type(_))), "{empty:?}");
    let emoji = "\u{1F600}".repeat(2045);
    assert_eq!(emoji.len(), 8180);
    for label in [emoji, "x".repeat(8180)] {
        s.session
            .create_channel(pc, label.clone(), true, s.now)
            .unwrap();
        assert_eq!(s.take("dc.create").dc_label, label);
    }
    for label in ["x".repeat(8181), "\u{e9}".repeat(4091)] {
        let refused = s
            .session
            .create_channel(pc, label, true, s.now)
            .unwrap_err();
        assert!(
            refused.to_string().contains("at most 8180 bytes"),
            "{refused}"
        );
    }
    assert!(
        s.waiting().is_empty(),
        "nothing is sent for a refused label"
    );
}

#[test]
fn a_label_in_use_is_refused_until_its_channel_is_closed() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    let again = s.session.create_channel(pc, "a".into(), true, s.now);
    assert!(matches!(again, Err(Error::Operation(_))), "{again:?}");
    let token = s.token();
    s.session.close_channel(ch, token, s.now);
    let reused = s
        .session
        .create_channel(pc, "a".into(), true, s.now)
        .unwrap();
    assert_ne!(reused, ch);
}

#[test]
fn messages_over_65535_bytes_are_refused_and_not_counted() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    s.send(ch, 65535);
    let refused = s
        .session
        .send(ch, &vec![0; 65536], true, s.now)
        .unwrap_err();
    assert!(matches!(refused, Error::Type(_)), "{refused:?}");
    assert_eq!(s.buffered(ch), 65535);
    let sent = s.take("dc.send");
    assert_eq!((sent.payload.len(), sent.is_binary), (65535, true));
    assert!(s.try_take("dc.send").is_none());
    s.session
        .send(ch, "h\u{e9}".as_bytes(), false, s.now)
        .unwrap();
    let text = s.take("dc.send");
    assert_eq!(
        (&text.payload[..], text.is_binary),
        ("h\u{e9}".as_bytes(), false)
    );
}

#[test]
fn the_opt_in_max_buffered_amount_refuses_with_an_operation_error() {
    let mut s = Sidecar::new();
    let pc = s.session.create_connection(
        "p".into(),
        Ok(create_payload("p")),
        crate::core::ConnectionOptions {
            max_buffered: Some(100),
            ..Default::default()
        },
        s.now,
    );
    s.answer_first("pc.create", &[]);
    let ch = s.open_channel(pc, "a");
    s.send(ch, 60);
    s.send(ch, 40);
    let refused = s.session.send(ch, &[0; 1], true, s.now).unwrap_err();
    assert!(matches!(refused, Error::Operation(_)), "{refused:?}");
    assert_eq!(s.buffered(ch), 100);
    assert_eq!(
        s.waiting(),
        ["dc.send", "dc.send"],
        "nothing queued for the refused one"
    );
}

#[test]
fn a_remote_channel_is_announced_with_its_label_and_ordered() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    s.event("p", "", "pc.datachannel", &[]);
    let unordered = map(&[("ordered", Value::from(false))]);
    s.event("p", "r", "pc.datachannel", &unordered);
    let events = s.events();
    let [Event::Connection(from, ConnectionEvent::DataChannel(ch))] = events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(from, pc);
    let channel = s.session.channel(ch).unwrap();
    assert_eq!((channel.label(), channel.ordered()), ("r", false));
    s.event("p", "r", "dc.open", &[]);
    s.send(ch, 2);
    assert_eq!(
        s.take("dc.send").dc_label,
        "r",
        "known to the sidecar: no dc.create"
    );
    assert_eq!(s.events(), [Event::Channel(ch, ChannelEvent::Open)]);
    // the remote reusing a live label replaces ours
    s.event("p", "r", "pc.datachannel", &[]);
    let events = s.events();
    assert_eq!(
        events[0],
        Event::Channel(ch, ChannelEvent::Close),
        "{events:?}"
    );
    let Event::Connection(_, ConnectionEvent::DataChannel(new)) = events[2] else {
        panic!("{events:?}")
    };
    assert!(s.session.channel(new).unwrap().ordered());
}

#[test]
fn at_most_128_sends_are_in_flight_per_connection_and_order_is_kept() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let a = s.open_channel(pc, "a");
    let b = s.open_channel(pc, "b");
    for i in 0..200u32 {
        s.session.send(a, &i.to_le_bytes(), true, s.now).unwrap();
    }
    s.session.send(b, b"b", true, s.now).unwrap();
    assert_eq!(s.waiting().len(), MAX_SENDS_IN_FLIGHT);
    assert_eq!(s.session.connection(pc).unwrap().sends_in_flight(), 128);
    let mut seen = Vec::new();
    while let Some(send) = s.try_take("dc.send") {
        if send.dc_label == "a" {
            seen.push(u32::from_le_bytes(send.payload[..].try_into().unwrap()));
        }
        assert!(s.session.connection(pc).unwrap().sends_in_flight() <= 128);
        s.answer(&send, &[]);
    }
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    let b_sends = s.log.iter().filter(|r| r.dc_label == "b").count();
    assert_eq!(b_sends, 2, "b's dc.create and its one dc.send");
    assert_eq!(s.buffered(a), 0);
}

#[test]
fn a_paused_channel_holds_its_messages_and_close_until_resumed_while_others_flow() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let a = s.open_channel(pc, "a");
    let b = s.open_channel(pc, "b");
    s.events();
    s.session.pause_channel(a);
    s.event_with("p", "a", "dc.message", true, b"one");
    s.event_with("p", "b", "dc.message", true, b"bee");
    s.event_with("p", "a", "dc.message", true, b"two");
    s.event("p", "a", "dc.close", &[]);
    assert_eq!(s.events(), [Event::Channel(b, message(b"bee"))]);
    assert_eq!(s.session.held_bytes(), 6);
    assert_eq!(
        s.session.channel(a).unwrap().ready_state(),
        ReadyState::Closed,
        "the state moves on; only the events wait"
    );
    s.session.resume_channel(a);
    assert!(s.session.has_events());
    assert_eq!(
        s.events(),
        [
            Event::Channel(a, message(b"one")),
            Event::Channel(a, message(b"two")),
            Event::Channel(a, ChannelEvent::Close),
            Event::Release(Object::Channel(a)),
        ]
    );
    assert_eq!(s.session.held_bytes(), 0);
}

#[test]
fn pausing_again_while_the_held_events_come_out_holds_the_rest_in_order() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let a = s.open_channel(pc, "a");
    s.events();
    s.session.pause_channel(a);
    for text in [b"1", b"2", b"3"] {
        s.event_with("p", "a", "dc.message", false, text);
    }
    s.session.resume_channel(a);
    assert_eq!(
        s.session.poll_event(),
        Some(Event::Channel(
            a,
            ChannelEvent::Message {
                binary: false,
                data: Bytes::from_static(b"1")
            }
        ))
    );
    s.session.pause_channel(a);
    s.event_with("p", "a", "dc.message", false, b"4");
    assert_eq!(s.session.poll_event(), None);
    assert_eq!(s.session.held_bytes(), 3);
    s.session.resume_channel(a);
    let texts: Vec<_> = std::iter::from_fn(|| s.session.poll_event())
        .map(|e| match e {
            Event::Channel(_, ChannelEvent::Message { data, .. }) => data,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(texts, [&b"2"[..], b"3", b"4"]);
}
