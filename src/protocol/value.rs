//! A bounded msgpack value decoder and a strict encoder for `rmpv::Value`.
//!
//! The decoder never allocates more than the input could hold, so garbage that announces a
//! huge array or string cannot make it allocate past the frame it came in.

use rmpv::Value;
use thiserror::Error;

/// How deeply nested a decoded value may be before it is refused.
pub const MAX_DEPTH: usize = 64;

/// How many values one decode may produce. Each takes 40 bytes or more in memory, so this
/// bounds what any input can make the decoder hold (a header has a dozen).
pub const MAX_VALUES: usize = 65_536;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ValueError {
    #[error("msgpack value truncated")]
    Truncated,
    #[error("msgpack marker 0x{0:02x} is not supported")]
    UnsupportedMarker(u8),
    #[error("msgpack value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("msgpack string is not valid UTF-8")]
    InvalidUtf8,
    #[error("{0} trailing bytes after the msgpack value")]
    Trailing(usize),
    #[error("msgpack value has more than {MAX_VALUES} elements")]
    TooMany,
}

/// Decodes exactly one value that fills `input` completely.
pub fn decode_value(input: &[u8]) -> Result<Value, ValueError> {
    let mut cursor = input;
    let mut budget = MAX_VALUES;
    let value = read_value(&mut cursor, 0, &mut budget)?;
    if !cursor.is_empty() {
        return Err(ValueError::Trailing(cursor.len()));
    }
    Ok(value)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], ValueError> {
    if input.len() < n {
        return Err(ValueError::Truncated);
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn be_uint(input: &mut &[u8], n: usize) -> Result<u64, ValueError> {
    Ok(take(input, n)?
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

fn be_int(input: &mut &[u8], n: usize) -> Result<i64, ValueError> {
    let raw = be_uint(input, n)?;
    let shift = 64 - 8 * n as u32;
    Ok(((raw << shift) as i64) >> shift)
}

fn read_str(input: &mut &[u8], len: usize) -> Result<Value, ValueError> {
    let bytes = take(input, len)?;
    let text = std::str::from_utf8(bytes).map_err(|_| ValueError::InvalidUtf8)?;
    Ok(Value::from(text))
}

/// Room reserved up front for a container; more grows as elements really arrive, so an
/// announced length costs nothing until the input backs it.
const INITIAL_CAPACITY: usize = 16;

fn read_array(
    input: &mut &[u8],
    len: usize,
    depth: usize,
    budget: &mut usize,
) -> Result<Value, ValueError> {
    if len > *budget {
        return Err(ValueError::TooMany);
    }
    let mut items = Vec::with_capacity(len.min(INITIAL_CAPACITY));
    for _ in 0..len {
        items.push(read_value(input, depth + 1, budget)?);
    }
    Ok(Value::Array(items))
}

fn read_map(
    input: &mut &[u8],
    len: usize,
    depth: usize,
    budget: &mut usize,
) -> Result<Value, ValueError> {
    if len.saturating_mul(2) > *budget {
        return Err(ValueError::TooMany);
    }
    let mut entries = Vec::with_capacity(len.min(INITIAL_CAPACITY));
    for _ in 0..len {
        let key = read_value(input, depth + 1, budget)?;
        let value = read_value(input, depth + 1, budget)?;
        entries.push((key, value));
    }
    Ok(Value::Map(entries))
}

fn read_value(input: &mut &[u8], depth: usize, budget: &mut usize) -> Result<Value, ValueError> {
    if depth > MAX_DEPTH {
        return Err(ValueError::TooDeep);
    }
    *budget = budget.checked_sub(1).ok_or(ValueError::TooMany)?;
    let marker = take(input, 1)?[0];
    match marker {
        0x00..=0x7f => Ok(Value::from(marker)),
        0x80..=0x8f => read_map(input, usize::from(marker & 0x0f), depth, budget),
        0x90..=0x9f => read_array(input, usize::from(marker & 0x0f), depth, budget),
        0xa0..=0xbf => read_str(input, usize::from(marker & 0x1f)),
        0xc0 => Ok(Value::Nil),
        0xc2 => Ok(Value::Boolean(false)),
        0xc3 => Ok(Value::Boolean(true)),
        0xc4..=0xc6 => {
            let len = be_uint(input, 1 << (marker - 0xc4))? as usize;
            Ok(Value::Binary(take(input, len)?.to_vec()))
        }
        0xca => Ok(Value::F32(f32::from_bits(be_uint(input, 4)? as u32))),
        0xcb => Ok(Value::F64(f64::from_bits(be_uint(input, 8)?))),
        0xcc..=0xcf => Ok(Value::from(be_uint(input, 1 << (marker - 0xcc))?)),
        0xd0..=0xd3 => Ok(Value::from(be_int(input, 1 << (marker - 0xd0))?)),
        0xd9..=0xdb => {
            let len = be_uint(input, 1 << (marker - 0xd9))? as usize;
            read_str(input, len)
        }
        0xdc | 0xdd => {
            let len = be_uint(input, 2 << (marker - 0xdc))? as usize;
            read_array(input, len, depth, budget)
        }
        0xde | 0xdf => {
            let len = be_uint(input, 2 << (marker - 0xde))? as usize;
            read_map(input, len, depth, budget)
        }
        0xe0..=0xff => Ok(Value::from(marker as i8)),
        // 0xc1 is never used; 0xc7..=0xc9 and 0xd4..=0xd8 are extension types, which the
        // sidecar never sends.
        other => Err(ValueError::UnsupportedMarker(other)),
    }
}

/// Appends `value` in msgpack, with every integer in its smallest unsigned or signed form.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    rmpv::encode::write_value(out, value).expect("writing msgpack into a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_nested_values() {
        let value = Value::Map(vec![
            (Value::from("a"), Value::from(1u64 << 40)),
            (Value::from("b"), Value::from(-300i64)),
            (
                Value::from("c"),
                Value::Array(vec![Value::Nil, Value::from(true), Value::F64(1.5)]),
            ),
            (Value::from("d"), Value::Binary(vec![1, 2, 3])),
        ]);
        let mut bytes = Vec::new();
        encode_value(&value, &mut bytes);
        assert_eq!(decode_value(&bytes).unwrap(), value);
    }

    #[test]
    fn announced_lengths_are_bounded_by_the_value_budget() {
        // array32 of 2^32 - 1 nils, 2 MiB of them present: refused before any element
        let mut bytes = vec![0xdd, 0xff, 0xff, 0xff, 0xff];
        bytes.resize(5 + 2 * 1024 * 1024, 0xc0);
        assert_eq!(decode_value(&bytes), Err(ValueError::TooMany));
        // an array of exactly the budget (minus itself) is fine
        let mut bytes = vec![0xdd];
        bytes.extend_from_slice(&((MAX_VALUES - 1) as u32).to_be_bytes());
        bytes.resize(5 + MAX_VALUES - 1, 0xc0);
        assert!(decode_value(&bytes).is_ok());
        // nested containers share one budget
        let mut nested = Vec::new();
        for _ in 0..40 {
            nested.extend_from_slice(&[0xdd, 0, 0, 0x10, 0]);
        }
        nested.resize(nested.len() + (1 << 16), 0xc0);
        assert!(decode_value(&nested).is_err());
    }

    #[test]
    fn huge_announced_lengths_fail_without_allocating() {
        // array32 and str32 announcing 4 GiB with nothing behind them
        assert!(decode_value(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert_eq!(
            decode_value(&[0xdb, 0xff, 0xff, 0xff, 0xff]),
            Err(ValueError::Truncated)
        );
        assert_eq!(
            decode_value(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0]),
            Err(ValueError::TooMany)
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let bytes = vec![0x91; MAX_DEPTH + 2];
        assert_eq!(decode_value(&bytes), Err(ValueError::TooDeep));
    }

    #[test]
    fn trailing_bytes_are_reported() {
        assert_eq!(decode_value(&[0xc0, 0xc0]), Err(ValueError::Trailing(1)));
    }
}
