//! One descriptor per process for each file SQLite holds POSIX locks on (the database
//! and its `-shm`), for the stores that read or sync those files beside SQLite.
//!
//! POSIX record locks belong to the process, and closing *any* descriptor of a file
//! releases all of them. A store that opened the `-shm` file to read its header, and
//! closed it while another connection of this process still had the database open
//! (two threads scanning the slots open the same new token; one handle is kept, the
//! other dropped), would take that connection's SQLite locks with it: its read marks,
//! and its "dead man switch" lock, without which the next process to open the database
//! takes the WAL-index for abandoned and rebuilds it under the running connection.
//!
//! So a store registers its interest in a database ([`Interest::register`]) before its
//! SQLite connection opens the files, takes the descriptors from here, and gives them
//! back before its interest ends, after its connection closed. A descriptor is opened
//! once per database and closed, under the registry's lock, only when no interest is
//! left: never while a connection of a store of this process has the file open. (A
//! copy of SQLite that is not this module's, in the same process, is not known here.)
//! This module must not read or write the files.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

/// The files of one database that have a shared descriptor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Locked {
    Database,
    Shm,
}

#[derive(Default)]
struct Entry {
    interests: usize,
    database: Option<Arc<File>>,
    shm: Option<Arc<File>>,
}

static REGISTRY: Mutex<Option<HashMap<PathBuf, Entry>>> = Mutex::new(None);

/// A store's interest in one database's shared descriptors; ends when dropped.
#[derive(Debug)]
pub(super) struct Interest {
    key: PathBuf,
    db: PathBuf,
}

/// The registry's key for `db`: its canonical path (the folder's, with the file's name,
/// when the file does not exist yet).
fn key_of(db: &Path) -> PathBuf {
    if let Ok(path) = db.canonicalize() {
        return path;
    }
    match (db.parent().map(Path::canonicalize), db.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => db.to_path_buf(),
    }
}

impl Interest {
    /// Registers an interest in the database at `db`, before opening it.
    pub(super) fn register(db: &Path) -> Interest {
        let key = key_of(db);
        let mut registry = REGISTRY.lock();
        registry
            .get_or_insert_with(HashMap::new)
            .entry(key.clone())
            .or_default()
            .interests += 1;
        Interest {
            key,
            db: db.to_path_buf(),
        }
    }

    /// The process's descriptor of the database's file `which`, opened read-only on first
    /// use. The caller drops its `Arc` before this interest ends.
    pub(super) fn file(&self, which: Locked) -> io::Result<Arc<File>> {
        let mut registry = REGISTRY.lock();
        let entry = registry
            .get_or_insert_with(HashMap::new)
            .entry(self.key.clone())
            .or_default();
        let slot = match which {
            Locked::Database => &mut entry.database,
            Locked::Shm => &mut entry.shm,
        };
        if let Some(file) = slot {
            return Ok(Arc::clone(file));
        }
        let path = match which {
            Locked::Database => self.db.clone(),
            Locked::Shm => {
                let mut p = self.db.as_os_str().to_owned();
                p.push("-shm");
                PathBuf::from(p)
            }
        };
        let file = Arc::new(File::open(path)?);
        *slot = Some(Arc::clone(&file));
        Ok(file)
    }
}

impl Drop for Interest {
    fn drop(&mut self) {
        let mut registry = REGISTRY.lock();
        let Some(map) = registry.as_mut() else {
            return;
        };
        let last = match map.get_mut(&self.key) {
            Some(entry) => {
                entry.interests = entry.interests.saturating_sub(1);
                entry.interests == 0
            }
            None => false,
        };
        if last {
            // Closes the descriptors here, under the lock: an interest registered from
            // now on opens new ones, after these are closed.
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_descriptor_per_database_while_any_interest_lasts() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(&db, b"").unwrap();
        let a = Interest::register(&db);
        let b = Interest::register(&dir.path().join(".").join("x.db"));
        let fa = a.file(Locked::Database).unwrap();
        let fb = b.file(Locked::Database).unwrap();
        assert!(
            Arc::ptr_eq(&fa, &fb),
            "the same descriptor, whatever the spelling"
        );
        drop((fa, fb));
        drop(a);
        let again = b.file(Locked::Database).unwrap();
        assert_eq!(
            Arc::strong_count(&again),
            2,
            "kept while b's interest lasts"
        );
        drop(again);
        drop(b);
        assert!(REGISTRY
            .lock()
            .as_ref()
            .is_none_or(|m| !m.contains_key(&key_of(&db))));
    }
}
