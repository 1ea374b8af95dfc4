//! The receive pool: small binary messages are copied into a shared ArrayBuffer and handed
//! out as slices of it (as `Buffer.allocUnsafe` pools small Buffers).

use napi::bindgen_prelude::*;
use napi::sys;
use std::cell::RefCell;
use std::ptr;

thread_local! {
    /// The ArrayBuffer small binary messages are copied into (see [`Pool`]).
    static POOL: RefCell<Option<Pool>> = const { RefCell::new(None) };
}

/// Size of one receive pool, and the largest message copied into one. Each binary message
/// of at most `MAX_POOLED` bytes becomes a Buffer viewing a slice of a shared ArrayBuffer
/// instead of a Buffer of its own: one allocation per pool rather than one per message, as
/// `Buffer.allocUnsafe` does with its pool (a kept message keeps its pool alive, at most
/// 64 KiB, as a slice of a socket read keeps that read). Larger messages get their own
/// Buffer. A pool of 16 KiB made a new ArrayBuffer every 16 messages of 1 KiB, about 3 % of
/// the JavaScript thread's time at 25,000 messages a second (perf, `benches/bench.mjs` (a));
/// 64 KiB halves that.
pub(super) const POOL_SIZE: usize = 64 * 1024;
pub(super) const MAX_POOLED: usize = 4 * 1024;

/// The current receive pool of this JavaScript thread; what lies before `used` belongs to
/// Buffers already handed out and is never written again.
struct Pool {
    buffer: sys::napi_ref,
    data: *mut u8,
    used: usize,
}

/// Copies `bytes` into the receive pool; returns the pool's ArrayBuffer and the offset.
/// `handle` caches the ArrayBuffer's handle for one batch (looked up once per batch). A pool
/// whose ArrayBuffer JavaScript detached (transferred it away) is never written again: it is
/// checked before every copy, since listeners run between messages.
pub(super) unsafe fn pooled(
    env: sys::napi_env,
    handle: &mut Option<sys::napi_value>,
    bytes: &[u8],
) -> Result<(sys::napi_value, usize)> {
    debug_assert!(bytes.len() <= MAX_POOLED && MAX_POOLED <= POOL_SIZE);
    // No JavaScript runs in the napi calls below, so nothing else touches POOL meanwhile.
    POOL.with(|p| {
        let mut current = p.borrow_mut();
        if handle.is_none() {
            if let Some(pool) = current.as_ref() {
                let mut buffer = ptr::null_mut();
                let status = sys::napi_get_reference_value(env, pool.buffer, &mut buffer);
                if status == sys::Status::napi_ok && !buffer.is_null() {
                    *handle = Some(buffer);
                }
            }
        }
        let usable = match (current.as_ref(), *handle) {
            (Some(pool), Some(buffer)) if pool.used + bytes.len() <= POOL_SIZE => {
                let mut detached = true;
                let status = sys::napi_is_detached_arraybuffer(env, buffer, &mut detached);
                status == sys::Status::napi_ok && !detached
            }
            _ => false,
        };
        if !usable {
            let mut data = ptr::null_mut();
            let mut buffer = ptr::null_mut();
            check_status!(sys::napi_create_arraybuffer(
                env,
                POOL_SIZE,
                &mut data,
                &mut buffer
            ))?;
            let mut reference = ptr::null_mut();
            check_status!(sys::napi_create_reference(env, buffer, 1, &mut reference))?;
            let fresh = Pool {
                buffer: reference,
                data: data.cast(),
                used: 0,
            };
            if let Some(old) = current.replace(fresh) {
                sys::napi_delete_reference(env, old.buffer);
            }
            *handle = Some(buffer);
        }
        let pool = current.as_mut().expect("a pool was just made");
        let buffer = handle.expect("its handle too");
        let offset = pool.used;
        // SAFETY: the ArrayBuffer is alive (held by this batch's handle scope and the
        // reference), not detached (checked above), and POOL_SIZE bytes long;
        // [offset, offset + len) is past every slice handed out so far.
        ptr::copy_nonoverlapping(bytes.as_ptr(), pool.data.add(offset), bytes.len());
        pool.used += bytes.len();
        Ok((buffer, offset))
    })
}

/// Forgets the pool of an earlier environment on this thread: it is not this one's to use.
pub(super) fn reset() {
    POOL.with(|p| p.borrow_mut().take());
}
