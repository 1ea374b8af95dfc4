//! The sidecar's stderr: read for its whole life, cut into log lines.

use super::shared::Shared;
use super::sink::Notice;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Stderr lines longer than this are cut into pieces, so a line without end cannot grow
/// without bound.
const MAX_STDERR_LINE: usize = 64 * 1024;

pub(super) async fn stderr_loop(shared: Arc<Shared>, mut stderr: impl AsyncRead + Unpin) {
    let mut line = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut any = false;
        for &byte in &chunk[..n] {
            if byte == b'\n' || line.len() >= MAX_STDERR_LINE {
                emit_stderr_line(&shared, &line);
                line.clear();
                any = true;
                if byte == b'\n' {
                    continue;
                }
            }
            line.push(byte);
        }
        if any {
            shared.sink.flush();
        }
    }
    if !line.is_empty() {
        emit_stderr_line(&shared, &line);
        shared.sink.flush();
    }
}

fn emit_stderr_line(shared: &Shared, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    shared.sink.notice(Notice::Log(format!(
        "[stderr] {}",
        String::from_utf8_lossy(line)
    )));
}
