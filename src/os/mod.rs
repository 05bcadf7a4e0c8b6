//! Memory mappings and process hooks: the operating-system calls below the PKCS#11
//! layer that need `unsafe`, each behind a safe type or function.
//!
//! - `call_lock`: a lock whose release is one plain store (a session's operations, taken
//!   by every call on it; waiters poll).
//! - `clock`: the coarse wall and monotonic clocks (the time of the last timer tick,
//!   five times cheaper to read than the precise ones).
//! - `file_lock`: an exclusive `flock` taken with a bounded wait (the SQLite store's turn
//!   to write, so that writers of several processes do not wait in SQLite's busy
//!   handler).
//! - `fork`: registers the functions `fork()` runs around itself (`pthread_atfork`), and
//!   keeps a mark the kernel wipes in a child (`MADV_WIPEONFORK`), for children that ran
//!   no hooks.
//! - `kdf_memory`: the Argon2id working memory, a private anonymous mapping backed by
//!   huge pages and unmapped (not freed to the heap) after the derivation.
//! - `own_memory`: reads a string at an untrusted address of this process without
//!   faulting (the kernel copies it and reports unmapped memory as an error).
//! - `process`: whether a process id still names a process (`kill` with signal 0).
//! - `shared_page`: a read-only view of the first page of a file another process writes
//!   (SQLite's `-shm`), read with volatile loads, so noticing a commit costs no system
//!   call.
//! - `shared_words`: a writable shared page of a file as atomic words, with a futex to
//!   sleep on one (the SQLite store's sync board, shared by every process).
//!
//! This is one of the few places of the crate allowed `unsafe` (docs/architecture.md
//! lists them). It must not know about PKCS#11, KMS keys or SQLite's formats: it maps,
//! reads and writes words, locks, and unmaps.

pub(crate) mod call_lock;
pub(crate) mod clock;
pub(crate) mod file_lock;
pub(crate) mod fork;
pub(crate) mod kdf_memory;
pub(crate) mod own_memory;
pub(crate) mod process;
pub(crate) mod shared_page;
pub(crate) mod shared_words;

/// A fresh private anonymous mapping of `len` bytes, readable and writable, zero-filled,
/// at an address the kernel picks; `None` where the kernel refuses it. The caller owns
/// it: it unmaps it, or keeps it for the life of the process.
fn map_anonymous(len: usize) -> Option<*mut libc::c_void> {
    // SAFETY: a new mapping at an address the kernel picks; it touches no existing memory.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (base != libc::MAP_FAILED).then_some(base)
}
