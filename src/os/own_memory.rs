//! Reads a NUL-terminated string at an address this process was handed but cannot trust,
//! without faulting: the kernel copies the bytes (`process_vm_readv` on this process)
//! and answers `EFAULT` for memory that is not mapped readable, where a plain load
//! would raise SIGSEGV in the host. Where that call is refused (a seccomp filter), a pipe
//! serves instead: `write` from the address also fails with `EFAULT`, never a signal.
//!
//! A readable address is not proof that the caller meant a string there: this module
//! answers only "these bytes, up to a NUL, could be read". It must not interpret them,
//! and it must not be used on hot paths (each call is a few system calls).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Addresses below this are refused without a look: no mapping can be there under
/// Linux's default `vm.mmap_min_addr` (64 KiB), and small integers passed as pointers
/// (`(void *)1`) are the usual mistake.
pub(crate) const LOWEST_ADDRESS: usize = 64 * 1024;

/// Why no string was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Below [`LOWEST_ADDRESS`].
    LowAddress,
    /// Some byte before the first NUL is not mapped readable.
    Fault,
    /// No NUL within the limit.
    Unterminated,
    /// Neither way of reading could be used (both system calls refused).
    Unavailable,
}

/// The bytes at `addr` up to (not including) the first NUL, which must come within
/// `max` bytes (the NUL counted).
pub(crate) fn c_string(addr: usize, max: usize) -> Result<Vec<u8>, Unreadable> {
    if addr < LOWEST_ADDRESS {
        return Err(Unreadable::LowAddress);
    }
    let page = page_size();
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < max {
        // One page at a time: a read that does not cross a page either works or faults.
        let to_page_end = page - at % page;
        let n = to_page_end.min(max - out.len());
        let mut chunk = vec![0u8; n];
        copy_from(at, &mut chunk)?;
        if let Some(nul) = chunk.iter().position(|b| *b == 0) {
            out.extend_from_slice(&chunk[..nul]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk);
        at = at.checked_add(n).ok_or(Unreadable::Fault)?;
    }
    Err(Unreadable::Unterminated)
}

fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| s.is_power_of_two())
        .unwrap_or(4096)
}

/// Fills `buf` from `addr` (a range inside one page), or says why it could not.
fn copy_from(addr: usize, buf: &mut [u8]) -> Result<(), Unreadable> {
    match vm_read(addr, buf) {
        Ok(()) => Ok(()),
        Err(libc::EFAULT) => Err(Unreadable::Fault),
        Err(_) => pipe_read(addr, buf),
    }
}

/// `process_vm_readv` from this process into `buf`; the `errno` on failure.
fn vm_read(addr: usize, buf: &mut [u8]) -> Result<(), i32> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which we own, and
    // reads the remote range itself, answering EFAULT (not a signal) where it is not
    // readable; the remote iovec is never dereferenced by this process.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    if n as usize != buf.len() {
        // A short read within one page means the page became unreadable.
        return Err(libc::EFAULT);
    }
    Ok(())
}

/// The same through a pipe: `write` from `addr`, then `read` into `buf`.
fn pipe_read(addr: usize, buf: &mut [u8]) -> Result<(), Unreadable> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`, which we own from here on.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(Unreadable::Unavailable);
    }
    // SAFETY: both descriptors were just created by pipe2 and are owned by nobody else.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the kernel reads `buf.len()` bytes at `addr` (at most a page, below the
    // pipe's capacity) and answers EFAULT where they are not readable; this process
    // never dereferences `addr`.
    let written =
        unsafe { libc::write(writer.as_raw_fd(), addr as *const libc::c_void, buf.len()) };
    if written < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error();
        return Err(if errno == Some(libc::EFAULT) {
            Unreadable::Fault
        } else {
            Unreadable::Unavailable
        });
    }
    if written as usize != buf.len() {
        return Err(Unreadable::Fault);
    }
    // SAFETY: reads at most `buf.len()` bytes into `buf`, which we own.
    let read = unsafe { libc::read(reader.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if read < 0 || read as usize != buf.len() {
        return Err(Unreadable::Unavailable);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_string_up_to_its_nul() {
        let text = b"/etc/kmshsm.toml\0trailing";
        assert_eq!(
            c_string(text.as_ptr() as usize, 4096),
            Ok(b"/etc/kmshsm.toml".to_vec())
        );
    }

    #[test]
    fn refuses_low_addresses_unterminated_and_unmapped_memory() {
        assert_eq!(c_string(1, 4096), Err(Unreadable::LowAddress));
        assert_eq!(c_string(0x1000, 4096), Err(Unreadable::LowAddress));
        let long = vec![b'a'; 8192];
        assert_eq!(
            c_string(long.as_ptr() as usize, 4096),
            Err(Unreadable::Unterminated)
        );
        let page = page_size();
        // SAFETY: (test) a fresh inaccessible page (it stays reserved, so no other thread
        // of the test can map something readable there meanwhile), unmapped at the end.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(c_string(p as usize, 4096), Err(Unreadable::Fault));
            libc::munmap(p, page);
        }
    }

    #[test]
    fn the_pipe_fallback_reads_and_refuses_alike() {
        let text = b"abc\0";
        let mut buf = [0u8; 4];
        assert_eq!(pipe_read(text.as_ptr() as usize, &mut buf), Ok(()));
        assert_eq!(&buf, text);
        assert_eq!(pipe_read(8, &mut buf), Err(Unreadable::Fault));
    }

    #[test]
    fn a_string_that_runs_into_an_unmapped_page_is_a_fault() {
        let page = page_size();
        // SAFETY: (test) two fresh pages; the second is made inaccessible, the first
        // filled with non-NUL bytes, so a string starting in the first runs into it.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(
                libc::mprotect(p.cast::<u8>().add(page).cast(), page, libc::PROT_NONE),
                0
            );
            std::ptr::write_bytes(p.cast::<u8>(), b'x', page);
            assert_eq!(
                c_string(p as usize + page - 10, 4096),
                Err(Unreadable::Fault)
            );
            libc::munmap(p, 2 * page);
        }
    }
}
