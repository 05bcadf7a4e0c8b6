//! An exclusive `flock(2)` on an open file, waited for in the kernel: the waiters sleep
//! until the holder lets go and are woken then, where a lock polled from user space
//! (SQLite's busy handler sleeps 1, 2, 5, 10 ms and more between tries) leaves the
//! resource idle for most of a wait that should have lasted a fraction of a millisecond.
//!
//! `flock` locks belong to the open file description and are independent of POSIX
//! (`fcntl`) record locks on Linux's local file systems, so taking one, and closing the
//! descriptor, leaves SQLite's own locks alone. This module must not know what the lock
//! guards.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// The lock, held until dropped.
#[derive(Debug)]
pub(crate) struct Exclusive<'a> {
    file: &'a File,
}

/// Waits for, and takes, the exclusive `flock` of `file`.
pub(crate) fn lock_exclusive(file: &File) -> io::Result<Exclusive<'_>> {
    loop {
        // SAFETY: `flock` on a descriptor that `file` owns and keeps open for the call; it
        // takes no pointers.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(Exclusive { file });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        // SAFETY: as in `lock_exclusive`; the descriptor is still open (`file` is borrowed
        // for as long as this value lives). An unlock of a held lock cannot fail.
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
    use std::time::{Duration, Instant};

    #[test]
    fn a_second_description_waits_for_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let a = File::create(&path).unwrap();
        let b = File::open(&path).unwrap();
        let held = lock_exclusive(&a).unwrap();
        let started = Instant::now();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let _turn = lock_exclusive(&b).unwrap();
                started.elapsed()
            });
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
            assert!(waiter.join().unwrap() >= Duration::from_millis(50));
        });
    }
}
