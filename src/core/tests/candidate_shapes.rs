//! The application shapes of issue 15, each a scripted exchange between an offering and
//! an answering session (each on its own scripted sidecar): none deadlocks, and where the
//! hold can help, the answerer's candidates reach the offerer before the answerer can start
//! its checks (PROTOCOL.md, trap 15: otherwise the offerer sees peer-reflexive candidates
//! and nominates after 1000 ms).

use super::hold_util::{description, line, offer_sdp, strings, Peer};
use crate::core::connection::hold::carries_candidates;
use crate::core::CandidateHold;
use std::time::Duration;

/// Two peers, what each application saw, and what each ICE agent knows.
struct Pair {
    o: Peer,
    a: Peer,
    o_seen: Vec<String>,
    a_seen: Vec<String>,
    /// How many of each side's emitted candidates were signalled to the other.
    o_sent: usize,
    a_sent: usize,
    /// The offerer's agent knows an answerer candidate.
    offerer_knows: bool,
    /// The answerer's agent knows an offerer candidate, and its answer is set: it checks.
    answerer_knows: bool,
    answer_set: bool,
    /// Whether the offerer knew the answerer's candidates when the answerer began checks.
    fast: Option<bool>,
}

fn names(seen: &[String]) -> Vec<String> {
    seen.iter()
        .filter_map(|e| e.strip_prefix("c:"))
        .map(str::to_owned)
        .collect()
}

impl Pair {
    fn new(offerer: CandidateHold, answerer: CandidateHold) -> Pair {
        Pair {
            o: Peer::new("o", offerer),
            a: Peer::new("a", answerer),
            o_seen: Vec::new(),
            a_seen: Vec::new(),
            o_sent: 0,
            a_sent: 0,
            offerer_knows: false,
            answerer_knows: false,
            answer_set: false,
            fast: None,
        }
    }

    fn pump(&mut self) {
        self.o_seen.extend(self.o.seen());
        self.a_seen.extend(self.a.seen());
        if self.fast.is_none() && self.answer_set && self.answerer_knows {
            self.fast = Some(self.offerer_knows);
        }
    }

    /// The answerer applies the offer and sets its answer.
    fn answerer_answers(&mut self, offer: &str) {
        self.a.set_remote(description("offer", offer));
        self.answerer_knows |= carries_candidates(offer);
        self.a.set_local("answer", &offer_sdp("r1"));
        self.answer_set = true;
        self.pump();
    }

    fn offerer_applies(&mut self, answer: &str) {
        self.o.set_remote(description("answer", answer));
        self.offerer_knows |= carries_candidates(answer);
        self.pump();
    }

    /// The offerer's application signals what its connection emitted; the answerer adds it.
    fn trickle_to_answerer(&mut self) {
        self.pump();
        for name in names(&self.o_seen).split_off(self.o_sent) {
            self.o_sent += 1;
            self.a.add(&line(&name));
            self.answerer_knows = true;
            self.pump();
        }
    }

    fn trickle_to_offerer(&mut self) {
        self.pump();
        for name in names(&self.a_seen).split_off(self.a_sent) {
            self.a_sent += 1;
            self.o.add(&line(&name));
            self.offerer_knows = true;
            self.pump();
        }
    }

    fn saw_complete(seen: &[String]) -> bool {
        seen.iter().any(|e| e == "g:complete")
    }
}

/// The offerer sets its offer; its sidecar gathers o1 and o2, then completes.
fn offerer_gathers(p: &mut Pair) {
    p.o.set_local("offer", &offer_sdp("u1"));
    p.o.gathering("gathering");
    p.o.gathered(&line("o1"));
    p.o.gathered(&line("o2"));
    p.o.gathering("complete");
    p.pump();
}

fn answerer_gathers(p: &mut Pair) {
    p.a.gathering("gathering");
    p.a.gathered(&line("a1"));
    p.a.gathering("complete");
    p.pump();
}

#[test]
fn trickle_at_once() {
    let mut p = Pair::new(CandidateHold::default(), CandidateHold::default());
    p.o.set_local("offer", &offer_sdp("u1"));
    p.o.gathering("gathering");
    p.o.gathered(&line("o1"));
    p.trickle_to_answerer();
    p.answerer_answers(&offer_sdp("u1"));
    answerer_gathers(&mut p);
    p.trickle_to_answerer();
    p.offerer_applies(&offer_sdp("r1"));
    p.o.gathered(&line("o2"));
    p.o.gathering("complete");
    p.trickle_to_answerer();
    assert_eq!(
        p.o_sent, 0,
        "held until an answerer candidate is acknowledged"
    );
    p.trickle_to_offerer();
    p.trickle_to_answerer();
    assert_eq!(p.fast, Some(true));
    assert_eq!(p.o_sent, 2);
    let tail = p.o_seen.split_off(p.o_seen.len() - 3);
    assert_eq!(
        tail,
        strings(&["c:o1", "c:o2", "g:complete"]),
        "all, then the end"
    );
}

#[test]
fn trickle_with_queueing() {
    // The answerer's candidate overtakes its answer: the offerer's application queues it
    // until setRemoteDescription resolved.
    let mut p = Pair::new(CandidateHold::default(), CandidateHold::default());
    offerer_gathers(&mut p);
    p.trickle_to_answerer();
    p.answerer_answers(&offer_sdp("u1"));
    answerer_gathers(&mut p);
    p.offerer_applies(&offer_sdp("r1"));
    p.trickle_to_answerer();
    assert_eq!(p.o_sent, 0);
    p.trickle_to_offerer();
    p.trickle_to_answerer();
    assert_eq!((p.fast, p.o_sent), (Some(true), 2));

    // One added before the answer is applied is refused (trap 17): the timeout releases.
    let mut p = Pair::new(CandidateHold::default(), CandidateHold::default());
    offerer_gathers(&mut p);
    p.answerer_answers(&offer_sdp("u1"));
    answerer_gathers(&mut p);
    p.o.start(crate::core::ConnectionCall::AddIceCandidate(
        super::hold_util::candidate(&line("a1")),
    ));
    let early = p.o.s.take("pc.addIceCandidate");
    p.o.s
        .refuse(&early, "InvalidStateError: remote description is not set");
    p.offerer_applies(&offer_sdp("r1"));
    p.trickle_to_answerer();
    assert_eq!(p.o_sent, 0);
    p.o.s.advance(Duration::from_millis(250));
    p.trickle_to_answerer();
    assert_eq!(p.o_sent, 2, "released by the timeout");
}

#[test]
fn non_trickle_both_ways() {
    let mut p = Pair::new(CandidateHold::default(), CandidateHold::default());
    offerer_gathers(&mut p);
    // The application waits for 'complete', then sends the whole description.
    assert!(
        Pair::saw_complete(&p.o_seen),
        "'complete' is not held: no deadlock"
    );
    assert!(names(&p.o_seen).is_empty(), "its candidates are held");
    let offer = p.o.local_description().sdp;
    assert!(offer.contains(&format!("a={}\r\n", line("o1"))));
    assert!(offer.contains(&format!("a={}\r\n", line("o2"))));
    assert!(offer.ends_with("a=end-of-candidates\r\n"));
    p.answerer_answers(&offer);
    answerer_gathers(&mut p);
    assert!(Pair::saw_complete(&p.a_seen));
    let answer = p.a.local_description().sdp;
    assert!(answer.contains(&format!("a={}\r\n", line("a1"))));
    p.offerer_applies(&answer);
    assert_eq!(
        names(&p.o_seen),
        ["o1", "o2"],
        "released by the answer's candidates"
    );
    assert!(!p.o.s.session.connection(p.o.pc).unwrap().holds_candidates());
}

#[test]
fn non_trickle_answer_only() {
    let mut p = Pair::new(CandidateHold::default(), CandidateHold::default());
    p.o.set_local("offer", &offer_sdp("u1"));
    p.answerer_answers(&offer_sdp("u1"));
    p.o.gathering("gathering");
    p.o.gathered(&line("o1"));
    p.trickle_to_answerer();
    answerer_gathers(&mut p);
    // The answerer waits for 'complete' and sends its whole description.
    assert!(Pair::saw_complete(&p.a_seen));
    let answer = p.a.local_description().sdp;
    p.o.gathered(&line("o2"));
    p.o.gathering("complete");
    p.trickle_to_answerer();
    assert_eq!(p.o_sent, 0);
    p.offerer_applies(&answer);
    p.trickle_to_answerer();
    assert_eq!((p.fast, p.o_sent), (Some(true), 2));
}

#[test]
fn a_remote_on_the_old_sdk() {
    // The old SDK answers: it trickles as it gathers and never holds.
    let mut p = Pair::new(CandidateHold::default(), CandidateHold::Off);
    offerer_gathers(&mut p);
    p.trickle_to_answerer();
    p.answerer_answers(&offer_sdp("u1"));
    answerer_gathers(&mut p);
    p.offerer_applies(&offer_sdp("r1"));
    p.trickle_to_offerer();
    p.trickle_to_answerer();
    assert_eq!((p.fast, p.o_sent, p.a_sent), (Some(true), 2, 1));

    // The old SDK offers: nothing is held on either side (README's guidance: answer with
    // the candidates in the SDP), and every candidate gets through.
    let mut p = Pair::new(CandidateHold::Off, CandidateHold::default());
    offerer_gathers(&mut p);
    p.trickle_to_answerer();
    p.answerer_answers(&offer_sdp("u1"));
    answerer_gathers(&mut p);
    assert_eq!(names(&p.a_seen), ["a1"], "the answering side emits at once");
    p.offerer_applies(&offer_sdp("r1"));
    p.trickle_to_offerer();
    assert_eq!((p.o_sent, p.a_sent), (2, 1));
}
