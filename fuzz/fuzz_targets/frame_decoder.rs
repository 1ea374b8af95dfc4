//! Feeds arbitrary bytes to a `FrameDecoder` in chunks, draining frames after every chunk.
//!
//! Input layout: byte 0 gives how many chunk-size bytes follow (0..=15); each of those is
//! one chunk size (0 = an empty read), used in turn, cyclically; everything after them is
//! the stream. With no sizes (or only zeros) the stream is fed whole. Byte 0's high bit picks whether the
//! bytes go in through `extend` or, as the sidecar's read loop does, through `buffer_mut`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pion_node_rs::protocol::{FrameDecoder, MAX_FRAME_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let n_sizes = usize::from(control & 0x0f).min(rest.len());
    let (sizes, stream) = rest.split_at(n_sizes);
    // Sizes that are all zero would never make progress: feed the stream whole instead.
    let sizes = if sizes.iter().all(|&s| s == 0) { &[][..] } else { sizes };
    let via_buffer_mut = control & 0x80 != 0;

    let mut decoder = FrameDecoder::new();
    let mut fed = 0usize;
    let mut taken = 0usize;
    let mut offset = 0usize;
    let mut turn = 0usize;
    loop {
        let size = if sizes.is_empty() {
            stream.len() - offset
        } else {
            usize::from(sizes[turn % sizes.len()])
        };
        turn += 1;
        let chunk = &stream[offset..(offset + size).min(stream.len())];
        offset += chunk.len();
        if via_buffer_mut {
            decoder.buffer_mut().extend_from_slice(chunk);
        } else {
            decoder.extend(chunk);
        }
        fed += chunk.len();
        assert!(decoder.buffered() <= fed - taken, "buffered more than was fed");

        loop {
            let before = decoder.buffered();
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    let after = decoder.buffered();
                    assert!(after < before, "a frame was returned without consuming bytes");
                    let used = before - after;
                    // length field + header length field + header + payload
                    assert!(used >= 6 + frame.payload.len());
                    assert!(used <= 4 + MAX_FRAME_LEN);
                    taken += used;
                }
                Ok(None) => {
                    assert_eq!(decoder.buffered(), before, "Ok(None) must consume nothing");
                    assert!(decoder.wanted() >= 1);
                    break;
                }
                // The stream cannot be resynchronised after an error.
                Err(_) => return,
            }
            assert!(decoder.buffered() <= fed, "buffered more than was fed");
            assert_eq!(decoder.buffered() + taken, fed, "bytes lost or invented");
        }
        assert_eq!(decoder.buffered() + taken, fed, "bytes lost or invented");
        if offset == stream.len() {
            break;
        }
    }
});
