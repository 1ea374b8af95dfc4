//! The one error type of the crate. `node/` turns it into JavaScript errors.

use thiserror::Error;

/// Which JavaScript error class an [`Error`] becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsKind {
    Error,
    TypeError,
    RangeError,
    /// An `Error` whose `name` is this (the DOMException names of the W3C API).
    Named(&'static str),
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("already started")]
    AlreadyStarted,
    #[error("not started")]
    NotStarted,
    #[error("ipc stopped")]
    Stopped,
    #[error("request timeout: {method} (id={id})")]
    Timeout { method: String, id: u32 },
    /// Formatted as Node formats a child's exit: a missing value is `null`.
    #[error("process exited (code={}, signal={})", fmt_opt(.code), .signal.as_deref().unwrap_or("null"))]
    Exited {
        code: Option<i32>,
        signal: Option<String>,
    },
    /// A response with `ok: false`; the text is the sidecar's own.
    #[error("{0}")]
    Remote(String),
    /// Spawning the binary failed; the text names the path and the OS error code.
    #[error("{0}")]
    Spawn(String),
    /// The binary could not be found.
    #[error("{0}")]
    NotFound(String),
    /// The sidecar sent something that is not a valid frame.
    #[error("malformed frame from pion-ipc: {0}")]
    Protocol(String),
    #[error("{0}")]
    Type(String),
    #[error("{0}")]
    Range(String),
    /// The W3C InvalidStateError; the message starts with the name, as the old SDK's did.
    #[error("InvalidStateError: {0}")]
    InvalidState(String),
    /// The W3C OperationError: an Error named `OperationError`.
    #[error("{0}")]
    Operation(String),
}

fn fmt_opt(code: &Option<i32>) -> String {
    code.map_or_else(|| "null".to_owned(), |c| c.to_string())
}

impl Error {
    pub fn js_kind(&self) -> JsKind {
        match self {
            Error::Type(_) => JsKind::TypeError,
            Error::Range(_) => JsKind::RangeError,
            Error::Operation(_) => JsKind::Named("OperationError"),
            _ => JsKind::Error,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_message_matches_node_formatting() {
        let e = Error::Exited {
            code: None,
            signal: Some("SIGKILL".into()),
        };
        assert_eq!(e.to_string(), "process exited (code=null, signal=SIGKILL)");
        let e = Error::Exited {
            code: Some(3),
            signal: None,
        };
        assert_eq!(e.to_string(), "process exited (code=3, signal=null)");
    }
}
