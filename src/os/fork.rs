//! Fork hooks: three plain functions that `fork()` runs around itself in this process
//! (`pthread_atfork`), registered once per process.
//!
//! `prepare` runs in the forking thread before the fork, `parent` in the same thread of
//! the parent after it, `child` in the only thread of the child before `fork()` returns
//! there. The hooks must not panic (a panic here would abort the host: they are called
//! from C) and `child` must only do what is allowed in the child of a multi-threaded
//! process: atomics, unlocking what `prepare` locked, no allocation the parent's other
//! threads could have left half-done (glibc's `malloc` stays usable; other locks may not).
//!
//! Children made without `fork()` (`vfork`, `posix_spawn`, a raw `clone`) run no hooks;
//! the first two must exec before calling anything, the last is not supported.
//! This module must not know what the hooks do; it registers and dispatches.

use std::sync::OnceLock;

/// What runs around a `fork()`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hooks {
    pub prepare: fn(),
    pub parent: fn(),
    pub child: fn(),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();
/// Whether `pthread_atfork` accepted the hooks (asked once per process).
static REGISTERED: OnceLock<bool> = OnceLock::new();

/// Registers `hooks` for every later `fork()` of this process. Only the first call's
/// hooks are kept; later calls change nothing. Returns whether the hooks are registered.
pub(crate) fn install(hooks: Hooks) -> bool {
    let _ = HOOKS.set(hooks);
    *REGISTERED.get_or_init(|| {
        // SAFETY: the three arguments are `extern "C" fn()` items of this module, which
        // live as long as the library is mapped, and the library is never unmapped (it
        // links with `-z nodelete`, build.rs); besides, glibc's `pthread_atfork` (from
        // libc_nonshared, passing this object's `__dso_handle`) drops them on unload.
        let rc =
            unsafe { libc::pthread_atfork(Some(run_prepare), Some(run_parent), Some(run_child)) };
        if rc != 0 {
            log::error!("pthread_atfork failed ({rc}); a forked child must not use the module");
        }
        rc == 0
    })
}

extern "C" fn run_prepare() {
    if let Some(h) = HOOKS.get() {
        (h.prepare)();
    }
}

extern "C" fn run_parent() {
    if let Some(h) = HOOKS.get() {
        (h.parent)();
    }
}

extern "C" fn run_child() {
    if let Some(h) = HOOKS.get() {
        (h.child)();
    }
}
