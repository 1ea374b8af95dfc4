//! The sidecar driver against the real pion-ipc binary: start, requests, stop, crash, the
//! watchdog and timeouts.
//! Unix only: it sends signals to the sidecar by pid.
#![cfg(unix)]

use pion_node_rs::protocol::messages::{encode, PcCreate};
use pion_node_rs::protocol::FrameType;
use pion_node_rs::sidecar::{Ipc, IpcConfig, Notice, NoticeSink};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

/// Every wait in these tests is bounded by this, unless it says otherwise.
const LIMIT: Duration = Duration::from_secs(10);

/// The real sidecar: `PION_IPC_BIN`, else the one `npm install` put into node_modules.
/// Missing is a failure, not a skip: these tests are the proof that the driver works.
fn bin() -> PathBuf {
    let bin = match std::env::var_os("PION_IPC_BIN").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("node_modules/@coclaw/pion-ipc-linux-x64/bin/pion-ipc"),
    };
    assert!(
        bin.is_file(),
        "pion-ipc binary not found at {}: run `npm install` in {} or set PION_IPC_BIN",
        bin.display(),
        env!("CARGO_MANIFEST_DIR")
    );
    bin
}

#[derive(Default)]
struct Recorder {
    notices: Mutex<Vec<Notice>>,
}

impl NoticeSink for Recorder {
    fn notice(&self, notice: Notice) {
        self.notices.lock().unwrap().push(notice);
    }
}

impl Recorder {
    fn count(&self, pred: impl Fn(&Notice) -> bool) -> usize {
        self.notices
            .lock()
            .unwrap()
            .iter()
            .filter(|n| pred(n))
            .count()
    }

    fn position(&self, pred: impl Fn(&Notice) -> bool) -> Option<usize> {
        self.notices.lock().unwrap().iter().position(pred)
    }

    fn logs(&self) -> Vec<String> {
        self.notices
            .lock()
            .unwrap()
            .iter()
            .filter_map(|n| match n {
                Notice::Log(line) => Some(line.clone()),
                _ => None,
            })
            .collect()
    }

    fn dump(&self) -> String {
        format!("{:#?}", self.notices.lock().unwrap())
    }

    /// Waits (bounded) until some notice matches.
    async fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&Notice) -> bool) {
        let found = timeout(limit, async {
            while self.count(&pred) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "no {what} within {limit:?}; notices: {}",
            self.dump()
        );
    }
}

fn is_idle(n: &Notice) -> bool {
    matches!(n, Notice::Idle)
}

fn is_restarted(n: &Notice) -> bool {
    matches!(n, Notice::Restarted)
}

fn is_crash(n: &Notice) -> bool {
    matches!(
        n,
        Notice::Exited {
            intentional: false,
            ..
        }
    )
}

fn is_sigkill_crash(n: &Notice) -> bool {
    matches!(
        n,
        Notice::Exited { code: None, signal: Some(s), intentional: false } if s == "SIGKILL"
    )
}

async fn started(config: IpcConfig) -> (Ipc, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let ipc = Ipc::new(config, recorder.clone());
    let start = ipc.start(|| Ok(bin())).expect("start claims");
    timeout(LIMIT, start)
        .await
        .expect("start() within the limit")
        .expect("start() resolves");
    assert!(ipc.started());
    (ipc, recorder)
}

async fn ping(ipc: &Ipc) -> Result<u32, String> {
    let reply = timeout(LIMIT, ipc.request("ping", "", "", false, &[]))
        .await
        .expect("ping answered or failed within the limit");
    match reply {
        Ok(frame) => {
            assert_eq!(frame.header.kind, FrameType::Response);
            assert_eq!(frame.header.ok, Some(true));
            Ok(frame.header.id)
        }
        Err(e) => Err(e.to_string()),
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on the sidecar this test started.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// SIGSTOP, then waits until every thread of the process is really stopped: kill(2) only
/// queues the signal, and an unstopped thread could still answer a request sent right after.
async fn freeze(pid: u32) {
    signal(pid, libc::SIGSTOP);
    let stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.flatten().all(|task| {
            std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                // the state follows the parenthesised command name
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('T'))
            })
        })
    };
    let frozen = timeout(LIMIT, async {
        while !stopped() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(frozen.is_ok(), "pid {pid} did not stop");
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits (bounded) for /proc/<pid> to disappear.
async fn gone(pid: u32, limit: Duration) -> bool {
    timeout(limit, async {
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .is_ok()
}

async fn stop(ipc: &Ipc, grace: Duration) -> Duration {
    let t0 = Instant::now();
    timeout(LIMIT, ipc.stop(grace))
        .await
        .expect("stop() returns within the limit");
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_pings_and_pipelines_2000_pings() {
    let (ipc, recorder) = started(IpcConfig::default()).await;
    let pid = ipc.pid().expect("a running sidecar has a pid");
    assert!(alive(pid));

    // start() used id 1 for its own ping
    assert_eq!(ping(&ipc).await, Ok(2));

    let sidecar = ipc.sidecar().unwrap();
    let mut set = JoinSet::new();
    for _ in 0..2000 {
        let rx = sidecar.request("ping", "", "", false, &[]).unwrap();
        set.spawn(rx);
    }
    let answered = timeout(LIMIT, async {
        let mut ids = HashSet::new();
        while let Some(joined) = set.join_next().await {
            let frame = joined.unwrap().expect("reply sent").expect("ping ok");
            assert_eq!(frame.header.ok, Some(true));
            assert!(ids.insert(frame.header.id), "id {} twice", frame.header.id);
        }
        ids
    })
    .await
    .expect("2000 pings answered within the limit");
    assert_eq!(answered.len(), 2000);
    assert_eq!(answered, (3..2003).collect::<HashSet<u32>>());

    stop(&ipc, Duration::from_secs(5)).await;
    assert_eq!(recorder.count(is_crash), 0, "{}", recorder.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_twice_fails_and_request_after_stop_fails() {
    let (ipc, recorder) = started(IpcConfig::default()).await;
    let mut located = false;
    let err = ipc
        .start(|| {
            located = true;
            Ok(bin())
        })
        .err()
        .expect("second start() fails");
    assert_eq!(err.to_string(), "already started");
    assert!(!located, "locate must not run when the start is refused");
    assert!(ipc.started());
    assert_eq!(ping(&ipc).await, Ok(2));

    stop(&ipc, Duration::from_secs(5)).await;
    assert!(!ipc.started());
    assert!(ipc.idle());
    assert_eq!(ping(&ipc).await, Err("not started".to_owned()));
    assert_eq!(ipc.sidecar().err().unwrap().to_string(), "not started");
    // stop() on a stopped instance resolves, and says nothing more
    let idles = recorder.count(is_idle);
    stop(&ipc, Duration::from_secs(5)).await;
    assert_eq!(recorder.count(is_idle), idles);

    // and it can be started again
    let start = ipc.start(|| Ok(bin())).expect("start after stop");
    timeout(LIMIT, start).await.unwrap().unwrap();
    assert_eq!(
        ping(&ipc).await,
        Ok(2),
        "ids restart at 1 with a new sidecar"
    );
    stop(&ipc, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_with_a_missing_binary_fails_and_stays_restartable() {
    let recorder = Arc::new(Recorder::default());
    let ipc = Ipc::new(IpcConfig::default(), recorder.clone());
    let missing = PathBuf::from("/nonexistent/pion-ipc");
    let start = ipc.start(|| Ok(missing.clone())).unwrap();
    let err = timeout(LIMIT, start).await.unwrap().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/pion-ipc") && text.contains("ENOENT"),
        "{text}"
    );
    assert!(!ipc.started());
    assert!(ipc.idle());
    assert!(recorder.count(|n| matches!(n, Notice::Error(_))) == 1);
    assert!(recorder.count(is_idle) == 1);

    // a failing locate rejects start() with its error, too
    let start = ipc
        .start(|| Err(pion_node_rs::error::Error::NotFound("nowhere".into())))
        .unwrap();
    let err = timeout(LIMIT, start).await.unwrap().unwrap_err();
    assert_eq!(err.to_string(), "nowhere");
    assert!(ipc.idle());

    let start = ipc.start(|| Ok(bin())).unwrap();
    timeout(LIMIT, start).await.unwrap().unwrap();
    assert!(ipc.started());
    stop(&ipc, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pc_create_close_and_remote_errors() {
    let (ipc, recorder) = started(IpcConfig::default()).await;
    let pc_id = format!("pc-{}", std::process::id());
    let payload = encode(&PcCreate {
        pc_id: pc_id.clone(),
        ice_servers: vec![],
        settings: None,
    });
    let created = timeout(LIMIT, ipc.request("pc.create", &pc_id, "", false, &payload))
        .await
        .unwrap()
        .expect("pc.create ok");
    assert_eq!(created.header.ok, Some(true));

    // a second create with the same pcId is refused by the sidecar
    let err = timeout(LIMIT, ipc.request("pc.create", &pc_id, "", false, &payload))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), format!("peer \"{pc_id}\" already exists"));

    // an unknown method on a pcId
    let err = timeout(LIMIT, ipc.request("pc.bogus", &pc_id, "", false, &[]))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown method: pc.bogus");

    // closing an unknown pcId fails with the sidecar's own text, and is logged
    let err = timeout(LIMIT, ipc.request("pc.close", "nope", "", false, &[]))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "peer \"nope\" not found");
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

    let closed = timeout(LIMIT, ipc.request("pc.close", &pc_id, "", false, &[]))
        .await
        .unwrap()
        .expect("pc.close of a live pc ok");
    assert_eq!(closed.header.ok, Some(true));

    stop(&ipc, Duration::from_secs(5)).await;
    assert_eq!(recorder.count(is_crash), 0, "{}", recorder.dump());
}

/// As observed with pion-ipc 0.4.1: the peer is looked up before the method, so an unknown
/// method on a missing (or empty) pcId reports the peer, not the method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_on_a_missing_peer_reports_the_peer() {
    let (ipc, _recorder) = started(IpcConfig::default()).await;
    for (method, pc_id, want) in [
        ("pc.bogus", "no-such-pc", "peer \"no-such-pc\" not found"),
        ("bogus", "x", "peer \"x\" not found"),
        ("nope.method", "", "peer \"\" not found"),
        ("", "", "peer \"\" not found"),
    ] {
        let err = timeout(LIMIT, ipc.request(method, pc_id, "", false, &[]))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.to_string(), want, "{method} on {pc_id:?}");
    }
    // pc.create without a pcId in its payload
    let payload = encode(&PcCreate {
        pc_id: String::new(),
        ice_servers: vec![],
        settings: None,
    });
    let err = timeout(LIMIT, ipc.request("pc.create", "", "", false, &payload))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "pcId is required");
    assert!(ping(&ipc).await.is_ok(), "errors leave the sidecar running");
    stop(&ipc, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_process_quietly() {
    let (ipc, recorder) = started(IpcConfig::default()).await;
    let pid = ipc.pid().unwrap();
    assert!(alive(pid));
    let took = stop(&ipc, Duration::from_secs(5)).await;
    // stop() resolves after the exit was reaped: nothing is left, not even a zombie
    assert!(!alive(pid), "pid {pid} still there after stop()");
    assert!(took < Duration::from_secs(2), "stop() took {took:?}");
    assert!(!ipc.started());
    assert_eq!(ipc.pid(), None);
    assert_eq!(recorder.count(is_crash), 0, "{}", recorder.dump());
    assert_eq!(
        recorder.count(|n| matches!(n, Notice::Exited { .. })),
        0,
        "an intentional stop emits no exit notice: {}",
        recorder.dump()
    );
    assert_eq!(recorder.count(is_idle), 1, "{}", recorder.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_fails_pending_requests_and_goes_idle() {
    let (ipc, recorder) = started(IpcConfig::default()).await;
    let pid = ipc.pid().unwrap();

    // freeze it so that a request is surely in flight when it dies
    freeze(pid).await;
    let in_flight = tokio::spawn({
        let ipc = ipc.clone();
        async move { ipc.request("ping", "", "", false, &[]).await }
    });
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

    assert!(!ipc.started());
    assert!(ipc.idle());
    assert!(gone(pid, LIMIT).await);
    assert_eq!(ping(&ipc).await, Err("not started".to_owned()));
    // stop() after a crash resolves and says nothing more
    stop(&ipc, Duration::from_secs(5)).await;
    assert_eq!(recorder.count(is_idle), 1, "{}", recorder.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_restarts_after_a_crash_until_stopped() {
    let config = IpcConfig {
        auto_restart: true,
        ..IpcConfig::default()
    };
    let (ipc, recorder) = started(config).await;
    let first = ipc.pid().unwrap();

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
    assert!(ipc.started());
    let second = ipc.pid().unwrap();
    assert_ne!(second, first);
    assert!(gone(first, LIMIT).await);
    assert!(alive(second));
    assert_eq!(ping(&ipc).await, Ok(2), "the new sidecar answers");
    assert_eq!(recorder.count(is_sigkill_crash), 1, "{}", recorder.dump());
    assert_eq!(
        recorder.count(is_idle),
        0,
        "not idle while the watchdog runs"
    );

    // a second crash restarts again (after 400 ms)
    let killed = Instant::now();
    signal(second, libc::SIGKILL);
    timeout(LIMIT, async {
        while recorder.count(is_restarted) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no second restart: {}", recorder.dump()));
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(390),
        "restarted after {took:?}"
    );
    let third = ipc.pid().unwrap();
    assert!(ping(&ipc).await.is_ok());

    stop(&ipc, Duration::from_secs(5)).await;
    assert!(!alive(third));
    let restarts = recorder.count(is_restarted);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        recorder.count(is_restarted),
        restarts,
        "{}",
        recorder.dump()
    );
    assert!(!ipc.started());
    assert_eq!(ipc.pid(), None);
    assert_eq!(recorder.count(is_crash), 2, "{}", recorder.dump());
    assert_eq!(recorder.count(is_idle), 1, "{}", recorder.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_backoff_cancels_the_restart() {
    let config = IpcConfig {
        auto_restart: true,
        max_backoff: Duration::from_secs(1),
        ..IpcConfig::default()
    };
    let (ipc, recorder) = started(config).await;
    let pid = ipc.pid().unwrap();
    signal(pid, libc::SIGKILL);
    recorder.wait_for("Exited", LIMIT, is_sigkill_crash).await;
    // within the 200 ms backoff
    stop(&ipc, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(recorder.count(is_restarted), 0, "{}", recorder.dump());
    assert!(!ipc.started());
    assert!(ipc.idle());
    assert_eq!(ipc.pid(), None);
    assert_eq!(recorder.count(is_idle), 1, "{}", recorder.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_sidecar_times_requests_out() {
    let config = IpcConfig {
        timeout: Duration::from_millis(200),
        ..IpcConfig::default()
    };
    let (ipc, recorder) = started(config).await;
    let pid = ipc.pid().unwrap();

    freeze(pid).await;
    let t0 = Instant::now();
    let err = ping(&ipc).await.unwrap_err();
    let took = t0.elapsed();
    assert_eq!(err, "request timeout: ping (id=2)");
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(2),
        "timed out after {took:?}"
    );
    assert!(ipc.started(), "a timeout is not a crash");

    signal(pid, libc::SIGCONT);
    // the late answer to id 2 is an orphan; the next ping works
    assert_eq!(ping(&ipc).await, Ok(3));
    timeout(LIMIT, async {
        while !recorder.logs().iter().any(|l| l == "orphan response id=2") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no orphan log line: {}", recorder.dump()));

    let took = stop(&ipc, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "stop() took {took:?}");
    assert!(!alive(pid));
    assert_eq!(recorder.count(is_crash), 0, "{}", recorder.dump());
    assert_eq!(recorder.count(is_idle), 1, "{}", recorder.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_even_when_the_sidecar_is_frozen() {
    let (ipc, recorder) = started(IpcConfig::default()).await;
    let pid = ipc.pid().unwrap();
    freeze(pid).await;
    let in_flight = tokio::spawn({
        let ipc = ipc.clone();
        async move { ipc.request("ping", "", "", false, &[]).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;

    let took = stop(&ipc, Duration::from_millis(300)).await;
    // 300 ms for stdin EOF, 1 s for SIGTERM (a stopped process does not act on it), SIGKILL
    assert!(took < Duration::from_secs(3), "stop() took {took:?}");
    assert!(took >= Duration::from_millis(300), "stop() took {took:?}");
    assert!(
        gone(pid, Duration::from_secs(1)).await,
        "pid {pid} survived"
    );
    let reply = timeout(LIMIT, in_flight).await.unwrap().unwrap();
    assert_eq!(reply.unwrap_err().to_string(), "ipc stopped");
    assert!(!ipc.started());
    assert_eq!(recorder.count(is_crash), 0, "{}", recorder.dump());
    assert_eq!(recorder.count(is_idle), 1, "{}", recorder.dump());
}
