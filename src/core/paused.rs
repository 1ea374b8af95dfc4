//! Paused channels: a channel whose reader cannot keep up (a Duplex stream whose
//! `push()` returned false) stops getting its events until it is resumed. They are held
//! here in order, and their bytes are counted, so that the driver can count them as
//! undelivered: once too many are, the stdout reader stops reading, the sidecar's pipe fills
//! and SCTP slows the remote sender down. Memory stays bounded without anything of the
//! protocol changing.
//!
//! What is held: everything the channel would emit (messages, error, close) and its
//! release, since JavaScript must not let go of it before its last event. Not held: the
//! `bufferedamountlow` edge, which is about the other direction (a paused reader may still
//! write).

use super::events::{ChannelEvent, ChannelId, Event, Object};
use super::id_map::{IdMap, IdSet};
use std::collections::VecDeque;

#[derive(Debug, Default)]
pub struct Paused {
    paused: IdSet<ChannelId>,
    held: IdMap<ChannelId, VecDeque<Event>>,
    /// Events of resumed channels, handed out before the event queue's.
    released: VecDeque<Event>,
    /// Message bytes in `held` and `released`.
    bytes: usize,
}

fn channel_of(event: &Event) -> Option<ChannelId> {
    match event {
        Event::Channel(_, ChannelEvent::BufferedAmountLow) => None,
        Event::Channel(id, _) => Some(*id),
        Event::Release(Object::Channel(id)) | Event::Weaken(Object::Channel(id)) => Some(*id),
        _ => None,
    }
}

fn message_bytes(event: &Event) -> usize {
    match event {
        Event::Channel(_, ChannelEvent::Message { data, .. }) => data.len(),
        _ => 0,
    }
}

impl Paused {
    pub fn pause(&mut self, id: ChannelId) {
        self.paused.insert(id);
    }

    /// Its held events come out next, in order.
    pub fn resume(&mut self, id: ChannelId) {
        self.paused.remove(&id);
        if let Some(held) = self.held.remove(&id) {
            self.released.extend(held);
        }
    }

    pub fn is_paused(&self, id: ChannelId) -> bool {
        self.paused.contains(&id)
    }

    /// Bytes of the messages held or released and not yet handed out.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn has_released(&self) -> bool {
        !self.released.is_empty()
    }

    /// The next event of a resumed channel.
    pub fn next_released(&mut self) -> Option<Event> {
        let event = self.released.pop_front()?;
        self.bytes -= message_bytes(&event);
        Some(event)
    }

    /// The event to hand out now, or None when it was held for its paused channel.
    pub fn pass(&mut self, event: Event) -> Option<Event> {
        match channel_of(&event) {
            Some(id) if self.paused.contains(&id) => {
                self.bytes += message_bytes(&event);
                self.held.entry(id).or_default().push_back(event);
                None
            }
            _ => Some(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message(id: u64, text: &str) -> Event {
        Event::Channel(
            ChannelId(id),
            ChannelEvent::Message {
                binary: false,
                data: Bytes::copy_from_slice(text.as_bytes()),
            },
        )
    }

    #[test]
    fn a_paused_channel_s_events_are_held_in_order_and_counted() {
        let mut p = Paused::default();
        p.pause(ChannelId(1));
        assert_eq!(p.pass(message(1, "abc")), None);
        assert_eq!(p.pass(message(2, "other")), Some(message(2, "other")));
        let low = Event::Channel(ChannelId(1), ChannelEvent::BufferedAmountLow);
        assert_eq!(p.pass(low.clone()), Some(low), "the send side is not held");
        assert_eq!(
            p.pass(Event::Channel(ChannelId(1), ChannelEvent::Close)),
            None
        );
        assert_eq!(p.pass(Event::Release(Object::Channel(ChannelId(1)))), None);
        assert_eq!(p.bytes(), 3);
        assert!(!p.has_released());

        p.resume(ChannelId(1));
        assert!(!p.is_paused(ChannelId(1)));
        assert_eq!(p.next_released(), Some(message(1, "abc")));
        assert_eq!(p.bytes(), 0);
        assert_eq!(
            p.next_released(),
            Some(Event::Channel(ChannelId(1), ChannelEvent::Close))
        );
        assert_eq!(
            p.next_released(),
            Some(Event::Release(Object::Channel(ChannelId(1))))
        );
        assert_eq!(p.next_released(), None);
    }
}
