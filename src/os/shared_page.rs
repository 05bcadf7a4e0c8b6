//! A read-only shared mapping of the first page of a file that other processes write,
//! read with volatile loads.
//!
//! The store uses it for SQLite's `-shm` file, whose first bytes (the WAL-index header)
//! change with every commit: reading them from a mapping costs a few loads, where `pread`
//! costs a system call (~0.5 µs, a twentieth of an ECDSA signature) on every object
//! operation. The bytes can change while they are read; callers compare them with an
//! earlier copy and treat any difference as "look closer", so a torn read costs a
//! second look and nothing more.
//!
//! A mapping is made only when the file already holds a whole page: reading a mapped
//! page past the end of a file raises SIGBUS. A file that another process truncates
//! afterwards would do the same; SQLite maps this very file for its own use and has the
//! same exposure, and SQLite truncates it only when no connection has it open (while the
//! store's connection is open, it does). It must not be used for files whose length
//! other parties change in normal operation.

use std::fs::File;
use std::os::fd::AsRawFd;

/// The mapped length: one page (SQLite's `-shm` grows in 32 KiB steps).
const PAGE: usize = 4096;

/// The first page of a file, mapped read-only and shared.
pub(crate) struct SharedPage {
    base: *mut libc::c_void,
}

// SAFETY: the mapping is read-only and owned by this value; reads through it are volatile
// loads of plain bytes, which any thread may do at the same time.
unsafe impl Send for SharedPage {}
// SAFETY: as above; `&SharedPage` allows only reads.
unsafe impl Sync for SharedPage {}

impl std::fmt::Debug for SharedPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedPage")
    }
}

impl SharedPage {
    /// Maps the first page of `file`, or `None` when the file is shorter than a page or
    /// the mapping fails (the caller then reads the file instead).
    pub(crate) fn map(file: &File) -> Option<SharedPage> {
        let len = file.metadata().ok()?.len();
        if len < PAGE as u64 {
            return None;
        }
        // SAFETY: a new read-only shared mapping of `PAGE` bytes of an open file that
        // holds at least that many; it touches no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        Some(SharedPage { base })
    }

    /// The `i`th eight-byte word of the page in native byte order, read with one
    /// volatile load; `None` past the page.
    pub(crate) fn word(&self, i: usize) -> Option<u64> {
        if i >= PAGE / 8 {
            return None;
        }
        // SAFETY: `i < PAGE / 8`, so the 8 bytes at `8 * i` lie inside the live mapping of
        // `PAGE` readable bytes, and `base` is page-aligned (mmap), so the load is
        // aligned; volatile because other processes write these bytes.
        Some(unsafe { std::ptr::read_volatile(self.base.cast::<u64>().add(i)) })
    }

    /// Copies the first `N` bytes of the page (`N` at most a page), a word at a time:
    /// eight-byte volatile loads from the page-aligned mapping, then single bytes for any
    /// tail (a byte-wise copy of SQLite's 96-byte header cost ~300 instructions per call).
    pub(crate) fn read<const N: usize>(&self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(PAGE);
        let words = n / 8;
        let src = self.base.cast::<u64>();
        for (i, chunk) in out.chunks_exact_mut(8).take(words).enumerate() {
            // SAFETY: `i < n / 8`, so the 8 bytes at `8 * i` lie inside the live mapping
            // of `PAGE` readable bytes, and `base` is page-aligned (mmap), so the load is
            // aligned; volatile because other processes write these bytes.
            let word = unsafe { std::ptr::read_volatile(src.add(i)) };
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        let bytes = self.base.cast::<u8>();
        for (i, byte) in out.iter_mut().enumerate().take(n).skip(words * 8) {
            // SAFETY: `i < min(N, PAGE)`, inside the live mapping of `PAGE` readable
            // bytes; a volatile load because other processes write these bytes.
            *byte = unsafe { std::ptr::read_volatile(bytes.add(i)) };
        }
        out
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: `base` is what mmap returned for `PAGE` bytes, unmapped once; reads
        // borrow `self`, so none is in progress.
        unsafe { libc::munmap(self.base, PAGE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn reads_show_what_another_handle_writes_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shm");
        let writer = File::create(&path).unwrap();
        writer.write_all_at(&[0u8; 32768], 0).unwrap();
        let page = SharedPage::map(&File::open(&path).unwrap()).unwrap();
        assert_eq!(page.read::<4>(), [0; 4]);
        writer.write_all_at(b"seen", 1).unwrap();
        assert_eq!(page.read::<5>(), *b"\0seen");
        // Whole words and a tail: the word loads keep the file's byte order.
        writer.write_all_at(b"0123456789abcdefXYZ", 0).unwrap();
        assert_eq!(page.read::<19>(), *b"0123456789abcdefXYZ");
        assert_eq!(page.read::<16>(), *b"0123456789abcdef");
    }

    #[test]
    fn a_file_shorter_than_a_page_is_not_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short");
        std::fs::write(&path, [1u8; 100]).unwrap();
        assert!(SharedPage::map(&File::open(&path).unwrap()).is_none());
        std::fs::write(&path, []).unwrap();
        assert!(SharedPage::map(&File::open(&path).unwrap()).is_none());
    }
}
