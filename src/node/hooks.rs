//! The functions index.js hands over once per JavaScript environment (`init`), and what
//! the runtime it runs on allows.

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use std::cell::RefCell;
use std::sync::atomic::Ordering;

type WrapFn = FunctionRef<Unknown<'static>, Unknown<'static>>;

pub(super) struct Hooks {
    pub(super) dispatch: FunctionRef<super::tick::Tick, Unknown<'static>>,
    pub(super) wrap_channel: WrapFn,
    pub(super) message: WrapFn,
    pub(super) shared_view: Option<WrapFn>,
}

thread_local! {
    /// Set once per JavaScript environment by index.js.
    pub(super) static HOOKS: RefCell<Option<Hooks>> = const { RefCell::new(None) };
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
    dispatch: Function<super::tick::Tick, Unknown<'static>>,
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

/// Runs `f` with index.js's dispatcher (to build a ThreadsafeFunction from it).
pub(super) fn with_dispatch<T>(
    env: &Env,
    f: impl FnOnce(Function<'_, super::tick::Tick, Unknown<'static>>) -> Result<T>,
) -> Result<T> {
    HOOKS.with(|hooks| {
        let hooks = hooks.borrow();
        let hooks = hooks
            .as_ref()
            .ok_or_else(|| napi::Error::from_reason("pion-node-rs: init() was not called"))?;
        f(hooks.dispatch.borrow_back(env)?)
    })
}

/// Whether the runtime's event loop is a real libuv loop (see [`init`]). Bun and Deno export
/// libuv's names but not its behaviour: Bun aborts in `uv_poll_init`. Unknown runtimes get
/// the reader thread. (Windows has only the tokio reader: unread there.)
#[cfg_attr(not(unix_io), allow(dead_code))]
static REAL_LIBUV: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Which stdout reader a sidecar gets: `PION_NODE_RS_READER=thread` or `=loop` choose;
/// otherwise the loop reader where the runtime's loop is real libuv, else the thread.
#[cfg(unix_io)]
pub(super) fn wants_loop_reader() -> bool {
    match std::env::var_os("PION_NODE_RS_READER") {
        Some(v) if v == "thread" => false,
        Some(v) if v == "loop" => true,
        _ => REAL_LIBUV.load(Ordering::Relaxed),
    }
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
