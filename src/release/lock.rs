//! One candidate or promote at a time per publish root: an exclusive `flock` on
//! `<root>/.lock`, holding the holder's pid so the refusal can name it.
//!
//! The lock file is never deleted (deleting it would let a third process lock a fresh inode
//! while the second still holds the old one). The kernel drops the lock when the holder
//! exits, however it exits, so there is no stale-lock cleanup.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::Path;

use super::error::ReleaseError;

/// Name of the lock file inside a publish root.
pub(crate) const LOCK_FILE: &str = ".lock";

/// Held lock on a publish root; released on drop.
#[derive(Debug)]
pub(crate) struct PublishLock {
    file: File,
}

impl PublishLock {
    /// Takes the lock or fails at once with [`ReleaseError::LockHeld`] (exit 5).
    pub(crate) fn acquire(root: &Path) -> Result<Self, ReleaseError> {
        std::fs::create_dir_all(root).map_err(ReleaseError::io("create directory", root))?;
        let path = root.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(ReleaseError::io("open", &path))?;
        if !try_lock_exclusive(&file).map_err(ReleaseError::io("lock", &path))? {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(ReleaseError::LockHeld {
                root: root.to_path_buf(),
                pid: text.trim().parse().ok(),
            });
        }
        let record = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        record.map_err(ReleaseError::io("write", &path))?;
        Ok(PublishLock { file })
    }
}

impl Drop for PublishLock {
    fn drop(&mut self) {
        // Clear the pid so a later reader does not blame us; closing the file unlocks.
        let _ = self.file.set_len(0);
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when someone else holds it.
#[expect(unsafe_code, reason = "libc::flock on a descriptor we own")]
fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: flock only takes an integer descriptor, which `file` keeps open for the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_code::ExitCode;

    #[test]
    fn second_holder_is_refused_with_the_pid_and_exit_5() {
        let root = tempfile::tempdir().unwrap();
        let held = PublishLock::acquire(root.path()).unwrap();
        let err = PublishLock::acquire(root.path()).unwrap_err();
        let ReleaseError::LockHeld { pid, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*pid, Some(std::process::id()));
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert_eq!(err.exit_code(), ExitCode::ReleaseRefused);
        drop(held);
        PublishLock::acquire(root.path()).unwrap();
    }
}
