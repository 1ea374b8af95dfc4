//! Shared pieces of the integration tests against the real pion-ipc binary: where the binary
//! is, signals to the sidecar the test started (by pid), and a small driver (`driver.rs`) that
//! runs a [`Sidecar`](pion_node_rs::sidecar::Sidecar) with the sans-IO core and records what it
//! saw and did (`recorder.rs`).

pub mod driver;
pub mod recorder;

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::timeout;

/// Every wait in these tests is bounded by this, unless it says otherwise.
pub const LIMIT: Duration = Duration::from_secs(10);

/// The real sidecar: `PION_IPC_BIN`, else the one `npm install` put into node_modules.
/// Missing is a failure, not a skip: these tests are the proof that the driver works.
pub fn bin() -> PathBuf {
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

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on the sidecar this test started.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// SIGSTOP, then waits until every thread of the process is really stopped: kill(2) only
/// queues the signal, and an unstopped thread could still answer a request sent right after.
pub async fn freeze(pid: u32) {
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

pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits (bounded) for /proc/<pid> to disappear.
pub async fn gone(pid: u32, limit: Duration) -> bool {
    timeout(limit, async {
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .is_ok()
}
