//! Log lines carry text we do not control: the sidecar's stderr and error messages, remote
//! peers' SDP fields, labels. Before a line reaches the logger its control characters are
//! escaped, so that such text cannot forge lines of its own or send terminal escapes.

use std::borrow::Cow;
use std::fmt::Write;

/// `line` with every control character (C0, DEL, C1; newlines and tabs too) written as an
/// escape: `\n`, `\r`, `\t`, else `\x1b` / `\u{9b}`.
pub fn escape_controls(line: &str) -> Cow<'_, str> {
    if !line.chars().any(char::is_control) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn plain_text_is_left_alone() {
        assert!(matches!(
            escape_controls("request error id=3 err=peer \"ü\" not found"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape_controls("bogus\n[pion-ipc] forged\x07\x1b[31m\r\t\u{9b}\u{7f}"),
            "bogus\\n[pion-ipc] forged\\x07\\x1b[31m\\r\\t\\u{9b}\\x7f"
        );
    }
}
