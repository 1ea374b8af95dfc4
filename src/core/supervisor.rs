//! The watchdog as a pure state machine: the driver reports facts (start asked, ping
//! answered or failed, the process exited, stop asked, the restart timer fired) with the
//! time, and gets back what to do. After an unexpected exit it restarts the sidecar after
//! min(200 ms × 2^attempt, maxBackoff), forever, until stop(); after `reset_window` of uptime
//! the attempt counter returns to 0.

use crate::error::Error;
use std::time::{Duration, Instant};

/// The first restart waits this long; each further one twice as long, up to max_backoff.
pub const BASE_BACKOFF: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    pub auto_restart: bool,
    pub max_backoff: Duration,
    pub reset_window: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            auto_restart: false,
            max_backoff: Duration::from_millis(30_000),
            reset_window: Duration::from_millis(60_000),
        }
    }
}

/// One life of the sidecar: facts about an earlier life are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Life(pub u64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Spawn the binary and ping it; report `started` or `start_failed` for this life.
    Spawn(Life),
    /// Kill this life's process at once.
    Kill(Life),
    /// End this life's process as stop() does (stdin closed, then SIGTERM, then SIGKILL);
    /// report its exit.
    Stop(Life),
    /// Call `timer_fired` after this long (also [`Supervisor::poll_timeout`]).
    RestartAfter(Duration),
    /// The watchdog brought a new sidecar up (the `restart` event).
    Restarted,
    /// Nothing runs and nothing will without an explicit start().
    Idle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Stopped,
    Starting {
        restart: bool,
    },
    Running,
    /// Crashed; the watchdog starts it again at `due`.
    Backoff {
        due: Instant,
    },
}

#[derive(Debug)]
pub struct Supervisor {
    config: SupervisorConfig,
    phase: Phase,
    life: Life,
    /// The life stop() ended, until its exit is reported.
    stopping: Option<Life>,
    watchdog: bool,
    attempt: u32,
    up_since: Option<Instant>,
}

impl Supervisor {
    pub fn new(config: SupervisorConfig) -> Self {
        Supervisor {
            config,
            phase: Phase::Stopped,
            life: Life(0),
            stopping: None,
            watchdog: false,
            attempt: 0,
            up_since: None,
        }
    }

    /// True while a sidecar runs and answers.
    pub fn is_started(&self) -> bool {
        self.phase == Phase::Running
    }

    /// True when nothing runs and nothing will run without an explicit start().
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Stopped
    }

    pub fn life(&self) -> Life {
        self.life
    }

    /// The restart attempts since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When `timer_fired` is due: the pending restart.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Backoff { due } => Some(due),
            _ => None,
        }
    }

    fn next_life(&mut self) -> Life {
        self.life = Life(self.life.0 + 1);
        self.life
    }

    /// start(): refused while starting or running; clears a pending restart.
    pub fn start(&mut self) -> Result<Vec<Action>, Error> {
        if matches!(self.phase, Phase::Starting { .. } | Phase::Running) {
            return Err(Error::AlreadyStarted);
        }
        self.phase = Phase::Starting { restart: false };
        self.watchdog = self.config.auto_restart;
        self.attempt = 0;
        Ok(vec![Action::Spawn(self.next_life())])
    }

    /// The ping of `life` was answered.
    pub fn started(&mut self, life: Life, now: Instant) -> Vec<Action> {
        let Phase::Starting { restart } = self.phase else {
            return Vec::new();
        };
        if life != self.life {
            return Vec::new();
        }
        self.phase = Phase::Running;
        self.up_since = Some(now);
        if restart {
            vec![Action::Restarted]
        } else {
            Vec::new()
        }
    }

    /// `life` could not be brought up: the spawn failed (`spawned` false) or its ping did.
    pub fn start_failed(&mut self, life: Life, spawned: bool, now: Instant) -> Vec<Action> {
        let Phase::Starting { restart } = self.phase else {
            return Vec::new();
        };
        if life != self.life {
            return Vec::new();
        }
        let mut actions = Vec::new();
        if spawned {
            actions.push(Action::Kill(life));
        }
        if restart {
            let delay = self.backoff();
            self.phase = Phase::Backoff { due: now + delay };
            actions.push(Action::RestartAfter(delay));
        } else {
            self.phase = Phase::Stopped;
            actions.push(Action::Idle);
        }
        actions
    }

    /// The process of `life` exited.
    pub fn exited(&mut self, life: Life, now: Instant) -> Vec<Action> {
        if self.stopping == Some(life) {
            self.stopping = None;
            return if self.phase == Phase::Stopped {
                vec![Action::Idle]
            } else {
                Vec::new()
            };
        }
        // A failed start or a stale life: start_failed or stop handles it.
        if life != self.life || self.phase != Phase::Running {
            return Vec::new();
        }
        if !self.watchdog {
            self.phase = Phase::Stopped;
            return vec![Action::Idle];
        }
        let uptime = self
            .up_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        if uptime >= self.config.reset_window {
            self.attempt = 0;
        }
        let delay = self.backoff();
        self.phase = Phase::Backoff { due: now + delay };
        vec![Action::RestartAfter(delay)]
    }

    /// stop(): the watchdog stops for good (until the next start()).
    pub fn stop(&mut self) -> Vec<Action> {
        self.watchdog = false;
        let phase = std::mem::replace(&mut self.phase, Phase::Stopped);
        match phase {
            Phase::Stopped => Vec::new(),
            Phase::Backoff { .. } => {
                self.next_life();
                vec![Action::Idle]
            }
            Phase::Starting { .. } | Phase::Running => {
                let ending = self.life;
                self.next_life();
                self.stopping = Some(ending);
                vec![Action::Stop(ending)]
            }
        }
    }

    /// The host environment is going away: the sidecar is killed at once and for good.
    pub fn kill_now(&mut self) -> Vec<Action> {
        self.watchdog = false;
        let phase = std::mem::replace(&mut self.phase, Phase::Stopped);
        let ending = self.life;
        self.next_life();
        match phase {
            Phase::Starting { .. } | Phase::Running => vec![Action::Kill(ending)],
            Phase::Stopped | Phase::Backoff { .. } => Vec::new(),
        }
    }

    /// The restart timer fired.
    pub fn timer_fired(&mut self, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Backoff { due } if now >= due => {
                self.phase = Phase::Starting { restart: true };
                vec![Action::Spawn(self.next_life())]
            }
            _ => Vec::new(),
        }
    }

    fn backoff(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.attempt = self.attempt.saturating_add(1);
        BASE_BACKOFF
            .saturating_mul(factor)
            .min(self.config.max_backoff)
    }
}
