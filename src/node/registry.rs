//! The JavaScript objects of one driver, on its JavaScript thread: the targets events are
//! emitted on (by object id; the PionIpc itself is [`IPC_TARGET`]) and the deferreds behind
//! its pending promises (by settle token).

use crate::core::id_map::{IdMap, IdSet};
use napi::bindgen_prelude::*;
use napi::sys;
use std::ptr;

/// The id under which the PionIpc object itself is a target (object ids start at 1).
pub const IPC_TARGET: u64 = 0;

#[derive(Default)]
pub(super) struct Registry {
    targets: IdMap<u64, sys::napi_ref>,
    /// Targets held weakly (see `core::Event::Weaken`).
    weak: IdSet<u64>,
    deferreds: IdMap<u64, sys::napi_deferred>,
    next_token: u64,
    /// Whether the PionIpc target is held strongly (while the driver is open).
    ipc_strong: bool,
}

impl Registry {
    /// Registers the object events for `id` are emitted on. Connections and channels are
    /// held strongly until released or weakened; the PionIpc only while the driver is open.
    ///
    /// # Safety
    /// On the JavaScript thread of `env`, `target` a live object.
    pub(super) unsafe fn set_target(
        &mut self,
        env: sys::napi_env,
        id: u64,
        target: sys::napi_value,
    ) -> Result<()> {
        let strong = id != IPC_TARGET || self.ipc_strong;
        let mut reference = ptr::null_mut();
        check_status!(sys::napi_create_reference(
            env,
            target,
            u32::from(strong),
            &mut reference
        ))?;
        self.weak.remove(&id);
        if let Some(old) = self.targets.insert(id, reference) {
            sys::napi_delete_reference(env, old);
        }
        Ok(())
    }

    /// # Safety
    /// On the JavaScript thread of `env`.
    pub(super) unsafe fn target(&self, env: sys::napi_env, id: u64) -> Option<sys::napi_value> {
        let reference = self.targets.get(&id)?;
        let mut value = ptr::null_mut();
        sys::napi_get_reference_value(env, *reference, &mut value);
        (!value.is_null()).then_some(value)
    }

    /// Holds the target of `id` weakly from now on (once).
    ///
    /// # Safety
    /// On the JavaScript thread of `env`.
    pub(super) unsafe fn weaken(&mut self, env: sys::napi_env, id: u64) {
        let Some(&reference) = self.targets.get(&id) else {
            return;
        };
        if self.weak.insert(id) {
            let mut count = 0;
            sys::napi_reference_unref(env, reference, &mut count);
        }
    }

    /// # Safety
    /// On the JavaScript thread of `env`.
    pub(super) unsafe fn release(&mut self, env: sys::napi_env, id: u64) {
        self.weak.remove(&id);
        if let Some(reference) = self.targets.remove(&id) {
            sys::napi_delete_reference(env, reference);
        }
    }

    /// Holds the PionIpc strongly (`true`, the driver opened) or weakly.
    ///
    /// # Safety
    /// On the JavaScript thread of `env`.
    pub(super) unsafe fn hold_ipc(&mut self, env: sys::napi_env, strong: bool) {
        if self.ipc_strong == strong {
            return;
        }
        self.ipc_strong = strong;
        if let Some(&reference) = self.targets.get(&IPC_TARGET) {
            let mut count = 0;
            if strong {
                sys::napi_reference_ref(env, reference, &mut count);
            } else {
                sys::napi_reference_unref(env, reference, &mut count);
            }
        }
    }

    /// A new promise and the token that settles it.
    ///
    /// # Safety
    /// On the JavaScript thread of `env`.
    pub(super) unsafe fn promise(&mut self, env: sys::napi_env) -> Result<(u64, sys::napi_value)> {
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        check_status!(sys::napi_create_promise(env, &mut deferred, &mut promise))?;
        self.next_token += 1;
        self.deferreds.insert(self.next_token, deferred);
        Ok((self.next_token, promise))
    }

    /// A token that settles nothing of JavaScript's (the driver's own requests).
    pub(super) fn internal_token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    pub(super) fn take_deferred(&mut self, token: u64) -> Option<sys::napi_deferred> {
        self.deferreds.remove(&token)
    }

    pub(super) fn pending_promises(&self) -> usize {
        self.deferreds.len()
    }
}
