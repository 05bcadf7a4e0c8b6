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
//! and by other processes' commits that reached the file before it began. Across
//! processes the sync board (`board.rs`) says which syncs began and completed: a sync
//! about to run its fsync first asks it, and runs none when another process's completed
//! sync began after this handle's writes, or waits for one that is running.
//!
//! Commit delay: a sync about to begin holds back while other threads of this process
//! are in a write (from before they wait for the connection until their ticket), and
//! until as many writes have been made for it as there were threads in its group (those
//! whose write the last sync covered, and those that have written for this one; not
//! the thread that began it). It holds back at most as long as the last fsync took
//! ([`MAX_DELAY`] at most), that time counted from the end of any older sync still
//! running (the group's threads wait for that one, and this sync's flush would queue
//! behind it anyway). Without it, creators on a slow disk fall into groups that
//! alternate between fsyncs, each released group writing again only after the next
//! fsync has begun (docs/performance.md, "Group commit"). A lone thread never holds
//! back; a thread that stops writing is waited for once, and the group shrinks. Other
//! processes' writers are waited for on the board, after this hold and within the same
//! bound (`board.rs`). On a disk whose last fsync took less than [`SLOW_FSYNC`] no sync
//! holds back at all: there it cost more than it shared.
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
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::board::{self, Board};
use crate::os::shared_page::SharedPage;

/// The two copies of the WAL-index header (sqlite.org/walformat.html); every commit
/// changes them (its change counter at least), so equal bytes mean no commit since.
pub(super) const HEADERS: usize = 96;

/// The longest a sync holds back for writers (once no older sync runs): a bound on the
/// latency the delay adds, for a disk whose fsync takes longer than this.
pub(super) const MAX_DELAY: Duration = Duration::from_millis(2);

/// The shortest fsync worth holding back for: on a disk that flushes faster (this
/// project's development machines, ~0.1 ms), holding back measurably slowed four
/// creator threads (docs/performance.md), and a sync begins at once.
pub(super) const SLOW_FSYNC: Duration = Duration::from_micros(500);

/// The most threads a sync's group records, and the most writes a sync holds back for.
const GROUP_LIMIT: usize = 64;

struct State {
    /// Syncs begun so far; the number of the newest is `started`.
    started: u64,
    /// The highest number of a completed sync. Sync `n` covers every ticket up to `n`
    /// (they were taken, after their writes, before it began); syncs may run at once,
    /// and one counts as completed only once every older one still running has ended
    /// without failing (`wait`).
    completed: u64,
    /// The numbers of the syncs running now.
    running: Vec<u64>,
    /// The WAL-index headers as read just before sync `completed` began: everything
    /// they publish is durable.
    durable: Option<[u8; HEADERS]>,
    /// A sync failed: nothing more may be acknowledged through this handle.
    failed: bool,
    /// Threads of this process in a write: counted from before they wait for the
    /// connection until they take their ticket ([`Writing`]).
    writers: usize,
    /// The number of a sync that holds back for those writers: it has not begun, so a
    /// write that ends now is covered by it.
    held: Option<u64>,
    /// How long the last fsync that ran alone took: the longest the next sync holds
    /// back, up to `max_delay` ([`MAX_DELAY`]; tests change both).
    last_fsync: Duration,
    max_delay: Duration,
    /// The threads whose writes the next sync to begin covers (each once; at most
    /// [`GROUP_LIMIT`]).
    pending: Vec<ThreadId>,
    /// The threads whose writes the newest begun sync covered.
    previous: Vec<ThreadId>,
    /// While a sync is held: how many threads it waits to have written (the threads of
    /// `pending` and `previous` together, counted once each, the one that began the
    /// sync left out; at most [`GROUP_LIMIT`]).
    expected: usize,
    /// Syncs that held back so far (for tests).
    holds: u64,
    /// fsyncs this handle ran (for tests; a sync another process covered runs none).
    fsyncs: u64,
    /// How much longer every fsync takes (for tests: a slow disk).
    #[cfg(test)]
    fsync_pause: Duration,
}

impl State {
    /// No sync begun; the bound from an fsync that took `last_fsync`.
    fn new(last_fsync: Duration) -> State {
        State {
            started: 0,
            completed: 0,
            running: Vec::new(),
            durable: None,
            failed: false,
            writers: 0,
            held: None,
            last_fsync,
            max_delay: MAX_DELAY,
            pending: Vec::new(),
            previous: Vec::new(),
            expected: 0,
            holds: 0,
            fsyncs: 0,
            #[cfg(test)]
            fsync_pause: Duration::ZERO,
        }
    }

    /// The sync that covers a write (or read) that has just ended.
    fn ticket(&self) -> u64 {
        match self.held {
            Some(number) => number,
            None => self.started + 1,
        }
    }

    /// Notes that the calling thread wrote: the next sync covers it.
    fn wrote(&mut self) {
        let me = std::thread::current().id();
        if self.pending.len() < GROUP_LIMIT && !self.pending.contains(&me) {
            self.pending.push(me);
        }
    }

    /// How many writes a sync about to begin, for `caller`, holds back for: one from
    /// each thread that wrote for the last sync or has written for this one. Not the
    /// caller's: a thread that needs the sync (for a read, or a write already counted)
    /// does not wait for itself. A count, not a roll call: a newcomer's write stands in
    /// for a thread that does not come back.
    fn group(&self, caller: ThreadId) -> usize {
        let returning = self
            .previous
            .iter()
            .filter(|&&t| t != caller && !self.pending.contains(&t));
        (self.pending.len() + returning.count()).min(GROUP_LIMIT)
    }

    /// Whether a held sync still has someone to wait for.
    fn holding(&self) -> bool {
        !self.failed && (self.writers > 0 || self.pending.len() < self.expected)
    }
}

/// A thread in a write, counted until it takes its ticket ([`Writing::ticket`]) or
/// gives up (drop).
pub(super) struct Writing<'a>(&'a WalSync);

impl Writing<'_> {
    /// The sync that covers the write just ended (or, for `read_only`, whatever the
    /// write transaction read: `None` when every commit it can have seen is durable).
    /// The writer is no longer counted once this returns (or unwinds): the count ends
    /// under the same lock as the ticket is taken, or else in `drop`.
    pub(super) fn ticket(self, read_only: bool) -> Option<u64> {
        let sync = self.0;
        // Read before the lock, as `covers_now` does.
        let now = read_only.then(|| sync.headers.read::<HEADERS>());
        // Before the ticket: a sync that covers it asks the board about this mark.
        let mark = sync.board.as_ref().map(Board::note);
        let mut st = sync.state.lock();
        let ticket = match now {
            Some(now) if st.durable == Some(now) => None,
            Some(_) => Some(st.ticket()),
            None => {
                st.wrote();
                Some(st.ticket())
            }
        };
        sync.left(&mut st);
        drop(st);
        if let Some(board) = &sync.board {
            board.writer_ended(mark.filter(|_| !read_only));
        }
        // The count has ended: `drop` must not end it again. `Writing` holds nothing
        // else to release.
        std::mem::forget(self);
        ticket
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.leave();
        if let Some(board) = &self.0.board {
            board.writer_ended(None);
        }
    }
}

pub(super) struct WalSync {
    /// The database file, this process's one descriptor of it (`files.rs`).
    db: Arc<File>,
    wal_path: PathBuf,
    /// The `-wal` file SQLite writes; replaced if it was deleted and made again.
    wal: Mutex<Arc<File>>,
    headers: SharedPage,
    /// The syncs of every process with the token open (`board.rs`); `None` where the
    /// board cannot be used: this handle then syncs for itself alone.
    board: Option<Board>,
    state: Mutex<State>,
    done: Condvar,
}

/// Asks `board` (where this handle has one) about the writes and reads it noted:
/// `(true, None)` when another sync covers them, else whether the caller's fsync runs
/// under a claim (`Some`) or alone (`None`: no board, or a stopped one).
fn ask_board(board: Option<&Board>, hold: board::Hold) -> (bool, Option<board::Claim<'_>>) {
    match board.map(|b| b.cover(hold)) {
        Some(board::Cover::Done) => (true, None),
        Some(board::Cover::Run(claim)) => (false, Some(claim)),
        Some(board::Cover::Alone) | None => (false, None),
    }
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
        let wal = super::files::open_regular(&wal_path).ok()?;
        let headers = SharedPage::map(shm)?;
        let mut board_path = db.as_os_str().to_owned();
        board_path.push("-sync");
        let board = Board::open(Path::new(&board_path));
        // Under a claim like every fsync of a handle on the board (`board.rs`): this
        // descriptor may be the first told of a writeback error of other processes'
        // pages, and then no later fsync's word may be taken for them.
        let (synced, last_fsync) = {
            // Another process's completed fsync may already cover everything before this
            // open: then none runs here (and no fsync time is known yet).
            // Without a claim, an fsync runs only alone: the board has already stopped.
            if let Some(board) = &board {
                board.note();
            }
            let no_hold = board::Hold {
                last_fsync: Duration::ZERO,
                max_delay: Duration::ZERO,
                slow: SLOW_FSYNC,
            };
            let (covered, claim) = ask_board(board.as_ref(), no_hold);
            let began = Instant::now();
            let synced = if covered { Ok(()) } else { wal.sync_data() };
            let last_fsync = began.elapsed();
            if let Some(claim) = claim {
                claim.finish(synced.is_ok());
            }
            (synced, last_fsync)
        };
        synced.ok()?;
        sync_dir(&wal_path).ok()?;
        if board.is_none() {
            log::debug!(
                "{}: no place on the sync board; syncing for this handle alone",
                db.display()
            );
        }
        Some(WalSync {
            db: db_file,
            wal_path,
            wal: Mutex::new(Arc::new(wal)),
            headers,
            board,
            state: Mutex::new(State::new(last_fsync)),
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
    /// a read has finished, and handed to [`WalSync::wait`] (a write's comes from
    /// [`Writing::ticket`]).
    pub(super) fn ticket(&self) -> u64 {
        if let Some(board) = &self.board {
            board.note();
        }
        self.state.lock().ticket()
    }

    /// Counts the calling thread as in a write until its [`Writing`] takes its ticket or
    /// is dropped: a sync about to begin holds back for it.
    pub(super) fn writing(&self) -> Writing<'_> {
        self.state.lock().writers += 1;
        if let Some(board) = &self.board {
            board.writer_began();
        }
        Writing(self)
    }

    fn leave(&self) {
        self.left(&mut self.state.lock());
    }

    /// Ends a writer's count, on the locked state.
    fn left(&self, st: &mut State) {
        debug_assert!(st.writers > 0, "a writer left that was not counted");
        st.writers = st.writers.saturating_sub(1);
        if st.held.is_some() && !st.holding() {
            self.done.notify_all();
        }
    }

    /// Sets how long the last fsync took and the delay's own bound (for tests).
    #[cfg(test)]
    pub(super) fn set_delay_bounds(&self, last_fsync: Duration, max_delay: Duration) {
        let mut st = self.state.lock();
        st.last_fsync = last_fsync;
        st.max_delay = max_delay;
    }

    /// The number of the sync holding back now, if one is (for tests).
    #[cfg(test)]
    pub(super) fn held(&self) -> Option<u64> {
        self.state.lock().held
    }

    /// Makes every fsync take `pause` longer (for tests).
    #[cfg(test)]
    pub(super) fn slow_down(&self, pause: Duration) {
        self.state.lock().fsync_pause = pause;
    }

    /// How many syncs are running (held or in their fsync; for tests).
    #[cfg(test)]
    pub(super) fn running(&self) -> usize {
        self.state.lock().running.len()
    }

    /// How many syncs have held back so far (for tests).
    #[cfg(test)]
    pub(super) fn holds(&self) -> u64 {
        self.state.lock().holds
    }

    /// How many fsyncs this handle ran (for tests).
    #[cfg(test)]
    pub(super) fn fsyncs(&self) -> u64 {
        self.state.lock().fsyncs
    }

    /// This handle's place on the sync board, if it has one (for tests).
    #[cfg(test)]
    pub(super) fn board(&self) -> Option<&Board> {
        self.board.as_ref()
    }

    /// The threads counted as in a write (for tests).
    #[cfg(test)]
    pub(super) fn writers(&self) -> usize {
        self.state.lock().writers
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
            // Ran beside an older sync, an fsync may find nothing left to flush: its time
            // says nothing of the disk's, and the bound is not set from it.
            let alone = st.running.len() == 1;
            st.expected = st.group(std::thread::current().id());
            if st.last_fsync >= SLOW_FSYNC && st.holding() {
                // The commit delay (module comment). Held, the sync is this number's
                // ticket, so the writers that end meanwhile are covered by it.
                st.held = Some(number);
                st.holds += 1;
                let bound = st.last_fsync.min(st.max_delay);
                let mut until = Instant::now() + bound;
                while st.holding() {
                    if st.running.iter().any(|&n| n < number) {
                        // The group's threads wait for an older sync and write again only
                        // once it ends (this one would queue behind its flush anyway):
                        // the bound counts from then.
                        self.done.wait(&mut st);
                        until = Instant::now() + bound;
                        continue;
                    }
                    if self.done.wait_until(&mut st, until).timed_out() {
                        break;
                    }
                }
                st.held = None;
            }
            let group = &mut *st;
            std::mem::swap(&mut group.previous, &mut group.pending);
            group.pending.clear();
            let hold = board::Hold {
                last_fsync: st.last_fsync,
                max_delay: st.max_delay,
                slow: SLOW_FSYNC,
            };
            drop(st);
            // Read before the fsync begins: every commit it publishes had its frames
            // written already, so the fsync covers them. Then a mark, for the case where
            // another process's sync covers this one instead: the header is durable only
            // if that sync began after the read too.
            let headers = self.headers.read::<HEADERS>();
            let header_mark = self.board.as_ref().map(Board::mark_now);
            // Another process's sync may cover this one's writes (`board.rs`): then no
            // fsync runs here, and its time says nothing of the disk's.
            let (covered, claim) = ask_board(self.board.as_ref(), hold);
            let began = Instant::now();
            let result = if covered {
                Ok(Ok(()))
            } else {
                #[cfg(test)]
                {
                    let pause = self.state.lock().fsync_pause;
                    std::thread::sleep(pause);
                }
                self.sync_wal()
            };
            // A failure goes on the board at once, before this thread does anything else
            // (`board.rs`: processes waiting for this sync must not take a later one's
            // word for it).
            let claim = match (claim, &result) {
                (Some(claim), Ok(Ok(()))) => Some(claim),
                (Some(claim), _) => {
                    claim.finish(false);
                    None
                }
                (None, _) => None,
            };
            st = self.state.lock();
            if !covered {
                st.fsyncs += 1;
            }
            if alone && !covered {
                st.last_fsync = began.elapsed();
            }
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
            let synced = matches!(result, Ok(Ok(()))) && !st.failed;
            if synced && number > st.completed {
                st.completed = number;
                let header_synced = match (covered, header_mark, &self.board) {
                    (true, Some(mark), Some(board)) => board.completed() > mark && !board.failed(),
                    _ => true,
                };
                if header_synced {
                    st.durable = Some(headers);
                }
            }
            // Published for other processes on the same terms as here.
            if let Some(claim) = claim {
                claim.finish(synced);
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
                let fresh = super::files::open_regular(&self.wal_path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_ids(n: usize) -> Vec<ThreadId> {
        (0..n)
            .map(|_| {
                std::thread::spawn(|| std::thread::current().id())
                    .join()
                    .unwrap()
            })
            .collect()
    }

    /// More writers than a group records: a sync holds back for as many writes as
    /// `pending` can hold, and stops holding once it holds them.
    #[test]
    fn a_group_larger_than_the_limit_is_waited_for_up_to_the_limit() {
        let ids = thread_ids(2 * GROUP_LIMIT + 2);
        let mut st = State::new(Duration::ZERO);
        st.pending = ids[..GROUP_LIMIT].to_vec();
        st.previous = ids[GROUP_LIMIT..].to_vec();
        let caller = ids[0];
        st.expected = st.group(caller);
        assert_eq!(st.expected, GROUP_LIMIT);
        assert!(!st.holding(), "every write it can record has been made");
        st.pending.truncate(GROUP_LIMIT - 1);
        assert!(st.holding());
    }
}
