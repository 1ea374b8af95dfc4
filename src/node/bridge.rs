//! The event bridge: notices from the sidecar's tasks reach JavaScript through one
//! ThreadsafeFunction per running sidecar, a batch per call.
//!
//! Notices are queued here; only the first notice after a delivered batch schedules a call,
//! so a flood of frames costs one JavaScript wake-up per batch. The function is created by
//! start() and released once the controller is idle, so nothing of the addon keeps Node
//! alive after stop() or a crash.

use super::convert;
use super::errors;
use crate::sidecar::{Ipc, Notice, NoticeSink};
use napi::bindgen_prelude::*;
use napi::sys;
use napi::threadsafe_function::{
    ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode,
};
use std::ptr;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Log lines waiting for JavaScript beyond this many are counted and dropped, so a logger
/// that cannot keep up never makes us stop reading the sidecar's stderr.
const MAX_PENDING_LOG_LINES: usize = 10_000;

type Dispatch = ThreadsafeFunction<(), Unknown<'static>, Batch, Status, false, false, 0>;

#[derive(Default)]
struct Queue {
    notices: Vec<Notice>,
    log_lines: usize,
    dropped_logs: u64,
    wake_pending: bool,
}

#[derive(Default)]
pub struct Bridge {
    queue: Mutex<Queue>,
    dispatch: Mutex<Option<Arc<Dispatch>>>,
    ipc: OnceLock<Ipc>,
}

impl NoticeSink for Bridge {
    fn notice(&self, notice: Notice) {
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

    fn flush(&self) {
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
                // Nobody to deliver to (the instance is idle): drop what is left.
                let mut queue = self.queue.lock().unwrap();
                *queue = Queue::default();
            }
        }
    }
}

impl Bridge {
    pub fn attach(&self, ipc: Ipc) {
        let _ = self.ipc.set(ipc);
    }

    /// Makes sure a delivery function exists (on the JavaScript thread, at start()).
    pub fn open(
        self: &Arc<Self>,
        env: &Env,
        callback: &Function<Batch, Unknown<'static>>,
    ) -> Result<()> {
        let mut slot = self.dispatch.lock().unwrap();
        if slot.is_some() {
            return Ok(());
        }
        let bridge = Arc::downgrade(self);
        let _ = env;
        let tsfn = callback
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<false>()
            .build_callback(move |_ctx: ThreadsafeCallContext<()>| Ok(take_batch(&bridge)))?;
        *slot = Some(Arc::new(tsfn));
        Ok(())
    }
}

/// Runs on the JavaScript thread for each call: takes everything queued.
fn take_batch(bridge: &Weak<Bridge>) -> Batch {
    let Some(bridge) = bridge.upgrade() else {
        return Batch::default();
    };
    let queue = std::mem::take(&mut *bridge.queue.lock().unwrap());
    let idle = queue.notices.iter().any(|n| matches!(n, Notice::Idle));
    if idle && bridge.ipc.get().is_none_or(Ipc::idle) {
        // Still idle now, on the JavaScript thread where start() runs: release the function
        // so the event loop may end. Queued calls are still delivered first.
        bridge.dispatch.lock().unwrap().take();
    }
    Batch {
        notices: queue.notices,
        dropped_logs: queue.dropped_logs,
    }
}

/// What one call hands to the JavaScript dispatcher: an array of `[name, ...args]` entries.
#[derive(Default)]
pub struct Batch {
    notices: Vec<Notice>,
    dropped_logs: u64,
}

const LOG_PREFIX: &str = "[pion-ipc] ";

unsafe fn js_string(env: sys::napi_env, s: &str) -> Result<sys::napi_value> {
    ToNapiValue::to_napi_value(env, s)
}

unsafe fn entry(
    env: sys::napi_env,
    name: &str,
    args: &[sys::napi_value],
) -> Result<sys::napi_value> {
    let mut items = Vec::with_capacity(args.len() + 1);
    items.push(js_string(env, name)?);
    items.extend_from_slice(args);
    convert::array(env, &items)
}

unsafe fn log_entry(env: sys::napi_env, line: &str) -> Result<sys::napi_value> {
    entry(
        env,
        "log",
        &[js_string(env, &format!("{LOG_PREFIX}{line}"))?],
    )
}

unsafe fn set(
    env: sys::napi_env,
    object: sys::napi_value,
    key: &str,
    value: sys::napi_value,
) -> Result<()> {
    let key = std::ffi::CString::new(key).expect("keys have no NUL");
    check_status!(sys::napi_set_named_property(
        env,
        object,
        key.as_ptr(),
        value
    ))
}

unsafe fn null(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    check_status!(sys::napi_get_null(env, &mut value))?;
    Ok(value)
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

impl ToNapiValue for Batch {
    unsafe fn to_napi_value(env: sys::napi_env, batch: Self) -> Result<sys::napi_value> {
        let mut entries = Vec::with_capacity(batch.notices.len() + 1);
        if batch.dropped_logs > 0 {
            entries.push(log_entry(
                env,
                &format!(
                    "{} log lines dropped: the logger could not keep up",
                    batch.dropped_logs
                ),
            )?);
        }
        for notice in batch.notices {
            match notice {
                Notice::Log(line) => entries.push(log_entry(env, &line)?),
                Notice::Error(err) => {
                    entries.push(log_entry(env, &format!("error: {err}"))?);
                    entries.push(entry(env, "error", &[errors::create(env, &err)])?);
                }
                Notice::Exited { code, signal, .. } => {
                    let code = match code {
                        Some(code) => ToNapiValue::to_napi_value(env, code)?,
                        None => null(env)?,
                    };
                    let signal = match signal {
                        Some(signal) => js_string(env, &signal)?,
                        None => null(env)?,
                    };
                    entries.push(entry(env, "exit", &[code, signal])?);
                }
                Notice::Restarted => entries.push(entry(env, "restart", &[])?),
                Notice::Event(frame) => {
                    let header = &frame.header;
                    let mut object = ptr::null_mut();
                    check_status!(sys::napi_create_object(env, &mut object))?;
                    set(env, object, "pcId", js_string(env, &header.pc_id)?)?;
                    set(env, object, "dcLabel", js_string(env, &header.dc_label)?)?;
                    set(
                        env,
                        object,
                        "isBinary",
                        ToNapiValue::to_napi_value(env, header.is_binary)?,
                    )?;
                    set(env, object, "payload", buffer(env, &frame.payload)?)?;
                    entries.push(entry(env, &header.event, &[object])?);
                }
                Notice::Idle => {}
            }
        }
        convert::array(env, &entries)
    }
}
