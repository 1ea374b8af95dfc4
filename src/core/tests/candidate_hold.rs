//! The offerer's candidate hold (issue 15; PROTOCOL.md, trap 15): every release
//! condition, the order, an ICE restart, the timeout, the options and the local
//! description it leaves readable.

use super::hold_util::{description, line, offer_sdp, strings, Peer};
use crate::core::connection::hold::ANSWER_WAIT_LIMIT;
use crate::core::{CandidateHold, ConnectionCall, DEFAULT_CANDIDATE_HOLD};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

/// An offerer whose offer is set and two candidates held ("a" came before the answer to
/// setLocalDescription, trap 5).
fn holding_offerer(hold: CandidateHold) -> Peer {
    let mut p = Peer::new("o", hold);
    p.start(ConnectionCall::SetLocalDescription(description(
        "offer",
        &offer_sdp("u1"),
    )));
    p.gathering("gathering");
    p.gathered(&line("a"));
    p.s.answer_first("pc.setLocalDescription", &[]);
    p.gathered(&line("b"));
    p
}

fn answer_without_candidates(p: &mut Peer) {
    p.set_remote(description("answer", &offer_sdp("r1")));
}

#[test]
fn a_remote_udp_candidate_acknowledged_after_the_answer_releases_in_order() {
    let mut p = holding_offerer(CandidateHold::default());
    assert_eq!(
        p.seen(),
        strings(&["g:gathering", "ok"]),
        "a and b are held"
    );
    assert!(p.s.session.connection(p.pc).unwrap().holds_candidates());
    answer_without_candidates(&mut p);
    p.add("candidate:t 1 tcp 1 10.0.0.2 9 typ host tcptype passive");
    p.add("candidate:m 1 udp 1 4f2c-9e.local 5000 typ host");
    p.start(ConnectionCall::AddIceCandidate(
        super::hold_util::candidate(&line("refused")),
    ));
    let refused = p.s.take("pc.addIceCandidate");
    p.s.refuse(&refused, "InvalidStateError: remote description is not set");
    assert_eq!(p.seen(), strings(&["ok", "ok", "ok", "err"]), "still held");
    p.add(&line("r"));
    assert_eq!(p.seen(), strings(&["ok", "c:a", "c:b"]));
    p.gathered(&line("c"));
    assert_eq!(p.seen(), strings(&["c:c"]), "then they flow as they come");
    assert!(!p.s.session.connection(p.pc).unwrap().holds_candidates());
}

#[test]
fn an_answer_carrying_candidates_releases_when_it_is_applied() {
    let mut p = holding_offerer(CandidateHold::default());
    p.seen();
    let sdp = format!("{}a={}\r\n", offer_sdp("r1"), line("r"));
    p.start(ConnectionCall::SetRemoteDescription(description(
        "answer", &sdp,
    )));
    assert!(p.seen().is_empty(), "not before the answer is applied");
    p.s.answer_first("pc.setRemoteDescription", &[]);
    assert_eq!(p.seen(), strings(&["ok", "c:a", "c:b"]));
}

#[test]
fn a_refused_answer_releases_nothing_and_the_timeout_counts_from_the_answer_applied() {
    let mut p = holding_offerer(CandidateHold::default());
    p.seen();
    p.s.advance(ANSWER_WAIT_LIMIT - Duration::from_millis(500));
    assert!(p.seen().is_empty(), "no answer yet: held");
    let sdp = format!("{}a={}\r\n", offer_sdp("r1"), line("r"));
    p.start(ConnectionCall::SetRemoteDescription(description(
        "answer", &sdp,
    )));
    let refused = p.s.take("pc.setRemoteDescription");
    p.s.refuse(&refused, "bad answer");
    assert_eq!(p.seen(), strings(&["err"]));
    answer_without_candidates(&mut p);
    assert_eq!(p.seen(), strings(&["ok"]));
    p.s.advance(DEFAULT_CANDIDATE_HOLD - MS);
    assert!(p.seen().is_empty(), "249 ms after the answer");
    p.s.advance(MS);
    assert_eq!(
        p.seen(),
        strings(&["c:a", "c:b"]),
        "250 ms after the answer"
    );
}

#[test]
fn an_answer_not_applied_within_the_answer_wait_limit_releases_them() {
    let mut p = holding_offerer(CandidateHold::default());
    p.seen();
    p.s.advance(ANSWER_WAIT_LIMIT - MS);
    assert!(p.seen().is_empty(), "held while the answer may still come");
    p.s.advance(MS);
    assert_eq!(
        p.seen(),
        strings(&["c:a", "c:b"]),
        "an offer sent only after a first candidate would never go otherwise"
    );
    p.gathered(&line("c"));
    assert_eq!(p.seen(), strings(&["c:c"]), "then they flow as they come");
    // The answer that comes later changes nothing.
    answer_without_candidates(&mut p);
    assert_eq!(p.seen(), strings(&["ok"]));
}

#[test]
fn a_remote_candidate_acknowledged_before_the_answer_counts_once_it_is_applied() {
    let mut p = holding_offerer(CandidateHold::default());
    p.seen();
    p.start(ConnectionCall::SetRemoteDescription(description(
        "answer",
        &offer_sdp("r1"),
    )));
    p.add(&line("r"));
    assert_eq!(p.seen(), strings(&["ok"]), "the answer is not applied yet");
    p.s.answer_first("pc.setRemoteDescription", &[]);
    assert_eq!(p.seen(), strings(&["ok", "c:a", "c:b"]));
}

#[test]
fn gathering_changes_pass_while_the_answer_is_awaited_and_wait_behind_candidates_after() {
    let mut p = holding_offerer(CandidateHold::default());
    assert_eq!(p.seen(), strings(&["g:gathering", "ok"]));
    p.gathering("complete");
    assert_eq!(
        p.seen(),
        strings(&["g:complete"]),
        "awaiting the answer: 'complete' is not held (no deadlock for non-trickle)"
    );

    let mut p = holding_offerer(CandidateHold::default());
    p.seen();
    answer_without_candidates(&mut p);
    p.gathered(&line("c"));
    p.gathering("complete");
    assert_eq!(
        p.seen(),
        strings(&["ok"]),
        "'complete' waits behind a, b, c"
    );
    p.add(&line("r"));
    assert_eq!(
        p.seen(),
        strings(&["ok", "c:a", "c:b", "c:c", "g:complete"])
    );
}

#[test]
fn an_ice_restart_offer_holds_again_and_an_earlier_timer_does_not_release_it() {
    let mut p = holding_offerer(CandidateHold::default());
    answer_without_candidates(&mut p);
    let t_first_answer = p.s.now;
    p.add(&line("r"));
    p.gathering("complete");
    p.seen();
    p.s.advance(100 * MS);
    p.start(ConnectionCall::RestartIce);
    p.s.answer_first(
        "pc.restartIce",
        &super::sidecar::map(&[("sdp", rmpv::Value::from(offer_sdp("u2")))]),
    );
    p.set_local("offer", &offer_sdp("u2"));
    p.gathering("gathering");
    p.gathered(&line("x"));
    assert_eq!(p.seen(), strings(&["ok", "ok", "g:gathering"]), "x is held");
    answer_without_candidates(&mut p);
    p.seen();
    // the first hold's timer (first answer + 250 ms) is due before this one
    p.s.advance(t_first_answer + DEFAULT_CANDIDATE_HOLD - p.s.now);
    assert!(
        p.seen().is_empty(),
        "a timer of the first hold releases nothing"
    );
    p.s.advance(100 * MS);
    assert_eq!(
        p.seen(),
        strings(&["c:x"]),
        "250 ms after the second answer"
    );
}

#[test]
fn the_timeout_can_be_changed_and_the_hold_switched_off() {
    let mut p = holding_offerer(CandidateHold::After(40 * MS));
    answer_without_candidates(&mut p);
    p.seen();
    p.s.advance(39 * MS);
    assert!(p.seen().is_empty());
    p.s.advance(MS);
    assert_eq!(p.seen(), strings(&["c:a", "c:b"]));

    let mut p = holding_offerer(CandidateHold::Off);
    assert_eq!(p.seen(), strings(&["g:gathering", "c:a", "ok", "c:b"]));
    assert!(!p.s.session.connection(p.pc).unwrap().holds_candidates());
}

#[test]
fn a_refused_offer_releases_and_an_answering_side_never_holds() {
    let mut p = Peer::new("o", CandidateHold::default());
    p.start(ConnectionCall::SetLocalDescription(description(
        "offer",
        &offer_sdp("u1"),
    )));
    p.gathered(&line("a"));
    assert!(p.seen().is_empty());
    let refused = p.s.take("pc.setLocalDescription");
    p.s.refuse(&refused, "InvalidModificationError");
    assert_eq!(p.seen(), strings(&["err", "c:a"]));

    let mut p = Peer::new("a", CandidateHold::default());
    p.set_remote(description("offer", &offer_sdp("r1")));
    p.set_local("answer", &offer_sdp("u1"));
    p.gathered(&line("a"));
    assert_eq!(p.seen(), strings(&["ok", "ok", "c:a"]));
}

#[test]
fn held_candidates_are_never_emitted_once_closed() {
    let mut p = holding_offerer(CandidateHold::default());
    answer_without_candidates(&mut p);
    let token = p.s.token();
    p.s.session.close_connection(p.pc, token, p.s.now);
    p.s.advance(DEFAULT_CANDIDATE_HOLD);
    p.s.answer_first("pc.close", &[]);
    let seen = p.seen();
    assert!(!seen.iter().any(|e| e.starts_with("c:")), "{seen:?}");
}

#[test]
fn the_local_description_carries_what_was_gathered_while_it_is_held() {
    let mut p = Peer::new("o", CandidateHold::default());
    assert!(p
        .s
        .session
        .connection(p.pc)
        .unwrap()
        .local_description()
        .is_none());
    p.start(ConnectionCall::SetLocalDescription(description(
        "offer",
        &offer_sdp("u1"),
    )));
    p.gathered(&line("a"));
    assert!(
        p.s.session
            .connection(p.pc)
            .unwrap()
            .local_description()
            .is_none(),
        "not before setLocalDescription succeeded"
    );
    p.s.answer_first("pc.setLocalDescription", &[]);
    p.gathered(&line("b"));
    p.gathering("complete");
    assert_eq!(p.seen(), strings(&["ok", "g:complete"]), "a and b are held");
    let local = p.local_description();
    assert_eq!(local.kind, "offer");
    assert_eq!(
        local.sdp,
        format!(
            "{}a={}\r\na={}\r\na=end-of-candidates\r\n",
            offer_sdp("u1"),
            line("a"),
            line("b")
        )
    );
}
