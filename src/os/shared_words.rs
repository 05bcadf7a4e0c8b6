//! A writable shared mapping of the first page of a file, seen as atomic words that
//! every process mapping the file reads and changes at once, with a futex to sleep on
//! one of them until another process says it changed.
//!
//! The SQLite store keeps its cross-process sync board in one (`store/sqlite/board.rs`):
//! which sync of the WAL began last, which completed, who is about to sync and who is in
//! a write. Lock-free atomic operations on such memory are atomic across processes on
//! the platforms this crate builds for (x86-64 and AArch64 Linux), and a futex that is
//! not process-private is keyed by the page, so a wake from another process's mapping
//! reaches a waiter here.
//!
//! The file is grown to a whole page before it is mapped (never shrunk): touching a
//! mapped page past the end of a file raises SIGBUS. A file that another party truncates
//! afterwards would do the same; the store's files live in its token folder, which only
//! the token's owner may write, and SQLite maps its `-shm` file with the same exposure.
//! This module must not know what the words mean.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

/// The mapped length: one page, 512 words.
const PAGE: usize = 4096;

/// How many eight-byte words the page holds.
pub(crate) const WORDS: usize = PAGE / 8;

/// The first page of a file, mapped for reading and writing, shared.
pub(crate) struct SharedWords {
    base: *mut libc::c_void,
}

// SAFETY: the mapping is owned by this value and only ever accessed through atomics,
// which any thread (or process) may use at the same time.
unsafe impl Send for SharedWords {}
// SAFETY: as above.
unsafe impl Sync for SharedWords {}

impl std::fmt::Debug for SharedWords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedWords")
    }
}

impl SharedWords {
    /// Grows `file` (open for reading and writing) to a page if it is shorter, and maps
    /// that page; `None` when either fails. A new file reads as zeros.
    pub(crate) fn map(file: &File) -> Option<SharedWords> {
        if file.metadata().ok()?.len() < PAGE as u64 {
            // Growing only: a process that mapped the page already keeps all of it.
            file.set_len(PAGE as u64).ok()?;
        }
        // SAFETY: a new shared mapping of `PAGE` bytes of an open file that holds at
        // least that many; it touches no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        Some(SharedWords { base })
    }

    /// Word `i` (below [`WORDS`]) as a 64-bit atomic. A word used this way must not also
    /// be used through [`SharedWords::word32`].
    pub(crate) fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < WORDS, "shared word {i} is past the page");
        // SAFETY: `i < WORDS`, so the 8 bytes at `8 * i` lie inside the live mapping of
        // `PAGE` writable bytes, aligned (mmap returns a page-aligned address); the
        // memory is only ever accessed atomically, and lives as long as `&self`.
        unsafe { &*self.base.cast::<AtomicU64>().add(i) }
    }

    /// The first four bytes of word `i` as a 32-bit atomic, the width a futex takes. A
    /// word used this way must not also be used through [`SharedWords::word`].
    pub(crate) fn word32(&self, i: usize) -> &AtomicU32 {
        assert!(i < WORDS, "shared word {i} is past the page");
        // SAFETY: as in `word`: 4 bytes at `8 * i`, inside the mapping and aligned.
        unsafe { &*self.base.cast::<AtomicU64>().add(i).cast::<AtomicU32>() }
    }

    /// Sleeps while word `i` (used as [`SharedWords::word32`]) holds `expected`, until a
    /// [`SharedWords::wake`] of it, `timeout` or a signal: returns at once when it holds
    /// something else. The caller looks again at what it waits for in every case.
    pub(crate) fn wait(&self, i: usize, expected: u32, timeout: Duration) {
        let word = self.word32(i);
        let timeout = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
        };
        // SAFETY: FUTEX_WAIT (not private: other processes wake it) reads the aligned
        // 4 bytes of the live mapping `word` points to and the timespec owned by this
        // frame; it writes nothing.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                &timeout as *const libc::timespec,
            )
        };
    }

    /// Wakes every process and thread waiting on word `i` ([`SharedWords::wait`]).
    pub(crate) fn wake(&self, i: usize) {
        let word = self.word32(i);
        // SAFETY: FUTEX_WAKE only uses the address as the key of its queue; the address
        // is an aligned word of the live mapping.
        unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: `base` is what mmap returned for `PAGE` bytes, unmapped once; every
        // reference handed out borrows `self`, so none outlives the mapping.
        unsafe { libc::munmap(self.base, PAGE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Instant;

    fn two_maps() -> (tempfile::TempDir, SharedWords, SharedWords) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("words");
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        let a = SharedWords::map(&open()).unwrap();
        let b = SharedWords::map(&open()).unwrap();
        (dir, a, b)
    }

    #[test]
    fn two_mappings_of_one_file_share_their_words_and_a_new_file_reads_as_zeros() {
        let (dir, a, b) = two_maps();
        assert_eq!(a.word(0).load(Ordering::Relaxed), 0);
        assert_eq!(a.word(WORDS - 1).load(Ordering::Relaxed), 0);
        a.word(3).store(0x0123_4567_89ab_cdef, Ordering::Release);
        assert_eq!(
            b.word(3).fetch_add(1, Ordering::AcqRel),
            0x0123_4567_89ab_cdef
        );
        assert_eq!(a.word(3).load(Ordering::Acquire), 0x0123_4567_89ab_cdf0);
        b.word32(4).store(7, Ordering::Release);
        assert_eq!(a.word32(4).load(Ordering::Acquire), 7);
        let len = std::fs::metadata(dir.path().join("words")).unwrap().len();
        assert_eq!(len, PAGE as u64, "grown to a page, no more");
    }

    #[test]
    #[should_panic(expected = "past the page")]
    fn a_word_past_the_page_is_refused() {
        let (_dir, a, _b) = two_maps();
        let _ = a.word(WORDS);
    }

    #[test]
    fn a_wait_ends_on_a_wake_through_the_other_mapping_and_else_on_its_timeout() {
        let (_dir, a, b) = two_maps();
        let a = Arc::new(a);
        let waiter = {
            let a = Arc::clone(&a);
            std::thread::spawn(move || {
                let began = Instant::now();
                while a.word32(1).load(Ordering::Acquire) == 0 {
                    a.wait(1, 0, Duration::from_secs(20));
                }
                began.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        b.word32(1).store(1, Ordering::Release);
        b.wake(1);
        let waited = waiter.join().unwrap();
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        // Nobody wakes it: the timeout ends the wait.
        let began = Instant::now();
        a.wait(2, 0, Duration::from_millis(30));
        assert!(began.elapsed() >= Duration::from_millis(25));
        // A word that no longer holds the value expected: no wait at all.
        let began = Instant::now();
        a.wait(1, 0, Duration::from_secs(20));
        assert!(began.elapsed() < Duration::from_secs(10));
    }
}
