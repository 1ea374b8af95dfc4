//! The watchdog's decisions: backoff, its cap and reset, stop, stale lives.

use crate::core::{Action, Life, Supervisor, SupervisorConfig};
use crate::error::Error;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn watchdog(max_backoff: u64, reset_window: u64) -> Supervisor {
    Supervisor::new(SupervisorConfig {
        auto_restart: true,
        max_backoff: ms(max_backoff),
        reset_window: ms(reset_window),
    })
}

/// Starts the supervisor and answers the ping; returns the running life.
fn start(s: &mut Supervisor, now: Instant) -> Life {
    let [Action::Spawn(life)] = s.start().unwrap()[..] else {
        panic!("start spawns")
    };
    assert!(
        s.started(life, now).is_empty(),
        "an explicit start is no restart"
    );
    assert!(s.is_started());
    life
}

/// A crash at `now`; returns the restart delay and the new running life, brought up at
/// the moment the timer fires.
fn crash_and_restart(s: &mut Supervisor, life: Life, now: Instant) -> (Duration, Life) {
    let [Action::RestartAfter(delay)] = s.exited(life, now)[..] else {
        panic!("the watchdog restarts")
    };
    assert_eq!(s.poll_timeout(), Some(now + delay));
    assert!(
        s.timer_fired(now + delay - ms(1)).is_empty(),
        "not before it is due"
    );
    let [Action::Spawn(next)] = s.timer_fired(now + delay)[..] else {
        panic!("spawn when due")
    };
    assert_eq!(s.started(next, now + delay), [Action::Restarted]);
    (delay, next)
}

#[test]
fn restarts_back_off_200ms_doubling_up_to_the_cap() {
    let t0 = Instant::now();
    let mut s = watchdog(3000, 60_000);
    let mut life = start(&mut s, t0);
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..7 {
        now += ms(100);
        let (delay, next) = crash_and_restart(&mut s, life, now);
        delays.push(delay.as_millis());
        now += delay;
        life = next;
    }
    assert_eq!(delays, [200, 400, 800, 1600, 3000, 3000, 3000]);
}

#[test]
fn the_attempt_counter_resets_after_the_reset_window_of_uptime() {
    let t0 = Instant::now();
    let mut s = watchdog(30_000, 1000);
    let life = start(&mut s, t0);
    let (first, life) = crash_and_restart(&mut s, life, t0 + ms(10));
    let up = t0 + ms(10) + first;
    let (second, life) = crash_and_restart(&mut s, life, up + ms(999));
    assert_eq!(
        (first, second),
        (ms(200), ms(400)),
        "999 ms is under the window"
    );
    let up = up + ms(999) + second;
    let (third, _) = crash_and_restart(&mut s, life, up + ms(1000));
    assert_eq!(third, ms(200), "a full window of uptime resets the counter");
}

#[test]
fn a_failed_restart_backs_off_further_and_a_failed_start_goes_idle() {
    let t0 = Instant::now();
    let mut s = watchdog(30_000, 60_000);
    let life = start(&mut s, t0);
    assert_eq!(s.exited(life, t0), [Action::RestartAfter(ms(200))]);
    let [Action::Spawn(next)] = s.timer_fired(t0 + ms(200))[..] else {
        panic!()
    };
    assert_eq!(
        s.start_failed(next, true, t0 + ms(210)),
        [Action::Kill(next), Action::RestartAfter(ms(400))]
    );
    let [Action::Spawn(next)] = s.timer_fired(t0 + ms(610))[..] else {
        panic!()
    };
    assert_eq!(
        s.start_failed(next, false, t0 + ms(611)),
        [Action::RestartAfter(ms(800))],
        "no process to kill when the spawn failed"
    );

    let mut s = watchdog(30_000, 60_000);
    let [Action::Spawn(life)] = s.start().unwrap()[..] else {
        panic!()
    };
    assert_eq!(
        s.start_failed(life, true, t0),
        [Action::Kill(life), Action::Idle]
    );
    assert!(s.is_idle());
    assert!(s.start().is_ok(), "restartable after a failed start");
}

#[test]
fn without_auto_restart_an_exit_goes_idle() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(SupervisorConfig::default());
    let life = start(&mut s, t0);
    assert_eq!(s.exited(life, t0), [Action::Idle]);
    assert!(s.is_idle());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn stop_ends_the_watchdog_and_its_exit_is_no_crash() {
    let t0 = Instant::now();
    let mut s = watchdog(30_000, 60_000);
    let life = start(&mut s, t0);
    assert!(matches!(s.start(), Err(Error::AlreadyStarted)));
    assert_eq!(s.stop(), [Action::Stop(life)]);
    assert!(!s.is_started());
    assert_eq!(
        s.exited(life, t0 + ms(5)),
        [Action::Idle],
        "an intended exit"
    );
    assert!(
        s.stop().is_empty(),
        "stop on a stopped supervisor does nothing"
    );

    // stop during a backoff cancels the restart
    let life = start(&mut s, t0);
    s.exited(life, t0 + ms(1));
    assert_eq!(s.stop(), [Action::Idle]);
    assert!(s.timer_fired(t0 + ms(10_000)).is_empty());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn facts_about_an_earlier_life_are_ignored() {
    let t0 = Instant::now();
    let mut s = watchdog(30_000, 60_000);
    let old = start(&mut s, t0);
    s.stop();
    let new = start(&mut s, t0 + ms(1));
    assert_ne!(old, new);
    assert!(
        s.exited(old, t0 + ms(2)).is_empty(),
        "the old life's exit after a new start"
    );
    assert!(s.is_started());
    assert!(s.started(old, t0 + ms(3)).is_empty());
    // a start clears a pending restart and the attempt counter
    let (_, life) = crash_and_restart(&mut s, new, t0 + ms(4));
    s.exited(life, t0 + ms(500));
    assert_eq!(s.attempt(), 2);
    let life = start(&mut s, t0 + ms(600));
    assert_eq!(s.attempt(), 0);
    assert_eq!(
        s.exited(life, t0 + ms(700)),
        [Action::RestartAfter(ms(200))]
    );
}

#[test]
fn kill_now_kills_for_good_without_a_restart() {
    let t0 = Instant::now();
    let mut s = watchdog(30_000, 60_000);
    let life = start(&mut s, t0);
    assert_eq!(s.kill_now(), [Action::Kill(life)]);
    assert!(
        s.exited(life, t0 + ms(1)).is_empty(),
        "no restart after kill_now"
    );
    assert!(s.is_idle());
    assert_eq!(s.poll_timeout(), None);
    let life = start(&mut s, t0 + ms(2));
    s.exited(life, t0 + ms(3));
    assert!(s.kill_now().is_empty(), "nothing runs during a backoff");
    assert!(s.timer_fired(t0 + ms(10_000)).is_empty());
}

#[derive(Debug, Clone)]
enum Fact {
    Start,
    Started { stale: bool },
    StartFailed { stale: bool, spawned: bool },
    Exited { stale: bool },
    Stop,
    KillNow,
    TimerFired,
    Wait(u64),
}

fn fact() -> impl proptest::strategy::Strategy<Value = Fact> {
    use proptest::prelude::*;
    prop_oneof![
        1 => Just(Fact::Start),
        2 => any::<bool>().prop_map(|stale| Fact::Started { stale }),
        2 => (any::<bool>(), any::<bool>())
            .prop_map(|(stale, spawned)| Fact::StartFailed { stale, spawned }),
        3 => any::<bool>().prop_map(|stale| Fact::Exited { stale }),
        1 => Just(Fact::Stop),
        1 => Just(Fact::KillNow),
        2 => Just(Fact::TimerFired),
        2 => (0..120_000u64).prop_map(Fact::Wait),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..Default::default()
    })]

    #[test]
    fn backoff_doubles_from_200ms_to_the_cap_and_nothing_spawns_after_stop(
        facts in proptest::collection::vec(fact(), 1..60),
        max_backoff in 200..40_000u64,
        reset_window in 1..90_000u64,
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut s = watchdog(max_backoff, reset_window);
        let mut last_spawn = Life(0);
        let mut stopped = true;
        for fact in facts {
            let stale = |s: &Supervisor, stale: bool| {
                if stale { Life(s.life().0.saturating_sub(1)) } else { s.life() }
            };
            let actions = match fact {
                Fact::Start => match s.start() {
                    Ok(actions) => {
                        stopped = false;
                        actions
                    }
                    Err(e) => {
                        assert_eq!(e, Error::AlreadyStarted);
                        Vec::new()
                    }
                },
                Fact::Started { stale: old } => s.started(stale(&s, old), now),
                Fact::StartFailed { stale: old, spawned } => {
                    s.start_failed(stale(&s, old), spawned, now)
                }
                Fact::Exited { stale: old } => s.exited(stale(&s, old), now),
                Fact::Stop => {
                    stopped = true;
                    s.stop()
                }
                Fact::KillNow => {
                    stopped = true;
                    s.kill_now()
                }
                Fact::TimerFired => s.timer_fired(now),
                Fact::Wait(n) => {
                    now += ms(n);
                    Vec::new()
                }
            };
            for action in actions {
                match action {
                    Action::Spawn(life) => {
                        assert!(!stopped, "a spawn after stop");
                        assert!(life > last_spawn, "lives only grow");
                        last_spawn = life;
                    }
                    Action::RestartAfter(delay) => {
                        let n = s.attempt() - 1;
                        let expected = (200u128 << n.min(40)).min(u128::from(max_backoff));
                        assert_eq!(delay.as_millis(), expected, "attempt {}", n + 1);
                        assert_eq!(s.poll_timeout(), Some(now + delay));
                    }
                    _ => {}
                }
            }
            if s.poll_timeout().is_some() {
                assert!(!s.is_started() && !s.is_idle(), "a restart is pending only in backoff");
            }
            if stopped {
                assert!(s.poll_timeout().is_none(), "no restart pending after stop");
                assert!(!s.is_started());
            }
        }
    }
}
