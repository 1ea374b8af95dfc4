//! Backpressure from the consumer of notices to the stdout reader.
//!
//! Every event frame handed on is counted here until its consumer is done with it (a
//! [`Ticket`] gives its bytes back when dropped, whether the work ran or was thrown away).
//! Once more than `limit` bytes are undelivered, the reader stops reading stdout until the
//! backlog is down to half of it. The sidecar's stdout pipe then fills, pion stops taking
//! data off its SCTP associations, and the remote sender sees its `bufferedAmount` grow: the
//! pressure reaches the sender through SCTP instead of piling up in this process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// Undelivered bytes that make the reader pause (it resumes at half).
pub const DEFAULT_LIMIT: usize = 16 * 1024 * 1024;

/// What one undelivered frame is counted as besides its payload (frame, header strings).
pub const FRAME_OVERHEAD: usize = 256;

#[derive(Debug)]
pub struct Backlog {
    bytes: AtomicUsize,
    limit: usize,
    room: Notify,
}

impl Backlog {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Backlog {
            bytes: AtomicUsize::new(0),
            limit: limit.max(1),
            room: Notify::new(),
        })
    }

    /// Bytes handed on and not yet given back.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// More bytes than the limit are out: a reader should [`wait_for_room`](Self::wait_for_room).
    pub fn over_limit(&self) -> bool {
        self.bytes() > self.limit
    }

    /// Down to half the limit: a reader that paused reads again.
    pub fn has_room(&self) -> bool {
        self.bytes() <= self.limit / 2
    }

    /// Counts `bytes` until the returned ticket is dropped.
    pub fn ticket(self: &Arc<Self>, bytes: usize) -> Ticket {
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        Ticket {
            backlog: self.clone(),
            bytes,
        }
    }

    fn give_back(&self, bytes: usize) {
        let before = self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        let resume = self.limit / 2;
        if before > resume && before - bytes <= resume {
            self.room.notify_waiters();
        }
    }

    /// Wakes every waiter so that it looks at its `give_up` condition again.
    pub fn wake(&self) {
        self.room.notify_waiters();
    }

    /// Returns at once when the backlog is within the limit; otherwise waits until it is
    /// down to half the limit, or `give_up()` holds (checked again after every [`wake`]).
    /// Returns whether it waited.
    ///
    /// [`wake`]: Backlog::wake
    pub async fn wait_for_room(&self, give_up: impl Fn() -> bool) -> bool {
        if !self.over_limit() {
            return false;
        }
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a give-back in between is not missed.
            notified.as_mut().enable();
            if give_up() || self.bytes() <= self.limit / 2 {
                return true;
            }
            notified.await;
        }
    }
}

/// Holds bytes in a [`Backlog`]; gives them back when dropped.
#[derive(Debug)]
pub struct Ticket {
    backlog: Arc<Backlog>,
    bytes: usize,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.backlog.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_until_half_the_limit_is_given_back() {
        let backlog = Backlog::new(100);
        let small = backlog.ticket(60);
        assert!(!backlog.wait_for_room(|| false).await, "60 of 100: no wait");
        let big = backlog.ticket(50);
        let waiter = tokio::spawn({
            let backlog = backlog.clone();
            async move { backlog.wait_for_room(|| false).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "110 of 100: waits");
        drop(big); // 60: over half, still waiting
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "60 is above the resume level 50");
        drop(small);
        let waited = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("woken once the backlog is empty")
            .unwrap();
        assert!(waited);
        assert_eq!(backlog.bytes(), 0);
    }

    #[tokio::test]
    async fn give_up_ends_the_wait() {
        let backlog = Backlog::new(10);
        let _held = backlog.ticket(1000);
        let stop = Arc::new(AtomicBool::new(false));
        let waiter = tokio::spawn({
            let (backlog, stop) = (backlog.clone(), stop.clone());
            async move { backlog.wait_for_room(|| stop.load(Ordering::SeqCst)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        stop.store(true, Ordering::SeqCst);
        backlog.wake();
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("woken by wake()")
            .unwrap();
    }
}
