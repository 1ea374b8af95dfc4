//! The event bridge: everything the sidecar's tasks have for JavaScript — events, log lines,
//! settled promises — reaches it through one ThreadsafeFunction per running sidecar, in
//! batches, in the order it happened.
//!
//! Notices are queued here; only the first notice after a delivered batch schedules a call,
//! so a flood of frames costs one JavaScript wake-up per batch. The function exists while
//! the sidecar runs or a promise is pending, and is released after that, so nothing of the
//! addon keeps Node alive once every PionIpc is stopped.

use crate::events::Output;
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

pub(super) struct Hooks {
    pub(super) dispatch: DispatchFn,
    pub(super) wrap_channel: WrapFn,
    pub(super) message: WrapFn,
    pub(super) shared_view: Option<WrapFn>,
}

thread_local! {
    /// Set once per JavaScript environment by index.js.
    pub(super) static HOOKS: RefCell<Option<Hooks>> = const { RefCell::new(None) };
    /// While a `Notice::Run` executes on the JavaScript thread, what it emits is collected
    /// here and delivered right after it, in the same batch.
    static CAPTURE: RefCell<Option<Vec<Notice>>> = const { RefCell::new(None) };
    /// The bridge whose sidecar's stdout is being read on this (JavaScript) thread right
    /// now: its flush is left to the reader, which delivers right after reading.
    static READING: Cell<*const Bridge> = const { Cell::new(ptr::null()) };
}

/// Runs `f`, returning the notices it produced on this thread.
pub(super) fn capture(f: Box<dyn FnOnce() + Send>) -> Vec<Notice> {
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
    super::pool::reset();
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
pub(super) unsafe fn install_readers(env: sys::napi_env, bridge: &Arc<Bridge>) {
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
    pub(super) fn maybe_release(&self, env: sys::napi_env) {
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

    pub(super) fn target(&self, env: sys::napi_env, id: u64) -> Option<sys::napi_value> {
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

    pub(super) fn take_deferred(&self, token: u64) -> Option<sys::napi_deferred> {
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
    pub(super) bridge: Option<Arc<Bridge>>,
    pub(super) notices: Vec<Notice>,
    pub(super) dropped_logs: u64,
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
