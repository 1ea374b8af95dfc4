//! `PionIpc` as a native class. index.js wraps it into an EventEmitter; the work is its
//! driver's (`driver.rs`).

use super::convert;
use super::driver::{Driver, DriverConfig};
use super::errors;
use super::registry::IPC_TARGET;
use crate::core::Request as CoreRequest;
use crate::error::Error;
use crate::sidecar::{find_binary, LookupInput};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::Duration;

thread_local! {
    /// The drivers created on this JavaScript thread (main or worker), whose sidecars are
    /// killed when its environment is torn down.
    static LIVE: RefCell<Option<Vec<Weak<Driver>>>> = const { RefCell::new(None) };
}

fn register_for_cleanup(env: &Env, driver: &Rc<Driver>) -> Result<()> {
    LIVE.with(|live| {
        let mut live = live.borrow_mut();
        if live.is_none() {
            env.add_env_cleanup_hook((), |_| {
                LIVE.with(|live| {
                    let drivers = live.borrow_mut().take().unwrap_or_default();
                    for driver in drivers {
                        if let Some(driver) = driver.upgrade() {
                            driver.kill_now();
                        }
                    }
                });
            })?;
        }
        let list = live.get_or_insert_with(Vec::new);
        list.retain(|d| d.strong_count() > 0);
        list.push(Rc::downgrade(driver));
        Ok(())
    })
}

#[napi(js_name = "NativePionIpc")]
pub struct NativePionIpc {
    driver: Rc<Driver>,
    bin_path: Option<PathBuf>,
}

#[napi]
impl NativePionIpc {
    /// `options` as documented for PionIpc; `target` is the JavaScript object its events
    /// (exit, error, restart, sidecar events, log lines) are emitted on.
    #[napi(constructor)]
    pub fn new(env: Env, options: Option<Unknown>, target: Object) -> Result<Self> {
        let (config, bin_path) = parse_options(options).map_err(|e| errors::throw(&env, e))?;
        let driver = Driver::new(config);
        driver.set_target(&env, IPC_TARGET, &target)?;
        register_for_cleanup(&env, &driver)?;
        Ok(NativePionIpc { driver, bin_path })
    }

    #[napi(getter)]
    pub fn started(&self) -> bool {
        self.driver.is_started()
    }

    /// The sidecar's process id while one runs.
    #[napi(getter)]
    pub fn pid(&self) -> Option<u32> {
        self.driver.pid()
    }

    /// Whether sidecar events are also emitted raw on the PionIpc (someone listens).
    #[napi(setter)]
    pub fn set_forward_raw_events(&self, value: bool) {
        self.driver.set_raw_events(value);
    }

    /// `resolvePackage(name)` returns the directory of an installed npm package, or null.
    #[napi]
    pub fn start<'env>(
        &self,
        env: &'env Env,
        resolve_package: Function<String, Unknown<'static>>,
    ) -> Result<Unknown<'env>> {
        self.driver
            .start(env, || self.locate(env, &resolve_package))
    }

    #[napi]
    pub fn stop<'env>(&self, env: &'env Env, timeout: Option<Unknown>) -> Result<Unknown<'env>> {
        let timeout = match timeout.filter(|t| !convert::is_nullish(t)) {
            Some(t) => convert::millis("timeout", &t).map_err(|e| errors::throw(env, e))?,
            None => Duration::from_millis(5000),
        };
        self.driver.stop(env, timeout)
    }

    /// `request(method, { pcId, dcLabel, isBinary }, payload)` → `{ header, payload }`.
    /// Bad arguments throw; index.js turns that into a rejection.
    #[napi]
    pub fn request<'env>(
        &self,
        env: &'env Env,
        method: Unknown,
        opts: Option<Unknown>,
        payload: Option<Unknown>,
    ) -> Result<Unknown<'env>> {
        let request = parse_request(method, opts, payload).map_err(|e| errors::throw(env, e))?;
        if !self.driver.is_started() {
            return Err(errors::throw(env, Error::NotStarted));
        }
        let request = CoreRequest {
            method: &request.method,
            pc_id: &request.pc_id,
            dc_label: &request.dc_label,
            is_binary: request.is_binary,
            payload: &request.payload,
        };
        self.driver.request(env, request)
    }
}

impl NativePionIpc {
    pub(super) fn driver(&self) -> &Rc<Driver> {
        &self.driver
    }
}

impl NativePionIpc {
    fn locate(
        &self,
        env: &Env,
        resolve_package: &Function<String, Unknown<'static>>,
    ) -> std::result::Result<PathBuf, Error> {
        if let Some(bin) = &self.bin_path {
            return Ok(bin.clone());
        }
        let process = process_info(env)
            .map_err(|e| Error::NotFound(format!("cannot read process info: {}", e.reason)))?;
        let package_name = format!("@coclaw/pion-ipc-{}-{}", process.platform, process.arch);
        let package_dir = resolve_package
            .call(package_name.clone())
            .ok()
            .filter(|dir| convert::kind(dir) == ValueType::String)
            .and_then(|dir| convert::string("package directory", &dir).ok())
            .map(PathBuf::from);
        let found = find_binary(&LookupInput {
            env_bin: process.env_bin.filter(|s| !s.is_empty()).map(PathBuf::from),
            package_name: package_name.clone(),
            package_dir,
            path_var: process.path.map(Into::into),
            windows: process.platform == "win32",
        })?;
        if let Some(refusal) = found.refused {
            self.driver.log_later(format!(
                "{package_name}: {refusal}; running {} from PATH instead",
                found.binary.display()
            ));
        }
        Ok(found.binary)
    }
}

struct ProcessInfo {
    platform: String,
    arch: String,
    env_bin: Option<String>,
    path: Option<String>,
}

/// Reads `process.platform`, `process.arch` and the two variables from `process.env` (in a
/// worker thread that is the worker's own copy of the environment).
fn process_info(env: &Env) -> Result<ProcessInfo> {
    let global = env.get_global()?;
    let process: Object = global.get_named_property("process")?;
    let vars: Object = process.get_named_property("env")?;
    let var = |name: &str| -> Result<Option<String>> {
        let value: Unknown = vars.get_named_property(name)?;
        Ok(convert::string(name, &value).ok())
    };
    Ok(ProcessInfo {
        platform: process.get_named_property("platform")?,
        arch: process.get_named_property("arch")?,
        env_bin: var("PION_IPC_BIN")?,
        path: var("PATH")?.or(var("Path")?),
    })
}

fn parse_options(
    options: Option<Unknown>,
) -> std::result::Result<(DriverConfig, Option<PathBuf>), Error> {
    let mut config = DriverConfig::default();
    let Some(options) = convert::options("options", options)? else {
        return Ok((config, None));
    };
    let bin_path = match convert::field(&options, "binPath")? {
        Some(v) => Some(PathBuf::from(convert::string("binPath", &v)?)),
        None => None,
    };
    if let Some(logger) = convert::field(&options, "logger")? {
        if convert::kind(&logger) != ValueType::Function {
            return Err(Error::Type(format!(
                "logger must be a function, got {}",
                convert::type_name(&logger)
            )));
        }
    }
    if let Some(v) = convert::field(&options, "timeout")? {
        config.timeout = convert::millis("timeout", &v)?;
    }
    if let Some(v) = convert::field(&options, "autoRestart")? {
        config.supervisor.auto_restart = convert::boolean("autoRestart", &v)?;
    }
    if let Some(v) = convert::field(&options, "maxBackoffMs")? {
        config.supervisor.max_backoff = convert::millis("maxBackoffMs", &v)?;
    }
    if let Some(v) = convert::field(&options, "restartResetWindowMs")? {
        config.supervisor.reset_window = convert::millis("restartResetWindowMs", &v)?;
    }
    Ok((config, bin_path))
}

struct Request {
    method: String,
    pc_id: String,
    dc_label: String,
    is_binary: bool,
    payload: Vec<u8>,
}

fn parse_request(
    method: Unknown,
    opts: Option<Unknown>,
    payload: Option<Unknown>,
) -> std::result::Result<Request, Error> {
    let method = convert::string("method", &method)?;
    if method.is_empty() {
        return Err(Error::Type("method must not be empty".into()));
    }
    let mut request = Request {
        method,
        pc_id: String::new(),
        dc_label: String::new(),
        is_binary: false,
        payload: Vec::new(),
    };
    if let Some(opts) = convert::options("opts", opts)? {
        if let Some(v) = convert::field(&opts, "pcId")? {
            request.pc_id = convert::string("opts.pcId", &v)?;
        }
        if let Some(v) = convert::field(&opts, "dcLabel")? {
            request.dc_label = convert::string("opts.dcLabel", &v)?;
        }
        if let Some(v) = convert::field(&opts, "isBinary")? {
            request.is_binary = is_truthy(&v);
        }
    }
    if let Some(payload) = payload.filter(|p| !convert::is_nullish(p)) {
        request.payload = match convert::binary(&payload)? {
            Some(bytes) => bytes.to_vec(),
            None => {
                let mut out = Vec::new();
                crate::protocol::value::encode_value(&convert::to_msgpack(&payload)?, &mut out);
                out
            }
        };
    }
    Ok(request)
}

fn is_truthy(value: &Unknown) -> bool {
    // SAFETY: coercion of a live value on the JavaScript thread.
    match value.get_type() {
        Ok(ValueType::Boolean) => convert::boolean("", value).unwrap_or(false),
        Ok(ValueType::Number) => convert::number("", value).is_ok_and(|n| n != 0.0 && !n.is_nan()),
        Ok(ValueType::String) => convert::string("", value).is_ok_and(|s| !s.is_empty()),
        Ok(ValueType::Undefined) | Ok(ValueType::Null) => false,
        _ => true,
    }
}
