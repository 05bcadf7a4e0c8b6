//! Whether a process still exists, for state shared between processes (the SQLite
//! store's sync board) that must not wait for a process that is gone.
//!
//! A process id can be reused after its process ends: "alive" may name a stranger. The
//! callers therefore also bound how long they believe what a process left behind. This
//! module must not signal anything: it only asks.

/// Whether a process with id `pid` exists (also when it belongs to another user). Id 0,
/// and ids the kernel cannot have, are never alive.
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 sends nothing; kill only checks that the process exists and may
    // be signalled. It takes no pointers.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_lives_and_a_finished_child_and_id_zero_do_not() {
        assert!(alive(std::process::id()));
        assert!(!alive(0));
        assert!(!alive(u32::MAX));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!alive(pid), "a reaped child is gone");
    }
}
