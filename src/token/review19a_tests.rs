//! An attacker's review (branch attack19a) of the per-call cost change (718e9fd): a
//! session's operations behind `os::call_lock::CallLock`, an init judged again from the
//! last judgement (`Token::key_again`) and inline IVs. Each test asserts what the
//! project's documents (or the language's rules for a lock) promise, so it fails against
//! the module as reviewed.

use std::cell::Cell;
use std::marker::PhantomData;

use crate::os::call_lock::CallGuard;

/// Asks, at compile time, whether `T` is `Sync`: the inherent constant applies only when
/// the bound holds; otherwise the trait's default answers.
struct Probe<T: ?Sized>(PhantomData<T>);

trait NotSync {
    const SYNC: bool = false;
}

impl<T: ?Sized> NotSync for Probe<T> {}

impl<T: ?Sized + Sync> Probe<T> {
    #[allow(dead_code)]
    const SYNC: bool = true;
}

/// Defect: `CallGuard` is `Sync` for every `T: Send`, also for a `T` that is not `Sync`.
/// The guard holds `&CallLock<T>`, and `CallLock<T>` is declared `Sync` for `T: Send`
/// (right for the lock, as for a mutex); so the guard's automatic `Sync` follows the
/// lock's, and `&CallGuard<T>` may be shared between threads, each of which derefs it to
/// `&T`. For a `T` that is `Send` but not `Sync` (a `Cell`, a `RefCell`, an operation
/// holding one) that is a data race written in safe code: two scoped threads given
/// `&guard` of a `CallGuard<Cell<u64>>` both `set` the one cell at once. A mutex's guard
/// is `Sync` only when `T: Sync` (`std::sync::MutexGuard`, `parking_lot::MutexGuard`,
/// which this lock replaced for `Session::ops`), and the `// SAFETY:` comment of the
/// `unsafe impl` claims the lock shares `T` "exactly as a mutex does".
/// Expected: `CallGuard<'_, Cell<u64>>` is not `Sync` (an
/// `unsafe impl<T: Sync> Sync for CallGuard<'_, T>` with a `PhantomData` marker making
/// the guard `!Sync` otherwise); it is.
#[test]
fn a_call_lock_guard_of_a_value_that_is_not_sync_is_not_shared_between_threads() {
    // The probe tells a mutex's guard of a cell apart: it is not `Sync`.
    assert!(
        !Probe::<std::sync::MutexGuard<'static, Cell<u64>>>::SYNC,
        "the probe itself is wrong"
    );
    assert!(Probe::<std::sync::MutexGuard<'static, u64>>::SYNC);
    assert!(
        !Probe::<CallGuard<'static, Cell<u64>>>::SYNC,
        "a CallGuard of a Cell is Sync: `&guard` shared by two threads lets both write \
         the cell at once (a data race in safe code)"
    );
}
