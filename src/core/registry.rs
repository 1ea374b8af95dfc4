//! What a connection knows of its channels: the live ones by label and in creation order,
//! its send budget, and the labels whose late `dc.close` is still expected.

use super::events::ChannelId;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// `dc.send` requests one connection may have in flight. The sidecar blocks every
/// connection once one has more than 256 requests queued (PROTOCOL.md, trap 4).
pub const MAX_SENDS_IN_FLIGHT: usize = 128;

/// How long the `dc.close` of a channel we closed is waited for.
pub const STALE_CLOSE_WINDOW: Duration = Duration::from_secs(10);

/// The connection's slots for `dc.send` requests in flight.
#[derive(Debug, Default)]
pub struct SendBudget {
    in_flight: usize,
}

impl SendBudget {
    pub fn try_acquire(&mut self) -> bool {
        if self.in_flight < MAX_SENDS_IN_FLIGHT {
            self.in_flight += 1;
            true
        } else {
            false
        }
    }

    pub fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

#[derive(Debug, Default)]
pub struct ChannelRegistry {
    /// Channels that are not closed, by label (the sidecar keys channels by label).
    labels: HashMap<String, ChannelId>,
    /// The same channels in creation order (ids grow), so that closing is predictable.
    live: BTreeSet<ChannelId>,
    /// Labels of channels we closed whose `dc.close` event has not come yet: that event
    /// must not close a new channel of the same label.
    stale_closes: HashMap<String, Vec<Instant>>,
}

impl ChannelRegistry {
    pub fn insert(&mut self, label: &str, id: ChannelId) {
        self.labels.insert(label.to_owned(), id);
        self.live.insert(id);
    }

    pub fn by_label(&self, label: &str) -> Option<ChannelId> {
        self.labels.get(label).copied()
    }

    /// Forgets the closed channel `id` (if `label` is still its own).
    pub fn forget(&mut self, label: &str, id: ChannelId) {
        if self.labels.get(label) == Some(&id) {
            self.labels.remove(label);
        }
        self.live.remove(&id);
    }

    /// The live channels in creation order.
    pub fn live(&self) -> Vec<ChannelId> {
        self.live.iter().copied().collect()
    }

    /// The first live channel after `after` (from the first with `None`).
    pub fn next_live(&self, after: Option<ChannelId>) -> Option<ChannelId> {
        match after {
            None => self.live.first().copied(),
            Some(after) => self
                .live
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .next()
                .copied(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// We closed `label`'s channel without the sidecar's `dc.close`: expect it later.
    pub fn expect_stale_close(&mut self, label: &str, now: Instant) {
        self.stale_closes
            .entry(label.to_owned())
            .or_default()
            .push(now);
    }

    /// Whether a `dc.close` for `label` is the late one of a channel we closed (consumed).
    pub fn consume_stale_close(&mut self, label: &str, now: Instant) -> bool {
        let Some(pending) = self.stale_closes.get_mut(label) else {
            return false;
        };
        pending.retain(|at| now.saturating_duration_since(*at) < STALE_CLOSE_WINDOW);
        let stale = !pending.is_empty();
        if stale {
            pending.remove(0);
        }
        if pending.is_empty() {
            self.stale_closes.remove(label);
        }
        stale
    }
}
