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
//! the first two must exec before calling anything. A raw `clone` child that copies the
//! memory is told apart by a mark the kernel wipes in it (`MADV_WIPEONFORK`, Linux 4.14):
//! [`inherited`] says whether this process's memory came from a parent whose provider
//! it must not use. Where the kernel refuses the mark, such children go unnoticed until
//! their `C_Initialize` (which compares process ids), as before.
//! This module must not know what the hooks do; it registers and dispatches.

use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
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

/// A byte in a page of its own that the kernel zeroes in every child that gets a copy of
/// this process's memory (`MADV_WIPEONFORK`); 1 once this process made its provider
/// (`mark_this_process`). Null where the page could not be set up.
static MARK: AtomicPtr<AtomicU8> = AtomicPtr::new(std::ptr::null_mut());

/// Maps the mark's page (once per process; its copy in a child is the same mapping,
/// zeroed). Leaves `MARK` null when the kernel refuses the advice.
fn map_mark() {
    let len = 4096;
    // Never unmapped: `MARK` points into it for the life of the process (and of its
    // children's copies).
    let Some(page) = super::map_anonymous(len) else {
        return;
    };
    // SAFETY: `page` is the mapping made above, of `len` bytes.
    if unsafe { libc::madvise(page, len, libc::MADV_WIPEONFORK) } != 0 {
        // SAFETY: as above; the mapping is not referred to anywhere.
        unsafe { libc::munmap(page, len) };
        log::warn!("MADV_WIPEONFORK refused: a raw clone child is noticed only at C_Initialize");
        return;
    }
    // The page is zero-filled and at least `AtomicU8`-aligned (page-aligned).
    MARK.store(page.cast::<AtomicU8>(), Ordering::Release);
}

/// Says that this process made the provider it holds (after a successful `C_Initialize`).
pub(crate) fn mark_this_process() {
    let mark = MARK.load(Ordering::Acquire);
    // SAFETY: null, or a pointer into the page `map_mark` mapped, never unmapped.
    if let Some(mark) = unsafe { mark.as_ref() } {
        mark.store(1, Ordering::Release);
    }
}

/// Whether this process is a child that got its memory from a parent after the mark was
/// set up and has not marked itself since (a `fork()` child before its `C_Initialize`,
/// or a raw `clone` child that ran no hooks): the provider it sees is the parent's. False
/// where the mark is missing.
pub(crate) fn inherited() -> bool {
    let mark = MARK.load(Ordering::Relaxed);
    // SAFETY: null, or a pointer into the page `map_mark` mapped, never unmapped.
    match unsafe { mark.as_ref() } {
        Some(mark) => mark.load(Ordering::Relaxed) == 0,
        None => false,
    }
}

/// Registers `hooks` for every later `fork()` of this process. Only the first call's
/// hooks are kept; later calls change nothing. Returns whether the hooks are registered.
/// The first call also sets up the mark [`inherited`] reads.
pub(crate) fn install(hooks: Hooks) -> bool {
    let _ = HOOKS.set(hooks);
    *REGISTERED.get_or_init(|| {
        map_mark();
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
