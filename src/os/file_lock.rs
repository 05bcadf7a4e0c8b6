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
