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
//! A file made again under the same name gets a descriptor of its own; the old one is
//! kept with the entry. The files are named from the database's canonical path, as
//! SQLite names them (it resolves symbolic links).
//!
//! The registry's lock is taken only by a thread holding a pass through the fork gate
//! (`fork_gate.rs`): registering, taking a descriptor and ending an interest all happen
//! inside it, so a `fork()` never finds the lock held. This module must not read or
//! write the files.

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
    /// Descriptors of files since replaced under the name, closed with the entry.
    retired: Vec<Arc<File>>,
}

static REGISTRY: Mutex<Option<HashMap<PathBuf, Entry>>> = Mutex::new(None);

/// A store's interest in one database's shared descriptors; ends when dropped, which
/// must happen with a pass through the fork gate, as its registration did.
#[derive(Debug)]
pub(super) struct Interest {
    key: PathBuf,
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
    /// Registers an interest in the database at `db`, before opening it (with a pass
    /// through the fork gate).
    pub(super) fn register(db: &Path) -> Interest {
        let key = key_of(db);
        let mut registry = REGISTRY.lock();
        registry
            .get_or_insert_with(HashMap::new)
            .entry(key.clone())
            .or_default()
            .interests += 1;
        Interest { key }
    }

    /// The path of the database file or one of its companions (`suffix`: `""`, `"-wal"`,
    /// `"-shm"`), named from the canonical path as SQLite names them.
    pub(super) fn path(&self, suffix: &str) -> PathBuf {
        let mut p = self.key.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    }

    /// The process's descriptor of the database's file `which`, opened read-only on first
    /// use. The caller drops its `Arc` before this interest ends.
    pub(super) fn file(&self, which: Locked) -> io::Result<Arc<File>> {
        let mut registry = REGISTRY.lock();
        let entry = registry
            .get_or_insert_with(HashMap::new)
            .entry(self.key.clone())
            .or_default();
        let path = self.path(match which {
            Locked::Database => "",
            Locked::Shm => "-shm",
        });
        let slot = match which {
            Locked::Database => &mut entry.database,
            Locked::Shm => &mut entry.shm,
        };
        if let Some(file) = slot.take() {
            if is_named(&file, &path) {
                *slot = Some(Arc::clone(&file));
                return Ok(file);
            }
            // Another file under the name: closing this descriptor could release locks a
            // connection of this process holds on the old file, so it stays.
            entry.retired.push(file);
        }
        let file = Arc::new(open_regular(&path)?);
        *slot = Some(Arc::clone(&file));
        Ok(file)
    }
}

/// Whether `file` is the file `path` names now.
fn is_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(named)) => held.dev() == named.dev() && held.ino() == named.ino(),
        _ => false,
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

/// Opens `path` for reading, if it is a regular file. The token folder's files are
/// opened by name, and another name there (a FIFO put in place of the `-wal` file, whose
/// plain open would wait for a writer for ever while the store's connection lock is
/// held: review 19c) is refused instead: without blocking (`O_NONBLOCK`, which a regular
/// file ignores), and with `InvalidInput` for anything but a regular file.
pub(super) fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
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

    #[test]
    fn a_file_made_again_under_the_name_gets_its_own_descriptor() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("y.db");
        std::fs::write(&db, b"old").unwrap();
        let a = Interest::register(&db);
        let old = a.file(Locked::Database).unwrap();
        std::fs::remove_file(&db).unwrap();
        std::fs::write(&db, b"new").unwrap();
        let new = a.file(Locked::Database).unwrap();
        assert_eq!(
            new.metadata().unwrap().ino(),
            std::fs::metadata(&db).unwrap().ino()
        );
        assert_ne!(new.metadata().unwrap().ino(), old.metadata().unwrap().ino());
        assert_eq!(
            Arc::strong_count(&old),
            2,
            "the old descriptor is kept, not closed"
        );
        drop((old, new));
        drop(a);
    }
}
