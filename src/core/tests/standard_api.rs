//! What the standard API (`pion-node-rs/polyfill`) reads of the core: the four
//! descriptions as the sidecar accepted them, with the local one's candidates, and each
//! channel's counters for `getStats()`.

use super::hold_util::{description, line, offer_sdp, Peer};
use super::sidecar::Sidecar;
use crate::core::{CandidateHold, Connection, ConnectionCall, Counters};

fn c(p: &Peer) -> &Connection {
    p.s.session.connection(p.pc).unwrap()
}

#[test]
fn descriptions_are_null_before_and_move_as_the_sidecar_accepts_them() {
    let mut p = Peer::new("o", CandidateHold::Off);
    assert!(c(&p).remote_description().is_none());
    assert!(c(&p).current_local_description().is_none());
    assert!(c(&p).pending_local_description().is_none());
    p.set_local("offer", &offer_sdp("u1"));
    p.gathered(&line("a"));
    let pending = c(&p).pending_local_description().unwrap();
    assert!(pending.sdp.contains("a=candidate:a "), "{}", pending.sdp);
    assert_eq!(pending, c(&p).local_description().unwrap());
    assert!(c(&p).current_local_description().is_none());

    // A refused answer changes nothing.
    p.start(ConnectionCall::SetRemoteDescription(description(
        "answer",
        &offer_sdp("bad"),
    )));
    let refused = p.s.take("pc.setRemoteDescription");
    p.s.refuse(&refused, "bad answer");
    assert!(c(&p).remote_description().is_none());

    p.set_remote(description("answer", &offer_sdp("r1")));
    let remote = c(&p).remote_description().unwrap();
    assert_eq!(
        (remote.kind.as_str(), remote.sdp.clone()),
        ("answer", offer_sdp("r1"))
    );
    assert_eq!(c(&p).current_remote_description(), Some(remote));
    assert!(c(&p).pending_remote_description().is_none());
    assert!(c(&p).pending_local_description().is_none());
    let current = c(&p).current_local_description().unwrap();
    assert!(
        current.sdp.contains("a=candidate:a "),
        "still with its candidates"
    );
}

#[test]
fn the_answerer_has_a_pending_remote_offer_until_its_answer_is_set() {
    let mut p = Peer::new("a", CandidateHold::default());
    p.set_remote(description("offer", &offer_sdp("r1")));
    assert_eq!(c(&p).pending_remote_description().unwrap().kind, "offer");
    assert!(c(&p).current_remote_description().is_none());
    p.set_local("answer", &offer_sdp("u1"));
    assert!(c(&p).pending_remote_description().is_none());
    assert_eq!(c(&p).current_remote_description().unwrap().kind, "offer");
    assert_eq!(c(&p).current_local_description().unwrap().kind, "answer");
    assert_eq!(c(&p).remote_description().unwrap().kind, "offer");
}

#[test]
fn channels_count_messages_and_bytes_sent_and_received() {
    let mut s = Sidecar::new();
    let pc = s.connection("p");
    let ch = s.open_channel(pc, "a");
    let counters = |s: &Sidecar| s.session.channel(ch).unwrap().counters();
    assert_eq!(counters(&s), Counters::default());
    s.send(ch, 10);
    s.send(ch, 5);
    s.session
        .send(ch, "héllo".as_bytes(), false, s.now)
        .unwrap();
    // Refused sends are not counted.
    assert!(s.session.send(ch, &vec![0; 70_000], true, s.now).is_err());
    s.event_with("p", "a", "dc.message", true, &[1, 2, 3]);
    s.event("p", "a", "dc.message", b"hi");
    assert_eq!(
        counters(&s),
        Counters {
            messages_sent: 3,
            bytes_sent: 21,
            messages_received: 2,
            bytes_received: 5,
        }
    );
    // Nothing is received once closing.
    let token = s.token();
    s.session.close_channel(ch, token, s.now);
    s.event("p", "a", "dc.message", b"late");
    assert_eq!(counters(&s).messages_received, 2);
}
