//! One candidate or promote at a time per publish root: the harness's one exclusive lock
//! ([`crate::sys::lock::FileLock`], an `flock` recording the holder's pid) on
//! `<root>/.lock`, refused at once rather than waited for (a release is a person's
//! decision; they should see who holds it).

use std::path::Path;

use super::error::ReleaseError;
use crate::sys::lock::{FileLock, LockError};

/// Name of the lock file inside a publish root.
pub(crate) const LOCK_FILE: &str = ".lock";

/// Held lock on a publish root; released on drop.
#[derive(Debug)]
pub(crate) struct PublishLock {
    _lock: FileLock,
}

impl PublishLock {
    /// Takes the lock or fails at once with [`ReleaseError::LockHeld`] (exit 5).
    pub(crate) fn acquire(root: &Path) -> Result<Self, ReleaseError> {
        std::fs::create_dir_all(root).map_err(ReleaseError::io("create directory", root))?;
        match FileLock::try_acquire(&root.join(LOCK_FILE)) {
            Ok(lock) => Ok(PublishLock { _lock: lock }),
            Err(LockError::Held { pid, .. }) => Err(ReleaseError::LockHeld {
                root: root.to_path_buf(),
                pid,
            }),
            Err(LockError::Io { what, path, source }) => Err(ReleaseError::io(what, path)(source)),
        }
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
