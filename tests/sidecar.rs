//! The sidecar against the real pion-ipc binary, driven as production drives it: the process
//! (`sidecar::Sidecar`), request correlation and timeouts (`core::Session`) and the watchdog
//! (`core::Supervisor`), put together by the small driver in `support/driver.rs`. Start,
//! requests, stop, crash, the watchdog and timeouts.
//! Unix only: it sends signals to the sidecar by pid.
#![cfg(unix)]

mod support;

use pion_node_rs::core::{Action, Life, SupervisorConfig};
use pion_node_rs::error::Error;
use pion_node_rs::protocol::messages::{encode, PcCreate};
use pion_node_rs::protocol::FrameType;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::driver::{Config, Driver};
use support::recorder::{
    is_crash, is_error, is_idle, is_intended_exit, is_restarted, is_sigkill_crash, Record,
};
use support::{alive, bin, freeze, gone, signal, LIMIT};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

async fn started(config: Config) -> Driver {
    let driver = Driver::new(config);
    timeout(LIMIT, driver.start(|| Ok(bin())))
        .await
        .expect("start() within the limit")
        .expect("start() resolves");
    assert!(driver.status().await.started);
    driver
}

fn watchdog(max_backoff: Option<Duration>) -> Config {
    let mut supervisor = SupervisorConfig {
        auto_restart: true,
        ..SupervisorConfig::default()
    };
    if let Some(max) = max_backoff {
        supervisor.max_backoff = max;
    }
    Config {
        supervisor,
        ..Config::default()
    }
}

async fn request(driver: &Driver, method: &str, pc_id: &str, payload: &[u8]) -> Result<u32, Error> {
    let reply = timeout(LIMIT, driver.request(method, pc_id, payload))
        .await
        .unwrap_or_else(|_| panic!("{method} answered or failed within the limit"));
    reply.map(|frame| {
        assert_eq!(frame.header.kind, FrameType::Response);
        assert_eq!(frame.header.ok, Some(true));
        frame.header.id
    })
}

async fn ping(driver: &Driver) -> Result<u32, String> {
    request(driver, "ping", "", &[])
        .await
        .map_err(|e| e.to_string())
}

async fn pid(driver: &Driver) -> u32 {
    driver
        .status()
        .await
        .pid
        .expect("a running sidecar has a pid")
}

async fn stop(driver: &Driver, grace: Duration) -> Duration {
    let t0 = Instant::now();
    timeout(LIMIT, driver.stop(grace))
        .await
        .expect("stop() returns within the limit");
    t0.elapsed()
}

fn pc_create(pc_id: &str) -> Vec<u8> {
    encode(&PcCreate {
        pc_id: pc_id.to_owned(),
        ice_servers: vec![],
        settings: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_pings_and_pipelines_2000_pings() {
    let driver = started(Config::default()).await;
    let recorder = driver.recorder.clone();
    let pid = pid(&driver).await;
    assert!(alive(pid));

    // start() used id 1 for its own ping
    assert_eq!(ping(&driver).await, Ok(2));

    // every request is written before the first answer is awaited
    let mut set = JoinSet::new();
    for _ in 0..2000 {
        set.spawn(driver.request("ping", "", &[]));
    }
    let answered = timeout(LIMIT, async {
        let mut ids = HashSet::new();
        while let Some(joined) = set.join_next().await {
            let frame = joined.unwrap().expect("ping ok");
            assert_eq!(frame.header.ok, Some(true));
            assert!(ids.insert(frame.header.id), "id {} twice", frame.header.id);
        }
        ids
    })
    .await
    .expect("2000 pings answered within the limit");
    assert_eq!(answered.len(), 2000);
    assert_eq!(answered, (3..2003).collect::<HashSet<u32>>());

    stop(&driver, Duration::from_secs(5)).await;
    assert_eq!(recorder.count(is_crash), 0, "{}", recorder.dump());
    assert_eq!(
        recorder.actions(),
        [Action::Spawn(Life(1)), Action::Stop(Life(1)), Action::Idle]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_twice_fails_and_request_after_stop_fails() {
    let driver = started(Config::default()).await;
    let recorder = driver.recorder.clone();
    let located = Arc::new(AtomicBool::new(false));
    let err = timeout(
        LIMIT,
        driver.start({
            let located = located.clone();
            move || {
                located.store(true, Ordering::SeqCst);
                Ok(bin())
            }
        }),
    )
    .await
    .unwrap()
    .expect_err("second start() fails");
    assert_eq!(err.to_string(), "already started");
    assert!(
        !located.load(Ordering::SeqCst),
        "locate must not run when the start is refused"
    );
    assert!(driver.status().await.started);
    assert_eq!(ping(&driver).await, Ok(2));

    stop(&driver, Duration::from_secs(5)).await;
    let status = driver.status().await;
    assert!(!status.started);
    assert!(status.idle);
    assert_eq!(ping(&driver).await, Err("not started".to_owned()));
    // stop() on a stopped instance resolves, and does nothing more
    let actions = recorder.actions().len();
    stop(&driver, Duration::from_secs(5)).await;
    assert_eq!(recorder.actions().len(), actions, "{}", recorder.dump());
    assert_eq!(recorder.count(is_idle), 1);

    // and it can be started again
    timeout(LIMIT, driver.start(|| Ok(bin())))
        .await
        .unwrap()
        .expect("start after stop");
    assert_eq!(
        ping(&driver).await,
        Ok(2),
        "ids restart at 1 with a new sidecar"
    );
    stop(&driver, Duration::from_secs(5)).await;
    // the stopped life is never reused
    assert_eq!(
        recorder.actions(),
        [
            Action::Spawn(Life(1)),
            Action::Stop(Life(1)),
            Action::Idle,
            Action::Spawn(Life(3)),
            Action::Stop(Life(3)),
            Action::Idle,
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_with_a_missing_binary_fails_and_stays_restartable() {
    let driver = Driver::new(Config::default());
    let recorder = driver.recorder.clone();
    let missing = PathBuf::from("/nonexistent/pion-ipc");
    let err = timeout(LIMIT, driver.start(move || Ok(missing)))
        .await
        .unwrap()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/pion-ipc") && text.contains("ENOENT"),
        "{text}"
    );
    let status = driver.status().await;
    assert!(!status.started);
    assert!(status.idle);
    assert_eq!(status.pid, None);
    assert_eq!(recorder.count(is_error), 1, "{}", recorder.dump());
    // nothing was spawned, so nothing is killed
    assert_eq!(
        recorder.actions(),
        [Action::Spawn(Life(1)), Action::Idle],
        "{}",
        recorder.dump()
    );

    // a failing locate rejects start() with its error, too
    let err = timeout(
        LIMIT,
        driver.start(|| Err(Error::NotFound("nowhere".into()))),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(err.to_string(), "nowhere");
    assert!(driver.status().await.idle);
    assert_eq!(recorder.count(is_idle), 2);
    assert_eq!(recorder.count(is_error), 1, "not a spawn error");

    timeout(LIMIT, driver.start(|| Ok(bin())))
        .await
        .unwrap()
        .unwrap();
    assert!(driver.status().await.started);
    stop(&driver, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pc_create_close_and_remote_errors() {
    let driver = started(Config::default()).await;
    let recorder = driver.recorder.clone();
    let pc_id = format!("pc-{}", std::process::id());
    let payload = pc_create(&pc_id);
    request(&driver, "pc.create", &pc_id, &payload)
        .await
        .expect("pc.create ok");

    // a second create with the same pcId is refused by the sidecar
    let err = request(&driver, "pc.create", &pc_id, &payload)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), format!("peer \"{pc_id}\" already exists"));

    // an unknown method on a pcId
    let err = request(&driver, "pc.bogus", &pc_id, &[]).await.unwrap_err();
    assert_eq!(err.to_string(), "unknown method: pc.bogus");

    // closing an unknown pcId fails with the sidecar's own text, and is logged
    let err = request(&driver, "pc.close", "nope", &[]).await.unwrap_err();
    assert_eq!(err, Error::Remote("peer \"nope\" not found".into()));
    let logs = recorder.logs();
    let line = logs
        .iter()
        .find(|l| l.contains("method=pc.close"))
        .unwrap_or_else(|| panic!("no pc.close log line in {logs:#?}"));
    assert!(line.starts_with("request error id="), "{line}");
    assert!(
        line.ends_with("method=pc.close err=peer \"nope\" not found"),
        "{line}"
    );
    assert!(logs
        .iter()
        .any(|l| l.contains("method=pc.bogus err=unknown method: pc.bogus")));

    request(&driver, "pc.close", &pc_id, &[])
        .await
        .expect("pc.close of a live pc ok");

    stop(&driver, Duration::from_secs(5)).await;
    assert_eq!(recorder.count(is_crash), 0, "{}", recorder.dump());
}

/// As observed with pion-ipc 0.4.1: the peer is looked up before the method, so an unknown
/// method on a missing (or empty) pcId reports the peer, not the method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_on_a_missing_peer_reports_the_peer() {
    let driver = started(Config::default()).await;
    for (method, pc_id, want) in [
        ("pc.bogus", "no-such-pc", "peer \"no-such-pc\" not found"),
        ("bogus", "x", "peer \"x\" not found"),
        ("nope.method", "", "peer \"\" not found"),
        ("", "", "peer \"\" not found"),
    ] {
        let err = request(&driver, method, pc_id, &[]).await.unwrap_err();
        assert_eq!(err.to_string(), want, "{method} on {pc_id:?}");
    }
    // pc.create without a pcId in its payload
    let err = request(&driver, "pc.create", "", &pc_create(""))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "pcId is required");
    assert!(
        ping(&driver).await.is_ok(),
        "errors leave the sidecar running"
    );
    stop(&driver, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_process_quietly() {
    let driver = started(Config::default()).await;
    let recorder = driver.recorder.clone();
    let pid = pid(&driver).await;
    assert!(alive(pid));
    let took = stop(&driver, Duration::from_secs(5)).await;
    // stop() returns after the exit was reaped: nothing is left, not even a zombie
    assert!(!alive(pid), "pid {pid} still there after stop()");
    assert!(took < Duration::from_secs(2), "stop() took {took:?}");
    let status = driver.status().await;
    assert!(!status.started);
    assert_eq!(status.pid, None);
    // the exit was asked for: stdin EOF, exit code 0 (PROTOCOL.md trap 14), no crash
    assert_eq!(recorder.count(is_crash), 0, "{}", recorder.dump());
    assert_eq!(
        recorder.count(|r| matches!(
            r,
            Record::Exited {
                life: Life(1),
                code: Some(0),
                signal: None,
                intentional: true
            }
        )),
        1,
        "{}",
        recorder.dump()
    );
    assert_eq!(recorder.count(is_idle), 1, "{}", recorder.dump());
    let exited = recorder.position(is_intended_exit).unwrap();
    let idle = recorder.position(is_idle).unwrap();
    assert!(
        exited < idle,
        "Idle once the exit is in: {}",
        recorder.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_fails_pending_requests_and_goes_idle() {
    let driver = started(Config::default()).await;
    let recorder = driver.recorder.clone();
    let pid = pid(&driver).await;

    // freeze it so that a request is surely in flight when it dies
    freeze(pid).await;
    let in_flight = tokio::spawn(driver.request("ping", "", &[]));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!in_flight.is_finished());
    signal(pid, libc::SIGKILL);

    let reply = timeout(LIMIT, in_flight).await.unwrap().unwrap();
    assert_eq!(
        reply.unwrap_err().to_string(),
        "process exited (code=null, signal=SIGKILL)"
    );
    recorder.wait_for("Idle", LIMIT, is_idle).await;
    assert_eq!(recorder.count(is_sigkill_crash), 1, "{}", recorder.dump());
    assert_eq!(recorder.count(is_crash), 1, "{}", recorder.dump());
    let exited = recorder.position(is_sigkill_crash).unwrap();
    let idle = recorder.position(is_idle).unwrap();
    assert!(exited < idle, "Exited before Idle: {}", recorder.dump());
    // without the watchdog: no restart
    assert_eq!(
        recorder.actions(),
        [Action::Spawn(Life(1)), Action::Idle],
        "{}",
        recorder.dump()
    );

    let status = driver.status().await;
    assert!(!status.started);
    assert!(status.idle);
    assert_eq!(status.pid, None);
    assert!(gone(pid, LIMIT).await);
    assert_eq!(ping(&driver).await, Err("not started".to_owned()));
    // stop() after a crash returns and does nothing more
    stop(&driver, Duration::from_secs(5)).await;
    assert_eq!(recorder.count(is_idle), 1, "{}", recorder.dump());
    assert_eq!(recorder.actions().len(), 2, "{}", recorder.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_restarts_after_a_crash_until_stopped() {
    let driver = started(watchdog(None)).await;
    let recorder = driver.recorder.clone();
    let first = pid(&driver).await;

    let killed = Instant::now();
    signal(first, libc::SIGKILL);
    recorder
        .wait_for("Restarted", Duration::from_secs(2), is_restarted)
        .await;
    let took = killed.elapsed();
    // the first restart waits 200 ms
    assert!(
        took >= Duration::from_millis(190),
        "restarted after {took:?}"
    );
    assert!(driver.status().await.started);
    let second = pid(&driver).await;
    assert_ne!(second, first);
    assert!(gone(first, LIMIT).await);
    assert!(alive(second));
    assert_eq!(ping(&driver).await, Ok(2), "the new sidecar answers");
    assert_eq!(recorder.count(is_sigkill_crash), 1, "{}", recorder.dump());
    assert_eq!(
        recorder.count(is_idle),
        0,
        "not idle while the watchdog runs"
    );

    // a second crash restarts again (after 400 ms)
    let killed = Instant::now();
    signal(second, libc::SIGKILL);
    recorder
        .wait_for_n("Restarted", 2, LIMIT, is_restarted)
        .await;
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(390),
        "restarted after {took:?}"
    );
    let third = pid(&driver).await;
    assert!(ping(&driver).await.is_ok());

    stop(&driver, Duration::from_secs(5)).await;
    assert!(!alive(third));
    let restarts = recorder.count(is_restarted);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        recorder.count(is_restarted),
        restarts,
        "{}",
        recorder.dump()
    );
    let status = driver.status().await;
    assert!(!status.started);
    assert_eq!(status.pid, None);
    assert_eq!(recorder.count(is_crash), 2, "{}", recorder.dump());
    assert_eq!(recorder.count(is_idle), 1, "{}", recorder.dump());
    let ms = Duration::from_millis;
    assert_eq!(
        recorder.actions(),
        [
            Action::Spawn(Life(1)),
            Action::RestartAfter(ms(200)),
            Action::Spawn(Life(2)),
            Action::Restarted,
            Action::RestartAfter(ms(400)),
            Action::Spawn(Life(3)),
            Action::Restarted,
            Action::Stop(Life(3)),
            Action::Idle,
        ],
        "{}",
        recorder.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_backoff_cancels_the_restart() {
    let driver = started(watchdog(Some(Duration::from_secs(1)))).await;
    let recorder = driver.recorder.clone();
    let pid = pid(&driver).await;
    signal(pid, libc::SIGKILL);
    recorder.wait_for("Exited", LIMIT, is_sigkill_crash).await;
    // within the 200 ms backoff
    let took = stop(&driver, Duration::from_secs(5)).await;
    assert!(took < Duration::from_millis(100), "stop() took {took:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(recorder.count(is_restarted), 0, "{}", recorder.dump());
    let status = driver.status().await;
    assert!(!status.started);
    assert!(status.idle);
    assert_eq!(status.pid, None);
    assert_eq!(recorder.count(is_idle), 1, "{}", recorder.dump());
    // nothing was spawned again
    assert_eq!(
        recorder.actions(),
        [
            Action::Spawn(Life(1)),
            Action::RestartAfter(Duration::from_millis(200)),
            Action::Idle,
        ],
        "{}",
        recorder.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_sidecar_times_requests_out() {
    let config = Config {
        timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let driver = started(config).await;
    let recorder = driver.recorder.clone();
    let pid = pid(&driver).await;

    freeze(pid).await;
    let t0 = Instant::now();
    let err = ping(&driver).await.unwrap_err();
    let took = t0.elapsed();
    assert_eq!(err, "request timeout: ping (id=2)");
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(2),
        "timed out after {took:?}"
    );
    assert!(driver.status().await.started, "a timeout is not a crash");

    signal(pid, libc::SIGCONT);
    // the late answer to id 2 is an orphan; the next ping works
    assert_eq!(ping(&driver).await, Ok(3));
    recorder
        .wait_for(
            "orphan log line",
            LIMIT,
            |r| matches!(r, Record::Log(l) if l == "orphan response id=2"),
        )
        .await;

    let took = stop(&driver, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "stop() took {took:?}");
    assert!(!alive(pid));
    assert_eq!(recorder.count(is_crash), 0, "{}", recorder.dump());
    assert_eq!(recorder.count(is_idle), 1, "{}", recorder.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_even_when_the_sidecar_is_frozen() {
    let driver = started(Config::default()).await;
    let recorder = driver.recorder.clone();
    let pid = pid(&driver).await;
    freeze(pid).await;
    let in_flight = tokio::spawn(driver.request("ping", "", &[]));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let took = stop(&driver, Duration::from_millis(300)).await;
    // 300 ms for stdin EOF, 1 s for SIGTERM (a stopped process does not act on it), SIGKILL
    assert!(took < Duration::from_secs(3), "stop() took {took:?}");
    assert!(took >= Duration::from_millis(300), "stop() took {took:?}");
    assert!(
        gone(pid, Duration::from_secs(1)).await,
        "pid {pid} survived"
    );
    let reply = timeout(LIMIT, in_flight).await.unwrap().unwrap();
    assert_eq!(reply.unwrap_err().to_string(), "ipc stopped");
    assert!(!driver.status().await.started);
    assert_eq!(recorder.count(is_crash), 0, "{}", recorder.dump());
    assert_eq!(
        recorder.count(|r| matches!(
            r,
            Record::Exited { signal: Some(s), intentional: true, .. } if s == "SIGKILL"
        )),
        1,
        "ended by SIGKILL: {}",
        recorder.dump()
    );
    assert_eq!(recorder.count(is_idle), 1, "{}", recorder.dump());
}
