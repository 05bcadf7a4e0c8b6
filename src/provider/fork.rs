//! What `fork()` does to the module: the child starts uninitialised, with no sessions
//! and no login, and never touches what it inherited.
//!
//! The invariant: **a provider made in one process is never used, changed or dropped in
//! another.** Its SQLite connections must not be used across a fork (SQLite's rule: the
//! child would close, checkpoint or lock files through the parent's connection and
//! WAL-index state), nor its PostgreSQL connections (a child sending on, or closing, the
//! parent's socket would break the parent's session), and its mappings and locks were
//! the parent's. Dropping it would run exactly those destructors, so the child *leaks*
//! the inherited provider (`std::mem::forget` of the `Arc` in `STATE`): nothing it owns
//! is freed, closed or unmapped in the child. The leak is bounded by one provider per fork, and a child that
//! execs or exits frees it with the rest of its memory. Other threads' `Arc` clones of
//! it belonged to threads that do not exist in the child, so no count ever reaches zero.
//!
//! Locks: the `prepare` hook takes `STATE` for writing, then closes the SQLite gate
//! (`store/fork_gate.rs`), then takes the logger's lock (the crate's lock order), so no
//! thread of the parent is inside `C_Initialize` or `C_Finalize`, nor between taking and
//! releasing `STATE` anywhere, nor inside SQLite (whose process-wide mutexes and per-file
//! state the child's new connections share), nor writing a log line, at the instant of
//! the fork; the child then holds all three itself and releases them after emptying
//! `STATE`. Locks below `STATE` (slots, sessions, tokens, store connections) may be held
//! by other parent threads at the fork; they all belong to the abandoned provider, which
//! the child never touches. A fork waits for a running `C_Initialize` and for SQLite
//! calls in progress (one transaction at most per thread; up to the store's 30 s busy
//! timeout when another process holds the token's write lock) to finish.
//!
//! This module must not touch a provider's contents; it moves the whole and forgets it.

use std::cell::RefCell;
use std::sync::{Arc, RwLockWriteGuard};

use super::{state_mut, Provider};
use crate::logging::{self, ForkHold};
use crate::os::fork::{self, Hooks};
use crate::store::fork_gate::{self, ClosedForFork};

/// What `prepare` took, for `parent` or `child` to release (all three hooks run in the
/// forking thread).
struct Held {
    state: RwLockWriteGuard<'static, Option<Arc<Provider>>>,
    _sqlite: ClosedForFork,
    _log: ForkHold,
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Registers the hooks (once per process; later calls do nothing).
pub(super) fn install() {
    fork::install(Hooks {
        prepare,
        parent,
        child,
    });
}

/// Leaves the inherited provider behind without running any of its destructors (see the
/// module comment for why that is the invariant, not a leak to fix).
pub(super) fn abandon(inherited: Option<Arc<Provider>>) {
    std::mem::forget(inherited);
}

fn prepare() {
    let held = Held {
        state: state_mut(),
        _sqlite: fork_gate::close_for_fork(),
        _log: logging::hold_for_fork(),
    };
    // `try_with` fails only while this thread's locals are being destroyed; the locks are
    // then released at once and the fork goes ahead unprotected, as without the hooks.
    let _ = HELD.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some(held);
        }
    });
}

fn parent() {
    let _ = HELD.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            slot.take();
        }
    });
}

fn child() {
    // Handles of the parent's sessions name nothing here.
    super::sessions_changed();
    let _ = HELD.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            if let Some(mut held) = slot.take() {
                abandon(held.state.take());
            }
        }
    });
}
