//! A buffer of this thread's own for AES-GCM decryption into memory the caller may be
//! reading (`gcm::gcm_decrypt_prepared_into`).
//!
//! aws-lc writes the plaintext before it checks the tag, so a decryption that must not put
//! unauthenticated bytes into its output, even for the length of the call, opens into
//! this buffer and copies out only what authenticated. Keeping the buffer per thread
//! spares each call an allocation of the ciphertext's size, its copy and its free. It is
//! wiped after every use, whatever the outcome, so between calls it holds zeros; it must
//! not be handed to anything that could keep a reference past the closure, nor be used
//! for anything but plaintext on its way out.

use std::cell::RefCell;

/// The largest use the buffer serves: a thread keeps at most this much memory for it.
/// Larger decryptions take a vector of their own (their fixed cost is small beside the
/// data's).
pub(super) const MAX: usize = 64 * 1024;

thread_local! {
    // Not `Zeroizing`: it holds zeros whenever no use runs, and a thread cannot end
    // during a use (one PKCS#11 call).
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` bytes (at most [`MAX`]) of this thread's buffer and wipes them after;
/// `None`, without running `f`, where the buffer cannot be had (`len` over `MAX`, a use
/// already running on this thread, or the thread ending).
pub(super) fn with<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
    if len > MAX {
        return None;
    }
    BUFFER
        .try_with(|cell| {
            let mut buffer = cell.try_borrow_mut().ok()?;
            if buffer.len() < len {
                // Grown once to its final size class. The old contents are zeros (wiped
                // after each use), so the allocation freed by the growth holds nothing.
                buffer.resize(len.next_power_of_two().min(MAX), 0);
            }
            // Wiped when the use ends, by a panic in `f` too (nothing of aws-lc's panics,
            // but the buffer must never keep plaintext).
            let area = Wiped(&mut buffer[..len]);
            Some(f(area.0))
        })
        .ok()
        .flatten()
}

/// An area of the buffer, wiped when dropped.
struct Wiped<'a>(&'a mut [u8]);

impl Drop for Wiped<'_> {
    fn drop(&mut self) {
        wipe(self.0);
    }
}

/// Zeroes `area` in one bulk write (zeroize writes a slice one volatile byte at a time, a
/// cost of its own at 4 KiB). The buffer stays reachable from the thread-local after
/// this, so the compiler may not drop the stores as dead; `black_box` says it again.
fn wipe(area: &mut [u8]) {
    area.fill(0);
    std::hint::black_box(&*area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_wiped_after_each_use_and_refused_beyond_its_bound_or_while_in_use() {
        assert_eq!(with(4096, |b| b.fill(0xa5)), Some(()));
        assert_eq!(with(4096, |b| b.iter().all(|&x| x == 0)), Some(true));
        assert_eq!(with(MAX + 1, |_| ()), None);
        assert_eq!(with(16, |_| with(16, |_| ())), Some(None));
        assert_eq!(with(MAX, |b| b.len()), Some(MAX));
    }
}
