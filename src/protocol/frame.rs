//! Length-prefixed frames: `[u32 LE length][u16 LE header length][header][payload]`.

use super::header::{EncodeHeader, Header, HeaderError};
use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// The largest `length` field the sidecar accepts (16 MiB).
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// One decoded frame; the payload shares the decoder's buffer, so decoding copies nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub header: Header,
    pub payload: Bytes,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame length {0} is shorter than its 2-byte header length field")]
    TooShort(u32),
    #[error("frame length {0} exceeds the limit of {MAX_FRAME_LEN} bytes")]
    TooLarge(u64),
    #[error("header length {header_len} does not fit in frame length {frame_len}")]
    HeaderOverrun { header_len: u16, frame_len: u32 },
    #[error("bad header: {0}")]
    Header(#[from] HeaderError),
}

/// Appends one frame to `out`. Fails, writing nothing, when the frame would exceed the bound
/// or the header would not fit its 16-bit length field.
pub fn encode_frame(
    header: &impl EncodeHeader,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; 6]);
    header.encode_header(out);
    let header_len = out.len() - start - 6;
    let frame_len = 2 + header_len + payload.len();
    if header_len > usize::from(u16::MAX) {
        out.truncate(start);
        return Err(FrameError::HeaderOverrun {
            header_len: u16::MAX,
            frame_len: u32::try_from(frame_len).unwrap_or(u32::MAX),
        });
    }
    if frame_len > MAX_FRAME_LEN {
        out.truncate(start);
        return Err(FrameError::TooLarge(frame_len as u64));
    }
    out[start..start + 4].copy_from_slice(&(frame_len as u32).to_le_bytes());
    out[start + 4..start + 6].copy_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Incremental decoder: feed it bytes as they arrive, take frames out as they complete.
/// A bad length is reported as soon as its four bytes are in, before anything is buffered
/// for it, so a hostile length never makes the decoder allocate past the bound.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The buffer to read into (append at its end).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Makes room to read into. A frame larger than `chunk` gets exactly the room it still
    /// needs, never a doubled buffer, so no allocation goes past one largest frame
    /// (4 + 16 MiB); small frames are read about `chunk` bytes at a time.
    pub fn reserve_for_read(&mut self, chunk: usize) {
        let wanted = self.wanted();
        let spare = self.buf.capacity() - self.buf.len();
        if wanted > chunk {
            if spare < wanted {
                let mut exact = BytesMut::with_capacity(self.buf.len() + wanted);
                exact.extend_from_slice(&self.buf);
                self.buf = exact;
            }
        } else if spare < wanted || (spare < chunk / 4 && self.buf.len() < chunk) {
            self.buf.reserve(chunk);
        }
    }

    /// How many more bytes complete the frame under way (at least 1 when one is partial).
    pub fn wanted(&self) -> usize {
        if self.buf.len() < 4 {
            return 4 - self.buf.len();
        }
        let len = u32::from_le_bytes(self.buf[..4].try_into().unwrap()) as usize;
        (4 + len.min(MAX_FRAME_LEN))
            .saturating_sub(self.buf.len())
            .max(1)
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed. After an error the
    /// stream cannot be resynchronised; the caller must stop.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let frame_len = u32::from_le_bytes(self.buf[..4].try_into().unwrap());
        if frame_len < 2 {
            return Err(FrameError::TooShort(frame_len));
        }
        if frame_len as usize > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge(u64::from(frame_len)));
        }
        if self.buf.len() < 6 {
            return Ok(None);
        }
        let header_len = u16::from_le_bytes(self.buf[4..6].try_into().unwrap());
        if usize::from(header_len) > frame_len as usize - 2 {
            return Err(FrameError::HeaderOverrun {
                header_len,
                frame_len,
            });
        }
        let total = 4 + frame_len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(total).freeze();
        frame.advance(6);
        let header = Header::decode_shared(&frame.slice(..usize::from(header_len)))?;
        frame.advance(usize::from(header_len));
        Ok(Some(Frame {
            header,
            payload: frame,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::header::FrameType;

    fn sample() -> (Header, Vec<u8>) {
        let header = Header {
            kind: FrameType::Event,
            event: "dc.message".into(),
            pc_id: "p".into(),
            dc_label: "l".into(),
            is_binary: true,
            ..Header::default()
        };
        (header, vec![1, 2, 3, 4, 5])
    }

    #[test]
    fn decodes_every_split_point() {
        let (header, payload) = sample();
        let mut bytes = Vec::new();
        encode_frame(&header, &payload, &mut bytes).unwrap();
        encode_frame(&header, &payload, &mut bytes).unwrap();
        for split in 0..=bytes.len() {
            let mut decoder = FrameDecoder::new();
            decoder.extend(&bytes[..split]);
            let mut frames = Vec::new();
            while let Some(f) = decoder.next_frame().unwrap() {
                frames.push(f);
            }
            decoder.extend(&bytes[split..]);
            while let Some(f) = decoder.next_frame().unwrap() {
                frames.push(f);
            }
            assert_eq!(frames.len(), 2, "split at {split}");
            assert!(frames
                .iter()
                .all(|f| f.header == header && f.payload[..] == payload));
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn rejects_short_lengths() {
        for len in [0u32, 1] {
            let mut decoder = FrameDecoder::new();
            decoder.extend(&len.to_le_bytes());
            assert_eq!(decoder.next_frame(), Err(FrameError::TooShort(len)));
        }
    }

    #[test]
    fn accepts_the_bound_and_rejects_one_past_it() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&(MAX_FRAME_LEN as u32).to_le_bytes());
        decoder.extend(&[0, 0]);
        assert_eq!(decoder.next_frame(), Ok(None));
        let mut decoder = FrameDecoder::new();
        decoder.extend(&(MAX_FRAME_LEN as u32 + 1).to_le_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge(MAX_FRAME_LEN as u64 + 1))
        );
    }

    #[test]
    fn room_for_a_largest_frame_is_exact() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&(MAX_FRAME_LEN as u32).to_le_bytes());
        decoder.extend(&[0, 0]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.reserve_for_read(64 * 1024);
        assert!(decoder.buffer_mut().capacity() <= 4 + MAX_FRAME_LEN + 64 * 1024);
        // feeding the rest in 64 KiB reads never grows it again
        let cap = decoder.buffer_mut().capacity();
        let mut left = MAX_FRAME_LEN - 2;
        while left > 0 {
            decoder.reserve_for_read(64 * 1024);
            let n = left.min(64 * 1024);
            decoder.buffer_mut().extend_from_slice(&vec![0xc0; n]);
            left -= n;
            assert_eq!(decoder.buffer_mut().capacity(), cap);
        }
    }

    #[test]
    fn rejects_header_past_frame() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&5u32.to_le_bytes());
        decoder.extend(&4u16.to_le_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::HeaderOverrun {
                header_len: 4,
                frame_len: 5
            })
        );
    }

    #[test]
    fn encoder_refuses_oversized_payload() {
        let mut out = vec![9];
        let payload = vec![0; MAX_FRAME_LEN];
        let err = encode_frame(&Header::request(1, "dc.send"), &payload, &mut out).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(_)));
        assert_eq!(out, [9]);
    }
}
