//! A token's object table as its threads share it: the table behind a reader-writer lock,
//! and two facts about it published beside the lock, so that the per-call path can ask
//! them without taking it: a generation that every write moves, and the table's next
//! deadline (the expiry sweep's). Writes go through [`TableWrite`], which moves the
//! generation when it is taken and publishes the deadline when it is let go.
//!
//! A reader that skips the lock sees either the state before a concurrent write or a
//! newer one: the same as a reader that took the read lock just before the writer took
//! its lock. This module must not decide anything about the objects.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::table::ObjectTable;

#[derive(Debug)]
pub struct SharedTable {
    table: RwLock<ObjectTable>,
    /// Moved by every write, as it takes the lock.
    generation: AtomicU64,
    /// `ObjectTable::next_deadline` as the last write left it.
    deadline: AtomicI64,
}

impl SharedTable {
    pub fn new(table: ObjectTable) -> SharedTable {
        SharedTable {
            deadline: AtomicI64::new(table.next_deadline()),
            table: RwLock::new(table),
            generation: AtomicU64::new(0),
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, ObjectTable> {
        self.table.read()
    }

    pub fn write(&self) -> TableWrite<'_> {
        let guard = self.table.write();
        // Moved before any change is made: a reader without the lock that still finds
        // the old number is one that came before this write.
        self.generation.fetch_add(1, Ordering::AcqRel);
        TableWrite {
            guard,
            deadline: &self.deadline,
        }
    }

    /// The generation now. Read under the read lock, it names the table that lock shows:
    /// no write can have begun since if it is still the same later.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The table's next deadline, without the lock.
    pub fn next_deadline(&self) -> i64 {
        self.deadline.load(Ordering::Acquire)
    }
}

/// The table, locked for writing; its deadline is published when this is dropped.
#[derive(Debug)]
pub struct TableWrite<'a> {
    guard: RwLockWriteGuard<'a, ObjectTable>,
    deadline: &'a AtomicI64,
}

impl Deref for TableWrite<'_> {
    type Target = ObjectTable;
    fn deref(&self) -> &ObjectTable {
        &self.guard
    }
}

impl DerefMut for TableWrite<'_> {
    fn deref_mut(&mut self) -> &mut ObjectTable {
        &mut self.guard
    }
}

impl Drop for TableWrite<'_> {
    fn drop(&mut self) {
        // Published while the write lock is still held (the guard is dropped after
        // this body), so a reader that takes the lock next finds the two in agreement.
        self.deadline
            .store(self.guard.next_deadline(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_moves_the_generation_and_publishes_the_deadline() {
        let shared = SharedTable::new(ObjectTable::default());
        shared.write().set_next_deadline(100);
        let before = shared.generation();
        {
            let mut table = shared.write();
            table.note_deadline(50);
            assert_ne!(shared.generation(), before, "moved as the write began");
            assert_eq!(shared.next_deadline(), 100, "published when it ends");
        }
        assert_eq!(shared.next_deadline(), 50);
        let after = shared.generation();
        drop(shared.read());
        assert_eq!(shared.generation(), after, "a read moves nothing");
        shared.write().set_next_deadline(i64::MIN);
        assert_eq!(shared.next_deadline(), i64::MIN);
        assert_ne!(shared.generation(), after);
    }
}
