//! The connection's local description with the candidates gathered for it (PROTOCOL.md,
//! trap 16: the sidecar has no request that returns it). It is the SDP given to
//! `pc.setLocalDescription` once that succeeded, with an `a=candidate:` line for every
//! `pc.icecandidate` event in its media section, and `a=end-of-candidates` once gathering
//! is complete. Lines the SDP already has (an offer re-created after gathering) are not
//! added twice.

use crate::protocol::messages::{IceCandidate, SessionDescription};

#[derive(Debug, Default)]
pub struct LocalDescription {
    /// The description set last (its `pc.setLocalDescription` succeeded).
    current: Option<SessionDescription>,
    /// The ICE username fragment of the last description sent: a new one starts a new
    /// generation of candidates.
    ufrag: Option<String>,
    gathered: Vec<IceCandidate>,
    complete: bool,
}

fn ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .map(str::to_owned)
}

impl LocalDescription {
    /// A description goes to `pc.setLocalDescription`: candidates of an earlier ICE
    /// generation (another ufrag: an ICE restart) no longer belong to it. Done at sending,
    /// since the new generation's candidates can overtake the answer (trap 5).
    pub fn on_sent(&mut self, sdp: &str) {
        let next = ufrag(sdp);
        if next != self.ufrag {
            self.gathered.clear();
            self.complete = false;
            self.ufrag = next;
        }
    }

    pub fn on_set(&mut self, description: SessionDescription) {
        self.current = Some(description);
    }

    pub fn on_candidate(&mut self, candidate: &IceCandidate) {
        if !candidate.candidate.is_empty() {
            self.gathered.push(candidate.clone());
        }
    }

    /// The gathering state changed to `state`.
    pub fn on_gathering(&mut self, state: &str) {
        self.complete = state == "complete";
    }

    /// `description` with what was gathered when it is the one set last; else as it was.
    pub fn with_candidates(&self, description: &SessionDescription) -> SessionDescription {
        match &self.current {
            Some(current) if current == description => {
                self.assemble().unwrap_or_else(|| current.clone())
            }
            _ => description.clone(),
        }
    }

    /// The local description with what was gathered, or `None` before one was set.
    pub fn assemble(&self) -> Option<SessionDescription> {
        let current = self.current.as_ref()?;
        let eol = if current.sdp.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        };
        // Sections: the session part, then one per m= line.
        let mut sections: Vec<Vec<&str>> = vec![Vec::new()];
        for line in current.sdp.lines() {
            if line.is_empty() {
                continue;
            }
            if line.starts_with("m=") {
                sections.push(Vec::new());
            }
            sections
                .last_mut()
                .expect("one section at least")
                .push(line);
        }
        let mut extra: Vec<Vec<String>> = vec![Vec::new(); sections.len()];
        for candidate in &self.gathered {
            let Some(at) = media_section(&sections, candidate) else {
                continue;
            };
            let line = format!("a={}", candidate.candidate.trim_start_matches("a="));
            if !sections[at].contains(&line.as_str()) && !extra[at].contains(&line) {
                extra[at].push(line);
            }
        }
        if self.complete {
            for (at, section) in sections.iter().enumerate().skip(1) {
                if !section.contains(&"a=end-of-candidates") {
                    extra[at].push("a=end-of-candidates".into());
                }
            }
        }
        let mut sdp = String::with_capacity(current.sdp.len() + 128);
        for (section, extra) in sections.iter().zip(&extra) {
            // a=end-of-candidates stays the section's last line, after what is added.
            let (end, lines): (Vec<&str>, Vec<&str>) =
                section.iter().partition(|l| **l == "a=end-of-candidates");
            for line in lines
                .iter()
                .copied()
                .chain(extra.iter().map(String::as_str))
            {
                if line != "a=end-of-candidates" {
                    sdp.push_str(line);
                    sdp.push_str(eol);
                }
            }
            if !end.is_empty() || extra.iter().any(|l| l == "a=end-of-candidates") {
                sdp.push_str("a=end-of-candidates");
                sdp.push_str(eol);
            }
        }
        Some(SessionDescription {
            kind: current.kind.clone(),
            sdp,
        })
    }
}

/// The index (in `sections`, 0 being the session part) of a candidate's media section: by
/// `sdpMid` when it names one, else by `sdpMLineIndex`.
fn media_section(sections: &[Vec<&str>], candidate: &IceCandidate) -> Option<usize> {
    if let Some(mid) = candidate.sdp_mid.as_deref().filter(|m| !m.is_empty()) {
        let wanted = format!("a=mid:{mid}");
        if let Some(at) = sections
            .iter()
            .skip(1)
            .position(|s| s.iter().any(|l| l.trim() == wanted))
        {
            return Some(at + 1);
        }
    }
    let index = candidate.sdp_m_line_index.unwrap_or(0) as usize;
    (index + 1 < sections.len()).then_some(index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\na=group:BUNDLE 0\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=ice-ufrag:u1\r\na=mid:0\r\n\
        a=sctp-port:5000\r\n";

    fn candidate(line: &str) -> IceCandidate {
        IceCandidate {
            candidate: line.into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
        }
    }

    fn set(local: &mut LocalDescription, sdp: &str) {
        local.on_sent(sdp);
        local.on_set(SessionDescription {
            kind: "offer".into(),
            sdp: sdp.into(),
        });
    }

    #[test]
    fn candidates_then_end_of_candidates_go_into_their_media_section() {
        let mut local = LocalDescription::default();
        assert!(local.assemble().is_none());
        set(&mut local, OFFER);
        local.on_candidate(&candidate("candidate:1 1 udp 9 10.0.0.1 5000 typ host"));
        local.on_candidate(&candidate("candidate:2 1 udp 8 10.0.0.2 5001 typ host"));
        let partial = local.assemble().unwrap().sdp;
        assert_eq!(
            partial,
            format!(
                "{OFFER}a=candidate:1 1 udp 9 10.0.0.1 5000 typ host\r\n\
                 a=candidate:2 1 udp 8 10.0.0.2 5001 typ host\r\n"
            )
        );
        local.on_gathering("complete");
        let full = local.assemble().unwrap();
        assert_eq!(full.kind, "offer");
        assert_eq!(full.sdp, format!("{partial}a=end-of-candidates\r\n"));
    }

    #[test]
    fn a_recreated_offer_gets_nothing_twice_and_a_restart_starts_afresh() {
        let mut local = LocalDescription::default();
        set(&mut local, OFFER);
        let line = "candidate:1 1 udp 9 10.0.0.1 5000 typ host";
        local.on_candidate(&candidate(line));
        local.on_gathering("complete");
        let full = local.assemble().unwrap().sdp;
        set(&mut local, &full);
        assert_eq!(
            local.assemble().unwrap().sdp,
            full,
            "same ufrag: kept, not doubled"
        );
        let restart = OFFER.replace("ice-ufrag:u1", "ice-ufrag:u2");
        set(&mut local, &restart);
        assert_eq!(
            local.assemble().unwrap().sdp,
            restart,
            "new ufrag: a new generation"
        );
    }
}
