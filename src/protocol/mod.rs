//! The sidecar's wire format: frames, headers and msgpack payloads. No I/O, no napi.

pub mod frame;
pub mod header;
pub mod messages;
pub mod text;
pub mod value;

pub use frame::{encode_frame, Frame, FrameDecoder, FrameError, MAX_FRAME_LEN};
pub use header::{EncodeHeader, FrameType, Header, HeaderError, RequestHeader};
pub use text::Text;
