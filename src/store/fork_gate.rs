//! The gate every use of SQLite in this process passes, so that a `fork()` never lands
//! while a thread is inside SQLite.
//!
//! SQLite keeps process-wide state behind its own mutexes: the table of open files by
//! inode (with a mutex per file, taken on every lock change), the `-shm` mutexes, the
//! page-cache and memory-statistics mutexes. A thread of the parent holding one of them
//! at the instant of a fork leaves it locked forever in the child, and the child's own new
//! connection to the same token shares that per-file state, so its first transaction
//! would hang. Every SQLite call of the store therefore runs while it holds the gate
//! shared ([`enter`]); the fork hook holds it exclusively ([`close_for_fork`]), which
//! waits for calls in progress to finish and holds new ones back until the fork is done.
//!
//! The gate is a `std` (futex) lock, released in the child by the forking thread with
//! nothing but the lock itself. It must not be entered twice by one thread (a waiting
//! fork would block the second entry), nor held while waiting for anything but a
//! store's connection lock; it knows nothing of what runs inside it.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

static GATE: RwLock<()> = RwLock::new(());

/// A pass through the gate; SQLite may be used while it lives.
#[derive(Debug)]
pub(crate) struct Entered {
    _guard: RwLockReadGuard<'static, ()>,
}

/// The gate closed for a fork; dropping it (in the parent and in the child) reopens it.
#[derive(Debug)]
pub(crate) struct ClosedForFork {
    _guard: RwLockWriteGuard<'static, ()>,
}

/// Enters the gate (waits only while a fork is in progress).
pub(crate) fn enter() -> Entered {
    Entered {
        // The gate guards no data; a panic inside SQLite work leaves nothing to repair.
        _guard: GATE.read().unwrap_or_else(PoisonError::into_inner),
    }
}

/// Closes the gate: returns once no thread is inside SQLite, and keeps them out.
pub(crate) fn close_for_fork() -> ClosedForFork {
    ClosedForFork {
        _guard: GATE.write().unwrap_or_else(PoisonError::into_inner),
    }
}
