//! What a sidecar tells its owner, and how it is told to go: the only interface between
//! the process and whoever drives it.

use crate::error::Error;
use crate::protocol::Frame;
use std::sync::Arc;

use super::backlog::Backlog;

/// What a sidecar tells its owner, in the order it happened: only its own facts.
#[derive(Debug)]
pub enum Notice {
    /// A frame read from stdout (a response or an event), decoded.
    Frame(Frame),
    /// A line for the logger, without the `[pion-ipc] ` prefix (stderr, stream trouble).
    Log(String),
    /// The stream could not be trusted (the sidecar is killed): for the `error` event.
    Error(Error),
    /// The process is gone. `intentional` when stop() asked for it.
    Exited {
        code: Option<i32>,
        signal: Option<String>,
        intentional: bool,
    },
}

/// Receives notices. `flush` marks the end of a batch: everything pushed since the last
/// flush came out of one read and may be delivered in one go.
pub trait NoticeSink: Send + Sync + 'static {
    fn notice(&self, notice: Notice);
    fn flush(&self) {}
    /// Where event frames handed on are counted until their consumer is done with them;
    /// the stdout reader pauses while it is over its limit. `None`: no backpressure.
    fn backlog(&self) -> Option<Arc<Backlog>> {
        None
    }
    /// Whether the sink reads the sidecar's stdout on its own event loop (then
    /// [`adopt_reader`](Self::adopt_reader) gets it) instead of a thread of ours.
    #[cfg(unix_io)]
    fn takes_reader(&self) -> bool {
        false
    }
    /// The sidecar's stdout, non-blocking, for the sink's event loop: whoever takes it calls
    /// [`LoopRead::read_ready`] when the pipe is readable and handles the frames
    /// [`LoopRead::take_frames`] gives, until it reports the end. A watchdog thread reads in
    /// the loop's place while the loop leaves data unread, then calls
    /// [`flush`](Self::flush): the frames it read wait in the same queue. Frames of this
    /// stdout never come as notices; its stream errors and its exit do, after its frames.
    #[cfg(unix_io)]
    fn adopt_reader(&self, _reader: Arc<dyn LoopRead>) {}
}

/// How the sidecar is told to go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    /// Asks it to end: SIGTERM on Unix. Windows has no such request: the process is
    /// terminated, as with [`Kill::Now`].
    Term,
    /// Ends it at once: SIGKILL on Unix, TerminateProcess on Windows.
    Now,
}

/// The sidecar's stdout as an event loop reads it (see [`NoticeSink::adopt_reader`]).
#[cfg(unix_io)]
pub trait LoopRead: Send + Sync {
    /// The pipe's descriptor, to watch for readability.
    fn fd(&self) -> i32;
    /// Reads what the pipe holds, up to about `budget` bytes, and queues every whole frame
    /// for [`take_frames`](Self::take_frames). False once stdout ended.
    fn read_ready(&self, budget: usize) -> bool;
    /// Moves the frames read so far (by the loop or the watchdog), in the order they came,
    /// into `into`; they no longer count as undelivered.
    fn take_frames(&self, into: &mut Vec<Frame>);
    /// Stdout ended and every frame read was taken: nothing more will come.
    fn finished(&self) -> bool;
    /// Too much is undelivered: the loop should stop reading until [`LoopRead::has_room`].
    fn backlogged(&self) -> bool;
    fn has_room(&self) -> bool;
}
