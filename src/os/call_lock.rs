//! A mutual-exclusion lock whose release is one plain store: no locked instruction, so
//! the only one a call pays is the acquiring compare-and-swap. For the state that each
//! call of one session takes for its whole length (its active operations,
//! `session::Session`), which two threads contend for only when an application uses
//! one session from two threads at once (§5.6 leaves that to the application; the calls
//! then run one after the other, as with any lock).
//!
//! A waiter cannot be woken by a plain store, so waiters poll: they spin briefly, then
//! yield the processor, then sleep 50 µs between looks. There is no queue and no
//! fairness. This module must not be used for a lock that threads contend for in normal
//! use, nor hold anything while it waits.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Polls spent spinning, then yielding, before a waiter sleeps between looks.
const SPINS: u32 = 64;
const YIELDS: u32 = 1_000;
const NAP: Duration = Duration::from_micros(50);

pub(crate) struct CallLock<T> {
    held: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a `CallGuard`, and `held` lets one guard
// exist at a time (acquired with `Acquire`, released with `Release`, so each holder sees
// the previous holder's writes): the lock shares `T` between threads exactly as a mutex
// does, which needs `T: Send` only.
unsafe impl<T: Send> Sync for CallLock<T> {}

impl<T: Default> Default for CallLock<T> {
    fn default() -> CallLock<T> {
        CallLock::new(T::default())
    }
}

impl<T> std::fmt::Debug for CallLock<T> {
    /// The value is not shown: reading it would need the lock.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallLock")
            .field("held", &self.held.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T> CallLock<T> {
    pub(crate) const fn new(value: T) -> CallLock<T> {
        CallLock {
            held: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, once no other guard holds it.
    pub(crate) fn lock(&self) -> CallGuard<'_, T> {
        if self
            .held
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.wait_and_take();
        }
        CallGuard {
            lock: self,
            _value: PhantomData,
        }
    }

    #[cold]
    fn wait_and_take(&self) {
        let mut polls = 0u32;
        loop {
            while self.held.load(Ordering::Relaxed) {
                if polls < SPINS {
                    std::hint::spin_loop();
                } else if polls < SPINS + YIELDS {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(NAP);
                }
                polls = polls.saturating_add(1);
            }
            if self
                .held
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// The held lock; released when dropped (also while unwinding). Shared between threads
/// only when `T` may be (`Sync`), as a mutex's guard: the marker, a `&mut T`, gives the
/// guard `T`'s `Sync` (`&CallLock<T>` alone would give it the lock's, for any `T: Send`;
/// review 19a).
pub(crate) struct CallGuard<'a, T> {
    lock: &'a CallLock<T>,
    _value: PhantomData<&'a mut T>,
}

impl<T> Deref for CallGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (`held` was taken for it and is released
        // only by its drop), so no other reference to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for CallGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as `deref`; `&mut self` makes this the only borrow through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for CallGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.held.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::Arc;

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

    /// Review 19a: the guard was `Sync` for every `T: Send`, a `Cell` among them, so
    /// `&guard` shared by two threads let both write the value at once.
    #[test]
    fn a_guard_is_shared_between_threads_only_when_its_value_may_be() {
        // Checked when the tests compile. The probe tells a mutex's guard of a cell
        // apart (it is not `Sync`), and a guard of a `Sync` value is `Sync`.
        const {
            assert!(!Probe::<std::sync::MutexGuard<'static, Cell<u64>>>::SYNC);
            assert!(Probe::<std::sync::MutexGuard<'static, u64>>::SYNC);
            assert!(!Probe::<CallGuard<'static, Cell<u64>>>::SYNC);
            assert!(Probe::<CallGuard<'static, u64>>::SYNC);
        }
    }

    #[test]
    fn one_holder_at_a_time_and_every_write_seen() {
        let lock = Arc::new(CallLock::new((0u64, 0u64)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let mut g = lock.lock();
                        // Two writes a torn or shared hold would tell apart.
                        g.0 += 1;
                        std::hint::spin_loop();
                        g.1 += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a counting thread panicked");
        }
        assert_eq!(*lock.lock(), (80_000, 80_000));
    }

    #[test]
    fn a_panic_while_held_releases_it() {
        let lock = Arc::new(CallLock::new(1u8));
        let held = Arc::clone(&lock);
        let panicked = std::thread::spawn(move || {
            let _g = held.lock();
            panic!("while held");
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(*lock.lock(), 1);
    }
}
