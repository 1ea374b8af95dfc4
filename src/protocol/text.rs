//! A header string that may share the bytes of the frame it was read from: decoding the
//! pcId, label and event name of every frame would otherwise allocate three strings.

use bytes::Bytes;
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// UTF-8 text over [`Bytes`]: a slice of a frame's buffer when decoded, a copy otherwise.
/// Keep a `String` of it (`to_string()`) for anything stored longer than the frame: a slice
/// keeps the whole read buffer it came from alive.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Text(Bytes);

impl Text {
    /// `bytes`, checked to be UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Option<Text> {
        std::str::from_utf8(&bytes).ok()?;
        Some(Text(bytes))
    }

    /// `part` of `whole` (a slice of it), without a copy.
    pub(crate) fn shared(whole: &Bytes, part: &str) -> Text {
        Text(whole.slice_ref(part.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor takes UTF-8 only.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// Hashes as the `str` it holds, so that a map keyed by `Text` is looked up by `&str`.
impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Bytes::from(s.into_bytes()))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Text {
        Text::from(s.as_str())
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_owned()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn shares_the_buffer_and_acts_as_its_str() {
        let whole = Bytes::from_static(b"xxpc-1yy");
        let t = Text::shared(&whole, std::str::from_utf8(&whole[2..6]).unwrap());
        assert_eq!(t, "pc-1");
        assert_eq!(t.as_ptr(), whole[2..].as_ptr(), "no copy");
        let mut map = HashMap::new();
        map.insert(Text::from("pc-1"), 1);
        assert_eq!(map.get("pc-1"), Some(&1), "looked up by &str");
        assert_eq!(format!("{t} {t:?}"), "pc-1 \"pc-1\"");
        assert!(Text::from_utf8(Bytes::from_static(&[0xff])).is_none());
    }
}
