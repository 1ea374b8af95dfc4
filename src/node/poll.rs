//! Reading the sidecar's stdout on the JavaScript thread's own libuv loop (Unix).
//!
//! A thread of our own reading stdout has to hand every batch over to the JavaScript thread:
//! two thread wake-ups where one would do, and the second one's latency (a busy two-core
//! machine makes a woken thread wait for a CPU) lies on every round trip an application
//! makes, such as refilling a channel after `bufferedamountlow`. Here the pipe is watched
//! by a `uv_poll_t` on the loop JavaScript runs on: when it is readable, what it holds is
//! read (up to [`READ_BUDGET`] bytes, then the loop gets its turn again) and the driver's
//! tick handles and delivers it at once, in one callback scope, so promise jobs run right
//! after it as after any other I/O callback.
//!
//! Backpressure comes for free: nothing is read while JavaScript is busy, so the pipe fills
//! and the sidecar stops taking data off SCTP. The handle is unreferenced (whether Node
//! stays alive is the driver's wake-up function's business) and is closed when
//! stdout ends or the environment goes away.

use crate::sidecar::LoopRead;
use napi::sys;
use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::Arc;

/// Called on the JavaScript thread after each read, to handle and deliver the frames it
/// queued (`LoopRead::take_frames`); false once its owner is gone (the poller stops then).
pub type OnRead = Box<dyn Fn(sys::napi_env) -> bool>;

/// libuv's `UV_POLL` handle type and `UV_READABLE` event.
const UV_POLL: c_int = 8;
const UV_READABLE: c_int = 1;
/// The most one callback reads before other callbacks of the loop get their turn.
const READ_BUDGET: usize = 256 * 1024;

// libuv, as exported by the Node binary that loads the addon.
extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_poll_init(event_loop: *mut c_void, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(
        handle: *mut c_void,
        events: c_int,
        callback: unsafe extern "C" fn(*mut c_void, c_int, c_int),
    ) -> c_int;
    fn uv_poll_stop(handle: *mut c_void) -> c_int;
    fn uv_unref(handle: *mut c_void);
    fn uv_close(handle: *mut c_void, callback: Option<unsafe extern "C" fn(*mut c_void)>);
}

thread_local! {
    /// Pollers stopped because too much is undelivered (events held for paused channels,
    /// frames a watchdog read): [`resume_paused`] starts them again.
    static PAUSED: RefCell<Vec<*mut Poller>> = const { RefCell::new(Vec::new()) };
}

/// Owned by its handle: `handle->data` (the first field of every libuv handle) points here,
/// and the close callback frees both.
struct Poller {
    env: sys::napi_env,
    /// The `uv_poll_t`, as 8-byte words of the size libuv asks for.
    storage: Box<[u64]>,
    reader: Option<Arc<dyn LoopRead>>,
    on_read: OnRead,
    context: sys::napi_async_context,
    /// The resource object of every callback scope (one, kept: making one per read cost
    /// more than the scope itself).
    resource: sys::napi_ref,
}

impl Poller {
    fn handle(&mut self) -> *mut c_void {
        self.storage.as_mut_ptr().cast()
    }
}

/// Starts reading `reader` on `env`'s loop; gives it back when that cannot be done. Its
/// watchdog thread reads in the loop's place while JavaScript holds the loop up.
///
/// # Safety
/// On the JavaScript thread of `env`.
pub unsafe fn install(
    env: sys::napi_env,
    on_read: OnRead,
    reader: Arc<dyn LoopRead>,
) -> Result<(), Arc<dyn LoopRead>> {
    let mut event_loop = ptr::null_mut();
    if sys::napi_get_uv_event_loop(env, &mut event_loop) != sys::Status::napi_ok
        || event_loop.is_null()
    {
        return Err(reader);
    }
    let words = uv_handle_size(UV_POLL).div_ceil(8);
    let mut poller = Box::new(Poller {
        env,
        storage: vec![0u64; words].into_boxed_slice(),
        reader: None,
        on_read,
        context: ptr::null_mut(),
        resource: ptr::null_mut(),
    });
    if uv_poll_init(event_loop.cast(), poller.handle(), reader.fd()) != 0 {
        return Err(reader);
    }
    let mut resource = ptr::null_mut();
    sys::napi_create_object(env, &mut resource);
    let mut name = ptr::null_mut();
    let label = "pion-ipc stdout";
    sys::napi_create_string_utf8(env, label.as_ptr().cast(), label.len() as isize, &mut name);
    sys::napi_async_init(env, resource, name, &mut poller.context);
    sys::napi_create_reference(env, resource, 1, &mut poller.resource);
    poller.reader = Some(reader);
    let handle = poller.handle();
    let poller = Box::into_raw(poller);
    *handle.cast::<*mut Poller>() = poller;
    uv_unref(handle);
    if uv_poll_start(handle, UV_READABLE, on_readable) != 0 {
        let reader = (*poller).reader.take();
        stop(poller, Stop::BeforeHook);
        return reader.map_or(Ok(()), Err);
    }
    sys::napi_add_env_cleanup_hook(env, Some(on_env_cleanup), poller.cast());
    Ok(())
}

unsafe extern "C" fn on_readable(handle: *mut c_void, status: c_int, _events: c_int) {
    let poller = *handle.cast::<*mut Poller>();
    let env = (*poller).env;
    let mut handles = ptr::null_mut();
    sys::napi_open_handle_scope(env, &mut handles);
    let mut resource = ptr::null_mut();
    sys::napi_get_reference_value(env, (*poller).resource, &mut resource);
    let mut scope = ptr::null_mut();
    let scoped = !resource.is_null()
        && sys::napi_open_callback_scope(env, resource, (*poller).context, &mut scope)
            == sys::Status::napi_ok;
    // Over the backlog bound: nothing more is read (the pipe fills, SCTP slows the sender)
    // until the driver's tick finds room again.
    let backlogged = (*poller).reader.as_ref().is_some_and(|r| r.backlogged());
    if backlogged {
        uv_poll_stop(handle);
        PAUSED.with(|p| p.borrow_mut().push(poller));
    }
    let alive = status >= 0
        && match (*poller).reader.as_ref() {
            Some(_) if backlogged => true,
            Some(reader) => reader.read_ready(READ_BUDGET),
            None => false,
        };
    // The frames read are the owner's now: handled and delivered in this callback.
    let owned = ((*poller).on_read)(env);
    if scoped {
        // Runs the promise jobs and nextTick callbacks of this delivery.
        sys::napi_close_callback_scope(env, scope);
    }
    sys::napi_close_handle_scope(env, handles);
    if !alive || !owned {
        stop(poller, Stop::Running);
    }
}

unsafe extern "C" fn on_env_cleanup(poller: *mut c_void) {
    stop(poller.cast(), Stop::EnvCleanup);
}

/// Starts the pollers paused by the backlog bound that have room again.
///
/// # Safety
/// On the JavaScript thread whose loop the pollers are on.
pub unsafe fn resume_paused() {
    let ready: Vec<*mut Poller> = PAUSED.with(|p| {
        let mut paused = p.borrow_mut();
        if paused.is_empty() {
            return Vec::new();
        }
        let (ready, wait) = paused.drain(..).partition(|&poller| {
            // SAFETY: a paused poller is listed until `stop` takes it out.
            unsafe { (*poller).reader.as_ref().is_none_or(|r| r.has_room()) }
        });
        *paused = wait;
        ready
    });
    for poller in ready {
        uv_poll_start((*poller).handle(), UV_READABLE, on_readable);
    }
}

/// Who stops the poller, which decides what may still be touched.
#[derive(PartialEq)]
enum Stop {
    /// `install` failed before the cleanup hook was added.
    BeforeHook,
    /// Stdout ended or the owner is gone: JavaScript runs, the hook is still registered.
    Running,
    /// The environment is being torn down: no napi call that makes V8 handles may run
    /// (Deno aborts with "Cannot create a handle without a HandleScope"); the async context
    /// goes with the environment.
    EnvCleanup,
}

/// Stops watching and closes the handle; the close callback frees the poller.
unsafe fn stop(poller: *mut Poller, by: Stop) {
    PAUSED.with(|p| p.borrow_mut().retain(|&listed| listed != poller));
    let env = (*poller).env;
    drop((*poller).reader.take());
    let handle = (*poller).handle();
    uv_poll_stop(handle);
    if by == Stop::Running {
        sys::napi_remove_env_cleanup_hook(env, Some(on_env_cleanup), poller.cast());
    }
    if by != Stop::EnvCleanup && !(*poller).context.is_null() {
        sys::napi_async_destroy(env, (*poller).context);
        (*poller).context = ptr::null_mut();
    }
    if by != Stop::EnvCleanup && !(*poller).resource.is_null() {
        sys::napi_delete_reference(env, (*poller).resource);
        (*poller).resource = ptr::null_mut();
    }
    uv_close(handle, Some(on_closed));
}

unsafe extern "C" fn on_closed(handle: *mut c_void) {
    drop(Box::from_raw(*handle.cast::<*mut Poller>()));
}
