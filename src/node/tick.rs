//! The wake-up call of a driver on its JavaScript thread: the value a ThreadsafeFunction
//! call carries. Converting it (napi does that on the JavaScript thread) runs the driver's
//! tick through the runner the driver module registers, so this module knows no driver.

use napi::bindgen_prelude::*;
use napi::sys;
use std::sync::OnceLock;

/// Runs the tick of the driver with this id, if it still exists.
pub(super) type Runner = unsafe fn(sys::napi_env, u64);

static RUNNER: OnceLock<Runner> = OnceLock::new();

/// Registers the runner (once; later calls change nothing).
pub(super) fn set_runner(runner: Runner) {
    let _ = RUNNER.set(runner);
}

/// A wake-up call of the driver with this id (napi then calls index.js's dispatcher with
/// `undefined`, which does nothing).
pub struct Tick(pub u64);

impl ToNapiValue for Tick {
    unsafe fn to_napi_value(env: sys::napi_env, tick: Self) -> Result<sys::napi_value> {
        if let Some(run) = RUNNER.get() {
            run(env, tick.0);
        }
        super::values::undefined(env)
    }
}
