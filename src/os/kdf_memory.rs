//! The working memory of one Argon2id PIN derivation: a private anonymous mapping, asked
//! to be backed by transparent huge pages and unmapped when the derivation ends.
//!
//! Why not a `Vec`: at the default cost (19 MiB) a heap allocation takes ~4,900 page
//! faults, a third of a login's time in a fresh process; with huge pages it takes about
//! ten. And the Argon2 crate does not wipe this memory, whose first blocks let anyone who
//! reads them test PIN guesses without paying the memory cost; unmapping gives the pages
//! back to the kernel (which clears them before any reuse), where a freed heap block would
//! keep them readable in the host process. Where the mapping cannot be made, a zeroed
//! `Vec` is used and wiped on drop.
//!
//! Its `unsafe` is `mmap`, `madvise` and `munmap` of a mapping this type alone owns, and
//! the view of it as blocks. It must not hand out the memory beyond the borrow of `blocks`.

use argon2::Block;
use zeroize::Zeroize;

/// Transparent huge page size on x86-64 and aarch64 with 4 KiB base pages.
const HUGE_PAGE: usize = 2 << 20;

/// Memory for `count` Argon2 blocks, zero-filled.
pub(crate) struct KdfMemory {
    inner: Inner,
}

enum Inner {
    /// `base`/`len`: the whole mapping; `blocks` start at `start`, inside it.
    Mapped {
        base: *mut libc::c_void,
        len: usize,
        start: *mut Block,
        count: usize,
    },
    Heap(Vec<Block>),
}

// SAFETY: the mapping is owned exclusively by this value (no other pointer to it exists
// outside the borrows `blocks` hands out), like a `Vec<Block>`, which is `Send`.
unsafe impl Send for Inner {}

/// Shows the size and kind only: the blocks are PIN-derived.
impl std::fmt::Debug for KdfMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, count) = match &self.inner {
            Inner::Mapped { count, .. } => ("mapped", *count),
            Inner::Heap(v) => ("heap", v.len()),
        };
        write!(f, "KdfMemory({count} blocks, {kind})")
    }
}

impl KdfMemory {
    pub(crate) fn new(count: usize) -> KdfMemory {
        match map(count) {
            Some(inner) => KdfMemory { inner },
            None => KdfMemory {
                inner: Inner::Heap(vec![Block::default(); count]),
            },
        }
    }

    /// Whether the memory is a private mapping (not the heap fallback; for the tests).
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self.inner, Inner::Mapped { .. })
    }

    pub(crate) fn blocks(&mut self) -> &mut [Block] {
        match &mut self.inner {
            // SAFETY: `start` is 64-byte aligned (a page boundary) and `count` blocks from
            // it lie inside the live mapping, which was zero-filled by the kernel (any bit
            // pattern is a valid `Block`, plain `u64`s). The returned borrow is tied to
            // `&mut self`, so it cannot outlive the mapping or alias another borrow.
            Inner::Mapped { start, count, .. } => unsafe {
                std::slice::from_raw_parts_mut(*start, *count)
            },
            Inner::Heap(v) => v,
        }
    }
}

impl Drop for KdfMemory {
    fn drop(&mut self) {
        match &mut self.inner {
            Inner::Mapped { base, len, .. } => {
                // SAFETY: `base`/`len` are exactly what mmap returned, unmapped once here;
                // no borrow from `blocks` can be alive while `self` is dropped.
                unsafe { libc::munmap(*base, *len) };
            }
            Inner::Heap(v) => v.iter_mut().for_each(Zeroize::zeroize),
        }
    }
}

/// Maps room for `count` blocks plus one huge page of slack, so that the blocks can start
/// on a huge-page boundary, and advises the kernel to back it with huge pages. Advice the
/// kernel refuses (THP disabled) is not an error: the mapping still works with 4 KiB pages.
fn map(count: usize) -> Option<Inner> {
    let bytes = count.checked_mul(std::mem::size_of::<Block>())?;
    if bytes == 0 {
        return None;
    }
    let len = bytes.checked_add(HUGE_PAGE)?;
    let base = super::map_anonymous(len)?;
    let offset = (HUGE_PAGE - (base as usize % HUGE_PAGE)) % HUGE_PAGE;
    // `offset < HUGE_PAGE`, so `offset + bytes <= len`: the blocks fit in the mapping.
    let start = (base as usize + offset) as *mut libc::c_void;
    // SAFETY: `start..start + bytes` lies inside the mapping made above; MADV_HUGEPAGE
    // changes only how the kernel backs it, not its contents or validity. The result is
    // ignored on purpose (see above).
    let _ = unsafe { libc::madvise(start, bytes, libc::MADV_HUGEPAGE) };
    Some(Inner::Mapped {
        base,
        len,
        start: start.cast::<Block>(),
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_zeroed_aligned_and_writable_to_the_end() {
        let mut mem = KdfMemory::new(19 * 1024);
        assert!(mem.is_mapped());
        let blocks = mem.blocks();
        assert_eq!(blocks.len(), 19 * 1024);
        assert_eq!(blocks.as_ptr() as usize % HUGE_PAGE, 0);
        assert!(blocks.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)));
        let last = blocks.len() - 1;
        blocks[last].as_mut()[127] = u64::MAX;
        assert_eq!(blocks[last].as_ref()[127], u64::MAX);
    }

    #[test]
    fn zero_blocks_fall_back_to_an_empty_heap_buffer() {
        let mut mem = KdfMemory::new(0);
        assert!(!mem.is_mapped());
        assert!(mem.blocks().is_empty());
    }
}
