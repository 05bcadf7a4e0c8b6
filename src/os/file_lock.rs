//! An exclusive `flock(2)` on a file, taken with a bounded wait: the writers' turn of the
//! SQLite store, so that writers of several processes wait for each other here, a few
//! tens of microseconds between tries, instead of in SQLite's busy handler, which sleeps
//! 1, 2, 5, 10 ms and more between tries while a commit lasts a fraction of a millisecond.
//!
//! `flock` locks belong to the open file description and are independent of POSIX
//! (`fcntl`) record locks on Linux's local file systems, so taking one, and closing the
//! descriptor, leaves SQLite's own locks alone. The caller opens the file for each turn
//! and the lock goes with the descriptor: a description shared with a `fork()` child
//! (which would keep a dead holder's lock alive) is never left behind. The wait is
//! bounded, so a holder that stops (a debugger, SIGSTOP) delays others by at most the
//! bound. This module must not know what the lock guards.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The lock, held until dropped (with its descriptor).
#[derive(Debug)]
pub(crate) struct Exclusive {
    file: File,
}

/// The first pause between tries; it doubles up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_micros(10);
const LONGEST_PAUSE: Duration = Duration::from_micros(500);

/// Takes the exclusive `flock` of `file`, trying until `limit` has passed: `None` when
/// another description held it all that time.
pub(crate) fn lock_exclusive_within(file: File, limit: Duration) -> io::Result<Option<Exclusive>> {
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        // SAFETY: `flock` on a descriptor that `file` owns and keeps open for the call; it
        // takes no pointers.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(Exclusive { file }));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => {}
            _ => return Err(e),
        }
        if started.elapsed() >= limit {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        // SAFETY: as in `lock_exclusive_within`; the descriptor is open until `file` drops
        // after this. Closing it would release the lock too; unlocking first says so.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Whether some POSIX record lock (this process's included: open-file-description locks
/// conflict with those of the same process) would keep a write lock off byte `at` of
/// `file`. For tests of what holds SQLite's locks.
#[cfg(test)]
pub(crate) fn byte_is_locked(file: &File, at: i64) -> bool {
    // SAFETY: `flock` is plain data; zeroed is a valid value of it.
    let mut query: libc::flock = unsafe { std::mem::zeroed() };
    query.l_type = libc::F_WRLCK as libc::c_short;
    query.l_whence = libc::SEEK_SET as libc::c_short;
    query.l_start = at;
    query.l_len = 1;
    // SAFETY: F_OFD_GETLK reads and writes the `flock` value passed, which lives for the
    // call; the descriptor is open.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut query) };
    assert_eq!(rc, 0, "F_OFD_GETLK: {}", io::Error::last_os_error());
    query.l_type != libc::F_UNLCK as libc::c_short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_description_waits_for_the_holder_and_no_longer_than_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        File::create(&path).unwrap();
        let open = || File::open(&path).unwrap();
        let held = lock_exclusive_within(open(), Duration::ZERO)
            .unwrap()
            .unwrap();
        let started = Instant::now();
        assert!(lock_exclusive_within(open(), Duration::from_millis(30))
            .unwrap()
            .is_none());
        assert!(started.elapsed() >= Duration::from_millis(30));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let turn = lock_exclusive_within(open(), Duration::from_secs(10)).unwrap();
                (turn.is_some(), started.elapsed())
            });
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
            let (got, after) = waiter.join().unwrap();
            assert!(got && after >= Duration::from_millis(80));
        });
    }
}
