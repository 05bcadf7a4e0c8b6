//! Group commit for the SQLite store: the WAL's fsync taken out of the write lock, so
//! that one fsync covers every commit written before it began.
//!
//! The connection runs `synchronous=NORMAL`: a commit appends its frames to the `-wal`
//! file and publishes them without syncing (SQLite still syncs the WAL before every
//! checkpoint, the database after every completed one, and the WAL header when the WAL
//! is reused; sqlite.org/pragma.html#pragma_synchronous). The store then, with the
//! connection's lock released, calls [`WalSync::wait`], which returns only once an
//! `fdatasync` of the `-wal` file that *began after* the caller's write has completed:
//! `synchronous=FULL`'s promise (nothing is acknowledged before its fsync) with one
//! fsync shared by every thread that wrote meanwhile (a thread whose write no running
//! sync covers starts one, beside any older one still running; the others wait for it),
//! and by other processes' commits that reached the file before it began.
//!
//! Reads are held to the same rule: with NORMAL a commit is visible to readers before
//! it is durable, so a read that may have seen such a commit ([`WalSync::covers_now`]
//! says no) waits for a sync too before it returns; nothing unsynced is ever handed
//! to a caller. An fsync that fails makes every later wait fail (after a failed fsync
//! the kernel may have dropped the dirty pages, and a later fsync would succeed without
//! them): the store must be opened again.
//!
//! This module must not call SQLite or know what the WAL holds beyond the WAL-index
//! header's bytes, which it only compares.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::os::shared_page::SharedPage;

/// The two copies of the WAL-index header (sqlite.org/walformat.html); every commit
/// changes them (its change counter at least), so equal bytes mean no commit since.
pub(super) const HEADERS: usize = 96;

struct State {
    /// Syncs begun so far; the number of the newest is `started`.
    started: u64,
    /// The highest number of a completed sync. Sync `n` covers every ticket up to `n`
    /// (they were taken, after their writes, before it began), whatever the syncs
    /// numbered below it are doing: syncs may run at once and end in any order.
    completed: u64,
    /// The numbers of the syncs running now.
    running: Vec<u64>,
    /// The WAL-index headers as read just before sync `completed` began: everything
    /// they publish is durable.
    durable: Option<[u8; HEADERS]>,
    /// A sync failed: nothing more may be acknowledged through this handle.
    failed: bool,
}

pub(super) struct WalSync {
    /// The database file, this process's one descriptor of it (`files.rs`).
    db: Arc<File>,
    wal_path: PathBuf,
    /// The `-wal` file SQLite writes; replaced if it was deleted and made again.
    wal: Mutex<Arc<File>>,
    headers: SharedPage,
    state: Mutex<State>,
    done: Condvar,
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

impl WalSync {
    /// For the database at `db` whose `-shm` file is `shm` (open, after the connection's
    /// first read made SQLite create both files). `None` when the WAL cannot be opened or
    /// the `-shm` header cannot be mapped: the store then keeps `synchronous=FULL`.
    ///
    /// Syncs the WAL and the folder once, so that what was committed before (the schema
    /// of a new token, an upgrade) and the `-wal` file's name are durable too.
    pub(super) fn open(db: &Path, db_file: Arc<File>, shm: &File) -> Option<WalSync> {
        let mut wal_path = db.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal_path = PathBuf::from(wal_path);
        let wal = File::open(&wal_path).ok()?;
        let headers = SharedPage::map(shm)?;
        wal.sync_data().ok()?;
        sync_dir(&wal_path).ok()?;
        Some(WalSync {
            db: db_file,
            wal_path,
            wal: Mutex::new(Arc::new(wal)),
            headers,
            state: Mutex::new(State {
                started: 0,
                completed: 0,
                running: Vec::new(),
                durable: None,
                failed: false,
            }),
            done: Condvar::new(),
        })
    }

    /// Whether every commit published now is covered by a completed sync (the header
    /// has not moved since the newest one began). Asked after a read, to know whether
    /// it may have seen something not yet durable.
    pub(super) fn covers_now(&self) -> bool {
        let now = self.headers.read::<HEADERS>();
        self.state.lock().durable == Some(now)
    }

    /// Whether this handle may still write: not after an fsync failed.
    pub(super) fn check(&self) -> io::Result<()> {
        if self.state.lock().failed {
            return Err(io::Error::other("an earlier fsync of the WAL failed"));
        }
        Ok(())
    }

    /// Marks the handle as after a failed fsync (for tests: a real failure needs a disk
    /// that fails).
    #[cfg(test)]
    pub(super) fn poison(&self) {
        self.state.lock().failed = true;
    }

    /// The number of the newest completed sync (for tests).
    #[cfg(test)]
    pub(super) fn completed(&self) -> u64 {
        self.state.lock().completed
    }

    /// The sync that covers everything written to the WAL before this call: called after
    /// a write (or a read) has finished, and handed to [`WalSync::wait`].
    pub(super) fn ticket(&self) -> u64 {
        self.state.lock().started + 1
    }

    /// Returns once the sync numbered `ticket` (or a later one) has completed: waits for
    /// a running sync that covers the ticket, or else starts one, which then covers
    /// every waiter whose ticket it reached. A sync that began before the ticket's write
    /// is not waited for: a second one starts beside it (the kernel shares the work of
    /// two fsyncs of one file), so two writers do not take turns.
    pub(super) fn wait(&self, ticket: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        loop {
            if st.failed {
                return Err(io::Error::other("an earlier fsync of the WAL failed"));
            }
            if st.completed >= ticket {
                return Ok(());
            }
            if st.running.iter().any(|&n| n >= ticket) {
                self.done.wait(&mut st);
                continue;
            }
            st.started += 1;
            let number = st.started;
            st.running.push(number);
            drop(st);
            // Read before the fsync begins: every commit it publishes had its frames
            // written already, so the fsync covers them.
            let headers = self.headers.read::<HEADERS>();
            let result = self.sync_wal();
            st = self.state.lock();
            if let Ok(Err(_)) = &result {
                st.failed = true;
            }
            if let Ok(Ok(())) = &result {
                // A writeback error is reported to one fsync of the file only: a sync
                // that ran beside this one may have taken the error for pages this one
                // was to cover. So this one counts only once every older sync still
                // running has ended, and only if none of them failed.
                while !st.failed && st.running.iter().any(|&n| n < number) {
                    self.done.wait(&mut st);
                }
            }
            st.running.retain(|&n| n != number);
            if let Ok(Ok(())) = &result {
                if !st.failed && number > st.completed {
                    st.completed = number;
                    st.durable = Some(headers);
                }
            }
            self.done.notify_all();
            result??;
        }
    }

    /// fdatasync of the `-wal` file. The outer error is a failure to look at the files
    /// (the call fails, nothing is poisoned); the inner one a failed fsync.
    ///
    /// SQLite deletes the WAL only after a complete checkpoint, which synced the database
    /// first, and only when it finds no other connection (this store's keeps it, but a
    /// second copy of SQLite in this process, such as a client's own, cannot see our
    /// locks: POSIX locks are per process). So a WAL gone from its name means its frames
    /// are in the database: that is synced instead. A WAL made again under the name is
    /// opened, and the database and the folder synced, before it is synced itself.
    fn sync_wal(&self) -> io::Result<io::Result<()>> {
        let wal = Arc::clone(&self.wal.lock());
        let held = wal.metadata()?;
        match std::fs::metadata(&self.wal_path) {
            Ok(named)
                if held.nlink() > 0 && held.ino() == named.ino() && held.dev() == named.dev() => {}
            Ok(_) => {
                let fresh = File::open(&self.wal_path)?;
                if let Err(e) = self.db.sync_all().and_then(|()| sync_dir(&self.wal_path)) {
                    return Ok(Err(e));
                }
                *self.wal.lock() = Arc::new(fresh);
                return Ok(self.wal.lock().sync_data());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(self.db.sync_all());
            }
            Err(e) => return Err(e),
        }
        Ok(wal.sync_data())
    }
}
