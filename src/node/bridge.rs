//! The event bridge: everything the sidecar's tasks have for JavaScript — events, log lines,
//! settled promises — reaches it through one ThreadsafeFunction per running sidecar, in
//! batches, in the order it happened.
//!
//! Notices are queued here; only the first notice after a delivered batch schedules a call,
//! so a flood of frames costs one JavaScript wake-up per batch. The function exists while
//! the sidecar runs or a promise is pending, and is released after that, so nothing of the
//! addon keeps Node alive once every PionIpc is stopped.

use super::channel::ChannelHandle;
use super::errors;
use crate::events::{ChannelEvent, Emit, Output, PeerEvent};
use crate::log::escape_controls;
use crate::protocol::messages::{CandidateInfo, SctpStats};
use crate::protocol::{Frame, FrameType};
use crate::sidecar::{backlog, Backlog, Ipc, Notice, NoticeSink};
use napi::bindgen_prelude::*;
use napi::sys;
use napi::threadsafe_function::{
    ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode,
};
use napi_derive::napi;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Log lines waiting for JavaScript beyond this many are counted and dropped, so a logger
/// that cannot keep up never makes us stop reading the sidecar's stderr.
const MAX_PENDING_LOG_LINES: usize = 10_000;

/// The id under which the PionIpc object itself is a target.
pub const IPC_TARGET: u64 = 0;

type Dispatch = ThreadsafeFunction<(), Unknown<'static>, Batch, Status, false, false, 0>;
type DispatchFn = FunctionRef<Batch, Unknown<'static>>;
type WrapFn = FunctionRef<Unknown<'static>, Unknown<'static>>;

struct Hooks {
    dispatch: DispatchFn,
    wrap_channel: WrapFn,
    message: WrapFn,
    shared_view: Option<WrapFn>,
}

thread_local! {
    /// Set once per JavaScript environment by index.js.
    static HOOKS: RefCell<Option<Hooks>> = const { RefCell::new(None) };
    /// While a `Notice::Run` executes on the JavaScript thread, what it emits is collected
    /// here and delivered right after it, in the same batch.
    static CAPTURE: RefCell<Option<Vec<Notice>>> = const { RefCell::new(None) };
    /// The ArrayBuffer small binary messages are copied into (see [`Pool`]).
    static POOL: RefCell<Option<Pool>> = const { RefCell::new(None) };
    /// The bridge whose sidecar's stdout is being read on this (JavaScript) thread right
    /// now: its flush is left to the reader, which delivers right after reading.
    static READING: Cell<*const Bridge> = const { Cell::new(ptr::null()) };
}

/// Size of one receive pool, and the largest message copied into one. Each binary message
/// of at most `MAX_POOLED` bytes becomes a Buffer viewing a slice of a shared ArrayBuffer
/// instead of a Buffer of its own: one allocation per pool rather than one per message, as
/// `Buffer.allocUnsafe` does with its pool (a kept message keeps its pool alive, at most
/// 16 KiB). Larger messages get their own Buffer.
const POOL_SIZE: usize = 16 * 1024;
const MAX_POOLED: usize = 4 * 1024;

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
unsafe fn pooled(
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

/// Runs `f`, returning the notices it produced on this thread.
fn capture(f: Box<dyn FnOnce() + Send>) -> Vec<Notice> {
    let outer = CAPTURE.with(|c| c.borrow_mut().replace(Vec::new()));
    f();
    CAPTURE
        .with(|c| std::mem::replace(&mut *c.borrow_mut(), outer))
        .unwrap_or_default()
}

/// Called once by index.js: `dispatch(target, name, ...args)` emits one event (or logs a
/// line); `wrapChannel(native)` wraps a channel the remote opened; `message(target, data)`
/// emits `message` with `{ data }` (the hot path, without rest arguments or an event object
/// built property by property through napi). `real_libuv` says whether the runtime is one
/// whose event loop is Node's own libuv (Node, Electron), which the loop reader needs.
/// `sharedView(value)` returns a Uint8Array over `value` when it is a SharedArrayBuffer, else
/// undefined: Node-API has no way to read one before Node 24 (see [`shared_view`]).
#[napi]
#[allow(dead_code)] // called from JavaScript only
pub fn init(
    dispatch: Function<Batch, Unknown<'static>>,
    wrap_channel: Function<Unknown<'static>, Unknown<'static>>,
    message: Function<Unknown<'static>, Unknown<'static>>,
    real_libuv: Option<bool>,
    shared_view: Option<Function<Unknown<'static>, Unknown<'static>>>,
) -> Result<()> {
    REAL_LIBUV.store(real_libuv.unwrap_or(false), Ordering::Relaxed);
    let hooks = Hooks {
        dispatch: dispatch.create_ref()?,
        wrap_channel: wrap_channel.create_ref()?,
        message: message.create_ref()?,
        shared_view: shared_view.map(|f| f.create_ref()).transpose()?,
    };
    HOOKS.with(|h| *h.borrow_mut() = Some(hooks));
    // A pool of an earlier environment on this thread is not this one's to use.
    POOL.with(|p| p.borrow_mut().take());
    Ok(())
}

/// A napi handle that is only ever touched on the JavaScript thread that made it.
struct JsOnly<T>(T);
// SAFETY: the pointers are created, used and deleted on their JavaScript thread only; the
// other threads merely move the table around.
unsafe impl<T> Send for JsOnly<T> {}

#[derive(Default)]
struct Queue {
    notices: Vec<Notice>,
    log_lines: usize,
    dropped_logs: u64,
    wake_pending: bool,
}

#[derive(Default)]
struct JsSide {
    targets: HashMap<u64, JsOnly<sys::napi_ref>>,
    /// Targets held weakly (see [`Emit::Weaken`]).
    weak: std::collections::HashSet<u64>,
    deferreds: HashMap<u64, JsOnly<sys::napi_deferred>>,
    next_token: u64,
}

/// Whether the runtime's event loop is a real libuv loop (see [`init`]). Bun and Deno export
/// libuv's names but not its behaviour: Bun aborts in `uv_poll_init`. Unknown runtimes get
/// the reader thread. (Windows has only the tokio reader: unread there.)
#[cfg_attr(not(unix_io), allow(dead_code))]
static REAL_LIBUV: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Which stdout reader a sidecar gets: `PION_NODE_RS_READER=thread` or `=loop` choose;
/// otherwise the loop reader where the runtime's loop is real libuv, else the thread.
#[cfg(unix_io)]
fn wants_loop_reader() -> bool {
    match std::env::var_os("PION_NODE_RS_READER") {
        Some(v) if v == "thread" => false,
        Some(v) if v == "loop" => true,
        _ => REAL_LIBUV.load(Ordering::Relaxed),
    }
}

#[derive(Default)]
pub struct Bridge {
    queue: Mutex<Queue>,
    dispatch: Mutex<Option<Arc<Dispatch>>>,
    ipc: OnceLock<Ipc>,
    outstanding: AtomicUsize,
    js: Mutex<JsSide>,
    myself: OnceLock<Weak<Bridge>>,
    backlog: OnceLock<Arc<Backlog>>,
    /// Sidecar stdouts waiting to be watched on the JavaScript thread's loop.
    #[cfg(unix_io)]
    readers: Mutex<Vec<crate::sidecar::StdoutReader>>,
}

impl NoticeSink for Bridge {
    fn notice(&self, notice: Notice) {
        let notice = match CAPTURE.with(|c| match c.borrow_mut().as_mut() {
            Some(captured) => {
                captured.push(notice);
                None
            }
            None => Some(notice),
        }) {
            Some(notice) => notice,
            None => return,
        };
        let mut queue = self.queue.lock().unwrap();
        if matches!(notice, Notice::Log(_)) {
            if queue.log_lines >= MAX_PENDING_LOG_LINES {
                queue.dropped_logs += 1;
                return;
            }
            queue.log_lines += 1;
        }
        queue.notices.push(notice);
    }

    fn backlog(&self) -> Option<Arc<Backlog>> {
        self.backlog.get().cloned()
    }

    fn flush(&self) {
        if READING.with(Cell::get) == ptr::from_ref(self) {
            return;
        }
        {
            let mut queue = self.queue.lock().unwrap();
            if queue.wake_pending || queue.notices.is_empty() {
                return;
            }
            queue.wake_pending = true;
        }
        let dispatch = self.dispatch.lock().unwrap().clone();
        match dispatch {
            Some(dispatch) => {
                dispatch.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }
            None => {
                // Nothing runs and nothing waits: there is nobody to deliver to.
                *self.queue.lock().unwrap() = Queue::default();
            }
        }
    }

    /// The stdout is read on the JavaScript thread (see `poll.rs`) where [`wants_loop_reader`]
    /// says so and something can deliver; otherwise by the reader thread.
    #[cfg(unix_io)]
    fn adopt_reader(
        &self,
        reader: crate::sidecar::StdoutReader,
    ) -> std::result::Result<(), crate::sidecar::StdoutReader> {
        if !wants_loop_reader()
            || self.dispatch.lock().unwrap().is_none()
            || reader.set_nonblocking(true).is_err()
        {
            return Err(reader);
        }
        self.readers.lock().unwrap().push(reader);
        // Wakes JavaScript, which starts watching the pipe.
        self.notice(Notice::Run(Box::new(|| {})));
        self.flush();
        Ok(())
    }
}

/// Runs `read` (the stdout reader of `bridge`'s sidecar, on the JavaScript thread) with the
/// bridge's flushes left out: [`deliver`] follows.
#[cfg(unix_io)]
pub(super) fn reading<T>(bridge: &Arc<Bridge>, read: impl FnOnce() -> T) -> T {
    let outer = READING.with(|r| r.replace(Arc::as_ptr(bridge)));
    let result = read();
    READING.with(|r| r.set(outer));
    result
}

/// Delivers everything queued on `bridge` now.
///
/// # Safety
/// On the JavaScript thread of `env`, inside a handle scope.
#[cfg(unix_io)]
pub(super) unsafe fn deliver(env: sys::napi_env, bridge: &Arc<Bridge>) {
    let batch = take_batch(&Arc::downgrade(bridge));
    if batch.notices.is_empty() && batch.dropped_logs == 0 {
        return;
    }
    let _ = Batch::to_napi_value(env, batch);
}

/// Starts watching the stdouts handed to `bridge` (see `poll.rs`). One that cannot be
/// watched is left to its watchdog thread, which then reads it every few milliseconds.
#[cfg(unix_io)]
unsafe fn install_readers(env: sys::napi_env, bridge: &Arc<Bridge>) {
    let readers = std::mem::take(&mut *bridge.readers.lock().unwrap());
    for reader in readers {
        if super::poll::install(env, bridge, reader).is_err() {
            bridge.notice(Notice::Log(
                "cannot watch the sidecar's stdout on the event loop; a thread reads it".into(),
            ));
        }
    }
}

/// Settles one promise made by [`Bridge::promise`], through the bridge, in order with the
/// events. Dropped unsettled, it rejects with `ipc stopped`, so no promise hangs.
pub struct Settler {
    bridge: Arc<Bridge>,
    token: u64,
    done: bool,
}

impl Settler {
    pub fn settle(mut self, result: std::result::Result<Output, crate::error::Error>) {
        self.done = true;
        self.bridge.notice(Notice::Settle {
            token: self.token,
            result,
        });
        self.bridge.flush();
    }
}

impl Drop for Settler {
    fn drop(&mut self) {
        if !self.done {
            self.bridge.notice(Notice::Settle {
                token: self.token,
                result: Err(crate::error::Error::Stopped),
            });
            self.bridge.flush();
        }
    }
}

/// The undelivered bytes at which the stdout reader pauses: `PION_NODE_RS_BACKLOG_BYTES`
/// (for experiments and tests) or [`backlog::DEFAULT_LIMIT`].
fn backlog_limit() -> usize {
    std::env::var("PION_NODE_RS_BACKLOG_BYTES")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(backlog::DEFAULT_LIMIT)
}

impl Bridge {
    pub fn new() -> Arc<Self> {
        let bridge = Arc::new(Bridge::default());
        let _ = bridge.myself.set(Arc::downgrade(&bridge));
        let _ = bridge.backlog.set(Backlog::new(backlog_limit()));
        bridge
    }

    pub fn attach(&self, ipc: Ipc) {
        let _ = self.ipc.set(ipc);
    }

    /// Registers the JavaScript object that events for `id` are emitted on. Connections and
    /// channels are held strongly until released; the PionIpc only while its bridge is open.
    pub fn set_target(&self, env: &Env, id: u64, target: &Object) -> Result<()> {
        let strong = id != IPC_TARGET || self.dispatch.lock().unwrap().is_some();
        let mut reference = ptr::null_mut();
        // SAFETY: JavaScript thread, live object.
        check_status!(unsafe {
            sys::napi_create_reference(env.raw(), target.raw(), u32::from(strong), &mut reference)
        })?;
        let old = self
            .js
            .lock()
            .unwrap()
            .targets
            .insert(id, JsOnly(reference));
        self.js.lock().unwrap().weak.remove(&id);
        if let Some(old) = old {
            // SAFETY: JavaScript thread, our own reference.
            unsafe { sys::napi_delete_reference(env.raw(), old.0) };
        }
        Ok(())
    }

    fn ipc_target_refcount(&self, env: sys::napi_env, strong: bool) {
        let js = self.js.lock().unwrap();
        if let Some(r) = js.targets.get(&IPC_TARGET) {
            let mut count = 0;
            // SAFETY: JavaScript thread, our own reference.
            unsafe {
                if strong {
                    sys::napi_reference_ref(env, r.0, &mut count);
                } else {
                    sys::napi_reference_unref(env, r.0, &mut count);
                }
            }
        }
    }

    /// Makes sure the delivery function exists. Only on the JavaScript thread.
    pub fn open(&self, env: &Env) -> Result<()> {
        let mut slot = self.dispatch.lock().unwrap();
        if slot.is_some() {
            return Ok(());
        }
        let bridge = self.myself.get().cloned().unwrap_or_default();
        let tsfn = HOOKS.with(|hooks| -> Result<Dispatch> {
            let hooks = hooks.borrow();
            let hooks = hooks
                .as_ref()
                .ok_or_else(|| napi::Error::from_reason("pion-node-rs: init() was not called"))?;
            let dispatch = hooks.dispatch.borrow_back(env)?;
            dispatch
                .build_threadsafe_function::<()>()
                .callee_handled::<false>()
                .weak::<false>()
                .build_callback(move |_ctx: ThreadsafeCallContext<()>| Ok(take_batch(&bridge)))
        })?;
        *slot = Some(Arc::new(tsfn));
        drop(slot);
        self.ipc_target_refcount(env.raw(), true);
        Ok(())
    }

    /// A new promise settled through this bridge.
    pub fn promise<'env>(self: &Arc<Self>, env: &'env Env) -> Result<(Settler, Unknown<'env>)> {
        self.open(env)?;
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        // SAFETY: JavaScript thread.
        check_status!(unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) })?;
        let token = {
            let mut js = self.js.lock().unwrap();
            js.next_token += 1;
            let token = js.next_token;
            js.deferreds.insert(token, JsOnly(deferred));
            token
        };
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        let settler = Settler {
            bridge: self.clone(),
            token,
            done: false,
        };
        // SAFETY: a live value of this env.
        Ok((settler, unsafe {
            Unknown::from_raw_unchecked(env.raw(), promise)
        }))
    }

    /// Releases the delivery function when nothing runs, nothing waits and nothing is queued.
    fn maybe_release(&self, env: sys::napi_env) {
        if self.outstanding.load(Ordering::SeqCst) != 0 {
            return;
        }
        if !self.ipc.get().is_none_or(Ipc::idle) {
            return;
        }
        if !self.queue.lock().unwrap().notices.is_empty() {
            return;
        }
        if self.dispatch.lock().unwrap().take().is_some() {
            self.ipc_target_refcount(env, false);
        }
    }

    fn target(&self, env: sys::napi_env, id: u64) -> Option<sys::napi_value> {
        let js = self.js.lock().unwrap();
        let reference = js.targets.get(&id)?;
        let mut value = ptr::null_mut();
        // SAFETY: JavaScript thread, our own reference.
        unsafe { sys::napi_get_reference_value(env, reference.0, &mut value) };
        (!value.is_null()).then_some(value)
    }

    /// Holds the target of `id` weakly from now on (once).
    pub fn weaken_target(&self, env: sys::napi_env, id: u64) {
        let mut js = self.js.lock().unwrap();
        let Some(reference) = js.targets.get(&id).map(|r| r.0) else {
            return;
        };
        if js.weak.insert(id) {
            let mut count = 0;
            // SAFETY: JavaScript thread, our own reference, held strongly until now.
            unsafe { sys::napi_reference_unref(env, reference, &mut count) };
        }
    }

    pub fn release_target(&self, env: sys::napi_env, id: u64) {
        let mut js = self.js.lock().unwrap();
        js.weak.remove(&id);
        if let Some(reference) = js.targets.remove(&id) {
            // SAFETY: JavaScript thread, our own reference.
            unsafe { sys::napi_delete_reference(env, reference.0) };
        }
    }

    fn take_deferred(&self, token: u64) -> Option<sys::napi_deferred> {
        let deferred = self.js.lock().unwrap().deferreds.remove(&token)?;
        self.outstanding.fetch_sub(1, Ordering::SeqCst);
        Some(deferred.0)
    }
}

/// Runs on the JavaScript thread for each call: takes everything queued.
fn take_batch(bridge: &Weak<Bridge>) -> Batch {
    let Some(bridge) = bridge.upgrade() else {
        return Batch::default();
    };
    let queue = std::mem::take(&mut *bridge.queue.lock().unwrap());
    Batch {
        bridge: Some(bridge),
        notices: queue.notices,
        dropped_logs: queue.dropped_logs,
    }
}

/// What one call delivers: converting it to a JavaScript value emits every event in it.
#[derive(Default)]
pub struct Batch {
    bridge: Option<Arc<Bridge>>,
    notices: Vec<Notice>,
    dropped_logs: u64,
}

const LOG_PREFIX: &str = "[pion-ipc] ";

unsafe fn js_string(env: sys::napi_env, s: &str) -> Result<sys::napi_value> {
    ToNapiValue::to_napi_value(env, s)
}

unsafe fn null(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    check_status!(sys::napi_get_null(env, &mut value))?;
    Ok(value)
}

unsafe fn undefined(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    check_status!(sys::napi_get_undefined(env, &mut value))?;
    Ok(value)
}

unsafe fn object(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    check_status!(sys::napi_create_object(env, &mut value))?;
    Ok(value)
}

unsafe fn set(
    env: sys::napi_env,
    object: sys::napi_value,
    key: &str,
    value: sys::napi_value,
) -> Result<()> {
    // Keys are short literals: NUL-terminated on the stack, no allocation per property.
    let mut buf = [0u8; 32];
    assert!(
        key.len() < buf.len() && !key.contains('\0'),
        "short literal key"
    );
    buf[..key.len()].copy_from_slice(key.as_bytes());
    check_status!(sys::napi_set_named_property(
        env,
        object,
        buf.as_ptr().cast(),
        value
    ))
}

unsafe fn set_str(
    env: sys::napi_env,
    object: sys::napi_value,
    key: &str,
    value: &str,
) -> Result<()> {
    set(env, object, key, js_string(env, value)?)
}

unsafe fn number(env: sys::napi_env, n: f64) -> Result<sys::napi_value> {
    ToNapiValue::to_napi_value(env, n)
}

/// A Buffer with a copy of `bytes`.
pub unsafe fn buffer(env: sys::napi_env, bytes: &[u8]) -> Result<sys::napi_value> {
    let mut data = ptr::null_mut();
    let mut value = ptr::null_mut();
    check_status!(sys::napi_create_buffer_copy(
        env,
        bytes.len(),
        bytes.as_ptr().cast(),
        &mut data,
        &mut value
    ))?;
    Ok(value)
}

/// `{ header, payload }` of a response.
pub unsafe fn response(env: sys::napi_env, frame: &Frame) -> Result<sys::napi_value> {
    let h = &frame.header;
    let header = object(env)?;
    let kind = match h.kind {
        FrameType::Request => "req",
        FrameType::Response => "res",
        FrameType::Event => "evt",
    };
    set_str(env, header, "type", kind)?;
    set(env, header, "id", number(env, f64::from(h.id))?)?;
    for (key, value) in [
        ("method", &h.method),
        ("pcId", &h.pc_id),
        ("dcLabel", &h.dc_label),
        ("error", &h.error),
        ("event", &h.event),
    ] {
        if !value.is_empty() {
            set_str(env, header, key, value)?;
        }
    }
    if let Some(ok) = h.ok {
        set(env, header, "ok", ToNapiValue::to_napi_value(env, ok)?)?;
    }
    if h.is_binary {
        set(
            env,
            header,
            "isBinary",
            ToNapiValue::to_napi_value(env, true)?,
        )?;
    }
    let result = object(env)?;
    set(env, result, "header", header)?;
    set(env, result, "payload", buffer(env, &frame.payload)?)?;
    Ok(result)
}

unsafe fn candidate_info(env: sys::napi_env, info: &CandidateInfo) -> Result<sys::napi_value> {
    let value = object(env)?;
    set_str(env, value, "type", &info.kind)?;
    set_str(env, value, "address", &info.address)?;
    set(env, value, "port", number(env, f64::from(info.port))?)?;
    set_str(env, value, "protocol", &info.protocol)?;
    if let Some(relay) = &info.relay_protocol {
        set_str(env, value, "relayProtocol", relay)?;
    }
    Ok(value)
}

/// The selected pair as the getter returns it.
pub unsafe fn candidate_pair(
    env: sys::napi_env,
    pair: &crate::protocol::messages::CandidatePair,
) -> Result<sys::napi_value> {
    let value = object(env)?;
    set(env, value, "local", candidate_info(env, &pair.local)?)?;
    set(env, value, "remote", candidate_info(env, &pair.remote)?)?;
    Ok(value)
}

unsafe fn sctp_stats(env: sys::napi_env, stats: &SctpStats) -> Result<sys::napi_value> {
    let value = object(env)?;
    set(
        env,
        value,
        "bytesSent",
        number(env, stats.bytes_sent as f64)?,
    )?;
    set(
        env,
        value,
        "bytesReceived",
        number(env, stats.bytes_received as f64)?,
    )?;
    set(env, value, "srttMs", number(env, stats.srtt_ms)?)?;
    set(
        env,
        value,
        "congestionWindow",
        number(env, stats.congestion_window as f64)?,
    )?;
    set(
        env,
        value,
        "receiverWindow",
        number(env, stats.receiver_window as f64)?,
    )?;
    set(env, value, "mtu", number(env, stats.mtu as f64)?)?;
    Ok(value)
}

unsafe fn output(env: sys::napi_env, output: Output) -> Result<sys::napi_value> {
    match output {
        Output::Unit => undefined(env),
        Output::Frame(frame) => response(env, &frame),
        Output::Description { kind, sdp } => {
            let value = object(env)?;
            set_str(env, value, "type", kind)?;
            set_str(env, value, "sdp", &sdp)?;
            Ok(value)
        }
        Output::SctpStats(None) => null(env),
        Output::SctpStats(Some(stats)) => sctp_stats(env, &stats),
    }
}

/// Hands each event to the JavaScript dispatcher the moment it is converted, so that the
/// state changes of later events in the batch are not yet visible to its listeners.
struct Entries {
    env: sys::napi_env,
    dispatch: sys::napi_value,
    message: sys::napi_value,
    /// The receive pool's ArrayBuffer, once this batch used it.
    pool: Option<sys::napi_value>,
}

impl Entries {
    unsafe fn push(
        &mut self,
        target: sys::napi_value,
        name: &str,
        args: &[sys::napi_value],
    ) -> Result<()> {
        let mut argv = [ptr::null_mut(); 2 + MAX_EVENT_ARGS];
        debug_assert!(args.len() <= MAX_EVENT_ARGS);
        let n = 2 + args.len().min(MAX_EVENT_ARGS);
        argv[0] = target;
        argv[1] = js_string(self.env, name)?;
        argv[2..n].copy_from_slice(&args[..n - 2]);
        self.call(self.dispatch, &argv[..n]);
        Ok(())
    }

    /// Emits `message` with `{ data }` on `target`.
    unsafe fn message(&mut self, target: sys::napi_value, data: sys::napi_value) {
        self.call(self.message, &[target, data]);
    }

    /// Emits `message` with a binary `data`: small messages are copied into the receive
    /// pool and index.js makes the Buffer (a view of the pool) from (pool, offset, length).
    unsafe fn binary_message(&mut self, target: sys::napi_value, bytes: &[u8]) -> Result<()> {
        if bytes.len() > MAX_POOLED {
            let data = buffer(self.env, bytes)?;
            self.message(target, data);
            return Ok(());
        }
        let (pool, offset) = pooled(self.env, &mut self.pool, bytes)?;
        let offset = number(self.env, offset as f64)?;
        let length = number(self.env, bytes.len() as f64)?;
        self.call(self.message, &[target, pool, offset, length]);
        Ok(())
    }

    unsafe fn call(&mut self, function: sys::napi_value, argv: &[sys::napi_value]) {
        let mut this = ptr::null_mut();
        sys::napi_get_undefined(self.env, &mut this);
        let mut result = ptr::null_mut();
        // The JavaScript side catches what listeners throw; a failure here (an exception it
        // let through, a dying environment) must not stop the rest of the batch.
        let status = sys::napi_call_function(
            self.env,
            this,
            function,
            argv.len(),
            argv.as_ptr(),
            &mut result,
        );
        if status == sys::Status::napi_pending_exception {
            let mut exception = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(self.env, &mut exception);
        }
    }
}

/// The most arguments an event hands to the dispatcher after target and name.
const MAX_EVENT_ARGS: usize = 4;

impl ToNapiValue for Batch {
    unsafe fn to_napi_value(env: sys::napi_env, batch: Self) -> Result<sys::napi_value> {
        let Some(bridge) = batch.bridge else {
            return undefined(env);
        };
        let env_ref = Env::from_raw(env);
        let functions = HOOKS.with(|hooks| {
            let hooks = hooks.borrow();
            let hooks = hooks.as_ref()?;
            let dispatch = hooks.dispatch.borrow_back(&env_ref).ok()?.raw();
            let message = hooks.message.borrow_back(&env_ref).ok()?.raw();
            Some((dispatch, message))
        });
        let Some((dispatch, message)) = functions else {
            return undefined(env);
        };
        let mut out = Entries {
            env,
            dispatch,
            message,
            pool: None,
        };
        #[cfg(unix_io)]
        install_readers(env, &bridge);
        let ipc = bridge.target(env, IPC_TARGET);
        if let (Some(ipc), true) = (ipc, batch.dropped_logs > 0) {
            let line = format!(
                "{LOG_PREFIX}{} log lines dropped: the logger could not keep up",
                batch.dropped_logs
            );
            out.push(ipc, "log", &[js_string(env, &line)?])?;
        }
        for notice in batch.notices {
            convert_notice(env, &bridge, ipc, &mut out, notice)?;
        }
        bridge.maybe_release(env);
        // The call napi makes with this value finds nothing left to do.
        undefined(env)
    }
}

unsafe fn convert_notice(
    env: sys::napi_env,
    bridge: &Arc<Bridge>,
    ipc: Option<sys::napi_value>,
    out: &mut Entries,
    notice: Notice,
) -> Result<()> {
    match notice {
        Notice::Run(work) => {
            for produced in capture(work) {
                convert_notice(env, bridge, ipc, out, produced)?;
            }
        }
        Notice::Settle { token, result } => {
            let Some(deferred) = bridge.take_deferred(token) else {
                return Ok(());
            };
            match result {
                Ok(value) => {
                    let value = output(env, value)?;
                    sys::napi_resolve_deferred(env, deferred, value);
                }
                Err(err) => {
                    sys::napi_reject_deferred(env, deferred, errors::create(env, &err));
                }
            }
        }
        Notice::Emit(Emit::Release(id)) => bridge.release_target(env, id),
        Notice::Emit(Emit::Weaken(id)) => bridge.weaken_target(env, id),
        Notice::Emit(Emit::Peer(id, event)) => {
            let Some(target) = bridge.target(env, id) else {
                return Ok(());
            };
            let name = event.name();
            match event {
                PeerEvent::IceCandidate(c) => {
                    let candidate = object(env)?;
                    set_str(env, candidate, "candidate", &c.candidate)?;
                    let mid = match &c.sdp_mid {
                        Some(mid) => js_string(env, mid)?,
                        None => null(env)?,
                    };
                    set(env, candidate, "sdpMid", mid)?;
                    let index = match c.sdp_m_line_index {
                        Some(i) => number(env, f64::from(i))?,
                        None => null(env)?,
                    };
                    set(env, candidate, "sdpMLineIndex", index)?;
                    let event = object(env)?;
                    set(env, event, "candidate", candidate)?;
                    out.push(target, name, &[event])?;
                }
                PeerEvent::DataChannel(channel) => {
                    let Some(wrapper) = wrap_channel(env, bridge, channel)? else {
                        return Ok(());
                    };
                    let event = object(env)?;
                    set(env, event, "channel", wrapper)?;
                    out.push(target, name, &[event])?;
                }
                _ => out.push(target, name, &[])?,
            }
        }
        Notice::Emit(Emit::Channel(id, event)) => {
            let Some(target) = bridge.target(env, id) else {
                return Ok(());
            };
            let name = event.name();
            match event {
                ChannelEvent::Message { binary: true, data } => {
                    out.binary_message(target, &data)?;
                }
                ChannelEvent::Message { data, .. } => {
                    let text = js_string(env, &String::from_utf8_lossy(&data))?;
                    out.message(target, text);
                }
                ChannelEvent::Error(text) => {
                    let err = errors::create(env, &crate::error::Error::Remote(text));
                    out.push(target, name, &[err])?;
                }
                _ => out.push(target, name, &[])?,
            }
        }
        other => {
            let Some(ipc) = ipc else { return Ok(()) };
            match other {
                Notice::Log(line) => out.push(
                    ipc,
                    "log",
                    &[js_string(
                        env,
                        &format!("{LOG_PREFIX}{}", escape_controls(&line)),
                    )?],
                )?,
                Notice::Error(err) => {
                    let line = format!("{LOG_PREFIX}error: {}", escape_controls(&err.to_string()));
                    out.push(ipc, "log", &[js_string(env, &line)?])?;
                    out.push(ipc, "error", &[errors::create(env, &err)])?;
                }
                Notice::Exited { code, signal, .. } => {
                    let code = match code {
                        Some(code) => number(env, f64::from(code))?,
                        None => null(env)?,
                    };
                    let signal = match signal {
                        Some(signal) => js_string(env, &signal)?,
                        None => null(env)?,
                    };
                    out.push(ipc, "exit", &[code, signal])?;
                }
                Notice::Restarted => out.push(ipc, "restart", &[])?,
                Notice::Event(frame) => {
                    let header = &frame.header;
                    let event = object(env)?;
                    set_str(env, event, "pcId", &header.pc_id)?;
                    set_str(env, event, "dcLabel", &header.dc_label)?;
                    set(
                        env,
                        event,
                        "isBinary",
                        ToNapiValue::to_napi_value(env, header.is_binary)?,
                    )?;
                    set(env, event, "payload", buffer(env, &frame.payload)?)?;
                    out.push(ipc, &header.event, &[event])?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Hands a channel the remote opened to index.js, which makes its native object and wrapper;
/// the wrapper registers itself as the channel's target.
unsafe fn wrap_channel(
    env: sys::napi_env,
    bridge: &Arc<Bridge>,
    channel: Arc<crate::channel::Channel>,
) -> Result<Option<sys::napi_value>> {
    let env_ref = Env::from_raw(env);
    let handle = External::new(ChannelHandle {
        channel,
        bridge: bridge.clone(),
    });
    let native = ToNapiValue::to_napi_value(env, handle)?;
    HOOKS.with(|hooks| {
        let hooks = hooks.borrow();
        let Some(hooks) = hooks.as_ref() else {
            return Ok(None);
        };
        let wrap = hooks.wrap_channel.borrow_back(&env_ref)?;
        let wrapper = wrap.call(Unknown::from_raw_unchecked(env, native))?;
        Ok(Some(wrapper.raw()))
    })
}

/// A Uint8Array over all of `value` when it is a SharedArrayBuffer, from index.js's
/// `sharedView` hook; `None` for anything else. `napi_get_arraybuffer_info` refuses shared
/// buffers and Node-API has no other accessor for them before Node 24, while a typed array
/// over one is read as any other.
///
/// # Safety
/// `value` is a live value of `env`, on the JavaScript thread.
pub(super) unsafe fn shared_view(
    env: sys::napi_env,
    value: sys::napi_value,
) -> Option<sys::napi_value> {
    let env_ref = Env::from_raw(env);
    HOOKS.with(|hooks| {
        let hooks = hooks.borrow();
        let hook = hooks.as_ref()?.shared_view.as_ref()?;
        let view = hook
            .borrow_back(&env_ref)
            .ok()?
            .call(Unknown::from_raw_unchecked(env, value))
            .ok()?;
        (view.get_type().ok()? == ValueType::Object).then(|| view.raw())
    })
}
