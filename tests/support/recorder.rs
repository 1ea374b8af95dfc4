//! What the test driver saw or did, and predicates to count it by.

use pion_node_rs::core::{Action, Life};
use std::sync::Mutex;
use std::time::Duration;

/// What the driver saw or did, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A supervisor action, as it was carried out.
    Action(Action),
    /// The sidecar's exit notice.
    Exited {
        life: Life,
        code: Option<i32>,
        signal: Option<String>,
        intentional: bool,
    },
    /// A log line: the sidecar's stderr, or the session's own (request errors, orphans).
    Log(String),
    /// An error for the `error` event (a failed spawn, an untrusted stream).
    Error(String),
}

#[derive(Default)]
pub struct Recorder {
    records: Mutex<Vec<Record>>,
}

impl Recorder {
    pub(super) fn push(&self, record: Record) {
        self.records.lock().unwrap().push(record);
    }

    pub fn count(&self, pred: impl Fn(&Record) -> bool) -> usize {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| pred(r))
            .count()
    }

    pub fn position(&self, pred: impl Fn(&Record) -> bool) -> Option<usize> {
        self.records.lock().unwrap().iter().position(pred)
    }

    /// The supervisor actions carried out, in order.
    pub fn actions(&self) -> Vec<Action> {
        let records = self.records.lock().unwrap();
        records
            .iter()
            .filter_map(|r| match r {
                Record::Action(a) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn logs(&self) -> Vec<String> {
        let records = self.records.lock().unwrap();
        records
            .iter()
            .filter_map(|r| match r {
                Record::Log(line) => Some(line.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn dump(&self) -> String {
        format!("{:#?}", self.records.lock().unwrap())
    }

    /// Waits (bounded) until `n` records match; fails the test otherwise.
    pub async fn wait_for_n(
        &self,
        what: &str,
        n: usize,
        limit: Duration,
        pred: impl Fn(&Record) -> bool,
    ) {
        let found = tokio::time::timeout(limit, async {
            while self.count(&pred) < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "not {n} × {what} within {limit:?}; records: {}",
            self.dump()
        );
    }

    pub async fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&Record) -> bool) {
        self.wait_for_n(what, 1, limit, pred).await;
    }
}

pub fn is_idle(r: &Record) -> bool {
    matches!(r, Record::Action(Action::Idle))
}

pub fn is_restarted(r: &Record) -> bool {
    matches!(r, Record::Action(Action::Restarted))
}

pub fn is_crash(r: &Record) -> bool {
    matches!(
        r,
        Record::Exited {
            intentional: false,
            ..
        }
    )
}

pub fn is_intended_exit(r: &Record) -> bool {
    matches!(
        r,
        Record::Exited {
            intentional: true,
            ..
        }
    )
}

pub fn is_sigkill_crash(r: &Record) -> bool {
    matches!(
        r,
        Record::Exited { code: None, signal: Some(s), intentional: false, .. } if s == "SIGKILL"
    )
}

pub fn is_error(r: &Record) -> bool {
    matches!(r, Record::Error(_))
}
