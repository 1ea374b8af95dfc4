//! The four descriptions of the standard API (JSEP): current and pending, local and remote,
//! moved by the descriptions the sidecar accepted. Plain state: what was applied, in order;
//! the local ones get their gathered candidates from `local_description.rs` when read, and
//! `localDescription` is the one set last (`local_description.rs`).

use crate::protocol::messages::SessionDescription;

#[derive(Debug, Default)]
pub struct Descriptions {
    pub current_local: Option<SessionDescription>,
    pub pending_local: Option<SessionDescription>,
    pub current_remote: Option<SessionDescription>,
    pub pending_remote: Option<SessionDescription>,
}

impl Descriptions {
    /// A local description the sidecar accepted.
    pub fn local_set(&mut self, description: SessionDescription) {
        match description.kind.as_str() {
            // An answer ends the negotiation: the remote offer becomes current with it.
            "answer" => {
                self.current_local = Some(description);
                if let Some(offer) = self.pending_remote.take() {
                    self.current_remote = Some(offer);
                }
                self.pending_local = None;
            }
            "rollback" => self.pending_local = None,
            _ => self.pending_local = Some(description),
        }
    }

    /// A remote description the sidecar accepted.
    pub fn remote_set(&mut self, description: SessionDescription) {
        match description.kind.as_str() {
            "answer" => {
                self.current_remote = Some(description);
                if let Some(offer) = self.pending_local.take() {
                    self.current_local = Some(offer);
                }
                self.pending_remote = None;
            }
            "rollback" => self.pending_remote = None,
            _ => self.pending_remote = Some(description),
        }
    }

    /// The signaling state the descriptions imply (JSEP 3.2; WebRTC 1.0 4.3.1): what the
    /// standard API reports as soon as a description was accepted, while the sidecar's own
    /// `pc.signalingstatechange` may still be on its way (PROTOCOL.md, trap 5).
    pub fn signaling_state(&self) -> &'static str {
        fn kind(d: &Option<SessionDescription>) -> Option<&str> {
            d.as_ref().map(|d| d.kind.as_str())
        }
        match (kind(&self.pending_local), kind(&self.pending_remote)) {
            // A provisional answer is pending beside the offer it answers.
            (_, Some("pranswer")) => "have-remote-pranswer",
            (Some("pranswer"), _) => "have-local-pranswer",
            (Some("offer"), _) => "have-local-offer",
            (_, Some("offer")) => "have-remote-offer",
            _ => "stable",
        }
    }

    /// `remoteDescription`: the pending one if any, else the current one.
    pub fn remote(&self) -> Option<&SessionDescription> {
        self.pending_remote
            .as_ref()
            .or(self.current_remote.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(kind: &str, sdp: &str) -> SessionDescription {
        SessionDescription {
            kind: kind.into(),
            sdp: sdp.into(),
        }
    }

    fn sdp(d: Option<&SessionDescription>) -> Option<&str> {
        d.map(|d| d.sdp.as_str())
    }

    #[test]
    fn the_offerer_moves_pending_to_current_with_the_answer() {
        let mut s = Descriptions::default();
        assert!(s.pending_local.is_none() && s.remote().is_none());
        s.local_set(d("offer", "o1"));
        assert_eq!(sdp(s.pending_local.as_ref()), Some("o1"));
        assert!(s.current_local.is_none());
        s.remote_set(d("answer", "a1"));
        assert_eq!(sdp(s.current_local.as_ref()), Some("o1"));
        assert_eq!(sdp(s.current_remote.as_ref()), Some("a1"));
        assert!(s.pending_local.is_none() && s.pending_remote.is_none());
        // A renegotiation: the new offer is pending, the old one still current.
        s.local_set(d("offer", "o2"));
        assert_eq!(sdp(s.pending_local.as_ref()), Some("o2"));
        assert_eq!(sdp(s.current_local.as_ref()), Some("o1"));
    }

    #[test]
    fn the_answerer_moves_the_remote_offer_to_current_with_its_answer() {
        let mut s = Descriptions::default();
        s.remote_set(d("offer", "o1"));
        assert_eq!(sdp(s.pending_remote.as_ref()), Some("o1"));
        assert_eq!(sdp(s.remote()), Some("o1"));
        s.local_set(d("answer", "a1"));
        assert_eq!(sdp(s.current_remote.as_ref()), Some("o1"));
        assert_eq!(sdp(s.current_local.as_ref()), Some("a1"));
        assert!(s.pending_local.is_none() && s.pending_remote.is_none());
    }

    #[test]
    fn a_pranswer_stays_pending_and_a_rollback_drops_the_pending_one() {
        let mut s = Descriptions::default();
        s.remote_set(d("offer", "o1"));
        s.local_set(d("pranswer", "p1"));
        assert_eq!(sdp(s.pending_local.as_ref()), Some("p1"));
        assert!(s.current_local.is_none());
        s.local_set(d("rollback", ""));
        assert!(s.pending_local.is_none());
        s.remote_set(d("rollback", ""));
        assert!(s.remote().is_none());
    }

    #[test]
    fn the_signaling_state_follows_the_descriptions() {
        let mut offerer = Descriptions::default();
        assert_eq!(offerer.signaling_state(), "stable");
        offerer.local_set(d("offer", "o1"));
        assert_eq!(offerer.signaling_state(), "have-local-offer");
        offerer.remote_set(d("pranswer", "p1"));
        assert_eq!(offerer.signaling_state(), "have-remote-pranswer");
        offerer.remote_set(d("answer", "a1"));
        assert_eq!(offerer.signaling_state(), "stable");
        offerer.local_set(d("offer", "o2"));
        offerer.local_set(d("rollback", ""));
        assert_eq!(offerer.signaling_state(), "stable");

        let mut answerer = Descriptions::default();
        answerer.remote_set(d("offer", "o1"));
        assert_eq!(answerer.signaling_state(), "have-remote-offer");
        answerer.local_set(d("pranswer", "p1"));
        assert_eq!(answerer.signaling_state(), "have-local-pranswer");
        answerer.local_set(d("answer", "a1"));
        assert_eq!(answerer.signaling_state(), "stable");
    }
}
